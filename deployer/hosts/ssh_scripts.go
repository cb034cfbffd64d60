package hosts

import "strings"

// The remote side of the ssh transport is these fixed POSIX sh scripts,
// run as `sh -c SCRIPT deploybot ARG...`. Nothing a person types ever
// reaches them: the arguments are the host root (from the configuration),
// a slot name ("a" or "b"), a mode word, hexadecimal fingerprints, marker
// JSON built from validated commit names, and byte counts; every one is
// single-quoted by shellQuote. Paths travel only in the data stream on
// standard input (a tar archive, and a NUL-separated list of deletions read
// by xargs -0), so a path with spaces, quotes, newlines or a leading dash
// is never parsed by a shell.
//
// A host needs sh, GNU coreutils (head, sha256sum, sync, mv -T), GNU
// findutils (find -printf, xargs -0) and GNU tar: Debian and its
// derivatives have them all in a base install.

// scriptLib is shared by the scripts below.
//
// fp prints the fingerprint of a slot: a SHA-256 of its listing, one
// record per entry with its path, type, mode, size, ctime and symlink
// target. Every write into a file, chmod, rename or new entry changes the
// ctime of the entry or of its directory, and ctime cannot be set back
// from user space, so a slot that still has the fingerprint recorded when
// the bot finished writing it holds what the bot wrote. It costs one
// stat(2) per entry and never reads a file's contents.
//
// flip points current at a slot with one rename(2) (mv -T never moves into
// a directory the way plain mv would), then makes it durable.
//
// setmarker replaces a marker file durably: write, fsync, rename, fsync.
const scriptLib = `
fp() {
	{ find "slots/$1" -mindepth 1 -printf '%P\0%y %m %s %C@ %l\0' || echo find-failed; } | sha256sum | cut -c1-64
}
flip() {
	t=current.tmp.$$
	rm -f -- "$t"
	ln -s "slots/$1" "$t" || exit 20
	mv -T -f -- "$t" current || { rm -f -- "$t"; exit 20; }
	sync -- . 2>/dev/null || sync
}
setmarker() {
	printf '%s\n' "$2" >"slots/$1.state.tmp" || exit 21
	sync -- "slots/$1.state.tmp" 2>/dev/null || sync
	mv -f -- "slots/$1.state.tmp" "slots/$1.state" || exit 21
	sync -- slots 2>/dev/null || sync
}
`

// probeScript prints what the bot needs to plan a sync, NUL-separated:
// current's target (prefixed L; N when there is none, X when it is not a
// symlink), then for slot a and slot b the marker and the recorded
// fingerprint (prefixed M and F; "-" when absent). With $2 = create it
// first creates the root and the slot layout, refusing a slots directory
// that is a symlink or a file.
//
// Arguments: root, create|look.
const probeScript = scriptLib + `
root=$1
if [ "$2" = create ]; then
	mkdir -p -- "$root" || exit 10
fi
cd -- "$root" 2>/dev/null || { [ "$2" = look ] && { printf 'N\0-\0-\0-\0-\0'; exit 0; }; exit 10; }
if [ "$2" = create ]; then
	for d in slots slots/a slots/b; do
		if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then
			echo "$d is not a directory" >&2
			exit 12
		fi
		[ -d "$d" ] || mkdir -- "$d" || exit 10
	done
fi
if [ -L current ]; then
	printf 'L%s\0' "$(readlink current)"
elif [ -e current ]; then
	printf 'X\0'
else
	printf 'N\0'
fi
for s in a b; do
	if [ -f "slots/$s.state" ]; then printf M; cat "slots/$s.state"; else printf '%s' -; fi
	printf '\0'
	if [ -f "slots/$s.fp" ]; then printf F; cat "slots/$s.fp"; else printf '%s' -; fi
	printf '\0'
done
`

// flipScript flips current to a slot that already holds the wanted commit
// (a rollback), after checking that the slot still has the fingerprint it
// had when it was written. Exit status 3 means it does not: nothing was
// changed.
//
// Arguments: root, slot, wanted fingerprint.
const flipScript = scriptLib + `
cd -- "$1" || exit 10
[ "$(cat "slots/$2.fp" 2>/dev/null)" = "$3" ] || exit 3
[ "$(fp "$2")" = "$3" ] || exit 3
flip "$2"
`

// syncScript writes a change into the inactive slot and flips to it.
//
// Standard input: $6 bytes of NUL-separated slot-relative paths to delete,
// then a tar archive of the files to write (every parent directory has its
// own entry ahead of the files under it).
//
// In mode incr it first checks the slot's fingerprint against $3 and exits
// 3, having changed nothing, when the slot drifted. It then removes the
// fingerprint and writes marker $4 (the old commit with the new one
// pending), so that an interruption from here on leaves a slot the next
// sync rebuilds. In mode full it removes the marker and empties the slot.
// Then: deletions (never through a symlink: every parent of a path must be
// a real directory, else the path cannot be in the slot), parents left
// empty are removed, the archive is extracted with exact modes, the
// filesystem is flushed, the new fingerprint is recorded, marker $5 (the
// commit, clean) is written last, and current flips.
//
// Arguments: root, slot, fingerprint, pending marker, final marker,
// deletion list length, incr|full.
var syncScript = scriptLib + `
cd -- "$1" || exit 10
s=$2
if [ "$7" = incr ]; then
	[ "$(cat "slots/$s.fp" 2>/dev/null)" = "$3" ] || exit 3
	[ "$(fp "$s")" = "$3" ] || exit 3
	rm -f -- "slots/$s.fp"
	setmarker "$s" "$4"
else
	rm -f -- "slots/$s.fp" "slots/$s.state"
	sync -- slots 2>/dev/null || sync
	rm -rf -- "slots/$s" || exit 11
	mkdir -- "slots/$s" || exit 11
fi
if [ "$6" -gt 0 ]; then
	head -c "$6" | (cd -- "slots/$s" && xargs -0 -r sh -c '` + strings.ReplaceAll(deleteScript, "'", `'\''`) + `' deploybot) || exit 13
fi
(cd -- "slots/$s" && tar -x -m -p --no-same-owner -f -) || exit 14
sync -f -- "slots/$s" 2>/dev/null || sync
fp "$s" >"slots/$s.fp.tmp" || exit 15
mv -f -- "slots/$s.fp.tmp" "slots/$s.fp" || exit 15
setmarker "$s" "$5"
flip "$s"
`

// deleteScript removes each argument, a slot-relative path, then the
// parents it leaves empty. A parent that is a symlink or not a directory
// means the path cannot be inside the slot: removing "through" it could
// delete a file elsewhere, so that path is left alone.
const deleteScript = `for p do
	acc= rest=$p ok=1
	while :; do
		case $rest in */*) ;; *) break ;; esac
		acc=${acc:+$acc/}${rest%%/*}
		rest=${rest#*/}
		if [ -L "./$acc" ] || [ ! -d "./$acc" ]; then ok=0; break; fi
	done
	[ $ok = 1 ] || continue
	rm -rf -- "./$p" || exit 1
	d=$p
	while :; do
		case $d in */*) d=${d%/*} ;; *) break ;; esac
		rmdir -- "./$d" 2>/dev/null || break
	done
done`

// shellQuote quotes s as one word for a POSIX shell: between single quotes,
// where nothing is special, with each single quote written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellCommand is the command string for a script and its arguments: the
// only text sent to a remote shell.
func shellCommand(script string, args ...string) string {
	var b strings.Builder
	b.WriteString("exec sh -c ")
	b.WriteString(shellQuote(script))
	b.WriteString(" deploybot")
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shellQuote(a))
	}
	return b.String()
}
