package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// pipeline drives one deployment. Each state has one method; each method
// ends by moving the deployment to its next state (or returns an error and
// leaves the state as it was, to be redone).
//
// Invariants:
//   - A transition is stored (Store.Transition, a compare-and-set on the
//     state) before the side effects of the state it enters begin. So after
//     a crash the stored state names the step that may have been under way,
//     and redoing that step is safe: host syncs are idempotent, waits are
//     re-armed from their stored deadline, preparing re-adopts its own
//     staging commit.
//   - A host is added to Touched before its sync starts, so a rollback
//     reaches every host that may hold the change.
//   - Once any host was touched, every way out other than forward goes
//     through rolling-back, which ends with every touched host read back.
type pipeline struct {
	r   *Runner
	d   *Deployment
	log *slog.Logger
	// resumed is set when this process picked up a deployment that a
	// previous one had started; resumedIn is the state it found it in.
	resumed   bool
	resumedIn State
}

const bot = "deploybot"

func (p *pipeline) run(ctx context.Context) {
	p.resumedIn = p.d.State
	if p.resumed {
		p.log.Info("resuming deployment", "state", p.d.State)
		p.say(NoticeInfo, fmt.Sprintf("resuming after a restart (it was %s)", p.d.State))
	}
	failures := 0
	for p.d.State.Active() || p.d.State == StateQueued {
		if ctx.Err() != nil {
			return
		}
		err := p.step(ctx)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			p.log.Info("stopping; the deployment resumes on the next start", "state", p.d.State)
			return
		}
		failures++
		p.log.Error("pipeline step failed", "state", p.d.State, "err", err, "attempt", failures)
		if err := p.reload(); err != nil {
			p.log.Error("reloading the deployment failed", "err", err)
		}
		if p.d.State.Active() && p.d.State != StateRollingBack && p.d.State != StatePreparing && failures <= 3 {
			p.say(NoticeInfo, "internal error while "+string(p.d.State)+"; rolling back (the bot's log has the details)")
			if err := p.toRollback("internal error while "+string(p.d.State), bot); err == nil {
				continue
			}
		}
		if p.d.State == StateRollingBack && failures%6 == 1 {
			// A stuck rollback must not be silent: the hosts it has not
			// reached may still serve the change.
			p.say(NoticeInfo, fmt.Sprintf("the rollback hit an internal error (the bot's log has the details); retrying. Until it succeeds, these hosts may still serve the change: %s",
				strings.Join(p.d.Touched, ", ")))
		}
		if p.d.State == StatePreparing {
			if err := p.to(StateFailed, bot, "internal error while preparing", func(d *Deployment) {
				d.Reason = "internal error while preparing"
			}); err == nil {
				p.say(NoticeFailed, "failed: internal error while preparing; nothing was synced (the bot's log has the details)")
				continue
			}
		}
		// The store itself may be failing: wait, then redo the step.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(min(failures, 6)) * 5 * time.Second):
		}
	}
}

func (p *pipeline) step(ctx context.Context) error {
	switch p.d.State {
	case StateQueued:
		return p.start()
	case StatePreparing:
		return p.prepare(ctx)
	case StateSyncingTestservers:
		return p.syncTestservers(ctx)
	case StateAwaitingVerification:
		return p.awaitVerification(ctx)
	case StateSyncingCanaries:
		return p.syncCanaries(ctx)
	case StateCheckingCanaries:
		return p.checkCanaries(ctx)
	case StateAwaitingPromotion:
		return p.awaitPromotion(ctx)
	case StateSyncingProduction:
		return p.syncProduction(ctx)
	case StateCheckingProduction:
		return p.checkProduction(ctx)
	case StateRollingBack:
		return p.rollback(ctx)
	}
	return fmt.Errorf("no step for state %q", p.d.State)
}

func (p *pipeline) say(kind NoticeKind, text string) {
	p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: kind, Text: text, State: p.d.State})
}

func (p *pipeline) reload() error {
	d, err := p.r.Store.Get(p.d.ID)
	if err != nil {
		return err
	}
	p.d = d
	return nil
}

// to stores the move to state next (with mutate applied) and only then
// returns, so the caller's side effects follow the stored state.
func (p *pipeline) to(next State, actor, msg string, mutate func(*Deployment)) error {
	from := p.d.State
	d, err := p.r.Store.Transition(p.d.ID, from, next, Event{Time: p.r.Now(), Actor: actor, Message: msg}, mutate)
	if err != nil {
		return fmt.Errorf("moving #%d from %s to %s: %w", p.d.ID, from, next, err)
	}
	p.d = d
	p.log.Info("state changed", "from", from, "to", next, "actor", actor, "message", msg)
	return nil
}

func (p *pipeline) update(mutate func(*Deployment)) error {
	d, err := p.r.Store.Update(p.d.ID, mutate)
	if err != nil {
		return err
	}
	p.d = d
	return nil
}

