package gerrit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// Prepare deploys Gerrit changes of any configured project and branch,
// with any component:ref of the git composite alongside:
//  1. every change is looked up and checked (Source's rules, with the
//     composite's projects and branches as the scope), and ordered by
//     Depends-On and relation chains across projects;
//  2. unless the request includes them, commits merged but not deployed
//     in the components and followed submodules the changes land in are
//     refused before anything is approved (checkUnexpected);
//  3. open changes are approved and merged (Source's wait);
//  4. each change's merged commit is found in its repository;
//  5. a change merged into a submodule's project waits, under the same
//     timeout, for its superproject's subscription to point the
//     submodule at the merge;
//  6. the git composite stages the changes as component:commit refs.
func (c *Composite) Prepare(ctx context.Context, req deployer.Request, prevUpstream string, progress func(string)) (*deployer.Prepared, error) {
	if progress == nil {
		progress = func(string) {}
	}
	log := c.src.log
	if req.Deployment != 0 {
		log = log.With("deployment", req.Deployment)
	}
	ctx = deployer.WithLogger(ctx, log)
	var gitRefs, changeRefs []string
	for _, r := range req.Refs {
		if isChangeRef(r) {
			changeRefs = append(changeRefs, r)
		} else {
			gitRefs = append(gitRefs, r)
		}
	}
	if len(changeRefs) == 0 {
		return c.git.Prepare(ctx, req, prevUpstream, progress)
	}
	tbl, err := c.table(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := c.src.validate(ctx, changeRefs, c.scope(tbl))
	if err != nil {
		return nil, err
	}
	if err := c.checkUnexpected(ctx, req, ws, tbl, gitRefs, prevUpstream); err != nil {
		return nil, err
	}
	if err := c.src.approveAndWait(ctx, req, ws, progress); err != nil {
		return nil, err
	}
	refs := gitRefs
	var picks []pickup
	for _, w := range ws {
		ts := tbl[branchKey{w.info.Project, w.info.Branch}]
		if err := c.findMerged(ctx, w, ts[0]); err != nil {
			return nil, err
		}
		for _, t := range ts {
			if w.landed != "" && w.landed != w.commit {
				refs = append(refs, t.where+":"+w.landed) // Gerrit's merge commit
			}
			refs = append(refs, t.where+":"+w.commit)
			if t.sub != nil {
				picks = append(picks, pickup{w: w, t: t})
			}
		}
	}
	if err := c.waitPickup(ctx, picks, progress); err != nil {
		return nil, err
	}
	sub := req
	sub.Refs = refs
	prep, err := c.git.Prepare(ctx, sub, prevUpstream, progress)
	if err != nil {
		return nil, err
	}
	c.describe(prep, ws)
	progress(c.src.summary(ws))
	log.Info("gerrit changes prepared", "upstream", prep.Upstream, "changes", len(prep.Changes), "refs", strings.Join(refs, " "))
	return prep, nil
}

// findMerged fetches the branch a merged change went into and finds the
// commit it merged as: its current revision when the branch holds it,
// else the commit carrying its Change-Id (a cherry-pick on submit).
// Replication to the git URL may lag behind the REST API, so a missing
// commit is fetched again a few times.
func (c *Composite) findMerged(ctx context.Context, w *want, t target) error {
	const tries = 4
	for attempt := 1; ; attempt++ {
		tip, err := c.git.BranchTip(ctx, t.url, w.info.Branch)
		if err != nil {
			return err
		}
		if tip != "" {
			if h := c.mergedIn(ctx, w, tip); h != "" {
				w.commit = h
				// A merge commit of Gerrit's (MERGE_IF_NECESSARY) brought
				// it onto the branch: that is what the branch holds.
				landed, err := c.src.landedBy(ctx, h, tip, "")
				if err != nil {
					return err
				}
				w.landed = landed
				return nil
			}
		}
		if attempt == tries {
			return deployer.Errorf(deployer.EConflict, "change %d merged, but %s branch %s does not hold its commit yet; try again in a minute",
				w.info.Number, w.info.Project, w.info.Branch)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(c.src.cfg.PollInterval, 5*time.Second)):
		}
	}
}

