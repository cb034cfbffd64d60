package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"syscall"

	"github.com/deploybot/deploybot/deployer"
)

// maxLinkTarget bounds a symlink's target text (Linux's PATH_MAX).
const maxLinkTarget = 4096

// applier writes one batch of changes into one slot.
type applier struct {
	h    *slotHost
	ctx  context.Context
	slot string // slot directory, relative to the host root
	// dirs caches the slot-relative directories already made sure of in the
	// write phase. It is only valid because deletions all happen before the
	// first write, and because a consistent tree never has a path that is
	// both a file (whose write may replace a directory) and a parent.
	dirs    map[string]bool
	seq     int
	written int
	deleted int
}

// apply brings slot to the target described by changes. With full, changes
// lists every file of the target and everything else in the slot goes;
// otherwise changes lists the paths that differ and the rest is left alone.
//
// Deletions come first, then writes in path order, so a path that changes
// from file to directory (or back) is cleared before it is filled. ctx is
// checked between files; an error leaves the slot with each path at its old
// or its new version, as the marker written before apply already admits.
func (h *slotHost) apply(ctx context.Context, slot string, changes []deployer.FileChange, full bool) (written, deleted int, err error) {
	a := &applier{h: h, ctx: ctx, slot: slotDir(slot), dirs: map[string]bool{}}

	// Files are staged outside the slot, in one directory emptied before
	// use: a crash can leave staged files behind, and there they are never
	// part of a tree that gets served.
	if err := h.fs.RemoveAll(stagingDir); err != nil {
		return 0, 0, opError(h.name, "clear", stagingDir, err)
	}
	if err := h.fs.Mkdir(stagingDir); err != nil {
		return 0, 0, opError(h.name, "create", stagingDir, err)
	}
	defer h.fs.RemoveAll(stagingDir)

	if full {
		err = a.pruneAll(changes)
	} else {
		for _, c := range changes {
			if c.Delete {
				if err = a.check(c.Path); err != nil {
					break
				}
				if err = a.delete(c.Path); err != nil {
					err = opError(h.name, "delete", a.slot+"/"+c.Path, err)
					break
				}
			}
		}
	}
	if err != nil {
		return a.written, a.deleted, err
	}
	for _, c := range changes {
		if c.Delete {
			continue
		}
		if err := a.check(c.Path); err != nil {
			return a.written, a.deleted, err
		}
		if err := a.write(c); err != nil {
			return a.written, a.deleted, opError(h.name, "write", a.slot+"/"+c.Path, err)
		}
	}
	return a.written, a.deleted, nil
}

// check stops between files when ctx is done, naming the next path.
func (a *applier) check(p string) error {
	if err := a.ctx.Err(); err != nil {
		return opError(a.h.name, "stopped before", a.slot+"/"+p, err)
	}
	return nil
}

// write puts one file or symlink at its path in the slot.
func (a *applier) write(c deployer.FileChange) error {
	if c.Open == nil {
		return errors.New("the source gave no contents")
	}
	fsys := a.h.fs

	// Stage first, so a source that fails leaves the slot as it was.
	a.seq++
	tmp := stagingDir + "/" + strconv.Itoa(a.seq)
	switch c.Mode {
	case deployer.ModeSymlink:
		target, err := readLinkTarget(c)
		if err != nil {
			return err
		}
		if err := fsys.Symlink(target, tmp); err != nil {
			return err
		}
	case deployer.ModeRegular, deployer.ModeExecutable:
		perm := fs.FileMode(0o644)
		if c.Mode == deployer.ModeExecutable {
			perm = 0o755
		}
		rc, err := c.Open()
		if err != nil {
			return fmt.Errorf("reading it from the source: %w", err)
		}
		err = fsys.WriteFile(tmp, rc, perm, false)
		rc.Close()
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown file mode %d", c.Mode)
	}

	if err := a.parents(c.Path); err != nil {
		return err
	}
	dest := a.slot + "/" + c.Path
	// rename(2) replaces a file or a symlink (the link itself, never what it
	// points at) but not a directory: a directory standing where the file
	// goes held files of an older tree, and goes first.
	if fi, err := fsys.Lstat(dest); err == nil && fi.IsDir() {
		if err := fsys.RemoveAll(dest); err != nil {
			return err
		}
	} else if err != nil && !notExist(err) {
		return err
	}
	if err := fsys.Rename(tmp, dest); err != nil {
		return err
	}
	a.written++
	return nil
}

