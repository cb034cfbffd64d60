package hosts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/deploybot/deploybot/deployer"
)

// Names inside a host root.
const (
	slotsDir    = "slots"
	stagingDir  = "slots/tmp"
	currentLink = "current"
	flipPrefix  = "current.tmp."
)

// maxPending bounds a marker's pending list. Each pending commit costs one
// more Diff on the next sync; past this many interrupted writes in a row, a
// full rebuild is simpler and about as cheap.
const maxPending = 16

func slotDir(slot string) string    { return slotsDir + "/" + slot }
func markerPath(slot string) string { return slotsDir + "/" + slot + ".state" }

// slotHost is the two-slot algorithm for one host, over any fileSystem.
// Callers serialise calls to sync for one host (Local holds a mutex).
type slotHost struct {
	name string
	fs   fileSystem
}

// sync makes the host serve commit; see deployer.Host.Sync and the package
// comment for the invariants it keeps.
func (h *slotHost) sync(ctx context.Context, commit string, src deployer.TreeSource) (SyncResult, error) {
	if commit == "" {
		return SyncResult{}, &OpError{Host: h.name, Op: "sync", Err: errors.New("no commit given")}
	}
	if err := ctx.Err(); err != nil {
		return SyncResult{}, &OpError{Host: h.name, Op: "sync", Err: err}
	}
	// A host that serves commit already needs nothing written: a broken
	// inactive slot must not fail it (a rollback would fail on a host that
	// serves the base, and lock the fleet).
	if active, err := h.active(); err == nil && active != "" {
		if m, err := h.marker(active); err == nil && m.Holds(commit) {
			return SyncResult{Action: SyncNone, Slot: active}, nil
		}
	}
	if err := h.ensureLayout(); err != nil {
		return SyncResult{}, err
	}
	active, err := h.active()
	if err != nil {
		return SyncResult{}, err
	}
	if active != "" {
		// An unreadable marker on the active slot only means it cannot be
		// reused for this commit; that slot is not written either way.
		if m, err := h.marker(active); err == nil && m.Holds(commit) {
			return SyncResult{Action: SyncNone, Slot: active}, nil
		}
	}

	// Invariant: slot is never the active slot, and everything below
	// writes only slot, so the tree being served is never touched.
	slot := "a"
	if active == "a" {
		slot = "b"
	}
	m, merr := h.marker(slot)
	if merr == nil && m.Holds(commit) {
		// Rollback (or a retry after a crash between marker and flip):
		// the other slot is already exact, so only current moves.
		if err := h.flip(slot); err != nil {
			return SyncResult{}, err
		}
		return SyncResult{Action: SyncFlip, Slot: slot}, nil
	}

	changes, reason, err := h.plan(ctx, slot, m, merr, commit, src)
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Action: SyncIncremental, Slot: slot}
	if reason != "" {
		res.Action, res.Reason = SyncRebuild, reason
		// Invariant: unknown contents stay marked unknown (no marker) until
		// the rebuild has finished, so a crash mid-rebuild rebuilds again.
		if m != nil || merr != nil {
			if err := h.setMarker(slot, nil); err != nil {
				return res, err
			}
		}
	} else if next := withPending(m, commit); !slices.Equal(next.Pending, m.Pending) {
		// Invariant: the marker admits the write towards commit, durably,
		// before the first file of the slot changes. A crash from here on
		// leaves each path at the version of m.Commit, of an earlier
		// pending commit or of commit, which is what the marker says.
		if err := h.setMarker(slot, next); err != nil {
			return res, err
		}
	}

	res.Written, res.Deleted, err = h.apply(ctx, slot, changes, res.Action == SyncRebuild)
	if err != nil {
		return res, err
	}

	// Invariant: the marker claims commit only once the files are durable.
	if err := h.fs.SyncFS(slotDir(slot)); err != nil {
		return res, opError(h.name, "flush", slotDir(slot), err)
	}
	if err := h.setMarker(slot, &Marker{Commit: commit}); err != nil {
		return res, err
	}
	// A crash here leaves a finished slot that is not served yet; the retry
	// finds its marker holding commit and only flips.
	if err := h.flip(slot); err != nil {
		return res, err
	}
	return res, nil
}