// mergedIn returns the commit of tip's history that change w merged as,
// or "".
func (c *Composite) mergedIn(ctx context.Context, w *want, tip string) string {
	repo := c.src.repo
	if rev := w.info.CurrentRevision; rev != "" && repo.HasCommit(rev) {
		if in, err := repo.IsAncestor(ctx, rev, tip); err == nil && in {
			return rev
		}
	}
	cs, err := c.src.recent(ctx, tip)
	if err != nil {
		return ""
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if gitrepo.ChangeIDOf(cs[i].Message) == w.info.ChangeID {
			return cs[i].Hash
		}
	}
	return ""
}

// describe gives the staged changes that are requested Gerrit changes
// their number, link and owner.
// Gerrit's merge commits of requested changes ship nothing of their own
// and are left off, as the one-project source leaves them.
func (c *Composite) describe(prep *deployer.Prepared, ws []*want) {
	byCommit := map[string]*want{}
	merges := map[string]bool{}
	for _, w := range ws {
		byCommit[w.commit] = w
		if w.landed != "" && w.landed != w.commit {
			merges[w.landed] = true
		}
	}
	out := prep.Changes[:0]
	for _, ch := range prep.Changes {
		if merges[ch.Commit] {
			continue
		}
		if w := byCommit[ch.Commit]; w != nil {
			ch.ID = strconv.Itoa(w.info.Number)
			ch.URL = c.src.link(w.info)
			ch.Owner = w.info.Owner.Username
		}
		out = append(out, ch)
	}
	prep.Changes = out
}

// pickup is a merged submodule change waiting for its superproject.
type pickup struct {
	w *want
	t target
}

// superName names a pickup's superproject branch for chat:
// "mediawiki/core's wmf/1.46.0-wmf.3".
func (p pickup) superName() string {
	return fmt.Sprintf("%s's %s", p.t.comp.Project, p.t.comp.Branch)
}

