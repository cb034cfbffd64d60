package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/deploybot/deploybot/deployer"
)

// What a change source on top of the composite (deployer/gerrit) needs to
// know about the components' repositories before it hands the composite
// its refs: which submodules a component's branch follows, where each
// branch is, and whether a superproject has picked up a merge.

// SubmoduleInfo is one submodule of a component's branch tip.
type SubmoduleInfo struct {
	// Path is the submodule's deploy path; Rel is its path in the
	// component.
	Path, Rel string
	// URL is resolved against the component's URL.
	URL string
	// Branch is the branch .gitmodules says the submodule tracks, "."
	// resolved to the component's own branch; "" when .gitmodules names
	// none (no superproject subscription follows it).
	Branch string
	// Link is the commit the tip points it at.
	Link string
}

// TipSubmodules fetches the component named name (its name or path) and
// lists the submodules of its branch tip. A component that does not
// follow its submodules has none.
func (c *Composite) TipSubmodules(ctx context.Context, name string) ([]SubmoduleInfo, error) {
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	st, tip, err := c.fetchTip(ctx, name)
	if err != nil || !st.Submodules {
		return nil, err
	}
	co, err := object.GetCommit(c.staging.repo.Storer, tip)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: commit %s: %w", tip, err)
	}
	infos, err := listSubmodules(c.staging.repo.Storer, st.Component, co.TreeHash)
	if err != nil {
		return nil, deployer.Errorf(deployer.EConflict, "in %s: %s", st.name(), strings.TrimPrefix(err.Error(), "gitrepo: "))
	}
	return infos, nil
}

// listSubmodules describes the submodules of comp's tree: where each
// lands, its resolved URL, the branch its .gitmodules entry names and the
// commit the tree points it at.
func listSubmodules(s storer.EncodedObjectStorer, comp Component, tree plumbing.Hash) ([]SubmoduleInfo, error) {
	subs, err := submodules(s, tree)
	if err != nil {
		return nil, err
	}
	branches, err := moduleBranches(s, tree)
	if err != nil {
		return nil, err
	}
	return submoduleInfos(comp, subs, branches), nil
}

// submoduleInfos describes comp's submodules subs, whose .gitmodules
// branches are branches.
func submoduleInfos(comp Component, subs []submodule, branches map[string]string) []SubmoduleInfo {
	var out []SubmoduleInfo
	for _, sm := range subs {
		b := branches[sm.Path]
		if b == "." {
			b = comp.Branch
		}
		out = append(out, SubmoduleInfo{Path: joinPath(comp.Path, sm.Path), Rel: sm.Path, URL: ResolveSubmoduleURL(comp.URL, sm.URL), Branch: b, Link: sm.Link.String()})
	}
	return out
}

// fetchTip fetches component name and returns it and its branch tip. The
// caller holds the lock.
func (c *Composite) fetchTip(ctx context.Context, name string) (*state, plumbing.Hash, error) {
	for _, comp := range c.comps {
		if comp.name() != name && comp.Path != name {
			continue
		}
		st, err := c.newState(&fetcher{ctx: ctx, done: map[string]error{}}, comp)
		if err != nil {
			return nil, plumbing.ZeroHash, err
		}
		tip, err := c.tip(st)
		return st, tip, err
	}
	return nil, plumbing.ZeroHash, deployer.Errorf(deployer.ENotFound, "no component is named %s (components: %s)", name, c.names())
}

// moduleBranches reads the branch of every .gitmodules entry, by path.
func moduleBranches(s storer.EncodedObjectStorer, tree plumbing.Hash) (map[string]string, error) {
	out := map[string]string{}
	mods, err := readModules(s, tree)
	if err != nil || mods == nil {
		return out, err
	}
	for _, m := range mods.Submodules {
		out[strings.Trim(path.Clean(m.Path), "/")] = m.Branch
	}
	return out, nil
}

// BranchTip fetches the repository at url (a component's or a
// submodule's) and returns the tip of branch ("" when it has no such
// branch).
func (c *Composite) BranchTip(ctx context.Context, url, branch string) (string, error) {
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	v, err := c.view(absLocalPath(url), "")
	if err != nil {
		return "", err
	}
	if err := v.fetch(ctx); err != nil {
		return "", c.fetchProblem(err, "branch "+branch, url)
	}
	heads, err := v.upstreamHeads()
	if err != nil {
		return "", err
	}
	h, ok := heads[branch]
	if !ok {
		return "", nil
	}
	return h.String(), nil
}

