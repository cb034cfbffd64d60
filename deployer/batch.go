package deployer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file holds batches: several changes deployed as one deployment,
// validated as a whole by the source, synced to the testservers once,
// each change verified by its own submitter. A change nobody verifies in
// time is dropped (with the changes that depend on it) and the batch is
// restaged without it; the rest goes on.

// BatchConfig holds the limits people set on batches.
type BatchConfig struct {
	// Enabled lets `backport --batch` and `window go` deploy several
	// changes as one batch. Off (the default), window go queues one
	// deployment per change, as the bot always did.
	Enabled bool
	// MaxChanges is the largest batch (0: 8).
	MaxChanges int
	// MaxRounds is the most bisection rounds before the bot gives up and
	// rolls back the whole batch (0: 10, enough for two guilty changes
	// among eight).
	MaxRounds int
}

func (b BatchConfig) maxChanges() int {
	if b.MaxChanges <= 0 {
		return 8
	}
	return b.MaxChanges
}

func (b BatchConfig) maxRounds() int {
	if b.MaxRounds <= 0 {
		return 10
	}
	return b.MaxRounds
}

// DroppedChange is a change taken out of a batch, and why.
type DroppedChange struct {
	Change Change `json:"change"`
	Why    string `json:"why"`
	// Guilty is set when bisection found it broke the canaries.
	Guilty bool `json:"guilty,omitempty"`
}

// checkBatch refuses a batch when batches are off or it is too large.
func (r *Runner) checkBatch(req Request) error {
	if !req.Batch {
		return nil
	}
	if !r.cfg.Batch.Enabled {
		return Errorf(EInvalid, "batches are off here (pipeline.batch.enabled); deploy the changes one by one")
	}
	if n := r.cfg.Batch.maxChanges(); len(req.Refs) > n {
		return Errorf(EInvalid, "a batch holds at most %d changes (pipeline.batch.max_changes); this one names %d", n, len(req.Refs))
	}
	return nil
}

// Subsetter is implemented by a Staging that can stage part of a batch:
// the base tree with some of the batch's changes applied.
// Implementations: deployer/gitrepo.
type Subsetter interface {
	// ChangeFiles lists the deploy paths change c touches: the files its
	// upstream commit changes against its first parent, under the
	// change's component, and for a commit that moves a submodule
	// pointer the files that move changes in the submodule.
	ChangeFiles(ctx context.Context, c Change) ([]string, error)
	// CheckSubset reports, as an error, when applying every change of a
	// batch to base file by file (as CommitSubset does) does not give
	// exactly commit's tree: then the batch's parts cannot be staged
	// faithfully and it is not split.
	CheckSubset(ctx context.Context, base, commit string, changes []Change) error
	// CommitSubset adds a commit to the deploy branch whose tree is base's
	// with changes (in upstream order) applied, file by file; without
	// lists the batch's changes left out, for the message. label tells
	// the parts of one deployment apart; a tip that already is d's part
	// with that label and tree is returned, not repeated.
	CommitSubset(ctx context.Context, d *Deployment, label, base string, changes, without []Change) (string, error)
}

// units groups a batch's changes so that no part of a split separates a
// change from one it depends on: changes that touch a common file (a
// change that replaces a directory touches every file in it), a
// submodule pointer move and the submodule commits it carries (they touch
// the same files), and a revert and what it reverts, are one unit. Units
// keep upstream order.
//
// It refuses (and the batch is then not split) unless the batch's
// changes applied file by file to its base give exactly its staged tree
// (Subsetter.CheckSubset): every part staged later is then the base plus
// whole changes.
func (p *pipeline) units(ctx context.Context, changes []Change) ([][]Change, error) {
	ss, ok := p.r.Staging.(Subsetter)
	if !ok {
		return nil, fmt.Errorf("the staging repository cannot stage part of a batch")
	}
	parent := make([]int, len(changes))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			i = parent[i]
		}
		return i
	}
	join := func(a, b int) {
		a, b = find(a), find(b)
		if a < b {
			parent[b] = a
		} else if b < a {
			parent[a] = b
		}
	}
	byFile := map[string]int{}
	byID := map[string]int{}
	for i, c := range changes {
		if c.Commit == "" {
			return nil, fmt.Errorf("change %s cannot be staged on its own", ShortID(c.ID))
		}
		byID[c.ID], byID[c.Commit] = i, i
		files, err := ss.ChangeFiles(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if j, seen := byFile[f]; seen {
				join(i, j)
			} else {
				byFile[f] = i
			}
		}
	}
	for i, c := range changes {
		if j, ok := byID[c.Reverts]; ok && c.Reverts != "" {
			join(i, j)
		}
	}
	if len(changes) > 0 {
		if err := ss.CheckSubset(ctx, p.d.Base, p.d.Commit, changes); err != nil {
			return nil, err
		}
	}
	groups := map[int][]Change{}
	var order []int
	for i, c := range changes {
		root := find(i)
		if _, ok := groups[root]; !ok {
			order = append(order, root)
		}
		groups[root] = append(groups[root], c)
	}
	sort.Ints(order)
	out := make([][]Change, len(order))
	for i, root := range order {
		out[i] = groups[root]
	}
	return out, nil
}

