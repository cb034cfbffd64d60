package hosts

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// maxListed caps the differences a MismatchError lists.
const maxListed = 50

// MismatchError says how a directory differs from a commit's tree.
type MismatchError struct {
	Dir    string
	Commit string
	// Differences has one line per differing path, `"path": what differs`,
	// sorted by path, at most maxListed of them.
	Differences []string
	// Total counts every difference, listed or not.
	Total int
}

// Error lists the differences, one per line, after a summary line.
func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not match commit %s: %d difference(s)", e.Dir, e.Commit, e.Total)
	for _, d := range e.Differences {
		b.WriteString("\n  ")
		b.WriteString(d)
	}
	if n := e.Total - len(e.Differences); n > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", n)
	}
	return b.String()
}

// VerifyTree compares the tree at dir with commit's tree, file by file:
// the same paths (nothing extra, not even an empty directory; nothing
// missing), regular files with the same contents and owner exec bit,
// symlinks with the same target text. It returns a *MismatchError listing
// the differences, another error when it could not compare, or nil.
//
// Contents are compared by git blob hash when the source gives one (40 or
// 64 hex digits), so only the local side is read; otherwise byte by byte.
func VerifyTree(ctx context.Context, dir, commit string, src deployer.TreeSource) error {
	return verifyTree(ctx, localFS{root: dir}, ".", dir, commit, src)
}

// VerifyHost verifies that h's active slot holds exactly the commit its
// marker names: what the host serves is what the bot believes it serves.
func VerifyHost(ctx context.Context, h *Local, src deployer.TreeSource) error {
	core := h.core()
	slot, err := core.active()
	if err != nil {
		return err
	}
	if slot == "" {
		return &OpError{Host: h.name, Op: "verify", Path: currentLink, Err: errors.New("missing: the host serves nothing yet")}
	}
	commit, err := core.cleanCommit(slot)
	if err != nil {
		return err
	}
	// A sync running meanwhile writes only the other slot; the one read
	// here changes only if a second sync starts before the walk ends.
	dir := filepath.Join(h.root, slotsDir, slot)
	if err := verifyTree(ctx, core.fs, slotDir(slot), dir, commit, src); err != nil {
		return fmt.Errorf("host %s: %w", h.name, err)
	}
	return nil
}

// verifyTree is VerifyTree over a fileSystem, for the tree at base (a
// name in fsys); label names it in errors.
func verifyTree(ctx context.Context, fsys fileSystem, base, label, commit string, src deployer.TreeSource) error {
	files, err := src.Diff(ctx, "", commit)
	if err != nil {
		return fmt.Errorf("verify %s: listing the files of %s: %w", label, commit, err)
	}
	v := &verifier{ctx: ctx, fs: fsys, base: base, want: map[string]deployer.FileChange{}, dirs: map[string]bool{}, seen: map[string]bool{}}
	for _, c := range files {
		if c.Delete {
			continue
		}
		v.want[c.Path] = c
		for d := path.Dir(c.Path); d != "." && !v.dirs[d]; d = path.Dir(d) {
			v.dirs[d] = true
		}
	}
	if err := v.walk(""); err != nil {
		return fmt.Errorf("verify %s: %w", label, err)
	}
	for p := range v.want {
		if !v.seen[p] {
			v.add(p, "missing")
		}
	}
	if len(v.diffs) == 0 {
		return nil
	}
	sort.Slice(v.diffs, func(i, j int) bool { return v.diffs[i].path < v.diffs[j].path })
	e := &MismatchError{Dir: label, Commit: commit, Total: len(v.diffs)}
	for _, d := range v.diffs[:min(len(v.diffs), maxListed)] {
		e.Differences = append(e.Differences, fmt.Sprintf("%q: %s", d.path, d.why))
	}
	return e
}

type difference struct{ path, why string }

type verifier struct {
	ctx   context.Context
	fs    fileSystem
	base  string
	want  map[string]deployer.FileChange
	dirs  map[string]bool // every parent directory of a wanted path
	seen  map[string]bool // wanted paths found (right or wrong)
	diffs []difference
}

func (v *verifier) add(p, why string) { v.diffs = append(v.diffs, difference{p, why}) }

func (v *verifier) name(rel string) string {
	switch {
	case rel == "":
		return v.base
	case v.base == ".":
		return rel
	}
	return v.base + "/" + rel
}