func (p *pipeline) event(kind, msg string) {
	if err := p.r.Store.AppendEvent(Event{Deployment: p.d.ID, Time: p.r.Now(), Actor: bot, Kind: kind, Message: msg}); err != nil {
		p.log.Error("recording an event failed", "err", err)
	}
}

// takeSignal returns a pending answer for this deployment of one of the
// given kinds, or nil. Answers of other kinds are dropped: they no longer
// apply (e.g. a late `verified`).
func (p *pipeline) takeSignal(kinds ...signalKind) *signal {
	for {
		select {
		case s := <-p.r.sigs:
			if s.id != p.d.ID {
				continue
			}
			for _, k := range kinds {
				if s.kind == k {
					return &s
				}
			}
			p.log.Info("answer ignored", "kind", s.kind, "who", s.who, "state", p.d.State)
		default:
			return nil
		}
	}
}

// interruptible returns a context that a rollback or abort cancels.
func (p *pipeline) interruptible(ctx context.Context) (context.Context, func()) {
	sctx, cancel := context.WithCancel(ctx)
	p.r.mu.Lock()
	p.r.stepCancel = cancel
	p.r.mu.Unlock()
	return sctx, func() {
		p.r.mu.Lock()
		p.r.stepCancel = nil
		p.r.mu.Unlock()
		cancel()
	}
}

func (p *pipeline) start() error {
	if err := p.to(StatePreparing, bot, "started", nil); err != nil {
		return err
	}
	p.say(NoticeStarted, fmt.Sprintf("starting deployment of %s, requested by %s", strings.Join(p.d.Refs, " "), p.d.Requester))
	return nil
}

func (p *pipeline) prepare(ctx context.Context) error {
	r := p.r
	if p.d.Base == "" {
		head, up, err := r.Staging.Head(ctx)
		if err != nil {
			return err
		}
		if err := p.update(func(d *Deployment) { d.Base, d.PrevUpstream = head, up }); err != nil {
			return err
		}
	}
	sctx, done := p.interruptible(ctx)
	prep, err := r.Source.Prepare(sctx, Request{Refs: p.d.Refs, IncludeUnexpected: p.d.IncludeUnexpected, Requester: p.d.Requester, Deployment: p.d.ID},
		p.d.PrevUpstream, func(line string) { p.say(NoticeProgress, line) })
	done()
	if s := p.takeSignal(sigAbort, sigRollback); s != nil {
		if err := p.to(StateCancelled, s.who, "cancelled while preparing", func(d *Deployment) {
			d.Reason = "cancelled by " + s.who + " while preparing"
		}); err != nil {
			return err
		}
		p.say(NoticeCancelled, fmt.Sprintf("cancelled by %s while preparing; nothing was synced", s.who))
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ErrorCode(err) == EInternal {
			p.log.Error("preparing failed", "err", err)
		}
		msg := ErrorMessage(err)
		if err := p.to(StateFailed, bot, msg, func(d *Deployment) { d.Reason = msg }); err != nil {
			return err
		}
		p.say(NoticeFailed, "cannot deploy: "+msg+" (nothing was synced)")
		return nil
	}
	if msg, err := p.blocked(ctx, prep); err != nil {
		return err
	} else if msg != "" {
		if err := p.to(StateFailed, bot, msg, func(d *Deployment) { d.Reason = msg; d.Changes = prep.Changes }); err != nil {
			return err
		}
		p.say(NoticeFailed, "cannot deploy: "+msg+" (nothing was synced)")
		return nil
	}
	files, err := r.Staging.Changed(ctx, p.d.Base, prep.Upstream)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		msg := "it changes no deployed file"
		if err := p.to(StateFailed, bot, msg, func(d *Deployment) { d.Reason = msg; d.Changes = prep.Changes }); err != nil {
			return err
		}
		p.say(NoticeFailed, "nothing to deploy: "+msg)
		return nil
	}
	// Only this runner writes the deploy branch, one deployment at a time:
	// a tip other than Base is this deployment's own commit, made before a
	// crash. Adopt it rather than stacking a second one.
	head, _, err := r.Staging.Head(ctx)
	if err != nil {
		return err
	}
	commit := head
	if head == p.d.Base {
		tmp := *p.d
		tmp.Changes = prep.Changes
		if commit, err = r.Staging.Commit(ctx, &tmp, prep.Upstream); err != nil {
			return err
		}
	}
	submitter := ""
	if r.Submitter != nil {
		submitter = r.Submitter(prep.Changes)
	}
	if submitter == "" {
		submitter = p.d.Requester
	}
	if err := p.to(StateSyncingTestservers, bot, fmt.Sprintf("staged as %.10s", commit), func(d *Deployment) {
		d.Changes, d.Upstream, d.Commit, d.Files, d.Submitter = prep.Changes, prep.Upstream, commit, files, submitter
	}); err != nil {
		return err
	}
	p.say(NoticeProgress, fmt.Sprintf("staged %s as %.10s: %s; syncing testservers (%s)",
		p.d.Title(), commit, describeFiles(files), strings.Join(hostNames(r.Fleet[Testservers]), ", ")))
	return nil
}

