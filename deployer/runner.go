package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
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
	}
}

// Deps are the outside things the runner needs. All are required except
// Submitter, which defaults to the requester.
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
}

// Runner moves deployments through the pipeline, one at a time, in the
// order they were queued. Commands from chat (Submit, Verify, Abort, ...)
// may be called from any goroutine; the pipeline itself runs in Run.
type Runner struct {
	cfg Config
	Deps
	log *slog.Logger

	// mu guards active and the decision to start work (a queued deployment
	// or a manual rollback), so that two never start at once.
	mu     sync.Mutex
	active int64 // id of the deployment the pipeline is working on, 0 if none
	// stepCancel interrupts the pipeline's current interruptible step
	// (preparing, a stage sync) when a rollback or abort arrives.
	stepCancel context.CancelFunc
	sigs       chan signal
	wake       chan struct{}
}

type signalKind string

const (
	sigVerify   signalKind = "verify"
	sigAbort    signalKind = "abort"
	sigPromote  signalKind = "promote"
	sigRollback signalKind = "rollback"
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
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Runner{
		cfg:  cfg,
		Deps: deps,
		log:  deps.Logger,
		sigs: make(chan signal, 16),
		wake: make(chan struct{}, 1),
	}
}

// Config returns the runner's effective configuration.
func (r *Runner) Config() Config { return r.cfg }

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run makes sure the staging repo has a baseline, resumes every deployment
// a previous process left unfinished, then works through the queue until
// ctx is cancelled. Cancelling ctx stops work without changing any state, so
// the next Run resumes exactly where this one stopped.
func (r *Runner) Run(ctx context.Context) error {
	if _, err := r.EnsureBaseline(ctx); err != nil {
		return err
	}
	for {
		d, err := r.next()
		if err != nil {
			return err
		}
		if d == nil {
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
		// A done deployment being rolled back by hand is also active work.
		// It is found through the lock-free list of unfinished ones only
		// when rolling-back; done ones are Finished and not in unf.
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
		// Signals meant for an earlier deployment are stale now.
		for len(r.sigs) > 0 {
			<-r.sigs
		}
	}
	return pick, nil
}

// drive runs one deployment from its current state until it is finished
// or ctx is cancelled.
func (r *Runner) drive(ctx context.Context, d *Deployment) {
	defer func() {
		r.mu.Lock()
		r.active = 0
		r.mu.Unlock()
	}()
	p := &pipeline{r: r, d: d, log: r.log.With("deployment", d.ID), resumed: d.State != StateQueued}
	p.run(ctx)
}

func (r *Runner) say(d *Deployment, kind NoticeKind, text string) {
	r.Announcer.Announce(Notice{Deployment: d.ID, Kind: kind, Text: text, State: d.State})
}

// Submit queues a request. It returns the queued deployment and its
// position in the queue (1 = next to run).
func (r *Runner) Submit(req Request) (*Deployment, int, error) {
	if len(req.Refs) == 0 {
		return nil, 0, Errorf(EInvalid, "what should I deploy? Usage: !backport <ref> [<ref>...] [--include-unexpected]")
	}
	d := &Deployment{
		State:             StateQueued,
		Requester:         req.Requester,
		Refs:              req.Refs,
		IncludeUnexpected: req.IncludeUnexpected,
		CreatedAt:         r.Now(),
	}
	id, err := r.Store.Create(d)
	if err != nil {
		return nil, 0, err
	}
	d.ID = id
	pos := 0
	unf, err := r.Store.Unfinished()
	if err == nil {
		for _, u := range unf {
			if u.State == StateQueued && u.ID <= id {
				pos++
			}
		}
	}
	r.log.Info("deployment queued", "deployment", id, "requester", req.Requester, "refs", strings.Join(req.Refs, " "), "position", pos)
	r.poke()
	return d, pos, nil
}

// Verify records that who has tested deployment id on the testservers.
func (r *Runner) Verify(id int64, who string) error {
	return r.signal(id, sigVerify, who, StateAwaitingVerification)
}

// Promote continues deployment id to production after an inconclusive
// canary verdict.
func (r *Runner) Promote(id int64, who string) error {
	return r.signal(id, sigPromote, who, StateAwaitingPromotion)
}

// Abort stops deployment id and rolls back whatever it synced.
func (r *Runner) Abort(id int64, who string) error {
	return r.Rollback(id, who)
}

// Rollback undoes deployment id: an in-flight one is stopped and what it
// synced restored; the latest finished one is rolled back on every host.
func (r *Runner) Rollback(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	switch {
	case d.State == StateQueued:
		return Errorf(EConflict, "deployment #%d has not started; use !cancel %d to take it off the queue", id, id)
	case d.State.Active():
		if d.State == StateRollingBack {
			return Errorf(EConflict, "deployment #%d is already rolling back", id)
		}
		return r.signal(id, sigRollback, who, "")
	case d.State == StateDone:
		return r.rollbackFinished(d, who)
	default:
		return Errorf(EConflict, "deployment #%d is %s; there is nothing to roll back", id, d.State)
	}
}

// rollbackFinished starts the rollback of a done deployment. Only the latest
// deployment that reached the hosts may be rolled back, and only while no
// other deployment runs: otherwise the hosts no longer serve what it
// replaced, and the later ones stand in the way.
func (r *Runner) rollbackFinished(d *Deployment, who string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != 0 {
		return Errorf(EConflict, "deployment #%d is running now; roll that back first (!rollback %d)", r.active, r.active)
	}
	later, err := r.laterDeployments(d.ID)
	if err != nil {
		return err
	}
	if len(later) > 0 {
		ids := make([]string, len(later))
		for i, l := range later {
			ids[i] = fmt.Sprintf("#%d (%s)", l.ID, l.State)
		}
		return Errorf(EConflict, "cannot roll back #%d: later deployments stand in the way: %s. Roll those back first, newest first.", d.ID, strings.Join(ids, ", "))
	}
	_, err = r.Store.Transition(d.ID, StateDone, StateRollingBack, Event{Actor: who, Message: "rollback requested by " + who}, func(d *Deployment) {
		d.Reason = "rolled back by " + who
		d.Touched = hostNames(r.Fleet.Hosts())
	})
	if errors.Is(err, ErrConflict) {
		return Errorf(EConflict, "deployment #%d changed state meanwhile; try again", d.ID)
	}
	if err != nil {
		return err
	}
	r.poke()
	return nil
}

// laterDeployments lists deployments after id that reached hosts and were
// not rolled back: those whose trees the hosts may serve now.
func (r *Runner) laterDeployments(id int64) ([]*Deployment, error) {
	var out []*Deployment
	for off := 0; ; off += 100 {
		ds, err := r.Store.List(off, 100)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.ID <= id {
				return out, nil
			}
			if d.State == StateDone || d.State.Active() {
				out = append(out, d)
			}
		}
		if len(ds) < 100 {
			return out, nil
		}
	}
}