// walk compares the directory rel ("" for the root) and everything under
// it, never following a symlink.
func (v *verifier) walk(rel string) error {
	entries, err := v.fs.ReadDir(v.name(rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := v.ctx.Err(); err != nil {
			return err
		}
		q := e.Name()
		if rel != "" {
			q = rel + "/" + q
		}
		c, wanted := v.want[q]
		if wanted {
			v.seen[q] = true
		}
		switch t := e.Type() & fs.ModeType; {
		case t == fs.ModeDir:
			switch {
			case v.dirs[q]:
				if err := v.walk(q); err != nil {
					return err
				}
			case wanted:
				v.add(q, "a directory, want "+kind(c.Mode))
			default:
				v.add(q, "unexpected directory")
			}
		case t == fs.ModeSymlink:
			switch {
			case v.dirs[q]:
				v.add(q, "a symlink, want a directory")
			case !wanted:
				v.add(q, "unexpected symlink")
			case c.Mode != deployer.ModeSymlink:
				v.add(q, "a symlink, want "+kind(c.Mode))
			default:
				if err := v.compareLink(q, c); err != nil {
					return err
				}
			}
		case t == 0:
			switch {
			case v.dirs[q]:
				v.add(q, "a regular file, want a directory")
			case !wanted:
				v.add(q, "unexpected file")
			case c.Mode == deployer.ModeSymlink:
				v.add(q, "a regular file, want a symlink")
			default:
				if err := v.compareFile(q, e, c); err != nil {
					return err
				}
			}
		default:
			v.add(q, fmt.Sprintf("unexpected %v", t))
		}
	}
	return nil
}

func kind(m deployer.FileMode) string {
	switch m {
	case deployer.ModeSymlink:
		return "a symlink"
	case deployer.ModeExecutable:
		return "an executable file"
	}
	return "a regular file"
}

func (v *verifier) compareLink(q string, c deployer.FileChange) error {
	got, err := v.fs.Readlink(v.name(q))
	if err != nil {
		return err
	}
	want, err := readLinkTarget(c)
	if err != nil {
		return fmt.Errorf("%q: %w", q, err)
	}
	if got != want {
		v.add(q, fmt.Sprintf("symlink to %q, want %q", got, want))
	}
	return nil
}

func (v *verifier) compareFile(q string, e fs.DirEntry, c deployer.FileChange) error {
	fi, err := e.Info()
	if err != nil {
		return err
	}
	exec := fi.Mode().Perm()&0o100 != 0
	if want := c.Mode == deployer.ModeExecutable; exec != want {
		if want {
			v.add(q, fmt.Sprintf("mode %v, want executable", fi.Mode().Perm()))
		} else {
			v.add(q, fmt.Sprintf("mode %v, want not executable", fi.Mode().Perm()))
		}
	}
	same, err := v.sameContent(q, fi.Size(), c)
	if err != nil {
		return err
	}
	if !same {
		v.add(q, "contents differ")
	}
	return nil
}

func (v *verifier) sameContent(q string, size int64, c deployer.FileChange) (bool, error) {
	f, err := v.fs.Open(v.name(q))
	if err != nil {
		return false, err
	}
	defer f.Close()
	if h := blobHasher(c.Hash); h != nil {
		fmt.Fprintf(h, "blob %d\x00", size)
		n, err := io.Copy(h, f)
		if err != nil {
			return false, err
		}
		return n == size && hex.EncodeToString(h.Sum(nil)) == strings.ToLower(c.Hash), nil
	}
	if c.Open == nil {
		return false, fmt.Errorf("%q: the source gave no contents", q)
	}
	rc, err := c.Open()
	if err != nil {
		return false, fmt.Errorf("%q: reading it from the source: %w", q, err)
	}
	defer rc.Close()
	return sameReaders(f, rc)
}

// blobHasher returns the hash git names blobs with for a hash of this
// length (SHA-1 or SHA-256 repositories), or nil when hash is not one.
func blobHasher(h string) hash.Hash {
	if _, err := hex.DecodeString(h); err != nil {
		return nil
	}
	switch len(h) {
	case 40:
		return sha1.New()
	case 64:
		return sha256.New()
	}
	return nil
}

func sameReaders(a, b io.Reader) (bool, error) {
	bufA, bufB := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		endA := errA == io.EOF || errA == io.ErrUnexpectedEOF
		endB := errB == io.EOF || errB == io.ErrUnexpectedEOF
		if errA != nil && !endA {
			return false, errA
		}
		if errB != nil && !endB {
			return false, errB
		}
		if endA || endB {
			return endA && endB, nil
		}
	}
}