// PointsAt fetches component name and reports whether its branch tip
// points the submodule at rel (relative to the component) at commit or
// at a descendant of it, and what it points at. commit must have been
// fetched (BranchTip of the submodule's repository).
func (c *Composite) PointsAt(ctx context.Context, name, rel, commit string) (bool, string, error) {
	want, err := parseHash(commit)
	if err != nil {
		return false, "", err
	}
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	_, tip, err := c.fetchTip(ctx, name)
	if err != nil {
		return false, "", err
	}
	co, err := object.GetCommit(c.staging.repo.Storer, tip)
	if err != nil {
		return false, "", fmt.Errorf("gitrepo: commit %s: %w", tip, err)
	}
	link, err := gitlinkAt(c.staging.repo.Storer, co.TreeHash, rel)
	if err != nil || link.IsZero() {
		return false, "", err
	}
	if _, err := object.GetCommit(c.staging.repo.Storer, link); err != nil {
		return false, link.String(), nil // a commit not fetched yet is not the merge's descendant we fetched
	}
	ok, err := reaches(ctx, c.staging.repo.Storer, []plumbing.Hash{link}, want)
	if errors.Is(err, errTooFar) {
		err = nil
	}
	return ok, link.String(), err
}

// RemoteSubmodules fetches the tip of comp's branch shallowly into memory
// (the staging repository is not touched) and lists its submodules, for
// check-config.
func RemoteSubmodules(ctx context.Context, comp Component) ([]SubmoduleInfo, error) {
	st, tree, err := fetchTip(ctx, comp)
	if err != nil {
		return nil, err
	}
	return listSubmodules(st, comp, tree)
}

// Undeployed is what one place of the deploy tree holds upstream and no
// deployment shipped yet.
type Undeployed struct {
	// Where is a component's name, or a followed submodule's deploy path.
	Where string
	// Commits are oldest first.
	Commits []UpstreamCommit
	// Note says what else is wrong ("" when nothing is): a branch that
	// does not contain its deployed commit any more.
	Note string
}

// Undeployed is the check a change source makes before it merges
// anything: it fetches the components named in names (by name or path)
// and lists, against the deployed composition prevUpstream, the commits
// that a deployment of their branch tips would ship:
//   - each component's commits beyond its deployed commit, leaving out
//     those that only move submodule pointers (their submodules'
//     commits are listed instead, as Prepare does);
//   - for each submodule it follows whose pointer the tip moves, the
//     commits the pointer jumps over;
//   - for each submodule of subs (deploy path -> branch), whose branch a
//     change is about to merge into and the superproject subscription
//     will point at, the commits of that branch's tip beyond the deployed
//     pointer as well.
//
// Commits refs name (component:ref, as Prepare takes them) are left out.
// A component new in the configuration (nothing deployed) ships whole
// and is not listed, nor is a submodule new in its component.
func (c *Composite) Undeployed(ctx context.Context, prevUpstream string, names []string, subs map[string]string, refs []string) ([]Undeployed, error) {
	var crefs []*cref
	for _, t := range refs {
		r, err := parseCRef(t)
		if err != nil {
			return nil, err
		}
		crefs = append(crefs, &r)
	}
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	prev, err := c.loadPrev(prevUpstream)
	if err != nil || prev == nil {
		return nil, err
	}
	f := &fetcher{ctx: ctx, done: map[string]error{}}
	var states []*state
	for _, comp := range c.comps {
		st, err := c.newState(f, comp)
		if err != nil {
			return nil, err
		}
		if p := prev.find(comp.Path, false); p != nil {
			st.prev = p.Commit
		}
		states = append(states, st)
	}
	named := map[plumbing.Hash]bool{}
	for _, r := range crefs {
		if err := c.place(ctx, f, states, r); err != nil {
			return nil, err
		}
		named[r.hash] = true
	}
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	var out []Undeployed
	for _, st := range states {
		if (!wanted[st.name()] && !wanted[st.Path]) || st.prev.IsZero() {
			continue
		}
		un, err := c.undeployedIn(ctx, f, st, states, subs, named)
		if err != nil {
			return nil, err
		}
		out = append(out, un...)
	}
	return out, nil
}