// blocked returns why the prepared upstream commit must not ship, or ""
// when no rolled-back change would ship with it. A block whose change
// upstream no longer contains (its revert was merged) is lifted here.
func (p *pipeline) blocked(ctx context.Context, prep *Prepared) (string, error) {
	blocks, err := p.r.Store.Blocks()
	if err != nil {
		return "", err
	}
	rv, canCheck := p.r.Source.(Reverter)
	var lines []string
	for _, b := range blocks {
		ships := false
		if canCheck {
			if ships, err = rv.StillShips(ctx, prep.Upstream, b.Change); err != nil {
				return "", err
			}
		} else {
			for _, c := range prep.Changes {
				if c.ID == b.Change.ID || (c.Commit != "" && c.Commit == b.Change.Commit) {
					ships = true
				}
			}
		}
		if !ships {
			if canCheck {
				if err := p.r.Store.Unblock(b.Change.ID); err == nil {
					p.event("block", fmt.Sprintf("block on %s lifted: upstream no longer contains it", shortID(b.Change.ID)))
					p.log.Info("block lifted", "change", b.Change.ID)
				}
			}
			continue
		}
		line := fmt.Sprintf("%s (%s) was rolled back in #%d (%s) and would ship again", shortID(b.Change.ID), b.Change.Subject, b.Deployment, b.Reason)
		if b.Revert != "" {
			line += "; merge its revert first: " + b.Revert
		} else {
			line += "; revert it upstream first"
		}
		line += fmt.Sprintf(", or a deployer can say !unblock %s", shortID(b.Change.ID))
		lines = append(lines, line)
	}
	return strings.Join(lines, ". "), nil
}

func describeFiles(files []string) string {
	const show = 5
	s := fmt.Sprintf("%d file(s) changed: ", len(files))
	if len(files) <= show {
		return s + strings.Join(files, ", ")
	}
	return s + strings.Join(files[:show], ", ") + fmt.Sprintf(" and %d more", len(files)-show)
}