// Cancel takes a queued deployment off the queue, or stops one that is
// still preparing (nothing synced yet).
func (r *Runner) Cancel(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	switch d.State {
	case StateQueued:
		_, err := r.Store.Transition(id, StateQueued, StateCancelled, Event{Actor: who, Message: "cancelled by " + who}, func(d *Deployment) {
			d.Reason = "cancelled by " + who
		})
		if errors.Is(err, ErrConflict) {
			return Errorf(EConflict, "deployment #%d has just started; use !rollback %d", id, id)
		}
		if err == nil {
			r.say(d, NoticeCancelled, fmt.Sprintf("%s cancelled deployment #%d before it started", who, id))
		}
		return err
	case StatePreparing:
		return r.signal(id, sigAbort, who, StatePreparing)
	}
	if d.State.Active() {
		return Errorf(EConflict, "deployment #%d is %s; use !rollback %d to stop it and undo what it synced", id, d.State, id)
	}
	return Errorf(EConflict, "deployment #%d is %s already", id, d.State)
}

// signal delivers a person's answer to the running deployment. want, when
// set, is the state the deployment must be in for the answer to make sense.
func (r *Runner) signal(id int64, kind signalKind, who string, want State) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	if want != "" && d.State != want {
		switch kind {
		case sigVerify:
			return Errorf(EConflict, "deployment #%d is not waiting for verification (it is %s)", id, d.State)
		case sigPromote:
			return Errorf(EConflict, "deployment #%d is not waiting for a promote decision (it is %s)", id, d.State)
		}
		return Errorf(EConflict, "deployment #%d is %s", id, d.State)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != id {
		return Errorf(EConflict, "deployment #%d is not running right now (it is %s)", id, d.State)
	}
	select {
	case r.sigs <- signal{id: id, kind: kind, who: who}:
	default:
		return Errorf(EConflict, "too many answers at once; try again in a moment")
	}
	if (kind == sigRollback || kind == sigAbort) && r.stepCancel != nil {
		// A rollback must reach a pipeline that is busy preparing or
		// syncing too: interrupt that step; the pipeline reads the signal
		// as soon as the step returns.
		r.stepCancel()
	}
	return nil
}

