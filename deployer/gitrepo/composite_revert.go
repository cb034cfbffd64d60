package gitrepo

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/deployer"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// compositeUnexpected is the refusal listing, per component and per
// submodule, the commits a request would ship without naming them.
func compositeUnexpected(refs []string, un []unexpected) *deployer.Error {
	total := 0
	var groups []string
	for _, u := range un {
		total += len(u.commits)
		var items []string
		for i, c := range u.commits {
			if i == maxListed {
				items = append(items, fmt.Sprintf("and %d more", len(u.commits)-maxListed))
				break
			}
			items = append(items, fmt.Sprintf("%s %s (%s)", short(c.Hash), firstLine(c.Message), c.Author.Name))
		}
		g := "in " + u.where + ": " + strings.Join(items, "; ")
		if u.note != "" {
			if len(items) == 0 {
				g = "in " + u.where + ": " + u.note
			} else {
				g += " (" + u.note + ")"
			}
		}
		groups = append(groups, g)
	}
	what := "1 commit that was"
	if total != 1 {
		what = fmt.Sprintf("%d commits that were", total)
	}
	return deployer.Errorf(deployer.EConflict,
		"deploying %s would also ship %s not asked for: %s. Check with their authors, then repeat with --include-unexpected to ship them too",
		strings.Join(refs, " "), what, strings.Join(groups, ". "))
}

// composition reads the composition an upstream id records (nil when it
// is not one). The caller holds the lock.
func (c *Composite) compositionOf(upstream string) (*composition, error) {
	if upstream == "" {
		return nil, nil
	}
	co, err := c.staging.commit(upstream)
	if err != nil {
		return nil, err
	}
	return parseComposition(co.Message), nil
}

// StillShips reports whether deploying the composition upstream ships the
// blocked change again: its commit is in the history of what the
// composition holds at the change's component (or submodule), and no
// revert of it is.
func (c *Composite) StillShips(ctx context.Context, upstream string, ch deployer.Change) (bool, error) {
	commit := commitOf(ch)
	if _, err := parseHash(commit); err != nil {
		return false, nil
	}
	c.staging.mu.Lock()
	comp, err := c.compositionOf(upstream)
	c.staging.mu.Unlock()
	if err != nil || comp == nil {
		return false, err
	}
	p := comp.at(ch.Component)
	if p == nil || !c.staging.HasCommit(commit) {
		return false, nil
	}
	in, err := c.staging.IsAncestor(ctx, commit, p.Commit.String())
	if err != nil || !in {
		return false, err
	}
	rv, err := c.staging.RevertedIn(ctx, p.Commit.String(), commit)
	if err != nil {
		return false, err
	}
	return rv == "", nil
}

// Gone reports whether upstream no longer holds the blocked change ch for
// good, so its block may be lifted: the branch tip of its component (for
// a submodule's change, the commit that tip points the submodule at) does
// not contain it, or contains a revert of it. StillShips answers for one
// deployment, which may leave ch's component where it was; Gone answers
// for the branch, which is what a block is about. Whenever it cannot tell
// (a commit not fetched, a path that is not a first-level submodule), it
// says false: keeping a block is safe, lifting one wrongly ships a
// rolled-back change again.
func (c *Composite) Gone(ctx context.Context, ch deployer.Change) (bool, error) {
	commit := commitOf(ch)
	if _, err := parseHash(commit); err != nil || !c.staging.HasCommit(commit) {
		return false, nil
	}
	head, err := c.branchHeadAt(ctx, ch.Component)
	if err != nil || head == "" {
		return false, err
	}
	in, err := c.staging.IsAncestor(ctx, commit, head)
	if err != nil || !in {
		return !in && err == nil, err
	}
	rv, err := c.staging.RevertedIn(ctx, head, commit)
	return rv != "", err
}