// syncStage syncs one stage to the deployment's commit. It returns
// rolledBack=true when it moved the deployment to rolling-back (a host
// failed, or someone asked for a rollback during the sync).
func (p *pipeline) syncStage(ctx context.Context, stage Stage) (rolledBack bool, err error) {
	hosts := p.r.Fleet[stage]
	names := hostNames(hosts)
	if err := p.update(func(d *Deployment) { d.Touched = union(d.Touched, names) }); err != nil {
		return false, err
	}
	start := p.r.Now()
	sctx, done := p.interruptible(ctx)
	failed := p.r.syncHosts(sctx, p.log, hosts, p.d.Commit)
	done()
	if s := p.takeSignal(sigAbort, sigRollback); s != nil {
		return true, p.toRollback(fmt.Sprintf("rolled back by %s during the %s sync", s.who, stage), s.who)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if len(failed) > 0 {
		var parts []string
		for _, h := range sortedKeys(failed) {
			parts = append(parts, fmt.Sprintf("%s (%s)", h, short(failed[h].Error())))
		}
		allowed := 0
		if stage == Production && p.r.cfg.MaxFailedProduction != nil {
			allowed = p.r.cfg.MaxFailedProduction(len(hosts))
		}
		if len(failed) > allowed {
			reason := fmt.Sprintf("the %s sync failed on %s", stage, strings.Join(parts, ", "))
			if allowed > 0 {
				reason += fmt.Sprintf(" (more than the %d allowed)", allowed)
			}
			p.event("sync", reason)
			return true, p.toRollback(reason, bot)
		}
		return false, p.tolerate(ctx, hosts, failed, allowed, parts)
	}
	took := p.r.Now().Sub(start).Round(10 * time.Millisecond)
	p.event("sync", fmt.Sprintf("%s synced to %.10s: %s (%s)", stage, p.d.Commit, strings.Join(names, ", "), took))
	return false, nil
}

// tolerate handles production hosts that failed to sync within
// max_failed_hosts: each is put back on the deployment's base (so every
// host serves a commit the store knows), recorded, and reported by name;
// the deployment goes on.
func (p *pipeline) tolerate(ctx context.Context, hosts []Host, failed map[string]error, allowed int, parts []string) error {
	var failedHosts []Host
	for _, h := range hosts {
		if _, bad := failed[h.Name()]; bad {
			failedHosts = append(failedHosts, h)
		}
	}
	notes := map[string]string{}
	unrestored := p.r.syncHosts(ctx, p.log, failedHosts, p.d.Base)
	for _, h := range failedHosts {
		note := short(failed[h.Name()].Error())
		if err, bad := unrestored[h.Name()]; bad {
			note += "; could not be put back on the previous commit either: " + short(err.Error())
		} else {
			note += fmt.Sprintf("; left on the previous commit %.10s", p.d.Base)
		}
		notes[h.Name()] = note
	}
	if err := p.update(func(d *Deployment) {
		if d.FailedHosts == nil {
			d.FailedHosts = map[string]string{}
		}
		for k, v := range notes {
			d.FailedHosts[k] = v
		}
	}); err != nil {
		return err
	}
	msg := fmt.Sprintf("%d production host(s) failed to sync, within max_failed_hosts (%d): %s; continuing without them",
		len(failed), allowed, strings.Join(parts, ", "))
	p.event("sync", msg)
	p.say(NoticeProgress, msg)
	return nil
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (p *pipeline) syncTestservers(ctx context.Context) error {
	if rb, err := p.syncAndSmoke(ctx, Testservers); rb || err != nil {
		return err
	}
	// The canaries' counters now are the start of their pre-sync baseline,
	// which the verification wait gives time to accumulate.
	base, err := p.r.Metrics.Read(ctx, hostNames(p.r.Fleet[Canaries]))
	if err != nil {
		p.log.Warn("reading the canaries' baseline failed", "err", err)
	}
	timeout := p.r.cfg.VerifyTimeout
	if err := p.to(StateAwaitingVerification, bot, "testservers synced", func(d *Deployment) {
		d.Deadline = p.r.Now().Add(timeout)
		d.Reminded = false
		if err == nil {
			d.Baseline = &base
		}
	}); err != nil {
		return err
	}
	p.r.Announcer.Announce(Notice{
		Deployment: p.d.ID, Kind: NoticeVerify, State: p.d.State,
		Mention: []string{p.d.Submitter},
		Choices: []string{fmt.Sprintf("verified %d", p.d.ID), fmt.Sprintf("!abort %d", p.d.ID)},
		Text: fmt.Sprintf("%s is on %s, test it there and reply `verified`, or `!abort %d` (waiting %s)",
			p.d.Title(), strings.Join(hostNames(p.r.Fleet[Testservers]), ", "), p.d.ID, timeout),
	})
	return nil
}

// wait blocks until deadline, an answer of one of the kinds, or ctx ends.
// remind, when not zero, is a moment before the deadline at which onRemind
// runs once.
func (p *pipeline) wait(ctx context.Context, deadline, remind time.Time, onRemind func() error, kinds ...signalKind) (*signal, error) {
	for {
		now := p.r.Now()
		if !now.Before(deadline) {
			return nil, nil
		}
		next := deadline
		if !remind.IsZero() {
			if !now.Before(remind) {
				if err := onRemind(); err != nil {
					return nil, err
				}
				remind = time.Time{}
				continue
			}
			next = remind
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		case s := <-p.r.sigs:
			t.Stop()
			if s.id != p.d.ID {
				continue
			}
			for _, k := range kinds {
				if s.kind == k {
					return &s, nil
				}
			}
			p.log.Info("answer ignored", "kind", s.kind, "who", s.who, "state", p.d.State)
		}
	}
}

func (p *pipeline) awaitVerification(ctx context.Context) error {
	timeout := p.r.cfg.VerifyTimeout
	var remind time.Time
	if !p.d.Reminded {
		remind = p.d.Deadline.Add(-timeout / 2)
	}
	s, err := p.wait(ctx, p.d.Deadline, remind, func() error {
		left := p.d.Deadline.Sub(p.r.Now()).Round(time.Second)
		p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: NoticeReminder, State: p.d.State, Mention: []string{p.d.Submitter},
			Choices: []string{fmt.Sprintf("verified %d", p.d.ID), fmt.Sprintf("!abort %d", p.d.ID)},
			Text:    fmt.Sprintf("reminder: %s is waiting for you to test it on %s; reply `verified` or `!abort %d` (%s left, then it is rolled back)", p.d.Title(), strings.Join(hostNames(p.r.Fleet[Testservers]), ", "), p.d.ID, left)})
		return p.update(func(d *Deployment) { d.Reminded = true })
	}, sigVerify, sigAbort, sigRollback)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return p.toRollback(fmt.Sprintf("nobody replied `verified` within %s", timeout), bot)
	case s.kind == sigVerify:
		if err := p.to(StateSyncingCanaries, s.who, "verified by "+s.who, nil); err != nil {
			return err
		}
		p.say(NoticeVerified, fmt.Sprintf("verified by %s; syncing canaries (%s)", s.who, strings.Join(hostNames(p.r.Fleet[Canaries]), ", ")))
		return nil
	default:
		return p.toRollback("aborted by "+s.who, s.who)
	}
}