// Lock freezes deployments: new backports queue but do not start.
func (r *Runner) Lock(who, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return Errorf(EInvalid, "say why: !lock <reason>")
	}
	l, err := r.Store.Lock()
	if err != nil {
		return err
	}
	if l != nil {
		return Errorf(EConflict, "already locked by %s since %s: %s", l.By, l.Since.UTC().Format("15:04 MST"), l.Reason)
	}
	return r.Store.SetLock(&Lock{By: who, Reason: reason, Since: r.Now()})
}

// Unlock lifts the freeze and starts the queue again.
func (r *Runner) Unlock(who string) error {
	l, err := r.Store.Lock()
	if err != nil {
		return err
	}
	if l == nil {
		return Errorf(EConflict, "deployments are not locked")
	}
	if err := r.Store.SetLock(nil); err != nil {
		return err
	}
	r.poke()
	return nil
}

// Queue returns the queued deployments, first to run first.
func (r *Runner) Queue() ([]*Deployment, error) {
	unf, err := r.Store.Unfinished()
	if err != nil {
		return nil, err
	}
	var q []*Deployment
	for _, d := range unf {
		if d.State == StateQueued {
			q = append(q, d)
		}
	}
	return q, nil
}

// Active returns the deployment the pipeline is working on, or nil.
func (r *Runner) Active() (*Deployment, error) {
	unf, err := r.Store.Unfinished()
	if err != nil {
		return nil, err
	}
	for _, d := range unf {
		if d.State.Active() {
			return d, nil
		}
	}
	return nil, nil
}

func hostNames(hs []Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name()
	}
	return out
}

// syncHosts syncs hosts to commit with at most cfg.Parallel at once,
// retrying each failure cfg.SyncRetries times. It returns the hosts that
// failed with why, and checks what each host serves afterwards.
func (r *Runner) syncHosts(ctx context.Context, log *slog.Logger, hosts []Host, commit string) map[string]error {
	// Hosts, hooks and pools log through ctx's logger, so their lines
	// about this deployment carry its id too.
	ctx = WithLogger(ctx, log)
	var (
		mu     sync.Mutex
		failed = map[string]error{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, r.cfg.Parallel)
	)
	for _, h := range hosts {
		wg.Add(1)
		go func(h Host) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			for attempt := 0; attempt <= r.cfg.SyncRetries; attempt++ {
				if ctx.Err() != nil {
					err = ctx.Err()
					break
				}
				start := r.Now()
				err = h.Sync(ctx, commit, r.Staging)
				if err == nil {
					var cur string
					cur, err = h.Current(ctx)
					if err == nil && cur != commit {
						err = fmt.Errorf("host serves %.10s after the sync, not %.10s", cur, commit)
					}
				}
				if err == nil {
					log.Info("host synced", "host", h.Name(), "commit", commit, "took", r.Now().Sub(start).Round(time.Millisecond).String())
					break
				}
				log.Warn("host sync failed", "host", h.Name(), "commit", commit, "attempt", attempt+1, "err", err)
			}
			if err != nil {
				mu.Lock()
				failed[h.Name()] = err
				mu.Unlock()
			}
		}(h)
	}
	wg.Wait()
	return failed
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Unblock lifts the block on a rolled-back change, named by its id or an
// unambiguous prefix of it (at least 4 characters), so it may ship again.
func (r *Runner) Unblock(change, who string) (*Block, error) {
	blocks, err := r.Store.Blocks()
	if err != nil {
		return nil, err
	}
	var match []Block
	for _, b := range blocks {
		if b.Change.ID == change || (len(change) >= 4 && strings.HasPrefix(b.Change.ID, change)) {
			match = append(match, b)
		}
	}
	switch len(match) {
	case 0:
		return nil, Errorf(ENotFound, "no blocked change matches %q; !status lists nothing blocked? see !help", change)
	case 1:
	default:
		return nil, Errorf(EInvalid, "%q matches %d blocked changes; give more of its id", change, len(match))
	}
	b := match[0]
	if err := r.Store.Unblock(b.Change.ID); err != nil {
		return nil, err
	}
	_ = r.Store.AppendEvent(Event{Deployment: b.Deployment, Time: r.Now(), Actor: who, Kind: "block",
		Message: fmt.Sprintf("block on %s lifted by %s", shortID(b.Change.ID), who)})
	r.log.Info("block lifted", "deployment", b.Deployment, "change", b.Change.ID, "who", who)
	return &b, nil
}

