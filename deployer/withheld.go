package deployer

import (
	"context"
	"fmt"
	"strings"
)

// A batch that ships without some of its changes (dropped unverified, or
// found guilty by bisection) leaves them merged upstream, below the
// upstream commit its staging commit records, yet on no host. They are
// withheld: the sources see them as deployed (they are in the deployed
// upstream commit's history), and the next deployment, which stages the
// whole upstream tree, would ship them without naming them. The pipeline
// therefore ships a withheld change only when the request names it (it is
// then a change of the deployment, verified by its submitter like any
// other) or says --include-unexpected, and refuses otherwise.

// Withheld is a change upstream holds that the fleet does not serve,
// with the deployment that dropped it and why.
type Withheld struct {
	Change     Change
	Deployment int64
	Why        string
}

// Withheld returns the withheld changes: those dropped from the batches
// the fleet's deployment builds on, back to the first deployment that
// staged the whole upstream tree (one that dropped nothing), and not
// shipped by a later deployment of that line.
func (r *Runner) Withheld() ([]Withheld, error) {
	landed, err := r.Store.Landed()
	if err != nil {
		return nil, err
	}
	d, err := r.Serving(landed)
	if err != nil {
		return nil, err
	}
	var out []Withheld
	// later holds what a later deployment of the line shipped, and
	// what a later one dropped already: a change dropped from two
	// batches is withheld once, as the later one dropped it.
	var later []Change
	for seen := 0; d != nil && d.State == StateDone && len(d.Dropped) > 0; seen++ {
		if seen == 10000 {
			return nil, fmt.Errorf("following deployments back from #%d: no end after %d", d.ID, seen)
		}
		later = append(later, d.Changes...)
		for _, dc := range d.Dropped {
			if !changeAmong(dc.Change, later) {
				out = append(out, Withheld{Change: dc.Change, Deployment: d.ID, Why: dc.Why})
			}
		}
		for _, dc := range d.Dropped {
			later = append(later, dc.Change)
		}
		if d.PrevDeployment == 0 {
			break
		}
		prev, err := r.Store.Get(d.PrevDeployment)
		if err != nil {
			return nil, err
		}
		if d, err = r.Serving(prev); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// changeAmong reports whether c is one of changes.
func changeAmong(c Change, changes []Change) bool {
	for _, o := range changes {
		if SameChange(c, o) {
			return true
		}
	}
	return false
}

// SameChange reports whether two changes are the same change, by id or
// by upstream commit.
func SameChange(a, b Change) bool {
	return SameChangeID(a.ID, b.ID) || (a.Commit != "" && SameChangeID(a.Commit, b.ID)) ||
		(b.Commit != "" && SameChangeID(a.ID, b.Commit))
}

// namesWithheld returns the withheld change ref names, if any.
func (r *Runner) namesWithheld(ref string, withheld []Withheld) (Withheld, bool) {
	for _, w := range withheld {
		if SameChangeID(ref, w.Change.ID) || (w.Change.Commit != "" && SameChangeID(ref, w.Change.Commit)) {
			return w, true
		}
	}
	// A branch name or a link: what the source says it names.
	if d, ok := r.Source.(ChangeDescriber); ok && len(withheld) > 0 {
		if c, err := d.Describe(ref); err == nil {
			for _, w := range withheld {
				if SameChange(c, w.Change) {
					return w, true
				}
			}
		}
	}
	return Withheld{}, false
}

// splitWithheld takes the refs naming withheld changes out of refs: the
// source would call them deployed. It returns the rest and the named
// withheld changes.
func (r *Runner) splitWithheld(refs []string, withheld []Withheld) ([]string, []Change) {
	if len(withheld) == 0 {
		return refs, nil
	}
	var rest []string
	var named []Change
	for _, ref := range refs {
		if w, ok := r.namesWithheld(ref, withheld); ok {
			if !changeAmong(w.Change, named) {
				named = append(named, w.Change)
			}
			continue
		}
		rest = append(rest, ref)
	}
	return rest, named
}

// unnamedWithheld returns why the prepared upstream commit must not ship
// (a withheld change the request did not name ships with it), with the
// request that names it too, or nothing. With include (the request said
// --include-unexpected) such changes are returned to ship, as unexpected.
func (p *pipeline) unnamedWithheld(ctx context.Context, prep *Prepared, withheld []Withheld, include bool) (string, []Choice, []Change, error) {
	rv, canCheck := p.r.Source.(Reverter)
	// A blocked change is the blocks' to refuse, with their advice:
	// naming it would not help.
	blocks, err := p.r.Store.Blocks()
	if err != nil {
		return "", nil, nil, err
	}
	var blocked []Change
	for _, b := range blocks {
		blocked = append(blocked, b.Change)
	}
	var lines, ids []string
	var carried []Change
	for _, w := range withheld {
		if changeAmong(w.Change, prep.Changes) || changeAmong(w.Change, blocked) {
			continue
		}
		ships := true
		if canCheck {
			var err error
			if ships, err = rv.StillShips(ctx, prep.Upstream, w.Change); err != nil {
				return "", nil, nil, err
			}
		}
		if !ships {
			continue
		}
		c := w.Change
		c.Unexpected = true
		carried = append(carried, c)
		lines = append(lines, fmt.Sprintf("%s (%s), dropped from #%d (%s)", ShortID(w.Change.ID), w.Change.Subject, w.Deployment, w.Why))
		ids = append(ids, ShortID(w.Change.ID))
	}
	if len(lines) == 0 || include {
		return "", nil, carried, nil
	}
	it := map[bool]string{true: "it", false: "them"}[len(lines) == 1]
	msg := fmt.Sprintf("it would also ship %s, merged upstream but on no host: name %s too, so that %s tested on the testservers and verified with the rest, or revert %s upstream first",
		strings.Join(lines, "; "), it, map[bool]string{true: "it is", false: "they are"}[len(lines) == 1], it)
	if p.d.Window != "" {
		return msg, []Choice{DoWith(VerbAdd, "put "+it+" on the window's list too", ids...)}, nil, nil
	}
	var args []string
	if p.d.Batch {
		args = append(args, "--batch")
	}
	args = append(append(args, p.d.Refs...), ids...)
	if p.d.IncludeUnexpected {
		args = append(args, "--include-unexpected")
	}
	if p.d.Emergency != "" {
		args = append(args, "--emergency", p.d.Emergency)
	}
	return msg, []Choice{DoWith(VerbBackport, "deploy "+it+" too", args...)}, nil, nil
}