// undeployedIn is Undeployed for one component. A submodule path where
// another component stands ships nothing and is skipped, as in Prepare.
// The caller holds the lock.
func (c *Composite) undeployedIn(ctx context.Context, f *fetcher, st *state, states []*state, subs map[string]string, named map[plumbing.Hash]bool) ([]Undeployed, error) {
	s := c.staging.repo.Storer
	before, err := object.GetCommit(s, st.prev)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: deployed commit %s of %s: %w", st.prev, st.name(), err)
	}
	tip, err := c.tip(st)
	if err != nil {
		return nil, err
	}
	var out []Undeployed
	u, err := c.between(ctx, st.name(), []plumbing.Hash{tip}, st.prev, named, st.Submodules)
	if err != nil {
		return nil, err
	}
	if u != nil {
		out = append(out, *u)
	}
	if !st.Submodules {
		return out, nil
	}
	after, err := object.GetCommit(s, tip)
	if err != nil {
		return nil, err
	}
	oldSubs, err := submodules(s, before.TreeHash)
	if err != nil {
		return nil, err
	}
	newSubs, err := submodules(s, after.TreeHash)
	if err != nil {
		return nil, deployer.Errorf(deployer.EConflict, "in %s: %s", st.name(), strings.TrimPrefix(err.Error(), "gitrepo: "))
	}
	old := map[string]plumbing.Hash{}
	for _, sm := range oldSubs {
		old[sm.Path] = sm.Link
	}
	for _, sm := range newSubs {
		dp := joinPath(st.Path, sm.Path)
		from, was := old[sm.Path]
		if !was || standsElsewhere(states, st.Path, dp) {
			continue
		}
		url := ResolveSubmoduleURL(st.URL, sm.URL)
		var heads []plumbing.Hash
		if sm.Link != from {
			if err := c.ensureCommit(f, url, sm.Link, dp); err != nil {
				return nil, err
			}
			heads = append(heads, sm.Link)
		}
		if branch, ok := subs[dp]; ok {
			v, err := c.view(url, "")
			if err != nil {
				return nil, err
			}
			if err := f.fetch(v); err != nil {
				return nil, c.fetchProblem(err, "submodule "+dp, url)
			}
			bh, err := v.upstreamHeads()
			if err != nil {
				return nil, err
			}
			if h, ok := bh[branch]; ok && h != from {
				heads = append(heads, h)
			}
		}
		if len(heads) == 0 {
			continue
		}
		if err := c.ensureCommit(f, url, from, dp); err != nil {
			return nil, err
		}
		u, err := c.between(ctx, dp, heads, from, named, false)
		if err != nil {
			return nil, err
		}
		if u != nil {
			out = append(out, *u)
		}
	}
	return out, nil
}

// between lists the commits heads reach and from does not, oldest first,
// leaving out those named and, with skipGitlinks, those that only move
// submodule pointers; nil when there are none and nothing to note.
func (c *Composite) between(ctx context.Context, where string, heads []plumbing.Hash, from plumbing.Hash, named map[plumbing.Hash]bool, skipGitlinks bool) (*Undeployed, error) {
	s := c.staging.repo.Storer
	w := newWalk(ctx, s)
	if err := w.run(heads, []plumbing.Hash{from}); err != nil {
		if errors.Is(err, errTooFar) {
			return nil, deployer.Errorf(deployer.EInvalid, "in %s: the branch is more than %d commits ahead of the deployed commit %s", where, maxWalk, short(from))
		}
		return nil, err
	}
	set := map[plumbing.Hash]*node{}
	for _, h := range heads {
		for k, n := range w.below(h) {
			set[k] = n
		}
	}
	u := Undeployed{Where: where}
	for _, co := range oldestFirst(set) {
		if named[co.Hash] {
			continue
		}
		if skipGitlinks {
			only, err := onlyGitlinks(s, co)
			if err != nil {
				return nil, err
			}
			if only {
				continue
			}
		}
		u.Commits = append(u.Commits, toUpstreamCommit(co))
	}
	if len(set) > 0 && !w.hit[from] {
		u.Note = fmt.Sprintf("its branch no longer contains the deployed commit %s", short(from))
	}
	if len(u.Commits) == 0 && u.Note == "" {
		return nil, nil
	}
	return &u, nil
}

// DescribeRef describes what a component:ref names (as Prepare takes
// it), after fetching, for a window's list: the commit, placed in its
// component or submodule (Change.Component), with the ref
// component:<full commit id> as its ID.
func (c *Composite) DescribeRef(ctx context.Context, ref string) (deployer.Change, error) {
	r, err := parseCRef(ref)
	if err != nil {
		return deployer.Change{}, err
	}
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	f := &fetcher{ctx: ctx, done: map[string]error{}}
	var states []*state
	for _, comp := range c.comps {
		st, err := c.newState(f, comp)
		if err != nil {
			return deployer.Change{}, err
		}
		states = append(states, st)
	}
	if err := c.place(ctx, f, states, &r); err != nil {
		return deployer.Change{}, err
	}
	co, err := object.GetCommit(c.staging.repo.Storer, r.hash)
	if err != nil {
		return deployer.Change{}, fmt.Errorf("gitrepo: commit %s: %w", r.hash, err)
	}
	ch := change(co)
	// The window deploys an item by its ID: the component:commit ref.
	ch.ID = r.where + ":" + r.hash.String()
	ch.Component = states[r.comp].Path
	if r.sub != "" {
		ch.Component = joinPath(ch.Component, r.sub)
	}
	return ch, nil
}
