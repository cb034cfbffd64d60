package deployer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file holds bisection: when the canaries fail a batch, the bot puts
// them back on the base and searches the batch for the guilty change(s),
// one canary window per round, instead of rolling the whole batch back.
//
// The batch is cut into units (batch.go: changes that touch a common file,
// or a revert and what it reverts, stay together). The search keeps the
// units known innocent (their union passed a round), known guilty, groups
// known to hold a guilty unit (Failing) and groups not judged yet
// (Untested). Each round stages Innocent ∪ Testing as its own commit and
// judges it on the canaries:
//   - a failing group of one unit is guilty, with no window spent;
//   - a failing group of more is split in half: the first half is tested;
//     if it passes it joins the innocent and the second half is failing;
//     if it fails it is failing and the second half goes to Untested;
//   - when nothing is failing, every untested group is tested at once.
//
// So the innocent set only grows through a round that passed with exactly
// it on the canaries, and what ships to production is a tree the canaries
// judged. One guilty unit among n costs about log2(n) rounds (plus one
// when the guilty unit sat in a first half, to clear the rest).

// Bisection is the search's state, stored whole with the deployment.
type Bisection struct {
	Units    [][]Change `json:"units"`
	Innocent []int      `json:"innocent,omitempty"`
	Guilty   []int      `json:"guilty,omitempty"`
	Failing  [][]int    `json:"failing,omitempty"`
	Untested [][]int    `json:"untested,omitempty"`
	// Round counts the rounds staged so far.
	Round int `json:"round"`
	// Testing is the round under way's units (besides Innocent), Rest the
	// other half of the group it split (nil when it tests untested ones).
	Testing []int `json:"testing,omitempty"`
	Rest    []int `json:"rest,omitempty"`
	Split   bool  `json:"split,omitempty"`
	// Commit is the round's staging commit; Start the canaries' and
	// control hosts' counters read before its sync.
	Commit string  `json:"commit,omitempty"`
	Start  *Sample `json:"start,omitempty"`
	// Passed is the staging commit of the last round that passed (its tree
	// is exactly Innocent's) and PassedStart that round's Start.
	Passed      string  `json:"passed,omitempty"`
	PassedStart *Sample `json:"passed_start,omitempty"`
	// CanariesOnBase is set once the canaries were put back on the base
	// after a failing round (cleared when a round fails).
	CanariesOnBase bool `json:"canaries_on_base,omitempty"`
	// Blamed is set once the guilty were blocked and reverted upstream;
	// Final is the commit the innocent ship as.
	Blamed bool   `json:"blamed,omitempty"`
	Final  string `json:"final,omitempty"`
	// Rounds is what each finished round tested and what the judge said.
	Rounds []BisectRound `json:"rounds,omitempty"`
}