// readLinkTarget reads a symlink's target text from the source.
func readLinkTarget(c deployer.FileChange) (string, error) {
	rc, err := c.Open()
	if err != nil {
		return "", fmt.Errorf("reading it from the source: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return "", fmt.Errorf("reading it from the source: %w", err)
	}
	if len(b) == 0 || len(b) > maxLinkTarget {
		return "", fmt.Errorf("symlink target of %d bytes", len(b))
	}
	return string(b), nil
}

// parents makes every parent of p a real directory of the slot.
//
// Invariant: no write goes through a symlink. A symlink (or a file) standing
// where the target tree has a directory belongs to an older tree (git cannot
// hold a file under a symlink), so it is removed and a directory made.
func (a *applier) parents(p string) error {
	fsys := a.h.fs
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		d := p[:i]
		if a.dirs[d] {
			continue
		}
		name := a.slot + "/" + d
		fi, err := fsys.Lstat(name)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			if err := fsys.Remove(name); err != nil {
				return err
			}
			if err := fsys.Mkdir(name); err != nil {
				return err
			}
		case notExist(err):
			if err := fsys.Mkdir(name); err != nil {
				return err
			}
		default:
			return err
		}
		a.dirs[d] = true
	}
	return nil
}

// delete removes p from the slot, then the directories it leaves empty.
//
// Invariant: nothing is removed through a symlink. The parents are looked
// at one by one without following links; one that is not a real directory
// means p cannot exist inside the slot, and removing "through" it could
// delete a file outside.
func (a *applier) delete(p string) error {
	fsys := a.h.fs
	deepest := "" // deepest parent known to be a real directory
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		fi, err := fsys.Lstat(a.slot + "/" + p[:i])
		if notExist(err) {
			// An interrupted write may have made the directories above
			// and stopped: prune them.
			return a.pruneUp(deepest)
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return nil
		}
		deepest = p[:i]
	}
	name := a.slot + "/" + p
	fi, err := fsys.Lstat(name)
	switch {
	case notExist(err):
		// Already gone: a retry, or a write towards a pending commit
		// that never got this far.
	case err != nil:
		return err
	case fi.IsDir():
		// A write towards a pending commit put a directory here; the
		// target's files under it, if any, are in the batch and are
		// written after all deletions.
		if err := fsys.RemoveAll(name); err != nil {
			return err
		}
		a.deleted++
	default:
		if err := fsys.Remove(name); err != nil {
			return err
		}
		a.deleted++
	}
	return a.pruneUp(deepest)
}

// pruneUp removes dir (slot-relative, "" for the slot itself) and its
// parents while they are empty, stopping below the slot root. A git tree
// has no empty directories, so one left empty is not part of the target.
func (a *applier) pruneUp(dir string) error {
	for dir != "" {
		err := a.h.fs.Rmdir(a.slot + "/" + dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			if dirNotEmpty(err) {
				return nil
			}
			return err
		}
		dir = path.Dir(dir)
		if dir == "." {
			dir = ""
		}
	}
	return nil
}

// dirNotEmpty reports whether err is rmdir's "directory not empty" (POSIX
// allows either errno). A fileSystem over another protocol maps its own
// error to one of these.
func dirNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// pruneAll removes everything in the slot that is not in the target (a full
// rebuild), walking the slot without following symlinks. A file of the
// target already present is kept: the write phase replaces it anyway.
func (a *applier) pruneAll(changes []deployer.FileChange) error {
	files := make(map[string]bool, len(changes))
	dirs := map[string]bool{}
	for _, c := range changes {
		if c.Delete {
			continue
		}
		files[c.Path] = true
		for d := path.Dir(c.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	return a.pruneDir("", files, dirs)
}

func (a *applier) pruneDir(rel string, files, dirs map[string]bool) error {
	fsys := a.h.fs
	dir := a.slot
	if rel != "" {
		dir += "/" + rel
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return opError(a.h.name, "list", dir, err)
	}
	for _, e := range entries {
		q := e.Name()
		if rel != "" {
			q = rel + "/" + q
		}
		if err := a.check(q); err != nil {
			return err
		}
		name := a.slot + "/" + q
		if e.IsDir() { // a real directory: DirEntry types do not follow links
			if dirs[q] {
				if err := a.pruneDir(q, files, dirs); err != nil {
					return err
				}
				continue
			}
			if err := fsys.RemoveAll(name); err != nil {
				return opError(a.h.name, "delete", name, err)
			}
			a.deleted++
			continue
		}
		if files[q] {
			continue
		}
		if err := fsys.Remove(name); err != nil {
			return opError(a.h.name, "delete", name, err)
		}
		a.deleted++
	}
	return nil
}
