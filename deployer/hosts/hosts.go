// Package hosts implements deployer.Host: the two-slot layout of a target
// host, the sync that writes only what differs into the inactive slot and
// flips `current` atomically, and a verifier that compares a slot with a
// commit file by file.
//
// The layout of a host root:
//
//	<root>/slots/a/        one complete tree
//	<root>/slots/b/        the other
//	<root>/slots/a.state   slot markers (JSON), outside the served trees
//	<root>/slots/b.state
//	<root>/slots/tmp/      files on their way into a slot (only during a sync)
//	<root>/current -> slots/a   (a relative symlink; absent until the first sync)
//
// A marker {"commit": C, "pending": [P1, P2]} means: the slot's files are
// those of commit C, except that a write towards P1 or P2 may have been
// interrupted, so each path holds the version of C, P1 or P2 (or none, where
// that commit has none). No marker means the contents are unknown.
//
// Invariants, each kept by the code that says so:
//   - the active slot (the one current points at) is never written;
//   - a marker is set to "pending" before any file of its slot changes and
//     to the clean commit only after every file is written and durable;
//   - current only ever points at a slot whose marker names a clean commit,
//     and it changes by one rename(2), so a reader that resolves it sees one
//     complete tree;
//   - nothing is written, removed or renamed through a symlink inside a
//     slot: a sync cannot touch anything outside its slot.
//
// The algorithm (slots.go, apply.go) runs over a small fileSystem interface
// (fs.go); Local supplies it for a directory on this machine.
package hosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
)

// Marker is what a slot's .state file records about the slot's contents.
type Marker struct {
	// Commit is the commit whose files the slot holds ("" is the empty tree).
	Commit string `json:"commit"`
	// Pending lists commits a write towards was started and not finished:
	// any path may hold their version instead of Commit's.
	Pending []string `json:"pending,omitempty"`
}

// Holds reports whether the slot holds exactly commit's files.
func (m *Marker) Holds(commit string) bool {
	return m != nil && m.Commit == commit && len(m.Pending) == 0
}

// SlotState describes one slot of a host, for status pages and tests.
type SlotState struct {
	// Name is "a" or "b"; it is "" for the active slot of a host that
	// serves nothing yet.
	Name string
	// Dir is the slot's directory (absolute for a Local host).
	Dir string
	// Marker is the slot's marker, nil when it has none (unknown contents).
	Marker *Marker
}

// SyncAction says which of the three things a sync can do it did.
type SyncAction string

// What a sync did.
const (
	// SyncNone: the active slot already held the commit.
	SyncNone SyncAction = "none"
	// SyncFlip: the inactive slot already held it; only current changed.
	SyncFlip SyncAction = "flip"
	// SyncIncremental: the paths that differ were written, then a flip.
	SyncIncremental SyncAction = "incremental"
	// SyncRebuild: the inactive slot's contents were unknown, so every file
	// of the commit was written and everything else in the slot removed.
	SyncRebuild SyncAction = "rebuild"
)

// SyncResult says what a sync did, for logs, the timeline and tests.
type SyncResult struct {
	Action  SyncAction
	Slot    string // the slot that serves the commit afterwards
	Written int    // files and symlinks written into the slot
	Deleted int    // paths deleted, or (rebuild) entries removed as not in the commit
	Reason  string // why a rebuild was needed
}

// logSync writes the line a sync of a host leaves in the log: what it did,
// or why it failed. attrs name the host and the commit and say what was
// written; a rebuild is logged at level rebuild.
func logSync(ctx context.Context, log *slog.Logger, rebuild slog.Level, res SyncResult, err error, attrs ...any) {
	switch {
	case err != nil:
		log.Error("sync failed", append(attrs, "err", err)...)
	case res.Action == SyncRebuild:
		log.Log(ctx, rebuild, "synced by rebuilding the slot in full", append(attrs, "reason", res.Reason)...)
	default:
		log.Info("synced", attrs...)
	}
}

// OpError is a failed operation on a host: which host, what it was doing
// and on which path (relative to the host's root), so a person reading the
// failure knows where to look.
type OpError struct {
	Host string
	Op   string // e.g. "write", "delete", "read marker", "flip"
	Path string
	Err  error
}

// Error says which host, what and where, e.g.
// `host web1: write "slots/b/index.php": no space left on device`.
func (e *OpError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("host %s: %s: %v", e.Host, e.Op, e.Err)
	}
	return fmt.Sprintf("host %s: %s %q: %v", e.Host, e.Op, e.Path, e.Err)
}

// Plain says what failed in words for the channel, without the error
// chain: "could not write slots/b/index.php: no space left on device".
func (e *OpError) Plain() string {
	cause := e.Err
	for {
		next := errors.Unwrap(cause)
		if next == nil {
			break
		}
		cause = next
	}
	if e.Path == "" {
		return fmt.Sprintf("could not %s: %v", e.Op, cause)
	}
	return fmt.Sprintf("could not %s %s: %v", e.Op, e.Path, cause)
}

// Unwrap returns the cause, so errors.Is(err, context.Canceled) and the
// like see through an OpError.
func (e *OpError) Unwrap() error { return e.Err }

// opError builds an OpError, dropping the absolute path an *fs.PathError
// would repeat.
func opError(host, op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return &OpError{Host: host, Op: op, Path: path, Err: err}
}
