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
// leaves the state as it was, to be redone). The steps are in this file;
// the canary and production checks in checks.go; rolling back, blame and
// depooling in rollback.go.
//
// Invariants:
//   - A transition is stored (Store.Transition, a compare-and-set on the
//     state) before the side effects of the state it enters begin. So after
//     a crash the stored state names the step that may have been under way,
//     and redoing that step is safe: host syncs are idempotent, waits are
//     re-armed from their stored deadline, preparing re-adopts its own
//     staging commit (Staging.Commit is idempotent per deployment).
//   - A host is added to Touched before its sync starts, so a rollback
//     reaches every host that may hold the change.
//   - Once any host was touched, every way out other than forward goes
//     through rolling-back, which ends with every touched host read back.
//   - When no deployment is active, the staging tip's tree is the tree the
//     fleet serves: preparing restores it before it stages anything, and
//     puts it back before it gives up.
type pipeline struct {
	r   *Runner
	d   *Deployment
	log *slog.Logger
	// resumed is set when this process picked up a deployment that a
	// previous one had started; resumedIn is the state it found it in.
	resumed   bool
	resumedIn State
	// judging is set while a bisection round is watched: a failing
	// verdict is returned to the bisection rather than rolling back.
	judging bool
	// bisectUnits are the batch's units, found by canBisect.
	bisectUnits [][]Change
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
		switch {
		case p.d.State == StateRollingBack:
			// The rollback step counts its own tries and ends the
			// deployment after the last; here it only waits.
		case p.d.State == StatePreparing:
			msg := "internal error while preparing"
			if p.endPrepare(ctx, StateFailed, bot, msg, NoticeFailed, "failed: internal error while preparing; nothing was synced (the bot's log has the details)") == nil {
				continue
			}
		case p.d.State.Active() && failures <= 3:
			p.say(NoticeInfo, "internal error while "+string(p.d.State)+"; rolling back (the bot's log has the details)")
			if p.toRollback("internal error while "+string(p.d.State), bot) == nil {
				continue
			}
		}
		// The store itself may be failing: wait, then redo the step.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(min(failures, 6)) * p.r.cfg.RetryDelay):
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
	case StateAwaitingMetrics:
		return p.awaitMetrics(ctx)
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
	case StateBisecting:
		return p.bisect(ctx) // bisect.go
	}
	return fmt.Errorf("no step for state %q", p.d.State)
}

func (p *pipeline) say(kind NoticeKind, text string, next ...Choice) {
	p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: kind, Text: text, State: p.d.State, Next: next})
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

// receive is the one place the pipeline hears people's answers. It returns
// the first pending answer about this deployment of one of kinds, waiting
// until timeout fires (nil: not at all, only what is pending) or ctx ends.
// Answers of other kinds no longer apply (a late `verified`) and are
// dropped with a log line.
func (p *pipeline) receive(ctx context.Context, timeout <-chan time.Time, kinds ...signalKind) (*signal, error) {
	for {
		select {
		case s := <-p.r.sigs:
			if p.wanted(s, kinds) {
				return &s, nil
			}
			continue
		default:
		}
		if timeout == nil {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, nil
		case s := <-p.r.sigs:
			if p.wanted(s, kinds) {
				return &s, nil
			}
		}
	}
}

func (p *pipeline) wanted(s signal, kinds []signalKind) bool {
	if s.id != p.d.ID {
		return false
	}
	for _, k := range kinds {
		if s.kind == k {
			return true
		}
	}
	p.log.Info("answer ignored", "kind", s.kind, "who", s.who, "state", p.d.State)
	return false
}