func (p *pipeline) judged() (judged, control []string) {
	return hostNames(p.r.Fleet[Canaries]), hostNames(p.r.Fleet[Production])
}

func (p *pipeline) syncCanaries(ctx context.Context) error {
	judged, control := p.judged()
	if p.d.WindowStart == nil {
		// Make the pre-sync baseline at least BaselineMin long.
		if p.d.Baseline == nil {
			b, err := p.r.Metrics.Read(ctx, judged)
			if err != nil {
				p.log.Warn("reading the canaries' baseline failed", "err", err)
			} else if err := p.update(func(d *Deployment) { d.Baseline = &b }); err != nil {
				return err
			}
		}
		if p.d.Baseline != nil {
			if left := p.d.Baseline.Time.Add(p.r.cfg.BaselineMin).Sub(p.r.Now()); left > 0 {
				p.say(NoticeProgress, fmt.Sprintf("measuring the canaries' error rate for %s before syncing them", left.Round(time.Second)))
				s, err := p.wait(ctx, p.r.Now().Add(left), time.Time{}, nil, sigAbort, sigRollback)
				if err != nil {
					return err
				}
				if s != nil {
					return p.toRollback(fmt.Sprintf("rolled back by %s before the canary sync", s.who), s.who)
				}
			}
		}
		if err := p.readStart(ctx, append(append([]string{}, judged...), control...), Canaries, func(d *Deployment, s *Sample) { d.WindowStart = s }); err != nil {
			return err
		}
	}
	if rb, err := p.syncAndSmoke(ctx, Canaries); rb || err != nil {
		return err
	}
	if err := p.to(StateCheckingCanaries, bot, "canaries synced", nil); err != nil {
		return err
	}
	p.say(NoticeProgress, fmt.Sprintf("canaries synced (%s); watching their error rate for %s", strings.Join(judged, ", "), p.r.cfg.CanaryWindow))
	return nil
}

func checkName(s Stage) string {
	if s == Production {
		return "production watch"
	}
	if s == Testservers {
		return "testserver check"
	}
	return "canary check"
}

func (p *pipeline) checkCanaries(ctx context.Context) error {
	if p.resumed && p.resumedIn == StateCheckingCanaries {
		// The samples of the interrupted window were in memory only: the
		// check cannot be completed honestly, so decide conservatively.
		return p.toRollback("the bot restarted during the canary check, which cannot be completed; rolling back to be safe", bot)
	}
	judged, control := p.judged()
	v, err := p.watch(ctx, Canaries, judged, control, p.d.Baseline, *p.d.WindowStart, p.r.cfg.CanaryWindow)
	if err != nil || v == nil {
		return err
	}
	if v.Outcome == Pass {
		if err := p.to(StateSyncingProduction, bot, "canary check passed", nil); err != nil {
			return err
		}
		p.announceVerdict(*v, NoticeVerdict, fmt.Sprintf("; syncing production (%d hosts)", len(control)), nil)
		return nil
	}
	timeout := p.r.cfg.PromoteTimeout
	if err := p.to(StateAwaitingPromotion, bot, "canary check inconclusive", func(d *Deployment) {
		d.Deadline = p.r.Now().Add(timeout)
	}); err != nil {
		return err
	}
	p.announceVerdict(*v, NoticePromote, fmt.Sprintf("; deployers: `!promote %d` to continue to production, or `!rollback %d` (rolling back in %s if nobody answers)", p.d.ID, p.d.ID, timeout),
		[]string{fmt.Sprintf("!promote %d", p.d.ID), fmt.Sprintf("!rollback %d", p.d.ID)})
	return nil
}

