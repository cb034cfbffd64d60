package deployer

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// This file holds the pipeline's checks: the canaries' baseline, sync and
// window, the production watch, and the smoke checks after each stage.

// judged returns the hosts the canary check judges and the control hosts
// it compares them with (production, not synced yet).
func (p *pipeline) judged() (judged, control []string) {
	return hostNames(p.r.Fleet[Canaries]), hostNames(p.r.Fleet[Production])
}

func (p *pipeline) syncCanaries(ctx context.Context) error {
	judged, control := p.judged()
	if p.d.WindowStart == nil {
		// Make the pre-sync baseline at least BaselineMin long.
		if p.d.Baseline == nil {
			b, err := p.r.Metrics.Read(ctx, append(append([]string{}, judged...), control...))
			if err != nil {
				p.log.Warn("reading the canaries' baseline failed", "err", err)
			} else if err := p.update(func(d *Deployment) { d.Baseline = &b }); err != nil {
				return err
			}
		}
		if p.d.Baseline != nil && readable(p.d.Baseline) {
			if left := p.d.Baseline.Time.Add(p.r.cfg.BaselineMin).Sub(p.r.Now()); left >= time.Second {
				p.say(NoticeProgress, fmt.Sprintf("measuring the canaries' error rate for %s more before syncing them", left.Round(time.Second)))
			}
			if left := p.d.Baseline.Time.Add(p.r.cfg.BaselineMin).Sub(p.r.Now()); left > 0 {
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
	p.say(NoticeProgress, fmt.Sprintf("canaries synced (%s); watching their error rate for %s", hostList(p.r.Fleet[Canaries]), p.r.cfg.CanaryWindow))
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
		p.announceVerdict(*v, NoticeVerdict, fmt.Sprintf("; syncing production (%s)", plural(len(control), "host")))
		return nil
	}
	timeout := p.r.cfg.PromoteTimeout
	if err := p.to(StateAwaitingPromotion, bot, "canary check inconclusive", func(d *Deployment) {
		d.Deadline = p.r.Now().Add(timeout)
	}); err != nil {
		return err
	}
	p.announceVerdict(*v, NoticePromote, fmt.Sprintf("; deployers decide (rolling back in %s if nobody answers)", timeout),
		Do(VerbPromote, p.d.ID, "continue to production"), Do(VerbRollback, p.d.ID, "roll back"))
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
		s, err := p.receive(ctx, tick.C, sigRollback, sigAbort)
		if err != nil {
			return nil, err
		}
		if s != nil {
			return nil, p.toRollback(fmt.Sprintf("rolled back by %s during the %s", s.who, checkName(stage)), s.who)
		}
		sample, err := p.r.Metrics.Read(ctx, hosts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Keep the source's own reason per host when it gave one.
			if sample.Hosts == nil {
				sample.Hosts = map[string]Counts{}
			}
			if sample.Time.IsZero() {
				sample.Time = p.r.Now()
			}
			for _, h := range hosts {
				if c, ok := sample.Hosts[h]; !ok || c.Err == "" {
					sample.Hosts[h] = Counts{Err: "metrics source unreachable: " + short(err.Error())}
				}
			}
		}
		samples = append(samples, sample)
		complete := !p.r.Now().Before(end)
		v := p.r.Judge.Judge(Window{Stage: stage, Judged: judged, Control: control, Before: before,
			Start: start, Samples: samples, Complete: complete})
		p.log.Debug("sample judged", "stage", stage, "outcome", v.Outcome, "reason", v.Reason)
		switch v.Outcome {
		case Fail:
			if p.judging {
				return &v, nil // bisect.go judges the round
			}
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

func (p *pipeline) announceVerdict(v Verdict, kind NoticeKind, tail string, next ...Choice) {
	lines := []string{fmt.Sprintf("%s %s: %s%s", checkName(v.Stage), strings.ToUpper(string(v.Outcome)), v.Reason, tail)}
	if p.r.Explain != nil {
		lines = append(lines, p.r.Explain(v)...)
	}
	p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: kind, State: p.d.State, Text: strings.Join(lines, "\n"), Verdict: &v, Next: next})
}

func (p *pipeline) verdictRollback(v Verdict) error {
	if err := p.update(func(d *Deployment) { d.Verdicts = append(d.Verdicts, v) }); err != nil {
		return err
	}
	p.event("verdict", string(v.Stage)+" "+string(v.Outcome)+": "+v.Reason)
	if v.Stage == Canaries && p.canBisect() {
		return p.startBisect(v) // bisect.go
	}
	if err := p.checkFailed(checkName(v.Stage) + " failed: " + v.Reason); err != nil {
		return err
	}
	p.announceVerdict(v, NoticeVerdict, "; rolling back")
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

// smoke runs the stage's smoke checks, if any are configured, on the hosts
// that serve the deployment's commit, and rolls back on a failure. It
// returns rolledBack=true when it did.
func (p *pipeline) smoke(ctx context.Context, stage Stage) (rolledBack bool, err error) {
	if p.r.Smoker == nil || p.r.Smoker.Checks(stage) == 0 {
		return false, nil
	}
	fails := p.r.Smoker.Smoke(ctx, stage, p.synced(stage))
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if len(fails) == 0 {
		p.event("smoke", fmt.Sprintf("%s: all %s passed", stage, plural(p.r.Smoker.Checks(stage), "smoke check")))
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

// checkProduction watches the production hosts that serve the change after
// their sync, with the same judge; the baseline is the same hosts during
// the canary window. A failure rolls back the whole fleet.
func (p *pipeline) checkProduction(ctx context.Context) error {
	if p.resumed && p.resumedIn == StateCheckingProduction {
		return p.toRollback("the bot restarted during the production watch, which cannot be completed; rolling back to be safe", bot)
	}
	v, err := p.watch(ctx, Production, p.synced(Production), nil, p.d.WindowStart, *p.d.ProdStart, p.r.cfg.ProductionWatch)
	if err != nil || v == nil {
		return err
	}
	var next []Choice
	tail := ""
	if v.Outcome == Inconclusive {
		// Production already serves the change; there is nothing to
		// promote. Say so, and how to undo it if the doubt is real.
		tail = "; the deployment is done, but if in doubt, roll it back"
		next = append(next, Do(VerbRollback, p.d.ID, "undo it on every host"))
	}
	p.announceVerdict(*v, NoticeVerdict, tail, next...)
	return p.finish()
}

// canaryMetricsProblems reads the canaries' counters now and returns, per
// canary that cannot be read, why in words ("can1: answered 404"). A
// canary check over such a host could only be inconclusive after a whole
// window, so the problem is said before the canaries are synced.
func (p *pipeline) canaryMetricsProblems(ctx context.Context) []string {
	canaries := hostNames(p.r.Fleet[Canaries])
	s, err := p.r.Metrics.Read(ctx, canaries)
	var out []string
	for _, h := range canaries {
		c, ok := s.Hosts[h]
		switch {
		case ok && c.Err != "":
			out = append(out, fmt.Sprintf("%s (%s)", h, short(c.Err)))
		case !ok && err != nil:
			out = append(out, fmt.Sprintf("%s (the metrics source cannot be read)", h))
		case !ok:
			out = append(out, fmt.Sprintf("%s (no reading)", h))
		}
	}
	if err != nil {
		p.log.Warn("reading the canaries' metrics before their sync failed", "err", err)
	}
	return out
}

// askAboutMetrics moves a verified deployment whose canaries' metrics
// cannot be read to awaiting-metrics: deployers decide, with the same
// timeout as an inconclusive verdict.
func (p *pipeline) askAboutMetrics(who string, problems []string) error {
	timeout := p.r.cfg.PromoteTimeout
	if err := p.to(StateAwaitingMetrics, who, "verified by "+who+"; the canaries' metrics cannot be read", func(d *Deployment) {
		d.VerifiedBy = who
		d.Deadline = p.r.Now().Add(timeout)
	}); err != nil {
		return err
	}
	p.say(NoticePromote, fmt.Sprintf("verified by %s, but the canaries' metrics cannot be read: %s. The canary check could only be inconclusive. Deployers decide before the canaries are synced (rolling back in %s if nobody answers)",
		who, strings.Join(problems, ", "), timeout),
		Do(VerbPromote, p.d.ID, "sync the canaries without those metrics"), Do(VerbRollback, p.d.ID, "roll back"))
	return nil
}

func (p *pipeline) awaitMetrics(ctx context.Context) error {
	s, err := p.wait(ctx, p.d.Deadline, time.Time{}, nil, sigPromote, sigAbort, sigRollback, sigGone)
	if err != nil {
		return err
	}
	switch {
	case s == nil:
		return p.toRollback(fmt.Sprintf("the canaries' metrics could not be read and nobody answered within %s", p.r.cfg.PromoteTimeout), bot)
	case s.kind == sigGone:
		return p.toRollback("nobody can answer any more: "+s.who, bot)
	case s.kind == sigPromote:
		if err := p.to(StateSyncingCanaries, s.who, "canaries synced without their metrics, decided by "+s.who, func(d *Deployment) { d.MetricsWaived = true }); err != nil {
			return err
		}
		p.say(NoticeProgress, fmt.Sprintf("%s decided to go on without those metrics; syncing canaries (%s)", s.who, hostList(p.r.Fleet[Canaries])))
		return nil
	default:
		return p.toRollback("rolled back by "+s.who+" because the canaries' metrics could not be read", s.who)
	}
}

// readable reports whether any host of a sample was read: without one,
// waiting for a baseline measures nothing, and saying so would be untrue.
func readable(s *Sample) bool {
	for _, c := range s.Hosts {
		if c.Err == "" {
			return true
		}
	}
	return false
}

// onlyHosts is s with only hosts' readings (nil when s is).
func onlyHosts(s *Sample, hosts []string) *Sample {
	if s == nil {
		return nil
	}
	out := &Sample{Time: s.Time, Hosts: make(map[string]Counts, len(hosts))}
	for _, h := range hosts {
		if c, ok := s.Hosts[h]; ok {
			out.Hosts[h] = c
		}
	}
	return out
}
