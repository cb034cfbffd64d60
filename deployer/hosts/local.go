package hosts

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// Local is a host that is a directory on this machine: the demo fleet, a
// test server sharing the deploy host, and the end-to-end tests. A web
// server serves ActiveDir (or <root>/current, resolved per request).
type Local struct {
	// Logger receives one line per sync saying what it did; nil discards.
	// A logger the context carries (deployer.WithLogger, with the
	// deployment's id) is used instead.
	Logger *slog.Logger

	name string
	root string
	// mu serialises syncs of this host within the process. deploybot runs
	// one deployment at a time; two processes syncing one root are not
	// supported.
	mu sync.Mutex
}

var _ deployer.Host = (*Local)(nil)

// NewLocal returns the host called name whose root directory is root. The
// root (not its parents) and the slot layout are created by the first sync.
func NewLocal(name, root string) *Local {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	return &Local{name: name, root: root}
}

// Name returns the host's name, as configured.
func (l *Local) Name() string { return l.name }

// Root returns the host's root directory (absolute).
func (l *Local) Root() string { return l.root }

func (l *Local) core() *slotHost {
	return &slotHost{name: l.name, fs: localFS{root: l.root}}
}

// Sync makes the host serve commit; see deployer.Host.
func (l *Local) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	_, err := l.SyncReport(ctx, commit, src)
	return err
}

// SyncReport is Sync that also says what it did: nothing, a flip, an
// incremental write or a full rebuild (and why), and how many files.
func (l *Local) SyncReport(ctx context.Context, commit string, src deployer.TreeSource) (SyncResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	res, err := l.core().sync(ctx, commit, src)
	if log := deployer.LoggerFrom(ctx, l.Logger); log != nil {
		logSync(ctx, log, slog.LevelInfo, res, err, "host", l.name, "commit", commit, "action", res.Action, "slot", res.Slot,
			"written", res.Written, "deleted", res.Deleted, "took", time.Since(start))
	}
	return res, err
}

// Current returns the commit the host serves: "" when it has no current
// link yet, an error when current points outside the slots or its slot's
// marker is missing or records an unfinished write.
func (l *Local) Current(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return l.core().current()
}

// ActiveDir returns the absolute directory of the slot current points at:
// what a web server serves. It fails when the host serves nothing yet.
func (l *Local) ActiveDir() (string, error) {
	slot, err := l.core().active()
	if err != nil {
		return "", err
	}
	if slot == "" {
		return "", &OpError{Host: l.name, Op: "read", Path: currentLink, Err: errors.New("missing: the host serves nothing yet")}
	}
	return filepath.Join(l.root, slotsDir, slot), nil
}

// Slots describes the active slot (Name "" when the host serves nothing)
// and the inactive one, which the next sync writes, with their markers.
func (l *Local) Slots() (active, inactive SlotState, err error) {
	active, inactive, err = l.core().slots()
	if active.Name != "" {
		active.Dir = filepath.Join(l.root, slotsDir, active.Name)
	}
	if inactive.Name != "" {
		inactive.Dir = filepath.Join(l.root, slotsDir, inactive.Name)
	}
	return active, inactive, err
}