// submitterOf is who verifies change c of a batch.
func (p *pipeline) submitterOf(c Change) string {
	if p.r.Submitter != nil {
		if s := p.r.Submitter([]Change{c}); s != "" {
			return s
		}
	}
	return p.d.Requester
}

// BatchSubmitters returns everyone asked to verify a change of d.
func (d *Deployment) BatchSubmitters(submitter func([]Change) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range d.Changes {
		s := d.Requester
		if submitter != nil {
			if x := submitter([]Change{c}); x != "" {
				s = x
			}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// askBatch pings each submitter of a batch about their own changes that
// are not verified yet.
func (p *pipeline) askBatch(kind NoticeKind, lead string) {
	bySub := map[string][]Change{}
	var subs []string
	for _, c := range p.d.Changes {
		if p.d.Verified[c.ID] != "" {
			continue
		}
		s := p.submitterOf(c)
		if _, ok := bySub[s]; !ok {
			subs = append(subs, s)
		}
		bySub[s] = append(bySub[s], c)
	}
	for _, s := range subs {
		var names []string
		for _, c := range bySub[s] {
			names = append(names, ShortID(c.ID)+" ("+c.Subject+")")
		}
		p.r.Announcer.Announce(Notice{
			Deployment: p.d.ID, Kind: kind, State: p.d.State, Mention: []string{s},
			Next: []Choice{Do(VerbVerified, p.d.ID, "your change works"), Do(VerbAbort, p.d.ID, "it does not: roll the batch back")},
			Text: fmt.Sprintf("%s: your %s %s in batch #%d on %s: test %s there",
				lead, map[bool]string{true: "change", false: "changes"}[len(names) == 1], strings.Join(names, ", "), p.d.ID,
				hostList(p.r.Fleet[Testservers]), map[bool]string{true: "it", false: "them"}[len(names) == 1]),
		})
	}
}

// allVerified reports whether every change of the batch was verified.
func (p *pipeline) allVerified() bool {
	for _, c := range p.d.Changes {
		if p.d.Verified[c.ID] == "" {
			return false
		}
	}
	return true
}

// awaitBatchVerification waits for each submitter's `verified`. A
// submitter's answer verifies their own changes; anyone else's (the
// requester, a deployer) verifies the whole batch. At the deadline the
// changes nobody verified are dropped and the batch restaged without
// them; with none verified, the batch is rolled back as a single change
// would be.
func (p *pipeline) awaitBatchVerification(ctx context.Context) error {
	timeout := p.r.cfg.VerifyTimeout
	if p.resumed && p.resumedIn == StateAwaitingVerification {
		p.resumed = false
		if left := p.d.Deadline.Sub(p.r.Now()).Round(time.Second); left > 0 {
			p.askBatch(NoticeVerify, fmt.Sprintf("still waiting for you (the bot restarted; %s left)", left))
		}
	}
	for !p.allVerified() {
		var remind time.Time
		if !p.d.Reminded {
			remind = p.d.Deadline.Add(-timeout / 2)
		}
		s, err := p.wait(ctx, p.d.Deadline, remind, func() error {
			left := p.d.Deadline.Sub(p.r.Now()).Round(time.Second)
			p.askBatch(NoticeReminder, fmt.Sprintf("reminder (%s left, then unverified changes are dropped from the batch)", left))
			return p.update(func(d *Deployment) { d.Reminded = true })
		}, sigVerify, sigAbort, sigRollback)
		if err != nil {
			return err
		}
		if s == nil {
			return p.dropUnverified(ctx)
		}
		if s.kind != sigVerify {
			return p.toRollback("aborted by "+s.who, s.who)
		}
		mine := false
		for _, c := range p.d.Changes {
			mine = mine || p.submitterOf(c) == s.who
		}
		var now []string
		if err := p.update(func(d *Deployment) {
			if d.Verified == nil {
				d.Verified = map[string]string{}
			}
			for _, c := range d.Changes {
				if d.Verified[c.ID] == "" && (!mine || p.submitterOf(c) == s.who) {
					d.Verified[c.ID] = s.who
					now = append(now, ShortID(c.ID))
				}
			}
		}); err != nil {
			return err
		}
		if len(now) > 0 {
			p.event("verify", fmt.Sprintf("%s verified by %s", strings.Join(now, ", "), s.who))
			if !p.allVerified() {
				p.say(NoticeProgress, fmt.Sprintf("%s verified by %s; waiting for %s", strings.Join(now, ", "), s.who, strings.Join(p.unverifiedNames(), ", ")))
			}
		}
	}
	return p.toCanaries(StateAwaitingVerification)
}

func (p *pipeline) unverifiedNames() []string {
	var out []string
	for _, c := range p.d.Changes {
		if p.d.Verified[c.ID] == "" {
			out = append(out, ShortID(c.ID)+" ("+p.submitterOf(c)+")")
		}
	}
	return out
}

// toCanaries moves a verified batch on to the canaries.
func (p *pipeline) toCanaries(from State) error {
	who := map[string]bool{}
	var names []string
	for _, c := range p.d.Changes {
		if v := p.d.Verified[c.ID]; !who[v] {
			who[v] = true
			names = append(names, v)
		}
	}
	by := strings.Join(names, ", ")
	if err := p.to(StateSyncingCanaries, by, "verified by "+by, func(d *Deployment) { d.VerifiedBy = by }); err != nil {
		return err
	}
	p.say(NoticeVerified, fmt.Sprintf("every change of batch #%d is verified (by %s); syncing canaries (%s)", p.d.ID, by, hostList(p.r.Fleet[Canaries])))
	return nil
}

// dropUnverified takes the changes nobody verified out of the batch, with
// every change of their units (a change that depends on a dropped one
// cannot ship without it), stages the rest as a new commit and goes back
// to syncing the testservers with it. The new commit and the dropped
// changes are stored with the transition, before any host is synced.
func (p *pipeline) dropUnverified(ctx context.Context) error {
	timeout := p.r.cfg.VerifyTimeout
	var keep, drop []Change
	units, err := p.units(ctx, p.d.Changes)
	if err != nil || len(p.d.Verified) == 0 {
		if err != nil {
			p.log.Warn("the batch cannot be restaged", "err", err)
		}
		return p.toRollback(fmt.Sprintf("nobody replied `verified` within %s", timeout), bot)
	}
	why := map[string]string{}
	for _, u := range units {
		var missing []string
		for _, c := range u {
			if p.d.Verified[c.ID] == "" {
				missing = append(missing, ShortID(c.ID))
			}
		}
		if len(missing) == 0 {
			keep = append(keep, u...)
			continue
		}
		for _, c := range u {
			drop = append(drop, c)
			if p.d.Verified[c.ID] == "" {
				why[c.ID] = fmt.Sprintf("%s did not verify it within %s", p.submitterOf(c), timeout)
			} else {
				why[c.ID] = "it depends on " + strings.Join(missing, ", ") + ", which was not verified"
			}
		}
	}
	if len(keep) == 0 {
		return p.toRollback(fmt.Sprintf("no change of the batch could ship verified within %s", timeout), bot)
	}
	commit, err := p.r.Staging.(Subsetter).CommitSubset(ctx, p.d, fmt.Sprintf("without %d unverified", len(drop)), p.d.Base, keep, drop)
	if err != nil {
		return err
	}
	files, err := p.r.Staging.Changed(ctx, p.d.Base, commit)
	if err != nil {
		return err
	}
	var names []string
	for _, c := range drop {
		names = append(names, fmt.Sprintf("%s (%s: %s)", ShortID(c.ID), c.Subject, why[c.ID]))
	}
	msg := "dropped from the batch: " + strings.Join(names, "; ")
	if err := p.to(StateSyncingTestservers, bot, msg, func(d *Deployment) {
		d.Changes, d.Commit, d.Files = keep, commit, files
		for _, c := range drop {
			d.Dropped = append(d.Dropped, DroppedChange{Change: c, Why: why[c.ID]})
		}
	}); err != nil {
		return err
	}
	var dropped []string
	for _, c := range drop {
		dropped = append(dropped, ShortID(c.ID))
	}
	later, next := p.r.shipLater(map[bool]string{true: "it", false: "them"}[len(drop) == 1], dropped...)
	p.say(NoticeProgress, fmt.Sprintf("%s. Restaged batch #%d without %s (%s); syncing testservers again. %s stay%s merged upstream: %s.",
		msg, p.d.ID, map[bool]string{true: "it", false: "them"}[len(drop) == 1], describeFiles(files), map[bool]string{true: "It", false: "They"}[len(drop) == 1],
		map[bool]string{true: "s", false: ""}[len(drop) == 1], later), next)
	return nil
}

// shipLater says how changes that stay merged upstream unshipped can
// ship later (it names them: "it" or "them"), with the choice that does
// it: on the open window's list (a second !window go ships them), on the
// next window's, or, with no windows configured, by a backport once
// verified.
func (r *Runner) shipLater(it string, ids ...string) (string, Choice) {
	if !r.windows() || r.Windows == nil {
		return "deploy " + it + " once verified", DoWith(VerbBackport, "deploy it once it is verified", ids...)
	}
	if r.cfg.Schedule.Current(r.Now()) != nil {
		return "put " + it + " back on the open window's list once verified", DoWith(VerbAdd, "put it back on the open window's list", ids...)
	}
	return "put " + it + " on the next window's list", DoWith(VerbAdd, "put it on the next window", ids...)
}