// withPending returns m with commit added to its pending commits.
func withPending(m *Marker, commit string) *Marker {
	next := &Marker{Commit: m.Commit, Pending: slices.Clone(m.Pending)}
	if commit != m.Commit && !slices.Contains(next.Pending, commit) {
		next.Pending = append(next.Pending, commit)
	}
	return next
}

// plan lists the paths to apply to slot to make it hold commit. A non-empty
// reason means the slot's contents are unknown and changes is every file of
// commit, to be applied as a full rebuild.
func (h *slotHost) plan(ctx context.Context, slot string, m *Marker, merr error, commit string, src deployer.TreeSource) (changes []deployer.FileChange, reason string, err error) {
	switch {
	case merr != nil:
		reason = fmt.Sprintf("slot %s's marker is unreadable (%v)", slot, errors.Unwrap(merr))
	case m == nil:
		reason = fmt.Sprintf("slot %s has no marker, so its contents are unknown", slot)
	case len(m.Pending) >= maxPending:
		reason = fmt.Sprintf("slot %s has %d interrupted writes", slot, len(m.Pending))
	default:
		changes, reason, err = h.incremental(ctx, slot, m, commit, src)
		if err != nil {
			return nil, "", err
		}
	}
	if reason != "" {
		changes, err = src.Diff(ctx, "", commit)
		if err != nil {
			return nil, "", opError(h.name, "list the files of "+commit, "", err)
		}
	}
	for _, c := range changes {
		if err := checkPath(c.Path); err != nil {
			return nil, "", opError(h.name, "plan", c.Path, err)
		}
	}
	return changes, reason, nil
}

// incremental computes the paths that differ between what slot may hold
// and commit. reason is set when the source cannot say (the slot's commit is
// not one it knows): the caller then rebuilds in full.
//
// Why the union of diffs is enough: the marker says each path holds the
// version (or absence) of m.Commit or of one of m.Pending. A path that no
// Diff(x, commit) lists, for every such x, is the same in all of them and in
// commit, so whichever of them it holds is commit's version already. Every
// other path is listed at least once and is written or deleted. Entries for
// one path from different diffs describe the same target, so any will do.
// The same argument covers what an interrupted write left behind: a path
// touched towards pending commit p (including the directories created for
// it and anything removed to make room) differs between p and the commit it
// was written from, so it differs between commit and one of the two.
func (h *slotHost) incremental(ctx context.Context, slot string, m *Marker, commit string, src deployer.TreeSource) ([]deployer.FileChange, string, error) {
	byPath := map[string]deployer.FileChange{}
	for _, from := range append([]string{m.Commit}, m.Pending...) {
		if from == commit {
			continue // Diff(commit, commit) is empty
		}
		diff, err := src.Diff(ctx, from, commit)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", &OpError{Host: h.name, Op: "sync", Err: ctx.Err()}
			}
			return nil, fmt.Sprintf("slot %s may hold files of %s, which the source cannot compare with %s (%v)", slot, from, commit, err), nil
		}
		for _, c := range diff {
			byPath[c.Path] = c
		}
	}
	changes := make([]deployer.FileChange, 0, len(byPath))
	for _, c := range byPath {
		changes = append(changes, c)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Path < changes[j].Path })
	return changes, "", nil
}

// checkPath refuses a path that is not a plain relative path inside a tree:
// applied as is, it could reach outside the slot.
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return errors.New("not a relative path")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return errors.New("not a clean relative path")
		}
	}
	return nil
}

// ensureLayout creates the root, slots/ and both slot directories when
// missing, and checks that none of them is a symlink or a file: writes into
// a slot must stay under the root.
func (h *slotHost) ensureLayout() error {
	for _, d := range []string{".", slotsDir, slotDir("a"), slotDir("b")} {
		if err := h.fs.Mkdir(d); err != nil && !errors.Is(err, fs.ErrExist) {
			return opError(h.name, "create", d, err)
		}
		if d == "." {
			continue // the root itself may be a symlink: that is the operator's choice
		}
		fi, err := h.fs.Lstat(d)
		if err != nil {
			return opError(h.name, "create", d, err)
		}
		if !fi.IsDir() {
			return opError(h.name, "create", d, errors.New("something other than a directory stands there"))
		}
	}
	return nil
}