// watch reads counters every SampleInterval for the length of the window
// and asks the judge after each reading. It returns the final verdict
// (pass or inconclusive) once the window is complete, or nil after it has
// moved the deployment to rolling-back (a failing verdict, or a person's
// rollback). The samples live in memory: a restart cannot complete a
// window, which is why a resumed check rolls back.
func (p *pipeline) watch(ctx context.Context, stage Stage, judged, control []string, before *Sample, start Sample, window time.Duration) (*Verdict, error) {
	hosts := append(append([]string{}, judged...), control...)
	end := p.r.Now().Add(window)
	var samples []Sample
	tick := time.NewTicker(p.r.cfg.SampleInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		case s := <-p.r.sigs:
			if s.id == p.d.ID && (s.kind == sigRollback || s.kind == sigAbort) {
				return nil, p.toRollback(fmt.Sprintf("rolled back by %s during the %s", s.who, checkName(stage)), s.who)
			}
			continue
		}
		s, err := p.r.Metrics.Read(ctx, hosts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Keep the source's own reason per host when it gave one.
			if s.Hosts == nil {
				s.Hosts = map[string]Counts{}
			}
			if s.Time.IsZero() {
				s.Time = p.r.Now()
			}
			for _, h := range hosts {
				if c, ok := s.Hosts[h]; !ok || c.Err == "" {
					s.Hosts[h] = Counts{Err: "metrics source unreachable: " + short(err.Error())}
				}
			}
		}
		samples = append(samples, s)
		complete := !p.r.Now().Before(end)
		v := p.r.Judge.Judge(Window{Stage: stage, Judged: judged, Control: control, Before: before,
			Start: start, Samples: samples, Complete: complete})
		p.log.Debug("sample judged", "stage", stage, "outcome", v.Outcome, "reason", v.Reason)
		switch v.Outcome {
		case Fail:
			return nil, p.verdictRollback(v)
		case Pass, Inconclusive:
			if !complete {
				continue
			}
			if err := p.update(func(d *Deployment) { d.Verdicts = append(d.Verdicts, v) }); err != nil {
				return nil, err
			}
			p.event("verdict", string(v.Stage)+" "+string(v.Outcome)+": "+v.Reason)
			return &v, nil
		}
	}
}

func (p *pipeline) announceVerdict(v Verdict, kind NoticeKind, tail string, choices []string) {
	lines := []string{fmt.Sprintf("%s %s: %s%s", checkName(v.Stage), strings.ToUpper(string(v.Outcome)), v.Reason, tail)}
	if p.r.Explain != nil {
		lines = append(lines, p.r.Explain(v)...)
	}
	p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: kind, State: p.d.State, Text: strings.Join(lines, "\n"), Verdict: &v, Choices: choices})
}

func (p *pipeline) verdictRollback(v Verdict) error {
	if err := p.update(func(d *Deployment) { d.Verdicts = append(d.Verdicts, v) }); err != nil {
		return err
	}
	p.event("verdict", string(v.Stage)+" "+string(v.Outcome)+": "+v.Reason)
	if err := p.checkFailed(checkName(v.Stage) + " failed: " + v.Reason); err != nil {
		return err
	}
	p.announceVerdict(v, NoticeVerdict, "; rolling back", nil)
	return nil
}

// syncAndSmoke syncs a stage, then runs its smoke checks. It returns
// rolledBack=true when either moved the deployment to rolling-back.
func (p *pipeline) syncAndSmoke(ctx context.Context, stage Stage) (rolledBack bool, err error) {
	if rb, err := p.syncStage(ctx, stage); rb || err != nil {
		return rb, err
	}
	return p.smoke(ctx, stage)
}

// smoke runs the stage's smoke checks, if any are configured, and rolls
// back on a failure. It returns rolledBack=true when it did.
func (p *pipeline) smoke(ctx context.Context, stage Stage) (rolledBack bool, err error) {
	if p.r.Smoker == nil {
		return false, nil
	}
	fails := p.r.Smoker.Smoke(ctx, stage, hostNames(p.r.Fleet[stage]))
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if len(fails) == 0 {
		p.event("smoke", string(stage)+": every smoke check passed")
		return false, nil
	}
	v := Verdict{Stage: stage, Outcome: Fail, Reason: "smoke checks failed: " + strings.Join(fails, "; "), Start: p.r.Now(), End: p.r.Now()}
	if err := p.update(func(d *Deployment) { d.Verdicts = append(d.Verdicts, v) }); err != nil {
		return false, err
	}
	p.event("smoke", v.Reason)
	if err := p.checkFailed(fmt.Sprintf("smoke checks failed on the %s: %s", stage, strings.Join(fails, "; "))); err != nil {
		return false, err
	}
	p.say(NoticeVerdict, fmt.Sprintf("smoke checks FAILED on the %s; rolling back:\n%s", stage, strings.Join(fails, "\n")))
	return true, nil
}

func (p *pipeline) awaitPromotion(ctx context.Context) error {
	s, err := p.wait(ctx, p.d.Deadline, time.Time{}, nil, sigPromote, sigAbort, sigRollback)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return p.toRollback(fmt.Sprintf("the canary check was inconclusive and nobody answered within %s", p.r.cfg.PromoteTimeout), bot)
	case s.kind == sigPromote:
		if err := p.to(StateSyncingProduction, s.who, "promoted by "+s.who, nil); err != nil {
			return err
		}
		p.say(NoticeProgress, fmt.Sprintf("promoted by %s; syncing production (%d hosts)", s.who, len(p.r.Fleet[Production])))
		return nil
	default:
		return p.toRollback("rolled back by "+s.who+" after an inconclusive canary check", s.who)
	}
}

