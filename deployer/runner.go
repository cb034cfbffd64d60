package deployer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config holds the pipeline's timings and bounds.
type Config struct {
	// VerifyTimeout is how long the submitter has to reply `verified` after
	// the testservers are synced. A reminder is sent halfway.
	VerifyTimeout time.Duration
	// PromoteTimeout is how long deployers have to answer an inconclusive
	// canary verdict before the bot rolls back.
	PromoteTimeout time.Duration
	// BaselineMin is the shortest pre-sync window over which the canaries'
	// own error rate is measured before they are synced.
	BaselineMin time.Duration
	// CanaryWindow is how long the canaries are watched after their sync.
	CanaryWindow time.Duration
	// SampleInterval is how often counters are read during a window.
	SampleInterval time.Duration
	// Parallel bounds how many hosts of one stage sync at once.
	Parallel int
	// SyncRetries is how many times a failed host sync or restore is retried.
	SyncRetries int
	// ProductionWatch is how long production is watched after its sync
	// (0: not at all). A failing verdict rolls back the whole fleet.
	ProductionWatch time.Duration
	// MaxFailedProduction returns how many of total production hosts may
	// fail to sync before the whole fleet is rolled back (nil: none may).
	// Testservers and canaries never tolerate a failure.
	MaxFailedProduction func(total int) int
	// RetryDelay is the first pause before a failed step is redone; it
	// grows with each failure in a row, up to six times as long.
	RetryDelay time.Duration
	// RollbackTries bounds the attempts at one rollback (a restart does not
	// reset the count). After the last, the deployment ends rollback-failed
	// and the bot locks deployments.
	RollbackTries int
	// Schedule holds the backport windows (nil: deploy at any time);
	// Batch the batch and bisection limits (window.go, batch.go).
	Schedule *Schedule
	Batch    BatchConfig
}

// DefaultConfig returns the defaults documented in config.example.yaml.
func DefaultConfig() Config {
	return Config{
		VerifyTimeout:  15 * time.Minute,
		PromoteTimeout: 10 * time.Minute,
		BaselineMin:    30 * time.Second,
		CanaryWindow:   60 * time.Second,
		SampleInterval: 5 * time.Second,
		Parallel:       10,
		SyncRetries:    2,
		RetryDelay:     5 * time.Second,
		RollbackTries:  3,
	}
}

// Deps are the outside things the runner needs. All are required except
// Submitter, Smoker, Pool, Explain and Now.
type Deps struct {
	Store     Store
	Source    ChangeSource
	Staging   Staging
	Fleet     Fleet
	Metrics   Metrics
	Judge     Judge
	Announcer Announcer
	Logger    *slog.Logger
	// Submitter maps a deployment's changes to the chat identity who should
	// verify it; it returns "" when it knows nobody, and the requester is
	// pinged instead.
	Submitter func(changes []Change) string
	// Smoker runs smoke checks after a stage's sync (nil: none).
	Smoker Smoker
	// Pool depools hosts that could not be restored (nil: none).
	Pool Pool
	// Explain renders a verdict as lines for chat (a table); nil shows only
	// the verdict's reason.
	Explain func(Verdict) []string
	// Now is the clock (tests may replace it); time.Now by default.
	Now func() time.Time
	// Windows keeps the windows' lists (nil: no windows).
	Windows WindowStore
}

// Runner moves deployments through the pipeline, one at a time, in the
// order they were queued. Commands from chat (commands.go) may be called
// from any goroutine; the pipeline itself (pipeline.go) runs in Run.
//
// Invariants:
//   - At most one deployment is Active (between queued and finished) in the
//     store, and only Run's goroutine moves it forward.
//   - A person's answer reaches the pipeline only as a signal on sigs, which
//     the pipeline reads in one place (pipeline.receive).
//   - "resuming after a restart" is said only for a deployment that a
//     previous process left active: never for one this process took from
//     the queue, nor for a rollback a person asked of this process (ours).
type Runner struct {
	cfg Config
	Deps
	log *slog.Logger

	// mu guards active, busy, stepCancel and ours, and the decision to
	// start work (a queued deployment, a manual rollback, a fleet sync), so
	// that two never start at once.
	mu     sync.Mutex
	active int64 // id of the deployment the pipeline is working on, 0 if none
	// busy is set while a command (a fleet sync) works on the hosts outside
	// any deployment; the queue waits for it.
	busy bool
	// stepCancel interrupts the pipeline's current interruptible step
	// (preparing, a stage sync) when a rollback or abort arrives.
	stepCancel context.CancelFunc
	// ours holds the finished deployments whose rollback a person asked
	// this process for: driving them is not a resume.
	ours map[int64]bool
	sigs chan signal
	wake chan struct{}
	// ready is closed once Run has read back what every host serves.
	ready chan struct{}
	// landedSince counts deployments finished since the staging repository
	// was last maintained.
	landedSince int
}

type signalKind string

const (
	sigVerify   signalKind = "verify"
	sigAbort    signalKind = "abort"
	sigPromote  signalKind = "promote"
	sigRollback signalKind = "rollback"
	// sigGone: nobody can answer any more (every chat connection stopped);
	// who carries the reason.
	sigGone signalKind = "gone"
)

type signal struct {
	id   int64
	kind signalKind
	who  string
}