// waitPickup waits until every superproject points its submodule at the
// merged commit (or a later one), as Gerrit's superproject subscription
// does on merge, with the merge wait's timeout and progress lines.
func (c *Composite) waitPickup(ctx context.Context, ps []pickup, progress func(string)) error {
	if len(ps) == 0 {
		return nil
	}
	timeout := c.src.cfg.MergeTimeout
	start := c.src.now()
	deadline, lastNote := start.Add(timeout), start
	announced := false
	tick := time.NewTicker(c.src.cfg.PollInterval)
	defer tick.Stop()
	for {
		var still []pickup
		for _, p := range ps {
			done, err := c.pickedUp(ctx, p)
			if err != nil {
				return err
			}
			if done {
				progress(fmt.Sprintf("%s now points %s at change %d's merge (%.10s)", p.superName(), p.t.sub.Path, p.w.info.Number, p.w.commit))
				continue
			}
			still = append(still, p)
		}
		if ps = still; len(ps) == 0 {
			return nil
		}
		now := c.src.now()
		if !now.Before(deadline) {
			return pickupTimeout(ps[0], timeout)
		}
		if !announced {
			announced = true
			for _, p := range ps {
				progress(fmt.Sprintf("change %d merged in %s; waiting up to %s for %s to point %s at it (Gerrit's superproject subscription)",
					p.w.info.Number, p.w.info.Project, timeout, p.superName(), p.t.sub.Path))
			}
		} else if now.Sub(lastNote) >= progressEvery {
			lastNote = now
			var names []string
			for _, p := range ps {
				names = append(names, fmt.Sprintf("%s to pick up change %d", p.superName(), p.w.info.Number))
			}
			progress(fmt.Sprintf("still waiting for %s (%s left)", strings.Join(names, ", "), deadline.Sub(now).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pickedUp fetches the submodule's branch (the superproject may point at
// a newer merge) and the superproject, and reports whether the
// superproject's tip points the submodule at the merge or later.
func (c *Composite) pickedUp(ctx context.Context, p pickup) (bool, error) {
	if _, err := c.git.BranchTip(ctx, p.t.url, p.w.info.Branch); err != nil {
		return false, err
	}
	ok, _, err := c.git.PointsAt(ctx, p.t.comp.name(), p.t.sub.Rel, p.w.commit)
	return ok, err
}

// pickupTimeout says plainly that a superproject did not follow a merge,
// and what to do.
func pickupTimeout(p pickup, timeout time.Duration) error {
	n := p.w.info.Number
	return deployer.Errorf(deployer.EConflict,
		"%s did not pick up %s's merge of change %d within %s; nothing was deployed. The change is merged: check the superproject subscription (the branch of %s in %s's .gitmodules, and Gerrit's log), or update the submodule pointer by hand, then run !backport %d again",
		p.superName(), p.w.info.Project, n, timeout, p.t.sub.Rel, p.t.comp.Project, n).
		Or(deployer.DoWith(deployer.VerbBackport, "try again once the pointer moved", strconv.Itoa(n)))
}

// checkUnexpected refuses, before anything is approved, a request that
// would ship commits merged but not deployed in a component or followed
// submodule its changes land in, unless the request includes them (as
// Source.checkUnexpected does for one project): approving first would
// merge the changes and then refuse them at staging, leaving them merged
// and not deployed. The components compared at their branch tips are
// those the changes merge into and the superprojects of the submodules
// they merge into; each submodule is compared at its branch's tip, where
// the change will merge. A request of merged changes only has nothing to
// approve and is left to the git composite's check at staging, which is
// exact (the tips may be past the requested merges).
func (c *Composite) checkUnexpected(ctx context.Context, req deployer.Request, ws []*want, tbl map[branchKey][]target, gitRefs []string, prevUpstream string) error {
	if prevUpstream == "" || req.IncludeUnexpected {
		return nil
	}
	open := false
	for _, w := range ws {
		open = open || w.info.Status != StatusMerged
	}
	if !open {
		return nil
	}
	var names []string
	subs := map[string]string{}
	for _, w := range ws {
		for _, t := range tbl[branchKey{w.info.Project, w.info.Branch}] {
			names = append(names, t.comp.name())
			if t.sub != nil {
				subs[t.where] = w.info.Branch
			}
		}
	}
	un, err := c.git.Undeployed(ctx, prevUpstream, names, subs, gitRefs)
	if err != nil {
		return err
	}
	mine := ownCommits(ws)
	total := 0
	var groups []string
	for _, u := range un {
		var items []string
		n := 0
		for _, cm := range u.Commits {
			if mine[cm.Hash] || mine[gitrepo.ChangeIDOf(cm.Message)] {
				continue
			}
			n++
			if n > maxListed {
				continue
			}
			items = append(items, c.src.commitItem(cm))
		}
		if n > maxListed {
			items = append(items, fmt.Sprintf("and %d more", n-maxListed))
		}
		total += n
		switch {
		case n == 0 && u.Note == "":
			continue
		case n == 0:
			groups = append(groups, "in "+u.Where+": "+u.Note)
		case u.Note != "":
			groups = append(groups, "in "+u.Where+": "+strings.Join(items, "; ")+" ("+u.Note+")")
		default:
			groups = append(groups, "in "+u.Where+": "+strings.Join(items, "; "))
		}
	}
	if len(groups) == 0 {
		return nil
	}
	var nums []string
	for _, w := range ws {
		nums = append(nums, strconv.Itoa(w.info.Number))
	}
	which := "change " + nums[0]
	if len(nums) > 1 {
		which = "changes " + strings.Join(nums, ", ")
	}
	what := "1 commit that was"
	if total != 1 {
		what = fmt.Sprintf("%d commits that were", total)
	}
	return deployer.Errorf(deployer.EConflict,
		"deploying %s would also ship %s merged but not deployed: %s. Nothing was approved. Check with their authors, then repeat with --include-unexpected to ship them too",
		which, what, strings.Join(groups, ". "))
}
