package hosts

import "strings"

// The remote side of the ssh transport is these fixed POSIX sh scripts,
// run as `sh -c SCRIPT deploybot ARG...`. Nothing a person types ever
// reaches them: the arguments are the host root (from the configuration),
// a slot name ("a" or "b"), a mode word, hexadecimal fingerprint tokens, marker
// JSON built from validated commit names, and byte counts; every one is
// single-quoted by shellQuote. Paths travel only in the data stream on
// standard input (a tar archive, and a NUL-separated list of deletions read
// by xargs -0), so a path with spaces, quotes, newlines or a leading dash
// is never parsed by a shell.
//
// A host needs sh, GNU coreutils (head -c, sync -f, mv -T), GNU findutils
// (find -newercm, xargs -0) and GNU tar: Debian and its derivatives have
// them all in a base install.

// scriptLib is shared by the scripts below.
//
// unchanged succeeds when nothing in a slot changed since the bot finished
// writing it, which is when it wrote the slot's fingerprint file
// (slots/<slot>.fp, outside the slot). Any write into a file, chmod,
// rename, new or removed entry gives the entry or its directory a new
// ctime, and ctime cannot be set back from user space, so one entry with
// a ctime newer than the fingerprint file's modification time means the
// slot drifted. It costs one stat(2) per entry of the slot, spread over
// one find per CPU (a batch of top-level entries each), never reads a
// file's contents, and each find stops at the first changed entry. (A change within
// the same clock tick as the bot's own last write, a few milliseconds, is
// not seen.)
//
// expect checks that current and the slot's marker are what the bot
// planned with ($1: current's target, "" for none; $2: the marker's text,
// "" for none), and that current does not point at the slot to be
// written. Exit status 4 means the host changed meanwhile: nothing was
// written and the bot reads the host again.
//
// flip points current at a slot with one rename(2) (mv -T never moves into
// a directory the way plain mv would), then makes it durable.
//
// setmarker replaces a marker file durably: write, fsync, rename, fsync.
const scriptLib = `
unchanged() {
	[ -f "slots/$1.fp" ] && [ "$(cat "slots/$1.fp")" = "$2" ] || return 1
	find "slots/$1" -mindepth 1 -maxdepth 1 -print0 >"slots/$1.top" || return 1
	changed=$(
		find "slots/$1" -maxdepth 0 -newercm "slots/$1.fp" -print &&
			xargs -0 -r -P "$(nproc 2>/dev/null || echo 2)" -n 32 \
				sh -c 'find "$@" -newercm "$0" -print -quit' "slots/$1.fp" <"slots/$1.top"
	)
	ok=$?
	rm -f -- "slots/$1.top"
	[ $ok = 0 ] && [ -z "$changed" ]
}
expect() {
	cur=$(readlink current 2>/dev/null) || cur=
	[ "$cur" = "$2" ] || exit 4
	case $cur in "slots/$1" | "slots/$1/") exit 4 ;; esac
	[ "$(cat "slots/$1.state" 2>/dev/null)" = "$3" ] || exit 4
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
// symlink), then for slot a and slot b the marker and the fingerprint
// token (prefixed M and F; "-" when absent), then what is wrong with the
// slot layout ("" when nothing). With $2 = create it first creates the
// root and the slot layout, and reports (does not repair) a slots
// directory that is a symlink or a file: a host that serves the wanted
// commit already needs no layout to be synced.
//
// Arguments: root, create|look.
const probeScript = `
root=$1
if [ "$2" = create ]; then
	mkdir -p -- "$root" || exit 10
fi
cd -- "$root" 2>/dev/null || { [ "$2" = look ] && { printf 'N\0-\0-\0-\0-\0\0'; exit 0; }; exit 10; }
broken=
if [ "$2" = create ]; then
	for d in slots slots/a slots/b; do
		if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then
			broken="$d is not a directory"
			break
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
printf '%s\0' "$broken"
`

// flipScript flips current to a slot that already holds the wanted commit
// (a rollback), once the slot is shown unchanged since it was written.
// Exit status 3 means it changed: nothing was done.
//
// Arguments: root, slot, fingerprint token, current's expected target,
// the slot's expected marker.
const flipScript = scriptLib + `
cd -- "$1" || exit 10
expect "$2" "$4" "$5"
unchanged "$2" "$3" || exit 3
flip "$2"
`

// syncScript writes a change into the inactive slot and flips to it.
//
// Standard input: $6 bytes of NUL-separated slot-relative paths to delete,
// then a tar archive of the files to write (every parent directory has its
// own entry ahead of the files under it).
//
// It first checks that the host is as planned (expect). In mode incr it
// then checks that the slot is unchanged since the bot wrote it, with
// token $3, and exits 3, having changed nothing, when it drifted; then it
// removes the fingerprint and writes marker $4 (the old commit with the
// new one pending), so that an interruption from here on leaves a slot
// the next sync rebuilds. In mode full it removes the marker and empties
// the slot. Then: deletions (never through a symlink: every parent of a
// path must be a real directory, else the path cannot be in the slot),
// parents left empty are removed, the archive is extracted with exact
// modes, the filesystem is flushed, the fingerprint file is written with
// the new token $8, marker $5 (the commit, clean) is written last, and
// current flips.
//
// Arguments: root, slot, token, pending marker, final marker, deletion
// list length, incr|full, new token, current's expected target, the
// slot's expected marker. (Mode incr-unchecked skips the walk of
// unchanged; only the benchmark uses it, to show what the check costs.)
var syncScript = scriptLib + `
cd -- "$1" || exit 10
s=$2
expect "$s" "$9" "${10}"
if [ "$7" = incr ] || [ "$7" = incr-unchecked ]; then
	if [ "$7" = incr ]; then
		unchanged "$s" "$3" || exit 3
	else
		[ "$(cat "slots/$s.fp" 2>/dev/null)" = "$3" ] || exit 3
	fi
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
printf '%s\n' "$8" >"slots/$s.fp.tmp" || exit 15
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