// readStart reads the counters a watch starts from, just before a
// stage's sync, and stores them with set. An unreadable source gives an
// empty sample: the judge then finds no data, which is never a pass.
func (p *pipeline) readStart(ctx context.Context, hosts []string, stage Stage, set func(*Deployment, *Sample)) error {
	start, err := p.r.Metrics.Read(ctx, hosts)
	if err != nil {
		start = Sample{Time: p.r.Now(), Hosts: map[string]Counts{}}
		p.log.Warn("reading counters before a sync failed", "stage", stage, "err", err)
	}
	return p.update(func(d *Deployment) { set(d, &start) })
}

func (p *pipeline) syncProduction(ctx context.Context) error {
	prod := hostNames(p.r.Fleet[Production])
	watch := p.r.cfg.ProductionWatch
	if watch > 0 && p.d.ProdStart == nil {
		if err := p.readStart(ctx, prod, Production, func(d *Deployment, s *Sample) { d.ProdStart = s }); err != nil {
			return err
		}
	}
	if rb, err := p.syncAndSmoke(ctx, Production); rb || err != nil {
		return err
	}
	if watch <= 0 {
		return p.finish()
	}
	if err := p.to(StateCheckingProduction, bot, "production synced", nil); err != nil {
		return err
	}
	p.say(NoticeProgress, fmt.Sprintf("production synced (%d hosts); watching its error rate for %s", len(prod), watch))
	return nil
}

// checkProduction watches every production host after its sync, with the
// same judge; the baseline is the same hosts during the canary window. A
// failure rolls back the whole fleet.
func (p *pipeline) checkProduction(ctx context.Context) error {
	if p.resumed && p.resumedIn == StateCheckingProduction {
		return p.toRollback("the bot restarted during the production watch, which cannot be completed; rolling back to be safe", bot)
	}
	prod := hostNames(p.r.Fleet[Production])
	v, err := p.watch(ctx, Production, prod, nil, p.d.WindowStart, *p.d.ProdStart, p.r.cfg.ProductionWatch)
	if err != nil || v == nil {
		return err
	}
	tail := ""
	if v.Outcome == Inconclusive {
		// Production already serves the change; there is nothing to
		// promote. Say so, and how to undo it if the doubt is real.
		tail = fmt.Sprintf("; the deployment is done, but if in doubt: !rollback %d", p.d.ID)
	}
	p.announceVerdict(*v, NoticeVerdict, tail, nil)
	return p.finish()
}

func (p *pipeline) finish() error {
	n := len(p.r.Fleet.Hosts())
	if err := p.to(StateDone, bot, "deployed to every host", nil); err != nil {
		return err
	}
	took := p.d.EndedAt.Sub(p.d.StartedAt).Round(time.Second)
	p.say(NoticeDone, fmt.Sprintf("done: %s is on all %d hosts (took %s)", p.d.Title(), n, took))
	return nil
}

// depool takes out of service every host that could not be restored, when
// a Pool is configured, so that no broken host keeps taking traffic. It
// returns the hosts depooled and lines for chat.
func (p *pipeline) depool(ctx context.Context, failed map[string]error) ([]string, []string) {
	if p.r.Pool == nil || len(failed) == 0 {
		return nil, nil
	}
	ctx = WithLogger(ctx, p.log)
	var done, lines []string
	for _, h := range sortedKeys(failed) {
		if err := p.r.Pool.Depool(ctx, h); err != nil {
			p.log.Error("depool failed", "host", h, "err", err)
			lines = append(lines, fmt.Sprintf("Depooling %s FAILED too (%s): take it out of service by hand.", h, short(err.Error())))
			continue
		}
		p.log.Warn("host depooled", "host", h)
		p.event("depool", h+" depooled: it could not be restored")
		done = append(done, h)
	}
	if len(done) > 0 {
		lines = append([]string{fmt.Sprintf("Depooled %s so it takes no traffic; fix it, then !repool <host>.", strings.Join(done, ", "))}, lines...)
	}
	return done, lines
}

// blame blocks the changes of a rollback that blames them and, when the
// source can, reverts them upstream (once: UpstreamReverted is stored
// before the deployment leaves rolling-back). It returns lines for chat.
func (p *pipeline) blame(ctx context.Context) []string {
	if !p.d.Blame || len(p.d.Changes) == 0 {
		return nil
	}
	reverts := map[string]string{}
	var lines []string
	if rv, ok := p.r.Source.(Reverter); ok && !p.d.UpstreamReverted {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		ls, rs, err := rv.RevertUpstream(rctx, p.d, p.d.Reason)
		cancel()
		if err != nil {
			p.log.Error("reverting upstream failed", "err", err)
			lines = append(lines, "Reverting upstream failed ("+ErrorMessage(err)+"): revert the change(s) there by hand, or they will ship again.")
		}
		lines = append(lines, ls...)
		reverts = rs
		if err := p.update(func(d *Deployment) { d.UpstreamReverted = true }); err != nil {
			p.log.Error("recording the upstream revert failed", "err", err)
		}
	}
	for _, c := range p.d.Changes {
		b := Block{Change: c, Deployment: p.d.ID, Reason: p.d.Reason, Revert: reverts[c.ID], Since: p.r.Now()}
		if err := p.r.Store.SetBlock(b); err != nil {
			p.log.Error("blocking a change failed", "change", c.ID, "err", err)
			continue
		}
		p.event("block", fmt.Sprintf("%s blocked from shipping again until upstream no longer contains it", shortID(c.ID)))
	}
	lines = append(lines, fmt.Sprintf("Until upstream no longer contains %s, backports that would ship it again are refused (!unblock <change> lifts that).", p.d.Title()))
	return lines
}