// BisectRound is one finished round, for the timeline and the dashboard.
type BisectRound struct {
	Round   int       `json:"round"`
	Changes []string  `json:"changes"` // short ids on the canaries
	Of      int       `json:"of"`      // changes in the batch
	Outcome Outcome   `json:"outcome"`
	Reason  string    `json:"reason"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// changesOf returns the changes of the given units, in upstream order.
func (b *Bisection) changesOf(units []int) []Change {
	var out []Change
	for i := range b.Units {
		if containsInt(units, i) {
			out = append(out, b.Units[i]...)
		}
	}
	return out
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (b *Bisection) size() int {
	n := 0
	for _, u := range b.Units {
		n += len(u)
	}
	return n
}

func (b *Bisection) others(units []int) []Change {
	var out []Change
	for i := range b.Units {
		if !containsInt(units, i) {
			out = append(out, b.Units[i]...)
		}
	}
	return out
}

func ids(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = ShortID(c.ID)
	}
	return out
}

func describeChanges(cs []Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = ShortID(c.ID) + " (" + c.Subject + ")"
	}
	return strings.Join(parts, ", ")
}

// canBisect reports whether a failing canary check of this deployment
// may be bisected: a batch of two or more units whose parts the staging
// repository can stage.
func (p *pipeline) canBisect() bool {
	if !p.d.Batch || len(p.d.Changes) < 2 || p.d.Bisect != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	units, err := p.units(ctx, p.d.Changes)
	if err != nil {
		p.log.Warn("the batch cannot be bisected", "err", err)
		return false
	}
	if len(units) < 2 {
		p.event("bisect", "the batch's changes depend on each other (they touch the same files): it cannot be split")
		return false
	}
	p.bisectUnits = units
	return true
}

// startBisect moves a batch that failed its canary check to bisecting.
func (p *pipeline) startBisect(v Verdict) error {
	units := p.bisectUnits
	all := make([]int, len(units))
	for i := range all {
		all[i] = i
	}
	reason := checkName(v.Stage) + " failed: " + v.Reason
	if err := p.to(StateBisecting, bot, reason+"; bisecting the batch", func(d *Deployment) {
		d.Bisect = &Bisection{Units: units, Failing: [][]int{all}}
	}); err != nil {
		return err
	}
	p.announceVerdict(v, NoticeVerdict, fmt.Sprintf("; putting the canaries back and searching the %d changes of batch #%d for the guilty one (at most %s)",
		len(p.d.Changes), p.d.ID, plural(p.r.cfg.Batch.maxRounds(), "round")))
	return nil
}

func (p *pipeline) updateBisect(mutate func(*Bisection)) error {
	return p.update(func(d *Deployment) { mutate(d.Bisect) })
}

// bisect is the bisecting state's step: it puts the canaries back on the
// base when a round failed, runs the round under way, or stages the next
// one, or concludes.
func (p *pipeline) bisect(ctx context.Context) error {
	redo := false
	if p.resumed && p.resumedIn == StateBisecting {
		p.resumed = false
		redo = p.d.Bisect.Testing != nil
		if redo {
			p.say(NoticeInfo, fmt.Sprintf("the bot restarted during bisection round %d, whose canary window cannot be completed: judging it again", p.d.Bisect.Round))
		}
	}
	b := p.d.Bisect
	if !b.CanariesOnBase {
		if rb, err := p.syncCanariesTo(ctx, p.d.Base, "the base"); rb || err != nil {
			return err
		}
		if err := p.updateBisect(func(b *Bisection) { b.CanariesOnBase = true }); err != nil {
			return err
		}
		p.event("bisect", fmt.Sprintf("canaries back on the base %.10s", p.d.Base))
	}
	if b.Testing != nil {
		return p.runRound(ctx, redo)
	}
	return p.nextRound(ctx)
}

// syncCanariesTo syncs the canaries to commit; a failure or a person's
// rollback moves the deployment to rolling-back (rolledBack true).
func (p *pipeline) syncCanariesTo(ctx context.Context, commit, what string) (rolledBack bool, err error) {
	sctx, done := p.interruptible(ctx)
	failed := p.r.syncHosts(sctx, p.log, p.d.ID, p.r.Fleet[Canaries], commit)
	done()
	if s, _ := p.receive(ctx, nil, sigAbort, sigRollback); s != nil {
		return true, p.toRollback(fmt.Sprintf("rolled back by %s during the bisection", s.who), s.who)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if len(failed) > 0 {
		var parts []string
		for _, h := range sortedKeys(failed) {
			parts = append(parts, fmt.Sprintf("%s (%s)", h, plainHostError(failed[h])))
		}
		return true, p.toRollback(fmt.Sprintf("syncing the canaries to %s during the bisection failed on %s", what, strings.Join(parts, ", ")), bot)
	}
	return false, nil
}

// nextRound classifies what needs no window, then stages the next round
// (its commit and units stored before any host is synced), or concludes.
func (p *pipeline) nextRound(ctx context.Context) error {
	b := *p.d.Bisect
	for {
		if n := len(b.Failing); n > 0 {
			f := b.Failing[n-1]
			b.Failing = b.Failing[:n-1]
			if len(f) == 1 {
				b.Guilty = append(b.Guilty, f[0])
				continue
			}
			h := len(f) / 2
			b.Testing, b.Rest, b.Split = f[:h:h], f[h:], true
			break
		}
		if len(b.Untested) > 0 {
			var all []int
			for _, u := range b.Untested {
				all = append(all, u...)
			}
			sort.Ints(all)
			b.Untested, b.Testing, b.Rest, b.Split = nil, all, nil, false
			break
		}
		if err := p.updateBisect(func(x *Bisection) { x.Failing, x.Guilty = b.Failing, b.Guilty }); err != nil {
			return err
		}
		return p.concludeBisect(ctx)
	}
	if b.Round >= p.r.cfg.Batch.maxRounds() {
		reason := fmt.Sprintf("the bisection found no answer within %s (pipeline.batch.max_rounds); rolling back the whole batch", plural(b.Round, "round"))
		if err := p.checkFailed(reason); err != nil {
			return err
		}
		p.say(NoticeProgress, reason)
		return nil
	}
	on := append(append([]int{}, b.Innocent...), b.Testing...)
	part, left := b.changesOf(on), b.others(on)
	commit, err := p.r.Staging.(Subsetter).CommitSubset(ctx, p.d, fmt.Sprintf("bisection round %d", b.Round+1), p.d.Base, part, left)
	if err != nil {
		return err
	}
	b.Round++
	b.Commit, b.Start = commit, nil
	if err := p.update(func(d *Deployment) { *d.Bisect = b }); err != nil {
		return err
	}
	testing := b.changesOf(b.Testing)
	msg := fmt.Sprintf("bisection round %d: testing %d of %d changes on the canaries: %s", b.Round, len(part), b.size(), strings.Join(ids(part), ", "))
	if len(b.Innocent) > 0 {
		msg += fmt.Sprintf(" (%s already passed; new in this round: %s)", plural(len(b.changesOf(b.Innocent)), "change"), strings.Join(ids(testing), ", "))
	}
	p.event("bisect", msg)
	p.say(NoticeProgress, msg)
	return nil
}

// runRound syncs the canaries to the round's commit and judges them over
// one canary window. A restart redoes the window from a fresh start.
func (p *pipeline) runRound(ctx context.Context, redo bool) error {
	b := p.d.Bisect
	judged, control := p.judged()
	if b.Start == nil || redo {
		if err := p.readStart(ctx, append(append([]string{}, judged...), control...), Canaries, func(d *Deployment, s *Sample) { d.Bisect.Start = s }); err != nil {
			return err
		}
	}
	if err := p.updateBisect(func(b *Bisection) { b.CanariesOnBase = false }); err != nil {
		return err
	}
	if rb, err := p.syncCanariesTo(ctx, b.Commit, fmt.Sprintf("round %d", b.Round)); rb || err != nil {
		return err
	}
	b = p.d.Bisect
	p.judging = true
	// The canaries' reading from the verification wait is no round's
	// baseline: since, they served the whole batch, which failed. The
	// control hosts' is, as they served the old code throughout.
	v, err := p.watch(ctx, Canaries, judged, control, onlyHosts(p.d.Baseline, control), *b.Start, p.r.cfg.CanaryWindow)
	p.judging = false
	if err != nil || v == nil {
		return err
	}
	part := b.changesOf(append(append([]int{}, b.Innocent...), b.Testing...))
	round := BisectRound{Round: b.Round, Changes: ids(part), Of: b.size(), Outcome: v.Outcome, Reason: v.Reason, Start: v.Start, End: v.End}
	if v.Outcome == Inconclusive {
		reason := fmt.Sprintf("bisection round %d was inconclusive (%s); rolling back the whole batch", b.Round, v.Reason)
		if err := p.updateBisect(func(b *Bisection) { b.Rounds = append(b.Rounds, round) }); err != nil {
			return err
		}
		if err := p.checkFailed(reason); err != nil {
			return err
		}
		p.announceVerdict(*v, NoticeVerdict, "; rolling back the whole batch")
		return nil
	}
	testing := b.changesOf(b.Testing)
	if err := p.update(func(d *Deployment) {
		x := d.Bisect
		if v.Outcome == Fail {
			d.Verdicts = append(d.Verdicts, *v)
			x.Failing = append(x.Failing, x.Testing)
			if x.Split {
				x.Untested = append(x.Untested, x.Rest)
			}
			x.CanariesOnBase = false
		} else {
			x.Innocent = append(x.Innocent, x.Testing...)
			x.Passed, x.PassedStart = x.Commit, x.Start
			if x.Split {
				x.Failing = append(x.Failing, x.Rest)
			}
			x.CanariesOnBase = true // they serve innocent changes only
		}
		x.Testing, x.Rest, x.Split, x.Start = nil, nil, false, nil
		x.Rounds = append(x.Rounds, round)
	}); err != nil {
		return err
	}
	var tail string
	if v.Outcome == Fail {
		p.event("verdict", fmt.Sprintf("bisection round %d: canaries fail: %s", b.Round, v.Reason))
		tail = fmt.Sprintf("; %s holds a guilty change: putting the canaries back", strings.Join(ids(testing), ", "))
	} else {
		tail = fmt.Sprintf("; %s innocent", strings.Join(ids(testing), ", "))
	}
	lines := []string{fmt.Sprintf("bisection round %d of batch #%d: canaries %s with %d of %d changes: %s%s", b.Round, p.d.ID, strings.ToUpper(string(v.Outcome)), len(part), b.size(), v.Reason, tail)}
	if p.r.Explain != nil {
		lines = append(lines, p.r.Explain(*v)...)
	}
	p.r.Announcer.Announce(Notice{Deployment: p.d.ID, Kind: NoticeVerdict, State: p.d.State, Text: strings.Join(lines, "\n"), Verdict: v})
	return nil
}

// concludeBisect ends the search: with no innocent change the whole batch
// rolls back; otherwise the guilty are blocked and reverted upstream, the
// testservers and canaries are brought to the innocent changes' commit,
// and the deployment goes on to production with them.
func (p *pipeline) concludeBisect(ctx context.Context) error {
	b := p.d.Bisect
	guilty, innocent := b.changesOf(b.Guilty), b.changesOf(b.Innocent)
	if len(innocent) == 0 {
		reason := fmt.Sprintf("bisection: every change of the batch fails the canaries on its own (%s)", strings.Join(ids(guilty), ", "))
		if err := p.checkFailed(reason); err != nil {
			return err
		}
		p.say(NoticeProgress, reason+"; rolling back the batch")
		return nil
	}
	reason := fmt.Sprintf("bisection of #%d: it broke the canaries", p.d.ID)
	var lines []string
	if !b.Blamed {
		lines = p.blameGuilty(ctx, guilty, reason)
		if err := p.update(func(d *Deployment) {
			d.Bisect.Blamed = true
			for _, c := range guilty {
				d.Dropped = append(d.Dropped, DroppedChange{Change: c, Why: "it broke the canaries (found by bisection)", Guilty: true})
			}
		}); err != nil {
			return err
		}
	}
	final := b.Final
	if final == "" {
		head, _, err := p.r.Staging.Head(ctx)
		if err != nil {
			return err
		}
		final = b.Passed
		if head != b.Passed {
			// Later rounds staged other parts on top: stage the
			// innocent changes' tree again, as the tip.
			if final, err = p.r.Staging.(Subsetter).CommitSubset(ctx, p.d, "innocent changes", p.d.Base, innocent, guilty); err != nil {
				return err
			}
		}
		if err := p.updateBisect(func(b *Bisection) { b.Final = final }); err != nil {
			return err
		}
	}
	hosts := append(append([]Host{}, p.r.Fleet[Testservers]...), p.r.Fleet[Canaries]...)
	sctx, done := p.interruptible(ctx)
	failed := p.r.syncHosts(sctx, p.log, p.d.ID, hosts, final)
	done()
	if s, _ := p.receive(ctx, nil, sigAbort, sigRollback); s != nil {
		return p.toRollback(fmt.Sprintf("rolled back by %s after the bisection", s.who), s.who)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) > 0 {
		return p.toRollback(fmt.Sprintf("bringing the testservers and canaries to the innocent changes failed on %s", strings.Join(sortedKeys(failed), ", ")), bot)
	}
	files, err := p.r.Staging.Changed(ctx, p.d.Base, final)
	if err != nil {
		return err
	}
	rounds := b.Round
	msg := fmt.Sprintf("bisection done in %s: %s broke the canaries", plural(rounds, "round"), strings.Join(ids(guilty), ", "))
	if err := p.to(StateSyncingProduction, bot, msg, func(d *Deployment) {
		d.Changes, d.Commit, d.Files = innocent, final, files
		if d.Bisect.PassedStart != nil {
			d.WindowStart = d.Bisect.PassedStart
		}
	}); err != nil {
		return err
	}
	text := fmt.Sprintf("%s: %s; %s rolled back from the canaries and blocked. The other %s passed the canaries together: syncing production (%s) with %s",
		msg, describeChanges(guilty), map[bool]string{true: "it is", false: "they are"}[len(guilty) == 1],
		plural(len(innocent), "change"), plural(len(p.r.Fleet[Production]), "host"), strings.Join(ids(innocent), ", "))
	if len(lines) > 0 {
		text += "\n" + strings.Join(lines, "\n")
	}
	p.say(NoticeProgress, text)
	return nil
}

// blameGuilty blocks the guilty changes and, when the source can, reverts
// them upstream, as a rollback that blames them does. A revert is never
// blamed (see Suspects). It returns lines for chat.
func (p *pipeline) blameGuilty(ctx context.Context, guilty []Change, reason string) []string {
	only := *p.d
	only.Changes = guilty
	suspects, _, spared := only.Suspects()
	lines := append([]string{}, spared...)
	if len(suspects) == 0 {
		return lines
	}
	only.Changes = suspects
	reverts := map[string]string{}
	if rv, ok := p.r.Source.(Reverter); ok {
		rctx, cancel := context.WithTimeout(WithLogger(ctx, p.log), 2*time.Minute)
		ls, rs, err := rv.RevertUpstream(rctx, &only, reason)
		cancel()
		if err != nil {
			p.log.Error("reverting upstream failed", "err", err)
			lines = append(lines, "Reverting upstream failed ("+ErrorMessage(err)+"): revert it there by hand, or it will ship again.")
		}
		lines = append(lines, ls...)
		reverts = rs
	}
	for _, c := range suspects {
		b := Block{Change: c, Deployment: p.d.ID, Reason: reason, Revert: reverts[c.ID], Since: p.r.Now()}
		if err := p.r.Store.SetBlock(b); err != nil {
			p.log.Error("blocking a change failed", "change", c.ID, "err", err)
			continue
		}
		p.event("block", fmt.Sprintf("%s blocked from shipping again until upstream no longer contains it", ShortID(c.ID)))
	}
	return lines
}