// NewRunner returns a runner; call Run to start it.
func NewRunner(cfg Config, deps Deps) *Runner {
	d := DefaultConfig()
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = d.VerifyTimeout
	}
	if cfg.PromoteTimeout <= 0 {
		cfg.PromoteTimeout = d.PromoteTimeout
	}
	if cfg.BaselineMin < 0 {
		cfg.BaselineMin = 0
	}
	if cfg.CanaryWindow <= 0 {
		cfg.CanaryWindow = d.CanaryWindow
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = d.SampleInterval
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = d.Parallel
	}
	if cfg.SyncRetries < 0 {
		cfg.SyncRetries = 0
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = d.RetryDelay
	}
	if cfg.RollbackTries <= 0 {
		cfg.RollbackTries = d.RollbackTries
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Runner{
		cfg:   cfg,
		Deps:  deps,
		log:   deps.Logger,
		sigs:  make(chan signal, 16),
		wake:  make(chan struct{}, 1),
		ready: make(chan struct{}),
	}
}

// Ready is closed once Run has started: the staging baseline exists and
// what every host serves has been read back and recorded.
func (r *Runner) Ready() <-chan struct{} { return r.ready }

// Config returns the runner's effective configuration.
func (r *Runner) Config() Config { return r.cfg }

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run makes sure the staging repo has a baseline, reads back what every
// host serves, resumes every deployment a previous process left unfinished,
// then works through the queue until ctx is cancelled. Cancelling ctx stops
// work without changing any state, so the next Run resumes exactly where
// this one stopped.
func (r *Runner) Run(ctx context.Context) error {
	if _, err := r.EnsureBaseline(ctx); err != nil {
		return err
	}
	r.checkFleet(ctx)
	close(r.ready)
	go r.pollWindows(ctx) // window.go
	for {
		d, err := r.next()
		if err != nil {
			return err
		}
		if d == nil {
			r.maintain(ctx)
			select {
			case <-ctx.Done():
				return nil
			case <-r.wake:
				continue
			}
		}
		r.drive(ctx, d)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// EnsureBaseline creates the staging repo's first commit from the upstream
// branch when the deploy branch does not exist yet, and returns the deploy
// branch's tip.
func (r *Runner) EnsureBaseline(ctx context.Context) (string, error) {
	head, _, err := r.Staging.Head(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the staging repo: %w", err)
	}
	if head != "" {
		return head, nil
	}
	up, err := r.Source.Baseline(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the upstream branch for the baseline: %w", err)
	}
	c, err := r.Staging.Commit(ctx, &Deployment{Refs: []string{"baseline"}, Requester: "deploybot"}, up)
	if err != nil {
		return "", fmt.Errorf("creating the staging baseline: %w", err)
	}
	r.log.Info("staging baseline created", "commit", c, "upstream", up)
	return c, nil
}

// next picks the deployment to work on: one already active (resumed after a
// restart, or a manual rollback of a finished one), else the oldest queued
// one unless the deployments are locked. It marks it active under mu.
func (r *Runner) next() (*Deployment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active = 0
	if r.busy {
		return nil, nil
	}
	unf, err := r.Store.Unfinished()
	if err != nil {
		return nil, err
	}
	var pick *Deployment
	for _, d := range unf {
		if d.State.Active() {
			pick = d
			break
		}
	}
	if pick == nil {
		lock, err := r.Store.Lock()
		if err != nil {
			return nil, err
		}
		if lock == nil {
			for _, d := range unf {
				if d.State == StateQueued {
					pick = d
					break
				}
			}
		}
	}
	if pick != nil {
		r.active = pick.ID
		// Signals meant for an earlier deployment are stale now; one for
		// this one (an answer given while it waited to be resumed) is
		// kept.
		var keep []signal
		for len(r.sigs) > 0 {
			if s := <-r.sigs; s.id == pick.ID {
				keep = append(keep, s)
			}
		}
		for _, s := range keep {
			r.sigs <- s
		}
	}
	return pick, nil
}

// drive runs one deployment from its current state until it is finished
// or ctx is cancelled.
func (r *Runner) drive(ctx context.Context, d *Deployment) {
	r.mu.Lock()
	resumed := d.State != StateQueued && !r.ours[d.ID]
	delete(r.ours, d.ID)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active = 0
		r.mu.Unlock()
	}()
	p := &pipeline{r: r, d: d, log: r.log.With("deployment", d.ID), resumed: resumed}
	p.run(ctx)
	if p.d.State.Landed() {
		r.landedSince++
	}
}

func (r *Runner) say(d *Deployment, kind NoticeKind, text string, next ...Choice) {
	r.Announcer.Announce(Notice{Deployment: d.ID, Kind: kind, Text: text, State: d.State, Next: next})
}

// Maintainer is implemented by a Staging that tidies its own storage
// (repacks, prunes). The runner calls it only while no deployment runs.
type Maintainer interface {
	// MaintainStaging tidies the repository and returns what it did, for
	// one log line.
	MaintainStaging(ctx context.Context) (slog.Value, error)
}

// maintain lets the staging repository tidy itself at a quiet moment: no
// deployment active, after some deployments have landed since last time.
func (r *Runner) maintain(ctx context.Context) {
	m, ok := r.Staging.(Maintainer)
	if !ok || r.landedSince < 10 {
		return
	}
	r.landedSince = 0
	start := r.Now()
	v, err := m.MaintainStaging(ctx)
	if err != nil {
		r.log.Warn("staging repository maintenance failed; it is tried again later", "err", err)
		return
	}
	r.log.Info("staging repository maintained", "maintain", v, "took", r.Now().Sub(start).Round(time.Millisecond).String())
}