// toRollback stores the move to rolling-back; the rollback itself runs as
// the next step, so that a crash in between redoes it. A rollback a person
// asked for blames the change (it is blocked and reverted upstream); one
// the bot decided blames it only through checkFailed.
func (p *pipeline) toRollback(reason, actor string) error {
	return p.rollbackFor(reason, actor, actor != bot)
}

// checkFailed rolls back because a check (smoke, canary, production
// watch) showed the change is bad.
func (p *pipeline) checkFailed(reason string) error {
	return p.rollbackFor(reason, bot, true)
}

func (p *pipeline) rollbackFor(reason, actor string, blame bool) error {
	return p.to(StateRollingBack, actor, reason, func(d *Deployment) {
		d.Reason = reason
		d.Blame = blame
	})
}

func (p *pipeline) rollback(ctx context.Context) error {
	r := p.r
	start := r.Now()
	var hosts []Host
	missing := map[string]error{}
	for _, name := range p.d.Touched {
		if h := r.Fleet.Host(name); h != nil {
			hosts = append(hosts, h)
		} else {
			missing[name] = errors.New("no longer in the configuration")
		}
	}
	p.log.Info("rolling back", "hosts", len(hosts), "to", p.d.Base, "reason", p.d.Reason)
	failed := r.syncHosts(ctx, p.log, hosts, p.d.Base)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for k, v := range missing {
		failed[k] = v
	}
	if p.d.RollbackCommit == "" {
		head, _, err := r.Staging.Head(ctx)
		if err != nil {
			return err
		}
		rc := head
		if head == p.d.Commit {
			if rc, err = r.Staging.Revert(ctx, p.d, p.d.Base, p.d.Reason); err != nil {
				return err
			}
		} else if diff, err := r.Staging.Changed(ctx, p.d.Base, head); err != nil || len(diff) > 0 {
			// The tip is neither this deployment nor its revert: refuse to
			// guess; a person must look.
			return fmt.Errorf("staging tip %.10s is neither deployment #%d's commit nor a revert to its base", head, p.d.ID)
		}
		if err := p.update(func(d *Deployment) { d.RollbackCommit = rc }); err != nil {
			return err
		}
	}
	depooled, depoolLines := p.depool(ctx, failed)
	revertLines := p.blame(ctx)
	failedText := map[string]string{}
	for k, v := range failed {
		failedText[k] = short(v.Error())
	}
	if err := p.to(StateRolledBack, bot, "rolled back: "+p.d.Reason, func(d *Deployment) {
		if len(failedText) > 0 {
			d.FailedHosts = failedText
		}
		d.Depooled = union(d.Depooled, depooled)
	}); err != nil {
		return err
	}
	took := r.Now().Sub(start).Round(10 * time.Millisecond)
	var restored []string
	for _, h := range hosts {
		if _, bad := failed[h.Name()]; !bad {
			restored = append(restored, h.Name())
		}
	}
	text := fmt.Sprintf("rolled back %s: %s. Restored %d host(s) to %.10s in %s, each read back: %s.",
		p.d.Title(), p.d.Reason, len(restored), p.d.Base, took, strings.Join(restored, ", "))
	if len(restored) == 0 && len(failed) == 0 {
		text = fmt.Sprintf("rolled back %s: %s. No host had received it.", p.d.Title(), p.d.Reason)
	}
	if len(failed) > 0 {
		var parts []string
		for _, h := range sortedKeys(failed) {
			parts = append(parts, fmt.Sprintf("%s (%s)", h, short(failed[h].Error())))
		}
		text += " COULD NOT RESTORE: " + strings.Join(parts, ", ") + "."
		if len(depoolLines) > 0 {
			text += " " + strings.Join(depoolLines, " ")
		} else {
			text += " Those hosts may still serve the change: fix them by hand."
		}
	}
	if len(revertLines) > 0 {
		text += "\n" + strings.Join(revertLines, "\n")
	} else if len(p.d.Changes) > 0 {
		text += " The change is still merged upstream: revert it there, or it will ship again with the next backport."
	}
	p.say(NoticeRolledBack, text)
	return nil
}