// branchHeadAt fetches the component that owns deploy path at and returns
// its branch tip, or, when at is a first-level submodule of it, the commit
// the tip points that submodule at; "" when that cannot be known here.
func (c *Composite) branchHeadAt(ctx context.Context, at string) (string, error) {
	owner := -1
	for i, comp := range c.comps {
		if (comp.Path == at || comp.Path == "" || strings.HasPrefix(at, comp.Path+"/")) &&
			(owner < 0 || len(comp.Path) > len(c.comps[owner].Path)) {
			owner = i
		}
	}
	if owner < 0 {
		return "", nil
	}
	comp := c.comps[owner]
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	_, tip, err := c.fetchTip(ctx, comp.name())
	if err != nil || at == comp.Path {
		return tip.String(), err
	}
	co, err := object.GetCommit(c.staging.repo.Storer, tip)
	if err != nil {
		return "", fmt.Errorf("gitrepo: commit %s: %w", tip, err)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(at, comp.Path), "/")
	subs, err := submodules(c.staging.repo.Storer, co.TreeHash)
	if err != nil {
		return "", err
	}
	for _, sm := range subs {
		if sm.Path != rel {
			continue
		}
		// The submodule's repository may not have been fetched since the
		// pointer moved: fetch it, as composing would.
		f := &fetcher{ctx: ctx, done: map[string]error{}}
		if err := c.ensureCommit(f, ResolveSubmoduleURL(comp.URL, sm.URL), sm.Link, at); err != nil {
			return "", err
		}
		return sm.Link.String(), nil
	}
	return "", nil // not a first-level submodule of its component's tip
}

// RevertUpstream reverts d's changes in the components they came from: for
// each configured component, what the git source does for its one
// repository (pushing revert commits with Push when the branch's tip is
// still what d deployed, otherwise saying what to revert by hand); for a
// submodule, it says what to revert in the submodule's repository and that
// the component's pointer must then move.
func (c *Composite) RevertUpstream(ctx context.Context, d *deployer.Deployment, reason string) ([]string, map[string]string, error) {
	if len(d.Changes) == 0 || d.Upstream == "" {
		return nil, nil, nil
	}
	c.staging.mu.Lock()
	now, err := c.compositionOf(d.Upstream)
	var before *composition
	if err == nil {
		before, err = c.compositionOf(d.PrevUpstream)
	}
	c.staging.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	var order []string
	groups := map[string][]deployer.Change{}
	for _, ch := range d.Changes {
		if _, ok := groups[ch.Component]; !ok {
			order = append(order, ch.Component)
		}
		groups[ch.Component] = append(groups[ch.Component], ch)
	}
	var lines []string
	reverts := map[string]string{}
	for _, where := range order {
		chs := groups[where]
		var comp *Component
		for i := range c.comps {
			if c.comps[i].Path == where {
				comp = &c.comps[i]
			}
		}
		if comp == nil {
			p := now.at(where)
			url := "its repository"
			if p != nil {
				url = p.URL
			}
			var names []string
			for _, ch := range chs {
				names = append(names, fmt.Sprintf("%.10s (%s)", commitOf(ch), ch.Subject))
			}
			lines = append(lines, fmt.Sprintf("in %s: revert %s in %s by hand (newest first), then move %s's pointer, or the next backport ships it again",
				where, strings.Join(names, ", "), url, c.ownerName(where)))
			continue
		}
		c.staging.mu.Lock()
		v, err := c.view(comp.URL, comp.Branch)
		c.staging.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		sub := *d
		sub.Changes = chs
		sub.Upstream, sub.PrevUpstream = "", ""
		if p := now.find(where, false); p != nil {
			sub.Upstream = p.Commit.String()
		}
		if p := before.find(where, false); p != nil {
			sub.PrevUpstream = p.Commit.String()
		}
		// Only the component's own commits can be reverted there; the
		// pointer-only commits among them go with their submodules.
		rv := &Reverter{Repo: v, Push: c.Push, Log: c.Log}
		ls, rs, err := rv.RevertUpstream(ctx, &sub, reason)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range ls {
			lines = append(lines, "in "+comp.name()+": "+l)
		}
		for k, v := range rs {
			reverts[k] = v
		}
	}
	return lines, reverts, nil
}

// ownerName names the component holding deploy path p.
func (c *Composite) ownerName(p string) string {
	best := -1
	for i, comp := range c.comps {
		if within(p, comp.Path) && (best < 0 || len(comp.Path) > len(c.comps[best].Path)) {
			best = i
		}
	}
	if best < 0 {
		return "its superproject"
	}
	return c.comps[best].name()
}

// ComposedCommit returns what composition upstream holds at deploy path p
// (a component or a submodule), for tests and tools.
func (c *Composite) ComposedCommit(upstream, p string) (string, error) {
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	comp, err := c.compositionOf(upstream)
	if err != nil {
		return "", err
	}
	q := comp.at(p)
	if q == nil {
		return "", nil
	}
	return q.Commit.String(), nil
}
