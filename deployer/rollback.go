package deployer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds rolling back: restoring every touched host, the staging
// commit that records it, depooling what cannot be restored, blaming the
// suspects, and the end of a rollback that keeps failing.

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

// errRollbackIncomplete makes the run loop wait and redo the rollback step.
var errRollbackIncomplete = errors.New("the rollback is incomplete; trying again")

// backOn names what the hosts are back on, in words people know: the
// deployment and upstream commit, not a staging hash.
func (p *pipeline) backOn() string {
	up := ""
	if p.d.PrevUpstream != "" {
		up = fmt.Sprintf(" (upstream %.10s)", p.d.PrevUpstream)
	}
	// The base is the outcome of the deployment before this one; a
	// rolled-back one deployed nothing, so name the one whose commit it is.
	if p.d.PrevDeployment != 0 {
		prev, err := p.r.Store.Get(p.d.PrevDeployment)
		if err == nil {
			prev, err = p.r.Serving(prev)
		}
		if err == nil && prev != nil && prev.State == StateDone {
			return fmt.Sprintf("what #%d deployed%s", prev.ID, up)
		}
	}
	return "what they served before #" + fmt.Sprint(p.d.ID) + up
}

// rollback restores every touched host to the base and reads each back,
// records the rollback in staging, depools what cannot be restored, and
// blames the suspects when the rollback blames the change. Each attempt
// is counted in the store; after cfg.RollbackTries attempts that leave a
// host neither restored nor depooled, or the staging commit unwritten, the
// deployment ends rollback-failed.
func (p *pipeline) rollback(ctx context.Context) error {
	r := p.r
	if err := p.update(func(d *Deployment) { d.RollbackTries++ }); err != nil {
		return err
	}
	start := r.Now()
	var hosts []Host
	failed := map[string]error{}
	for _, name := range p.d.Touched {
		if h := r.Fleet.Host(name); h != nil {
			hosts = append(hosts, h)
		} else {
			failed[name] = errors.New("no longer in the configuration")
		}
	}
	p.log.Info("rolling back", "hosts", len(hosts), "to", p.d.Base, "reason", p.d.Reason, "try", p.d.RollbackTries)
	for k, v := range r.syncHosts(ctx, p.log, p.d.ID, hosts, p.d.Base) {
		failed[k] = v
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, err := range failed {
		if re := (*recordError)(nil); errors.As(err, &re) {
			// The store failed, not a host: depooling would take hosts
			// that may be fine out of service, unrecorded. The step is
			// redone once the store can record again.
			return err
		}
	}
	stageErr := p.stageRollback(ctx)
	if stageErr != nil {
		p.log.Error("recording the rollback in staging failed", "err", stageErr)
	}
	depooled, depoolLines := p.depool(ctx, failed)
	if len(failed) > 0 {
		if err := r.Store.UpdateHosts(sortedKeys(failed), func(h *HostRecord) {
			h.Behind = fmt.Sprintf("the rollback of #%d could not restore it: %s", p.d.ID, plainHostError(failed[h.Name]))
			for _, d := range depooled {
				if d == h.Name {
					h.Depooled, h.DepooledBy = true, p.d.ID
				}
			}
		}); err != nil {
			return err
		}
	}
	var unhandled []string
	for _, h := range sortedKeys(failed) {
		if !contains(depooled, h) {
			unhandled = append(unhandled, h)
		}
	}
	if stageErr != nil || len(unhandled) > 0 {
		if p.d.RollbackTries < r.cfg.RollbackTries {
			var why []string
			for _, h := range unhandled {
				why = append(why, p.failedHost(h, failed[h]))
			}
			if stageErr != nil {
				why = append(why, "the staging repository could not record it (the bot's log has the details)")
			}
			p.say(NoticeInfo, fmt.Sprintf("the rollback is not complete (try %d of %d): %s; trying again",
				p.d.RollbackTries, r.cfg.RollbackTries, strings.Join(why, ", ")))
			return errRollbackIncomplete
		}
		return p.rollbackFailed(ctx, failed, stageErr)
	}
	return p.rolledBack(ctx, start, hosts, failed, depooled, depoolLines)
}

// rolledBack ends a rollback that restored or depooled every touched host:
// it blames the suspects, lifts the bot's lock, stores rolled-back and says
// so, host by host.
func (p *pipeline) rolledBack(ctx context.Context, start time.Time, hosts []Host, failed map[string]error, depooled, depoolLines []string) error {
	r := p.r
	revertLines := p.blame(ctx)
	p.unlockIfOurs()
	// An earlier try may have depooled a host this one restored: it is
	// still out of service, and the channel must hear so.
	var stillDepooled []string
	if recs, err := r.Store.Hosts(); err != nil {
		p.log.Error("reading the host records failed", "err", err)
	} else {
		for _, n := range sortedKeys(recs) {
			if rec := recs[n]; rec.Depooled && rec.DepooledBy == p.d.ID && !contains(depooled, n) {
				stillDepooled = append(stillDepooled, n)
			}
		}
	}
	failedText := map[string]string{}
	for k, v := range failed {
		failedText[k] = plainHostError(v)
	}
	if err := p.to(StateRolledBack, bot, "rolled back: "+p.d.Reason, func(d *Deployment) {
		if len(failedText) > 0 {
			d.FailedHosts = failedText
		}
		d.Depooled = union(d.Depooled, union(depooled, stillDepooled))
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
	text := fmt.Sprintf("rolled back %s: %s. Restored %s to %s in %s, each read back: %s.",
		p.d.Title(), p.d.Reason, plural(len(restored), "host"), p.backOn(), took, strings.Join(restored, ", "))
	if len(restored) == 0 && len(failed) == 0 {
		text = fmt.Sprintf("rolled back %s: %s. No host had received it.", p.d.Title(), p.d.Reason)
	}
	if len(failed) > 0 {
		var parts []string
		for _, h := range sortedKeys(failed) {
			parts = append(parts, p.failedHost(h, failed[h]))
		}
		text += " COULD NOT RESTORE: " + strings.Join(parts, ", ") + ". " + strings.Join(depoolLines, " ")
	}
	if len(stillDepooled) > 0 {
		text += fmt.Sprintf(" %s, depooled by an earlier try of this rollback, %s still out of service: repool %s once it is checked.",
			strings.Join(stillDepooled, ", "), isAre(len(stillDepooled)), map[bool]string{true: "it", false: "them"}[len(stillDepooled) == 1])
		depooled = append(depooled, stillDepooled...)
	}
	var next []Choice
	switch {
	case len(revertLines) > 0:
		text += "\n" + strings.Join(revertLines, "\n")
	case len(p.d.Changes) > 0 && !p.d.Blame:
		text += " Nothing is blocked: the change is still merged upstream and may be deployed again."
	}
	if len(depooled) > 0 {
		next = append(next, DoWith(VerbRepool, "put a mended host back into service", depooled[0]))
	}
	p.say(NoticeRolledBack, text, next...)
	return nil
}

// stageRollback records the rollback in the staging repository: the tip
// must end up holding the base's tree. Any staging state whose tree already
// is the base's is accepted as it is (a rollback commit written before a
// crash, or the rollback of a later deployment that left this one's tree
// and then this one's base); otherwise a rollback commit is added on top
// of whatever the tip is, so the tip always ends on the tree the hosts
// were restored to.
func (p *pipeline) stageRollback(ctx context.Context) error {
	if p.d.RollbackCommit != "" {
		return nil
	}
	head, _, err := p.r.Staging.Head(ctx)
	if err != nil {
		return err
	}
	rc := head
	same, err := p.sameTree(ctx, head, p.d.Base)
	if err != nil {
		return err
	}
	if !same {
		if ok, err := p.sameTree(ctx, head, p.d.Commit); err == nil && !ok && p.d.Commit != "" {
			p.log.Warn("the staging tip holds neither this deployment's tree nor its base; recording the rollback on top of it", "tip", head)
		}
		if rc, err = p.r.Staging.Revert(ctx, p.d, p.d.Base, p.d.Reason); err != nil {
			return err
		}
	}
	return p.update(func(d *Deployment) { d.RollbackCommit = rc })
}

// rollbackFailed ends a rollback that could not finish after its tries:
// every host is read back and recorded, the deployments are locked by the
// bot, and the channel is told host by host and what to do.
func (p *pipeline) rollbackFailed(ctx context.Context, failed map[string]error, stageErr error) error {
	var serving []string
	notes := map[string]string{}
	recs, err := p.r.Store.Hosts()
	if err != nil {
		return err
	}
	for _, name := range p.d.Touched {
		rec := recs[name]
		what := "could not be read back: what it serves is unknown"
		switch {
		case rec.Unknown:
		case rec.Commit == p.d.Base:
			what = "restored, read back"
		case rec.Commit == p.d.Commit:
			what = fmt.Sprintf("STILL SERVES #%d", p.d.ID)
		case rec.Commit == "":
			what = "serves nothing"
		default:
			what = fmt.Sprintf("serves %.10s", rec.Commit)
		}
		if e := failed[name]; e != nil {
			if rec.Commit == p.d.Base && !rec.Unknown {
				// Not "restored" without a word: it is what failed.
				what = "serves the base again (read back), but its restore failed"
			}
			what += " (" + plainHostError(e) + ")"
			notes[name] = what
		}
		if rec.Depooled {
			what += fmt.Sprintf(", and depooled by #%d: it takes no traffic", rec.DepooledBy)
		}
		serving = append(serving, name+": "+what)
	}
	tries := "1 try"
	if p.d.RollbackTries != 1 {
		tries = fmt.Sprintf("%d tries", p.d.RollbackTries)
	}
	reason := fmt.Sprintf("the rollback of #%d failed after %s", p.d.ID, tries)
	if why, _, _ := strings.Cut(p.d.Reason, "\n"); why != "" {
		// What it was rolling back for, so nobody has to look it up.
		reason = fmt.Sprintf("the rollback of #%d (%s) failed after %s", p.d.ID, strings.TrimSuffix(why, "."), tries)
	}
	if stageErr != nil {
		reason += "; the staging repository could not record it"
	}
	// The lock first: a crash before the transition redoes both, and a
	// rollback that then succeeds lifts it again (unlockIfOurs).
	lock := p.r.rollbackLock(p.d.ID)
	if l, err := p.r.Store.Lock(); err != nil {
		return err
	} else if l == nil {
		if err := p.r.Store.SetLock(lock); err != nil {
			return err
		}
	}
	if err := p.to(StateRollbackFailed, bot, reason, func(d *Deployment) {
		if len(notes) > 0 {
			d.FailedHosts = notes
		}
	}); err != nil {
		return err
	}
	p.say(NoticeFailed, fmt.Sprintf("ROLLBACK FAILED: %s. Host by host: %s. Deployments are locked so nothing deploys onto this fleet. Fix the hosts, then roll back again; once every host is restored the lock is lifted.",
		reason, strings.Join(serving, "; ")), Do(VerbRollback, p.d.ID, "try the rollback again"), DoWith(VerbStatus, "see every host"))
	return nil
}

// rollbackLock is the lock the bot holds while deployment id's rollback
// has failed; unlockIfOurs knows it by its reason.
func (r *Runner) rollbackLock(id int64) *Lock {
	return &Lock{By: bot, Reason: fmt.Sprintf("rollback of #%d failed; the fleet is not in a known state", id), Since: r.Now()}
}

// backOnBase reports whether host, a configured host, was read back
// serving the base: its restore failed after the flip (in a hook).
func (p *pipeline) backOnBase(host string) bool {
	if p.r.Fleet.Host(host) == nil {
		return false // its record is from before it left the configuration
	}
	recs, err := p.r.Store.Hosts()
	rec, ok := recs[host]
	return err == nil && ok && !rec.Unknown && rec.Commit == p.d.Base
}

// failedHost names a host the rollback could not restore, with why, for
// the channel.
func (p *pipeline) failedHost(host string, err error) string {
	if p.backOnBase(host) {
		return fmt.Sprintf("%s (serves the base again, read back, but its restore failed: %s)", host, plainHostError(err))
	}
	return fmt.Sprintf("%s (%s)", host, plainHostError(err))
}

// unlockIfOurs lifts the lock the bot set when this deployment's rollback
// failed, now that it succeeded.
func (p *pipeline) unlockIfOurs() {
	l, err := p.r.Store.Lock()
	if err != nil || l == nil || l.By != bot || !strings.HasPrefix(l.Reason, fmt.Sprintf("rollback of #%d failed", p.d.ID)) {
		return
	}
	if err := p.r.Store.SetLock(nil); err != nil {
		p.log.Error("lifting the bot's lock failed", "err", err)
		return
	}
	p.say(NoticeInfo, fmt.Sprintf("every host is restored: the lock set when the rollback of #%d failed is lifted", p.d.ID))
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// depool takes out of service every host that could not be restored, when
// a Pool is configured, so that no broken host keeps taking traffic. It
// returns the hosts depooled and lines for chat.
func (p *pipeline) depool(ctx context.Context, failed map[string]error) ([]string, []string) {
	if len(failed) == 0 {
		return nil, nil
	}
	if p.r.Pool == nil {
		for h := range failed {
			if !p.backOnBase(h) {
				return nil, []string{"Those hosts may still serve the change: fix them by hand."}
			}
		}
		return nil, []string{"Fix those hosts by hand."}
	}
	ctx = WithLogger(ctx, p.log)
	var done, lines []string
	for _, h := range sortedKeys(failed) {
		// Recorded before the command runs, as a state is before its side
		// effects: after a crash (or a store failure) right after it, the
		// store still knows. A record of a depool that did not happen only
		// costs a needless repool.
		setDepooled := func(on bool, by int64) error {
			return p.r.Store.UpdateHosts([]string{h}, func(rec *HostRecord) { rec.Depooled, rec.DepooledBy = on, by })
		}
		var was HostRecord
		if recs, err := p.r.Store.Hosts(); err == nil {
			was = recs[h]
		}
		if err := setDepooled(true, p.d.ID); err != nil {
			p.log.Error("recording a depool failed; not depooling", "host", h, "err", err)
			lines = append(lines, fmt.Sprintf("Depooling %s FAILED too (the bot could not record it): take it out of service by hand.", h))
			continue
		}
		if err := p.r.Pool.Depool(ctx, h); err != nil {
			p.log.Error("depool failed", "host", h, "err", err)
			lines = append(lines, fmt.Sprintf("Depooling %s FAILED too (%s): take it out of service by hand.", h, short(err.Error())))
			if err := setDepooled(was.Depooled, was.DepooledBy); err != nil {
				p.log.Error("recording a failed depool failed", "host", h, "err", err)
			}
			continue
		}
		p.log.Warn("host depooled", "host", h)
		p.event("depool", h+" depooled: it could not be restored")
		done = append(done, h)
	}
	if len(done) > 0 {
		lines = append([]string{fmt.Sprintf("Depooled %s so it takes no traffic; fix it, then repool it.", strings.Join(done, ", "))}, lines...)
	}
	return done, lines
}

// Suspects returns the changes a failed deployment is blamed for, each
// with why it is suspected, and lines naming the changes it is not blamed
// for and why. A revert is never a suspect: reverting it would ship what
// it reverted again; a change and its revert in the same deployment cancel
// out and ship nothing. A batch rolled back during its bisection (out of
// rounds, an inconclusive round, a person's rollback) is not blamed for
// the changes a round cleared: the canaries passed with them.
func (d *Deployment) Suspects() (suspects []Change, why map[string]string, spared []string) {
	why = map[string]string{}
	revertedHere := map[string]string{} // reverted id -> the revert's id
	for _, c := range d.Changes {
		if c.Reverts != "" {
			revertedHere[c.Reverts] = c.ID
		}
	}
	var cleared []Change
	if b := d.Bisect; b != nil && b.Final == "" {
		cleared = b.changesOf(b.Innocent)
	}
	for _, c := range d.Changes {
		switch {
		case changeAmong(c, cleared):
			spared = append(spared, fmt.Sprintf("%s (%s) passed the canaries in the bisection: not blamed", ShortID(c.ID), c.Subject))
		case c.Reverts != "":
			spared = append(spared, fmt.Sprintf("%s (%s) is a revert: not blamed, since reverting it would ship %s again", ShortID(c.ID), c.Subject, ShortID(c.Reverts)))
		case revertedHere[c.ID] != "" || (c.Commit != "" && revertedHere[c.Commit] != ""):
			spared = append(spared, fmt.Sprintf("%s (%s) and its revert cancel out: it shipped nothing", ShortID(c.ID), c.Subject))
		default:
			suspects = append(suspects, c)
			switch {
			case c.Unexpected:
				why[c.ID] = "shipped with --include-unexpected"
			case c.Pointer:
				why[c.ID] = "moves the submodule pointer of what shipped with it"
			default:
				why[c.ID] = "asked for"
			}
		}
	}
	return suspects, why, spared
}

// blame blocks the suspects of a rollback that blames the change and, when
// the source can, reverts them upstream (once: UpstreamReverted is stored
// before the deployment leaves rolling-back). It returns lines for chat.
func (p *pipeline) blame(ctx context.Context) []string {
	if !p.d.Blame || len(p.d.Changes) == 0 {
		return nil
	}
	suspects, why, spared := p.d.Suspects()
	var lines []string
	if len(suspects) > 0 {
		var names []string
		for _, c := range suspects {
			names = append(names, fmt.Sprintf("%s (%s; %s)", ShortID(c.ID), c.Subject, why[c.ID]))
		}
		lines = append(lines, "Suspected: "+strings.Join(names, ", ")+".")
	}
	lines = append(lines, spared...)
	if len(suspects) == 0 {
		return lines
	}
	reverts := map[string]string{}
	if rv, ok := p.r.Source.(Reverter); ok && !p.d.UpstreamReverted {
		only := *p.d
		only.Changes = suspects
		rctx, cancel := context.WithTimeout(WithLogger(ctx, p.log), 2*time.Minute)
		ls, rs, err := rv.RevertUpstream(rctx, &only, p.d.Reason)
		cancel()
		if err != nil {
			p.log.Error("reverting upstream failed", "err", err)
			lines = append(lines, "Reverting upstream failed ("+ErrorMessage(err)+"): revert the suspects there by hand, or they will ship again.")
		}
		lines = append(lines, ls...)
		reverts = rs
		if err := p.update(func(d *Deployment) { d.UpstreamReverted = true }); err != nil {
			p.log.Error("recording the upstream revert failed", "err", err)
		}
	}
	var ids []string
	for _, c := range suspects {
		b := Block{Change: c, Deployment: p.d.ID, Reason: p.d.Reason, Revert: reverts[c.ID], Since: p.r.Now()}
		if err := p.r.Store.SetBlock(b); err != nil {
			p.log.Error("blocking a change failed", "change", c.ID, "err", err)
			continue
		}
		ids = append(ids, ShortID(c.ID))
		p.event("block", fmt.Sprintf("%s blocked from shipping again until upstream no longer contains it", ShortID(c.ID)))
	}
	lines = append(lines, fmt.Sprintf("Until upstream no longer contains %s, backports that would ship it again are refused (a deployer can lift that with unblock).", strings.Join(ids, ", ")))
	return lines
}