// active returns the slot current points at, "" when there is no current.
func (h *slotHost) active() (string, error) {
	target, err := h.fs.Readlink(currentLink)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if errors.Is(err, syscall.EINVAL) {
		return "", opError(h.name, "read", currentLink, errors.New("not a symlink"))
	}
	if err != nil {
		return "", opError(h.name, "read", currentLink, err)
	}
	switch path.Clean(target) {
	case slotDir("a"):
		return "a", nil
	case slotDir("b"):
		return "b", nil
	}
	return "", opError(h.name, "read", currentLink, fmt.Errorf("points at %q, not at slots/a or slots/b", target))
}

// marker reads a slot's marker: nil without error when there is none.
func (h *slotHost) marker(slot string) (*Marker, error) {
	name := markerPath(slot)
	rc, err := h.fs.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, opError(h.name, "read marker", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, opError(h.name, "read marker", name, err)
	}
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, opError(h.name, "read marker", name, err)
	}
	return &m, nil
}

// setMarker replaces a slot's marker (nil removes it) durably: written to a
// temporary file, fsynced, renamed into place, and the directory fsynced.
func (h *slotHost) setMarker(slot string, m *Marker) error {
	name := markerPath(slot)
	if m == nil {
		if err := h.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return opError(h.name, "remove marker", name, err)
		}
	} else {
		data, err := json.Marshal(m)
		if err != nil {
			return opError(h.name, "write marker", name, err)
		}
		tmp := name + ".tmp"
		if err := h.fs.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return opError(h.name, "write marker", tmp, err)
		}
		if err := h.fs.WriteFile(tmp, bytes.NewReader(append(data, '\n')), 0o644, true); err != nil {
			return opError(h.name, "write marker", tmp, err)
		}
		if err := h.fs.Rename(tmp, name); err != nil {
			return opError(h.name, "write marker", name, err)
		}
	}
	if err := h.fs.SyncDir(slotsDir); err != nil {
		return opError(h.name, "write marker", slotsDir, err)
	}
	return nil
}

// flip points current at slot.
func (h *slotHost) flip(slot string) error {
	// A crash between symlink and rename leaves a temporary link behind;
	// it is outside the served trees and harmless, and removed here.
	if entries, err := h.fs.ReadDir("."); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), flipPrefix) {
				h.fs.Remove(e.Name())
			}
		}
	}
	tmp := flipPrefix + rand.Text()
	if err := h.fs.Symlink(slotDir(slot), tmp); err != nil {
		return opError(h.name, "flip", tmp, err)
	}
	// Invariant: current changes by this one rename(2). A reader resolving
	// it gets the old slot or the new one, each complete, and never finds
	// current missing.
	if err := h.fs.Rename(tmp, currentLink); err != nil {
		h.fs.Remove(tmp)
		return opError(h.name, "flip", currentLink, err)
	}
	if err := h.fs.SyncDir("."); err != nil {
		return opError(h.name, "flip", ".", err)
	}
	return nil
}

// current returns the commit the active slot holds ("" when no current).
func (h *slotHost) current() (string, error) {
	slot, err := h.active()
	if err != nil || slot == "" {
		return "", err
	}
	return h.cleanCommit(slot)
}

// cleanCommit returns the commit a served slot holds, or an error when its
// marker does not name one cleanly.
func (h *slotHost) cleanCommit(slot string) (string, error) {
	m, err := h.marker(slot)
	if err != nil {
		return "", err
	}
	if m == nil {
		return "", opError(h.name, "read marker", markerPath(slot), errors.New("missing: the served slot's contents are unknown"))
	}
	if len(m.Pending) > 0 {
		return "", opError(h.name, "read marker", markerPath(slot), fmt.Errorf("the served slot records an interrupted write towards %s", strings.Join(m.Pending, ", ")))
	}
	return m.Commit, nil
}

// slots describes both slots: the active one (Name "" when none) and the
// one the next sync would write.
func (h *slotHost) slots() (active, inactive SlotState, err error) {
	a, err := h.active()
	if err != nil {
		return active, inactive, err
	}
	inactive.Name = "a"
	if a != "" {
		active.Name = a
		if active.Marker, err = h.marker(a); err != nil {
			return active, inactive, err
		}
		if a == "a" {
			inactive.Name = "b"
		}
	}
	inactive.Marker, err = h.marker(inactive.Name)
	return active, inactive, err
}