// wait blocks until deadline, an answer of one of the kinds, or ctx ends.
// remind, when not zero, is a moment before the deadline at which onRemind
// runs once.
func (p *pipeline) wait(ctx context.Context, deadline, remind time.Time, onRemind func() error, kinds ...signalKind) (*signal, error) {
	for {
		now := p.r.Now()
		if !now.Before(deadline) {
			// An answer that came in just as time ran out still counts.
			return p.receive(ctx, nil, kinds...)
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
		s, err := p.receive(ctx, t.C, kinds...)
		t.Stop()
		if err != nil || s != nil {
			return s, err
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

// sameTree reports whether two commits of the staging repository hold the
// same tree.
func (p *pipeline) sameTree(ctx context.Context, a, b string) (bool, error) {
	if a == b {
		return true, nil
	}
	diff, err := p.r.Staging.Changed(ctx, a, b)
	return err == nil && len(diff) == 0, err
}

// restoreTip makes the staging tip hold base's tree again when it does
// not (a deployment that staged its commit and then failed, or a crash in
// between): a rollback commit of this deployment to base.
func (p *pipeline) restoreTip(ctx context.Context, base, why string) error {
	head, _, err := p.r.Staging.Head(ctx)
	if err != nil {
		return err
	}
	if same, err := p.sameTree(ctx, head, base); err != nil || same {
		return err
	}
	if _, err := p.r.Staging.Revert(ctx, p.d, base, why); err != nil {
		return err
	}
	p.log.Info("staging tip restored to the fleet's tree", "base", base, "was", head)
	return nil
}

// endPrepare ends a deployment that never reached a host (failed or
// cancelled): the staging tip is put back on the base first, so that a
// crash in between redoes both.
func (p *pipeline) endPrepare(ctx context.Context, to State, actor, reason string, kind NoticeKind, text string, next ...Choice) error {
	if p.d.Base != "" {
		if err := p.restoreTip(ctx, p.d.Base, "not deployed: "+reason); err != nil {
			return err
		}
	}
	if err := p.to(to, actor, reason, func(d *Deployment) { d.Reason = reason }); err != nil {
		return err
	}
	p.say(kind, text, next...)
	return nil
}

// setBase records, once, what the deployment starts from: the commit the
// fleet serves as the store says, its upstream commit and the deployment
// that put it there. The staging tip must hold its tree before anything is
// staged on it.
func (p *pipeline) setBase(ctx context.Context) error {
	if p.d.Base != "" {
		return nil
	}
	base, landed, err := p.r.deployedCommit(ctx)
	if err != nil {
		return err
	}
	if err := p.restoreTip(ctx, base, fmt.Sprintf("the staging tip did not hold the tree the fleet serves; restored before #%d", p.d.ID)); err != nil {
		return err
	}
	_, up, err := p.r.Staging.Head(ctx)
	if err != nil {
		return err
	}
	var prev int64
	if landed != nil {
		prev = landed.ID
	}
	return p.update(func(d *Deployment) { d.Base, d.PrevUpstream, d.PrevDeployment = base, up, prev })
}

func (p *pipeline) prepare(ctx context.Context) error {
	r := p.r
	if err := p.setBase(ctx); err != nil {
		return err
	}
	withheld, err := r.Withheld()
	if err != nil {
		return err
	}
	refs, named := r.splitWithheld(p.d.Refs, withheld)
	sctx, done := p.interruptible(ctx)
	// The sources' and Gerrit's log lines about this deployment carry its id.
	sctx = WithLogger(sctx, p.log)
	var prep *Prepared
	if len(refs) > 0 {
		prep, err = r.Source.Prepare(sctx, Request{Refs: refs, IncludeUnexpected: p.d.IncludeUnexpected, Requester: p.d.Requester, Deployment: p.d.ID},
			p.d.PrevUpstream, func(line string) { p.say(NoticeProgress, line) })
	} else {
		// Only withheld changes: the deployed upstream commit holds
		// them already; staging its whole tree ships them.
		prep = &Prepared{Upstream: p.d.PrevUpstream}
	}
	if err == nil && len(named) > 0 {
		prep.Changes = append(append([]Change{}, named...), prep.Changes...)
	}
	done()
	if s, _ := p.receive(ctx, nil, sigAbort, sigRollback); s != nil {
		return p.endPrepare(ctx, StateCancelled, s.who, "cancelled by "+s.who+" while preparing", NoticeCancelled,
			fmt.Sprintf("cancelled by %s while preparing; nothing was synced", s.who))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ErrorCode(err) == EInternal {
			p.log.Error("preparing failed", "err", err)
		}
		msg := ErrorMessage(err)
		var ue *UnexpectedError
		if errors.As(err, &ue) {
			// Say the block first: the unexpected commits' advice would
			// steer people towards shipping a rolled-back change.
			if lines, next, err := p.blockedAmong(ue.Changes); err != nil {
				return err
			} else if len(lines) > 0 {
				return p.endPrepare(ctx, StateFailed, bot, strings.Join(lines, ". "), NoticeFailed,
					"cannot deploy: "+strings.Join(lines, ". ")+" (nothing was synced)", next...)
			}
		}
		return p.endPrepare(ctx, StateFailed, bot, msg, NoticeFailed, "cannot deploy: "+msg+" (nothing was synced)", ErrorNext(err)...)
	}
	if msg, next, carried, err := p.unnamedWithheld(ctx, prep, withheld, p.d.IncludeUnexpected); err != nil {
		return err
	} else if msg != "" {
		if err := p.update(func(d *Deployment) { d.Changes = prep.Changes }); err != nil {
			return err
		}
		return p.endPrepare(ctx, StateFailed, bot, msg, NoticeFailed, "cannot deploy: "+msg+" (nothing was synced)", next...)
	} else if len(carried) > 0 {
		prep.Changes = append(carried, prep.Changes...)
	}
	if lines, next, err := p.blocked(ctx, prep); err != nil {
		return err
	} else if len(lines) > 0 {
		if err := p.update(func(d *Deployment) { d.Changes = prep.Changes }); err != nil {
			return err
		}
		msg := strings.Join(lines, ". ")
		return p.endPrepare(ctx, StateFailed, bot, msg, NoticeFailed, "cannot deploy: "+msg+" (nothing was synced)", next...)
	}
	files, err := r.Staging.Changed(ctx, p.d.Base, prep.Upstream)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		if err := p.update(func(d *Deployment) { d.Changes = prep.Changes }); err != nil {
			return err
		}
		return p.endPrepare(ctx, StateFailed, bot, "it changes no deployed file", NoticeFailed,
			"nothing to deploy: it changes no deployed file; the fleet serves that tree already")
	}
	tmp := *p.d
	tmp.Changes = prep.Changes
	commit, err := r.Staging.Commit(ctx, &tmp, prep.Upstream)
	if err != nil {
		return err
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
	text := fmt.Sprintf("staged %s: %s; syncing testservers (%s)", p.d.Title(), describeFiles(files), strings.Join(hostNames(r.Fleet[Testservers]), ", "))
	if len(prep.Notes) > 0 {
		text += "\n" + strings.Join(prep.Notes, "\n")
	}
	p.say(NoticeProgress, text)
	return nil
}

// blockLine says why a blocked change must not ship, and what to do.
func blockLine(b Block) (string, []Choice) {
	line := fmt.Sprintf("%s (%s) was rolled back in #%d (%s) and would ship again", ShortID(b.Change.ID), b.Change.Subject, b.Deployment, b.Reason)
	if b.Revert != "" {
		line += "; merge its revert first: " + b.Revert
	} else {
		line += "; revert it upstream first"
	}
	return line + ", or a deployer can lift the block", []Choice{DoWith(VerbUnblock, "let it ship again", ShortID(b.Change.ID))}
}

// blockedAmong returns the block lines of the changes that are blocked.
func (p *pipeline) blockedAmong(changes []Change) ([]string, []Choice, error) {
	blocks, err := p.r.Store.Blocks()
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	var next []Choice
	for _, b := range blocks {
		for _, c := range changes {
			if c.ID == b.Change.ID || (c.Commit != "" && c.Commit == b.Change.Commit) {
				l, n := blockLine(b)
				lines, next = append(lines, l), append(next, n...)
				break
			}
		}
	}
	return lines, next, nil
}

// blocked returns why the prepared upstream commit must not ship, or
// nothing when no rolled-back change would ship with it. A block whose
// change upstream no longer contains (its revert was merged) is lifted
// here; with a GoneChecker source (a composite) only when its branch no
// longer holds it, not merely because this deployment leaves its part of
// the tree where it was.
func (p *pipeline) blocked(ctx context.Context, prep *Prepared) ([]string, []Choice, error) {
	rv, canCheck := p.r.Source.(Reverter)
	if !canCheck {
		return p.blockedAmong(prep.Changes)
	}
	blocks, err := p.r.Store.Blocks()
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	var next []Choice
	for _, b := range blocks {
		ships, err := rv.StillShips(ctx, prep.Upstream, b.Change)
		if err != nil {
			return nil, nil, err
		}
		if !ships {
			if g, ok := p.r.Source.(GoneChecker); ok {
				gone, err := g.Gone(ctx, b.Change)
				if err != nil {
					// Keeping the block is safe; this deployment does not
					// ship the change either way.
					p.log.Warn("checking whether a blocked change is gone upstream failed", "change", b.Change.ID, "err", err)
				}
				if err != nil || !gone {
					continue
				}
			}
			if err := p.r.Store.Unblock(b.Change.ID); err == nil {
				p.event("block", fmt.Sprintf("block on %s lifted: upstream no longer contains it", ShortID(b.Change.ID)))
				p.log.Info("block lifted", "change", b.Change.ID)
			}
			continue
		}
		l, n := blockLine(b)
		lines, next = append(lines, l), append(next, n...)
	}
	return lines, next, nil
}

// plural returns "1 host" or "3 hosts".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func describeFiles(files []string) string {
	const show = 5
	s := plural(len(files), "file") + " changed: "
	if len(files) <= show {
		return s + strings.Join(files, ", ")
	}
	return s + strings.Join(files[:show], ", ") + fmt.Sprintf(" and %d more", len(files)-show)
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

// stageHosts are the hosts of a stage this deployment syncs: all of them.
func (p *pipeline) stageHosts(stage Stage) []Host { return p.r.Fleet[stage] }

// syncStage syncs one stage to the deployment's commit. It returns
// rolledBack=true when it moved the deployment to rolling-back (a host
// failed, or someone asked for a rollback during the sync).
func (p *pipeline) syncStage(ctx context.Context, stage Stage) (rolledBack bool, err error) {
	hosts := p.stageHosts(stage)
	names := hostNames(hosts)
	if err := p.update(func(d *Deployment) { d.Touched = union(d.Touched, names) }); err != nil {
		return false, err
	}
	start := p.r.Now()
	sctx, done := p.interruptible(ctx)
	failed := p.r.syncHosts(sctx, p.log, p.d.ID, hosts, p.d.Commit)
	done()
	if s, _ := p.receive(ctx, nil, sigAbort, sigRollback); s != nil {
		return true, p.toRollback(fmt.Sprintf("rolled back by %s during the %s sync", s.who, stage), s.who)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	// A host a tolerated failure left behind, that this (redone) sync
	// brought up, is behind no more.
	var caughtUp []string
	for _, n := range names {
		if _, was := p.d.FailedHosts[n]; was && failed[n] == nil {
			caughtUp = append(caughtUp, n)
		}
	}
	if len(caughtUp) > 0 {
		if err := p.update(func(d *Deployment) {
			for _, n := range caughtUp {
				delete(d.FailedHosts, n)
			}
		}); err != nil {
			return false, err
		}
	}
	if len(failed) > 0 {
		var parts []string
		for _, h := range sortedKeys(failed) {
			parts = append(parts, fmt.Sprintf("%s (%s)", h, plainHostError(failed[h])))
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
// host serves a commit the store knows), recorded as behind, and reported
// by name; the deployment goes on without them.
func (p *pipeline) tolerate(ctx context.Context, hosts []Host, failed map[string]error, allowed int, parts []string) error {
	var failedHosts []Host
	for _, h := range hosts {
		if _, bad := failed[h.Name()]; bad {
			failedHosts = append(failedHosts, h)
		}
	}
	notes := map[string]string{}
	unrestored := p.r.syncHosts(ctx, p.log, p.d.ID, failedHosts, p.d.Base)
	for _, h := range failedHosts {
		note := plainHostError(failed[h.Name()])
		if err, bad := unrestored[h.Name()]; bad {
			note += "; could not be put back on the previous commit either: " + plainHostError(err)
		} else {
			note += fmt.Sprintf("; left on the previous commit %.10s", p.d.Base)
		}
		notes[h.Name()] = note
	}
	if err := p.r.Store.UpdateHosts(sortedKeys(notes), func(h *HostRecord) {
		h.Behind = fmt.Sprintf("its sync in #%d failed: %s", p.d.ID, notes[h.Name])
	}); err != nil {
		return err
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
	msg := fmt.Sprintf("%s failed to sync, within max_failed_hosts (%d): %s; continuing without %s",
		plural(len(failed), "production host"), allowed, strings.Join(parts, ", "), map[bool]string{true: "it", false: "them"}[len(failed) == 1])
	p.event("sync", msg)
	p.say(NoticeProgress, msg)
	return nil
}

// synced returns the hosts of stage that serve the deployment's commit:
// all of them but those a tolerated failure left behind.
func (p *pipeline) synced(stage Stage) []string {
	var out []string
	for _, h := range p.r.Fleet[stage] {
		if _, bad := p.d.FailedHosts[h.Name()]; !bad {
			out = append(out, h.Name())
		}
	}
	return out
}

func (p *pipeline) syncTestservers(ctx context.Context) error {
	if rb, err := p.syncAndSmoke(ctx, Testservers); rb || err != nil {
		return err
	}
	if p.d.Batch && len(p.d.Verified) > 0 && p.allVerified() {
		// A batch restaged without its unverified changes (batch.go).
		return p.toCanaries(StateSyncingTestservers)
	}
	// The canaries' and production's counters now are the start of the
	// pre-sync baseline, which the verification wait gives time to
	// accumulate: until their sync, all of them serve the old code.
	judged, control := p.judged()
	base, err := p.r.Metrics.Read(ctx, append(judged, control...))
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
	if p.d.Batch {
		p.askBatch(NoticeVerify, fmt.Sprintf("batch #%d is on the testservers (waiting %s)", p.d.ID, timeout))
		return nil
	}
	p.askToVerify(NoticeVerify, fmt.Sprintf("on %s now: %s. Test it there (waiting %s)", hostList(p.r.Fleet[Testservers]), p.d.Title(), timeout))
	return nil
}

// askToVerify pings the submitter with the verification prompt.
func (p *pipeline) askToVerify(kind NoticeKind, text string) {
	p.r.Announcer.Announce(Notice{
		Deployment: p.d.ID, Kind: kind, State: p.d.State,
		Mention: []string{p.d.Submitter},
		Next:    []Choice{Do(VerbVerified, p.d.ID, "it works"), Do(VerbAbort, p.d.ID, "it does not: roll back")},
		Text:    text,
	})
}

// hostList names hosts for chat: "mwdebug1001", or "mw1, mw2 and mw3".
func hostList(hs []Host) string {
	names := hostNames(hs)
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func (p *pipeline) awaitVerification(ctx context.Context) error {
	if p.d.Batch {
		return p.awaitBatchVerification(ctx) // batch.go
	}
	timeout := p.r.cfg.VerifyTimeout
	if p.resumed && p.resumedIn == StateAwaitingVerification {
		// The submitter must know they are still being asked.
		p.resumed = false
		left := p.d.Deadline.Sub(p.r.Now()).Round(time.Second)
		if left > 0 {
			p.askToVerify(NoticeVerify, fmt.Sprintf("still waiting for you (the bot restarted): on %s now: %s. Test it there (%s left, then it is rolled back)",
				hostList(p.r.Fleet[Testservers]), p.d.Title(), left))
		}
	}
	var remind time.Time
	if !p.d.Reminded {
		remind = p.d.Deadline.Add(-timeout / 2)
	}
	s, err := p.wait(ctx, p.d.Deadline, remind, func() error {
		left := p.d.Deadline.Sub(p.r.Now()).Round(time.Second)
		p.askToVerify(NoticeReminder, fmt.Sprintf("reminder: %s is waiting for you to test it on %s (%s left, then it is rolled back)", p.d.Title(), hostList(p.r.Fleet[Testservers]), left))
		return p.update(func(d *Deployment) { d.Reminded = true })
	}, sigVerify, sigAbort, sigRollback, sigGone)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return p.toRollback(fmt.Sprintf("nobody replied `verified` within %s", timeout), bot)
	case s.kind == sigGone:
		return p.toRollback("nobody can answer any more: "+s.who, bot)
	case s.kind == sigVerify:
		if problems := p.canaryMetricsProblems(ctx); len(problems) > 0 {
			return p.askAboutMetrics(s.who, problems)
		}
		if err := p.to(StateSyncingCanaries, s.who, "verified by "+s.who, func(d *Deployment) { d.VerifiedBy = s.who }); err != nil {
			return err
		}
		p.say(NoticeVerified, fmt.Sprintf("verified by %s; syncing canaries (%s)", s.who, hostList(p.r.Fleet[Canaries])))
		return nil
	default:
		return p.toRollback("aborted by "+s.who, s.who)
	}
}

func (p *pipeline) awaitPromotion(ctx context.Context) error {
	s, err := p.wait(ctx, p.d.Deadline, time.Time{}, nil, sigPromote, sigAbort, sigRollback, sigGone)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return p.toRollback(fmt.Sprintf("the canary check was inconclusive and nobody answered within %s", p.r.cfg.PromoteTimeout), bot)
	case s.kind == sigGone:
		return p.toRollback("nobody can answer any more: "+s.who, bot)
	case s.kind == sigPromote:
		if err := p.to(StateSyncingProduction, s.who, "promoted by "+s.who, nil); err != nil {
			return err
		}
		p.say(NoticeProgress, fmt.Sprintf("promoted by %s; syncing production (%s)", s.who, plural(len(p.r.Fleet[Production]), "host")))
		return nil
	default:
		return p.toRollback("rolled back by "+s.who+" after an inconclusive canary check", s.who)
	}
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
	synced := p.synced(Production)
	p.say(NoticeProgress, fmt.Sprintf("production synced (%s); watching its error rate for %s", plural(len(synced), "host"), watch))
	return nil
}

// finish ends a deployment that reached production. Its last line says
// how many hosts serve it, and names any a tolerated failure left behind.
func (p *pipeline) finish() error {
	n := len(p.r.Fleet.Hosts())
	behind := sortedKeys(p.d.FailedHosts)
	if err := p.to(StateDone, bot, fmt.Sprintf("deployed to %d of %d hosts", n-len(behind), n), nil); err != nil {
		return err
	}
	took := p.d.EndedAt.Sub(p.d.StartedAt).Round(time.Second)
	if len(behind) == 0 {
		p.say(NoticeDone, fmt.Sprintf("done: %s is on all %d hosts (took %s)", p.d.Title(), n, took))
		return nil
	}
	var parts []string
	for _, h := range behind {
		parts = append(parts, fmt.Sprintf("%s (%s)", h, p.d.FailedHosts[h]))
	}
	p.say(NoticeDone, fmt.Sprintf("done on %d of %d hosts: %s is NOT on %s. Once fixed, sync brings %s up to date (took %s)",
		n-len(behind), n, p.d.Title(), strings.Join(parts, ", "), map[bool]string{true: "it", false: "them"}[len(behind) == 1], took),
		DoWith(VerbSync, "bring them to the fleet's commit", behind...))
	return nil
}