// Depooled returns the hosts that rollbacks took out of service and that
// nobody has put back yet, with the deployment that depooled each.
func (r *Runner) Depooled() (map[string]int64, error) {
	out := map[string]int64{}
	ds, err := r.Store.List(0, 200)
	if err != nil {
		return nil, err
	}
	for _, d := range ds {
		for _, h := range d.Depooled {
			if _, seen := out[h]; !seen {
				out[h] = d.ID
			}
		}
	}
	return out, nil
}

// deployedCommit is the staging commit the store says the fleet serves:
// that of the latest deployment that finished on the hosts (its commit
// when done, its base when rolled back), else the staging baseline.
func (r *Runner) deployedCommit(ctx context.Context) (string, error) {
	ds, err := r.Store.List(0, 200)
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		switch d.State {
		case StateDone:
			return d.Commit, nil
		case StateRolledBack:
			return d.Base, nil
		}
	}
	head, _, err := r.Staging.Head(ctx)
	return head, err
}

// Repool puts a depooled host back into service after making sure it
// serves the commit the store says the fleet serves (syncing it to that
// commit first if needed).
func (r *Runner) Repool(ctx context.Context, host, who string) error {
	if r.Pool == nil {
		return Errorf(EInvalid, "no repool command is configured (hosts.stage_options.<stage>.repool)")
	}
	h := r.Fleet.Host(host)
	if h == nil {
		return Errorf(ENotFound, "there is no host %q in the configuration", host)
	}
	depooled, err := r.Depooled()
	if err != nil {
		return err
	}
	id, ok := depooled[host]
	if !ok {
		return Errorf(EConflict, "%s is not depooled", host)
	}
	want, err := r.deployedCommit(ctx)
	if err != nil {
		return err
	}
	cur, err := h.Current(ctx)
	if err != nil || cur != want {
		if serr := h.Sync(ctx, want, r.Staging); serr != nil {
			return Errorf(EConflict, "%s does not serve the deployed commit %.10s and syncing it failed (%s); fix the host and try again", host, want, short(serr.Error()))
		}
		if cur, err = h.Current(ctx); err != nil || cur != want {
			return Errorf(EConflict, "%s still does not serve the deployed commit %.10s after a sync; fix the host and try again", host, want)
		}
	}
	if err := r.Pool.Repool(ctx, host); err != nil {
		return Errorf(EConflict, "%s serves %.10s, but the repool command failed: %s", host, want, short(err.Error()))
	}
	if _, err := r.Store.Update(id, func(d *Deployment) {
		var keep []string
		for _, x := range d.Depooled {
			if x != host {
				keep = append(keep, x)
			}
		}
		d.Depooled = keep
	}); err != nil {
		return err
	}
	_ = r.Store.AppendEvent(Event{Deployment: id, Time: r.Now(), Actor: who, Kind: "repool", Message: fmt.Sprintf("%s repooled by %s, serving %.10s", host, who, want)})
	r.log.Info("host repooled", "deployment", id, "host", host, "who", who, "commit", want)
	return nil
}
