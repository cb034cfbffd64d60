package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/deploybot/deploybot/deployer"
)

// cref is one requested ref of a composite deployment: "where:ref" or a
// bare ref.
type cref struct {
	text  string // as typed
	where string // component name or path, or submodule deploy path; "" bare
	ref   string
	hash  plumbing.Hash
	comp  int    // index into states
	sub   string // submodule path relative to the component; "" for the component itself
}

// parseCRef checks one ref as typed in chat.
func parseCRef(t string) (cref, error) {
	where, r, qualified := strings.Cut(t, ":")
	if !qualified {
		where, r = "", t
	}
	if qualified && (where == "" || !validComponentPath(where) || strings.HasPrefix(where, "-")) {
		return cref{}, deployer.Errorf(deployer.EInvalid, "%q does not name a component or submodule before the colon", t)
	}
	if !hexRef.MatchString(r) && !validBranch(r) {
		return cref{}, deployer.Errorf(deployer.EInvalid, "%q is neither a commit id (7 to 40 hex digits) nor a branch name", r)
	}
	return cref{text: t, where: where, ref: r}, nil
}

// CheckRef implements deployer.RefChecker: a ref must read as
// [component:]commit-or-branch before it is queued, as with one repository.
func (c *Composite) CheckRef(ref string) error {
	_, err := parseCRef(ref)
	return err
}

// Baseline fetches every component and composes their branch tips: what
// the fleet is taken to serve when nothing was deployed yet.
func (c *Composite) Baseline(ctx context.Context) (string, error) {
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	f := &fetcher{ctx: ctx, done: map[string]error{}}
	var states []*state
	for _, comp := range c.comps {
		st, err := c.newState(f, comp)
		if err != nil {
			return "", err
		}
		st.target, err = c.tip(st)
		if err != nil {
			return "", err
		}
		states = append(states, st)
	}
	h, _, err := c.compose(ctx, f, states, nil, "baseline")
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func (c *Composite) newState(f *fetcher, comp Component) (*state, error) {
	v, err := c.view(comp.URL, comp.Branch)
	if err != nil {
		return nil, err
	}
	if err := f.fetch(v); err != nil {
		return nil, c.fetchProblem(err, comp.name(), comp.URL)
	}
	return &state{Component: comp, view: v}, nil
}

func (c *Composite) tip(st *state) (plumbing.Hash, error) {
	heads, err := st.view.upstreamHeads()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h, ok := heads[st.Branch]
	if !ok {
		return plumbing.ZeroHash, deployer.Errorf(deployer.ENotFound, "%s has no branch named %s (component %s)", st.URL, st.Branch, st.name())
	}
	return h, nil
}

// loadPrev reads the deployed composition. An upstream that is a plain
// commit (deployed before the source had components) is taken as the
// root component's commit.
func (c *Composite) loadPrev(prevUpstream string) (*composition, error) {
	if prevUpstream == "" {
		return nil, nil
	}
	pc, err := c.staging.commit(prevUpstream)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: deployed upstream %s: %w", prevUpstream, err)
	}
	if comp := parseComposition(pc.Message); comp != nil {
		return comp, nil
	}
	for _, comp := range c.comps {
		if comp.Path == "" {
			return &composition{parts: []part{{Path: "", Commit: pc.Hash, URL: comp.URL, Branch: comp.Branch}}}, nil
		}
	}
	return &composition{}, nil
}

// unexpected is one component's or submodule's commits that nobody asked for.
type unexpected struct {
	where   string
	commits []*object.Commit
	note    string
}

// Prepare resolves and validates a composite request against the deployed
// composition prevUpstream, composes the new tree and returns its
// composition commit. A ref is "where:ref", where is a component's name
// or path, or the deploy path of a submodule of a component that follows
// its submodules (php-1.46.0-wmf.3/extensions/Foo:abc1234); a bare ref is
// looked up in every component and must be found in exactly one.
//
// For every component:
//   - refs naming it are checked as the git source checks them (one line
//     of history descending from the deployed commit; commits in between
//     that nobody named are unexpected, except commits that only move
//     submodule pointers, whose submodule commits are checked instead);
//   - refs naming only its submodules pick the oldest commit of its branch
//     whose pointers contain them all (the commit the superproject
//     subscription made); there must be one;
//   - a component nobody named stays where it is; a component that is new
//     in the configuration goes out whole at its branch's tip, and one no
//     longer configured is removed; both are announced through progress.
//
// For every followed submodule whose pointer moves, the commits it jumps
// over that nobody named are unexpected, listed with the submodule's path.
func (c *Composite) Prepare(ctx context.Context, req deployer.Request, prevUpstream string, progress func(string)) (*deployer.Prepared, error) {
	if len(req.Refs) == 0 {
		return nil, deployer.Errorf(deployer.EInvalid, "name a commit or a branch to deploy (component:ref)")
	}
	if progress == nil {
		progress = func(string) {}
	}
	var refs []*cref
	for _, t := range req.Refs {
		r, err := parseCRef(t)
		if err != nil {
			return nil, err
		}
		refs = append(refs, &r)
	}
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	f := &fetcher{ctx: ctx, done: map[string]error{}}
	prev, err := c.loadPrev(prevUpstream)
	if err != nil {
		return nil, err
	}
	var states []*state
	for _, comp := range c.comps {
		st, err := c.newState(f, comp)
		if err != nil {
			return nil, err
		}
		if p := prev.find(comp.Path, false); p != nil {
			st.prev = p.Commit
			if _, err := object.GetCommit(c.staging.repo.Storer, st.prev); err != nil {
				return nil, fmt.Errorf("gitrepo: deployed commit %s of %s: %w", st.prev, comp.name(), err)
			}
		}
		states = append(states, st)
	}
	for _, r := range refs {
		if err := c.place(ctx, f, states, r); err != nil {
			return nil, err
		}
	}

	var changes []deployer.Change
	var unexp []unexpected
	for i, st := range states {
		var mine []*cref
		subs := map[string][]*cref{}
		for _, r := range refs {
			if r.comp != i {
				continue
			}
			if r.sub == "" {
				mine = append(mine, r)
			} else {
				subs[r.sub] = append(subs[r.sub], r)
			}
		}
		cs, un, err := c.moveComponent(ctx, st, mine, subs, progress)
		if err != nil {
			return nil, err
		}
		changes = append(changes, cs...)
		unexp = append(unexp, un...)
		if !st.Submodules {
			continue
		}
		cs, un, err = c.moveSubmodules(ctx, f, st, states, subs, progress)
		if err != nil {
			return nil, err
		}
		changes = append(changes, cs...)
		unexp = append(unexp, un...)
	}
	if prev != nil {
		for _, p := range prev.parts {
			if p.Sub {
				continue
			}
			gone := true
			for _, st := range states {
				gone = gone && st.Path != p.Path
			}
			if !gone {
				continue
			}
			if sub, owner, link := c.submoduleAt(states, p.Path); !link.IsZero() {
				progress(fmt.Sprintf("component %s (%s %s) is no longer configured: this deployment puts back submodule %s of %s there, at %.10s", displayPath(p.Path), p.URL, p.Branch, sub, owner, link))
				continue
			}
			progress(fmt.Sprintf("component %s (%s %s) is no longer configured: this deployment removes its whole tree", displayPath(p.Path), p.URL, p.Branch))
		}
	}
	if len(unexp) > 0 && !req.IncludeUnexpected {
		// The carried changes let the pipeline say first when one of
		// them is blocked, as with one repository.
		var carried []deployer.Change
		for _, ch := range changes {
			if ch.Unexpected {
				carried = append(carried, ch)
			}
		}
		return nil, &deployer.UnexpectedError{Err: compositeUnexpected(req.Refs, unexp), Changes: carried}
	}
	h, _, err := c.compose(ctx, f, states, prev, fmt.Sprintf("deployment #%d", req.Deployment))
	if err != nil {
		return nil, err
	}
	return &deployer.Prepared{Upstream: h.String(), Changes: changes}, nil
}

// submoduleAt returns the submodule at deploy path dp of the deepest
// component holding it that follows its submodules, at its target: the
// submodule that fills dp once no component of its own stands there. The
// hash is zero when there is none.
func (c *Composite) submoduleAt(states []*state, dp string) (string, string, plumbing.Hash) {
	var owner *state
	for _, st := range states {
		if st.Path != dp && within(dp, st.Path) && (owner == nil || len(st.Path) > len(owner.Path)) {
			owner = st
		}
	}
	if owner == nil || !owner.Submodules || owner.target.IsZero() {
		return "", "", plumbing.ZeroHash
	}
	co, err := object.GetCommit(c.staging.repo.Storer, owner.target)
	if err != nil {
		return "", "", plumbing.ZeroHash
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(dp, owner.Path), "/")
	link, err := gitlinkAt(c.staging.repo.Storer, co.TreeHash, rel)
	if err != nil {
		return "", "", plumbing.ZeroHash
	}
	return rel, owner.name(), link
}

// place resolves one ref to a commit and says which component (and which
// of its submodules) it belongs to. The caller holds the lock.
func (c *Composite) place(ctx context.Context, f *fetcher, states []*state, r *cref) error {
	if r.where == "" {
		var found []int
		var hash plumbing.Hash
		for i, st := range states {
			heads, err := st.view.upstreamHeads()
			if err != nil {
				return err
			}
			h, err := st.view.resolve(ctx, r.ref, heads)
			if deployer.ErrorCode(err) == deployer.ENotFound {
				continue
			}
			if err != nil {
				return err
			}
			found, hash = append(found, i), h
		}
		switch len(found) {
		case 0:
			return deployer.Errorf(deployer.ENotFound, "no component has a commit or branch named %s; name it as component:ref (components: %s)", r.ref, c.names())
		case 1:
			r.comp, r.hash = found[0], hash
			return nil
		}
		var names []string
		for _, i := range found {
			names = append(names, states[i].name())
		}
		return deployer.Errorf(deployer.EInvalid, "%s is in %s; say which, as %s:%s", r.ref, strings.Join(names, " and "), names[0], r.ref)
	}
	for i, st := range states {
		if st.Name == r.where || st.name() == r.where || (st.Path != "" && st.Path == r.where) {
			heads, err := st.view.upstreamHeads()
			if err != nil {
				return err
			}
			h, err := st.view.resolve(ctx, r.ref, heads)
			if err != nil {
				return prefixed(err, st.name())
			}
			r.comp, r.hash = i, h
			return nil
		}
	}
	// A submodule: the deepest component holding the path, at its tip.
	best := -1
	for i, st := range states {
		if within(r.where, st.Path) && st.Path != r.where && (best < 0 || len(st.Path) > len(states[best].Path)) {
			best = i
		}
	}
	if best < 0 || !states[best].Submodules {
		return deployer.Errorf(deployer.ENotFound, "%s is neither a component nor a submodule of one that follows its submodules (components: %s)", r.where, c.names())
	}
	st := states[best]
	rel := strings.TrimPrefix(strings.TrimPrefix(r.where, st.Path), "/")
	tip, err := c.tip(st)
	if err != nil {
		return err
	}
	tc, err := object.GetCommit(c.staging.repo.Storer, tip)
	if err != nil {
		return fmt.Errorf("gitrepo: commit %s: %w", tip, err)
	}
	sms, err := submodules(c.staging.repo.Storer, tc.TreeHash)
	if err != nil {
		return err
	}
	for _, sm := range sms {
		if sm.Path != rel {
			continue
		}
		url := ResolveSubmoduleURL(st.URL, sm.URL)
		v, err := c.view(url, "")
		if err != nil {
			return err
		}
		if err := f.fetch(v); err != nil {
			return c.fetchProblem(err, "submodule "+r.where, url)
		}
		heads, err := v.upstreamHeads()
		if err != nil {
			return err
		}
		h, err := v.resolve(ctx, r.ref, heads)
		if err != nil {
			return prefixed(err, r.where)
		}
		r.comp, r.sub, r.hash = best, rel, h
		return nil
	}
	return deployer.Errorf(deployer.ENotFound, "%s (branch %s) has no submodule at %s", st.name(), st.Branch, rel)
}

func (c *Composite) names() string {
	var ns []string
	for _, comp := range c.comps {
		ns = append(ns, comp.name())
	}
	return strings.Join(ns, ", ")
}

// prefixed adds the component to a person-facing error.
func prefixed(err error, where string) error {
	var de *deployer.Error
	if errors.As(err, &de) {
		return deployer.Errorf(de.Code, "in %s: %s", where, de.Message)
	}
	return err
}

// moveComponent decides st.target and lists the component's commits that
// ship. The caller holds the lock.
func (c *Composite) moveComponent(ctx context.Context, st *state, mine []*cref, subs map[string][]*cref, progress func(string)) ([]deployer.Change, []unexpected, error) {
	v := st.view
	if st.prev.IsZero() {
		return c.newComponent(ctx, st, mine, subs, progress)
	}
	// A submodule ref the deployed pointer already holds is deployed, as
	// a component ref the deployed commit holds is: looking for the next
	// commit that holds it would ship whatever comes next instead.
	for sub, rs := range subs {
		for _, r := range rs {
			if c.pointsAt(ctx, st, st.prev, sub, []*cref{r}) == nil {
				return nil, nil, deployer.Errorf(deployer.EConflict, "%s is already deployed", r.text)
			}
		}
	}
	requested := map[plumbing.Hash]bool{}
	var target plumbing.Hash
	var err error
	switch {
	case len(mine) > 0:
		for _, r := range mine {
			requested[r.hash] = true
		}
		target, err = c.refsTarget(ctx, st, mine, subs)
	case len(subs) > 0:
		target, err = c.pointersTarget(ctx, st, subs)
	default:
		st.target = st.prev
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	st.target = target
	w := newWalk(ctx, v.repo.Storer)
	if err := w.run([]plumbing.Hash{target}, []plumbing.Hash{st.prev}); err != nil {
		return nil, nil, err
	}
	var changes []deployer.Change
	var un []*object.Commit
	for _, co := range oldestFirst(w.below(target)) {
		ch := change(co)
		ch.Component = st.Path
		if !requested[co.Hash] {
			only, err := onlyGitlinks(v.repo.Storer, co)
			if err != nil {
				return nil, nil, err
			}
			// Not named: a pointer move ships the submodule commits
			// listed with it; anything else is unexpected.
			ch.Pointer, ch.Unexpected = only, !only
			if !only {
				un = append(un, co)
			}
		}
		changes = append(changes, ch)
	}
	if len(un) > 0 {
		return changes, []unexpected{{where: st.name(), commits: un}}, nil
	}
	return changes, nil, nil
}

// newComponent is moveComponent for a component new in the configuration:
// there is nothing to compare with, so it ships its whole tree, at the
// named ref or at its branch's tip, moved on (as for a deployed component)
// to the first commit whose pointers hold the submodule refs named for it.
func (c *Composite) newComponent(ctx context.Context, st *state, mine []*cref, subs map[string][]*cref, progress func(string)) ([]deployer.Change, []unexpected, error) {
	v := st.view
	tip, err := c.tip(st)
	if err != nil {
		return nil, nil, err
	}
	st.target = tip
	var changes []deployer.Change
	if len(mine) > 0 {
		rs := make([]ref, len(mine))
		for i, r := range mine {
			rs[i] = ref{text: r.text, hash: r.hash}
		}
		t, err := v.lineTarget(ctx, rs)
		if err != nil {
			return nil, nil, prefixed(err, st.name())
		}
		st.target = t.hash
		co, err := object.GetCommit(v.repo.Storer, t.hash)
		if err != nil {
			return nil, nil, err
		}
		ch := change(co)
		ch.Component = st.Path
		changes = append(changes, ch)
	}
	if len(subs) > 0 {
		t, err := c.pointingAt(ctx, st, st.target, subs)
		if err != nil {
			return nil, nil, err
		}
		st.target = t
		paths := make([]string, 0, len(subs))
		for sub := range subs {
			paths = append(paths, sub)
		}
		sort.Strings(paths)
		for _, sub := range paths {
			for _, r := range subs[sub] {
				co, err := object.GetCommit(c.staging.repo.Storer, r.hash)
				if err != nil {
					return nil, nil, err
				}
				ch := change(co)
				ch.Component = joinPath(st.Path, sub)
				changes = append(changes, ch)
			}
		}
	}
	progress(fmt.Sprintf("component %s (%s %s) is new in the configuration: this deployment adds its whole tree at %.10s",
		st.name(), st.URL, st.Branch, st.target))
	return changes, nil, nil
}

// refsTarget is the commit of the component a deployment naming its refs
// ships: the ref that contains the others, descending from the deployed
// commit, moved on to the first commit whose pointers hold the submodule
// refs named with it.
func (c *Composite) refsTarget(ctx context.Context, st *state, mine []*cref, subs map[string][]*cref) (plumbing.Hash, error) {
	v := st.view
	include := make([]plumbing.Hash, len(mine))
	for i, r := range mine {
		include[i] = r.hash
	}
	w := newWalk(ctx, v.repo.Storer)
	if err := w.run(include, []plumbing.Hash{st.prev}); err != nil {
		if errors.Is(err, errTooFar) {
			return plumbing.ZeroHash, deployer.Errorf(deployer.EInvalid, "in %s: the refs are too far from the deployed commit %s (more than %d commits apart)", st.name(), short(st.prev), maxWalk)
		}
		return plumbing.ZeroHash, err
	}
	for _, r := range mine {
		if !w.good(r.hash) {
			return plumbing.ZeroHash, deployer.Errorf(deployer.EConflict, "%s is already deployed", r.text)
		}
	}
	var target plumbing.Hash
	for _, r := range mine {
		if containsAllHashes(w.below(r.hash), include) {
			target = r.hash
			break
		}
	}
	if target.IsZero() {
		rs := make([]ref, len(mine))
		for i, r := range mine {
			rs[i] = ref{text: r.text, hash: r.hash}
		}
		return plumbing.ZeroHash, notOneLine(rs)
	}
	ok, err := reaches(ctx, v.repo.Storer, []plumbing.Hash{target}, st.prev)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if !ok {
		return plumbing.ZeroHash, deployer.Errorf(deployer.EConflict, "in %s: %.10s does not descend from the deployed commit %s; rebase it onto %s", st.name(), target, short(st.prev), st.Branch)
	}
	// Submodule refs named with the component's own: the target is the
	// first commit from the named one on whose pointers hold them (the
	// superproject update that usually follows a core change).
	return c.pointingAt(ctx, st, target, subs)
}

// pointersTarget is the commit of the component a deployment naming only
// submodule refs ships: the first commit after the deployed one whose
// pointers hold them all.
func (c *Composite) pointersTarget(ctx context.Context, st *state, subs map[string][]*cref) (plumbing.Hash, error) {
	v := st.view
	tip, err := c.tip(st)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	line, err := v.rangeLocked(ctx, st.prev, tip)
	if err != nil {
		return plumbing.ZeroHash, prefixed(err, st.name())
	}
	for _, uc := range line {
		h := plumbing.NewHash(uc.Hash)
		all := true
		for sub, rs := range subs {
			all = all && c.pointsAt(ctx, st, h, sub, rs) == nil
		}
		if all {
			return h, nil
		}
	}
	var lines []string
	for sub, rs := range subs {
		if err := c.pointsAt(ctx, st, tip, sub, rs); err != nil {
			lines = append(lines, deployer.ErrorMessage(err))
		}
	}
	return plumbing.ZeroHash, deployer.Errorf(deployer.EConflict, "%s; the submodule pointer moves once the superproject is updated (Gerrit's superproject subscription does it on merge)", strings.Join(lines, "; "))
}

// pointingAt returns from, or the first commit after it on st's branch,
// that points every submodule of subs at a commit holding its refs; the
// error names what from points at when none does.
func (c *Composite) pointingAt(ctx context.Context, st *state, from plumbing.Hash, subs map[string][]*cref) (plumbing.Hash, error) {
	all := func(h plumbing.Hash) error {
		for sub, rs := range subs {
			if err := c.pointsAt(ctx, st, h, sub, rs); err != nil {
				return err
			}
		}
		return nil
	}
	first := all(from)
	if first == nil {
		return from, nil
	}
	tip, err := c.tip(st)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	line, err := st.view.rangeLocked(ctx, from, tip)
	if err != nil {
		return plumbing.ZeroHash, prefixed(err, st.name())
	}
	for _, uc := range line {
		if h := plumbing.NewHash(uc.Hash); all(h) == nil {
			return h, nil
		}
	}
	return plumbing.ZeroHash, deployer.Errorf(deployer.EConflict, "%s; the submodule pointer moves once the superproject is updated (Gerrit's superproject subscription does it on merge)", deployer.ErrorMessage(first))
}

// pointsAt checks that component commit h points submodule sub at a
// commit containing every ref of rs.
func (c *Composite) pointsAt(ctx context.Context, st *state, h plumbing.Hash, sub string, rs []*cref) error {
	co, err := object.GetCommit(c.staging.repo.Storer, h)
	if err != nil {
		return err
	}
	link, err := gitlinkAt(c.staging.repo.Storer, co.TreeHash, sub)
	if err != nil {
		return err
	}
	for _, r := range rs {
		ok := false
		if !link.IsZero() {
			if _, err := object.GetCommit(c.staging.repo.Storer, link); err == nil {
				if ok, err = reaches(ctx, c.staging.repo.Storer, []plumbing.Hash{link}, r.hash); err != nil && !errors.Is(err, errTooFar) {
					return err
				}
			}
		}
		if !ok {
			return deployer.Errorf(deployer.EConflict, "%s at %.10s does not point %s at %s yet (it points at %.10s)", st.name(), h, sub, r.ref, link)
		}
	}
	return nil
}

// moveSubmodules lists, for every submodule whose pointer moves between
// the deployed and the target commit of st, the commits it ships. The
// caller holds the lock.
func (c *Composite) moveSubmodules(ctx context.Context, f *fetcher, st *state, states []*state, named map[string][]*cref, progress func(string)) ([]deployer.Change, []unexpected, error) {
	if st.prev.IsZero() || st.prev == st.target {
		return nil, nil, nil
	}
	return c.moveSubs(ctx, f, st, st.Path, st.URL, st.prev, st.target, states, named, progress)
}

// moveSubs lists the commits the submodules of one repository ship when
// it moves from commit before to commit after: the repository is component
// st, or one of its submodules, placed at deploy path at and fetched
// from url. A submodule's own submodules are followed too (the deploy tree
// holds them, flattened), and a submodule path where another component
// stands is left to that component: its pointer ships nothing. Commits of
// nested submodules cannot be named in a request, so every one they jump
// over is unexpected.
func (c *Composite) moveSubs(ctx context.Context, f *fetcher, st *state, at, url string, before, after plumbing.Hash, states []*state,
	named map[string][]*cref, progress func(string)) ([]deployer.Change, []unexpected, error) {
	s := c.staging.repo.Storer
	bc, err := object.GetCommit(s, before)
	if err != nil {
		return nil, nil, err
	}
	ac, err := object.GetCommit(s, after)
	if err != nil {
		return nil, nil, err
	}
	oldSubs, err := submodules(s, bc.TreeHash)
	if err != nil {
		return nil, nil, err
	}
	newSubs, err := submodules(s, ac.TreeHash)
	if err != nil {
		return nil, nil, deployer.Errorf(deployer.EConflict, "in %s: %s", displayPath(at), strings.TrimPrefix(err.Error(), "gitrepo: "))
	}
	old := map[string]submodule{}
	for _, sm := range oldSubs {
		old[sm.Path] = sm
	}
	var changes []deployer.Change
	var un []unexpected
	for _, sm := range newSubs {
		dp := joinPath(at, sm.Path)
		prior, was := old[sm.Path]
		delete(old, sm.Path)
		from := prior.Link
		if from == sm.Link || standsElsewhere(states, st.Path, dp) {
			continue
		}
		surl := ResolveSubmoduleURL(url, sm.URL)
		if err := c.ensureCommit(f, surl, sm.Link, dp); err != nil {
			return nil, nil, err
		}
		if !was {
			progress(fmt.Sprintf("submodule %s is new in %s: this deployment adds its whole tree at %.10s", dp, st.name(), sm.Link))
			continue
		}
		if err := c.ensureCommit(f, ResolveSubmoduleURL(url, prior.URL), from, dp); err != nil {
			return nil, nil, err
		}
		requested := map[plumbing.Hash]bool{}
		for _, r := range named[sm.Path] {
			requested[r.hash] = true
		}
		w := newWalk(ctx, s)
		if err := w.run([]plumbing.Hash{sm.Link}, []plumbing.Hash{from}); err != nil {
			if errors.Is(err, errTooFar) {
				return nil, nil, deployer.Errorf(deployer.EInvalid, "submodule %s moves more than %d commits, from %s to %s", dp, maxWalk, short(from), short(sm.Link))
			}
			return nil, nil, err
		}
		var jumped []*object.Commit
		for _, co := range oldestFirst(w.below(sm.Link)) {
			ch := change(co)
			ch.Component = dp
			ch.Unexpected = !requested[co.Hash]
			changes = append(changes, ch)
			if ch.Unexpected {
				jumped = append(jumped, co)
			}
		}
		u := unexpected{where: dp, commits: jumped}
		if !w.hit[from] {
			u.note = fmt.Sprintf("its pointer moves from %s to %s, which does not contain it (commits of %s are taken away)", short(from), short(sm.Link), dp)
		}
		if len(u.commits) > 0 || u.note != "" {
			un = append(un, u)
		}
		cs, nested, err := c.moveSubs(ctx, f, st, dp, surl, from, sm.Link, states, nil, progress)
		if err != nil {
			return nil, nil, err
		}
		changes = append(changes, cs...)
		un = append(un, nested...)
	}
	var gone []string
	for p := range old {
		if !standsElsewhere(states, st.Path, joinPath(at, p)) {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	for _, p := range gone {
		progress(fmt.Sprintf("submodule %s is gone from %s: this deployment removes its tree", joinPath(at, p), st.name()))
	}
	return changes, un, nil
}

// standsElsewhere reports whether a component nested in component comp
// stands on deploy path dp (or encloses it), so that comp's submodule
// there deploys nothing.
func standsElsewhere(states []*state, comp, dp string) bool {
	for _, o := range states {
		if o.Path != comp && within(o.Path, comp) && within(dp, o.Path) {
			return true
		}
	}
	return false
}

func containsAllHashes(set map[plumbing.Hash]*node, hs []plumbing.Hash) bool {
	for _, h := range hs {
		if _, ok := set[h]; !ok {
			return false
		}
	}
	return true
}

// onlyGitlinks reports whether commit co changes nothing but submodule
// pointers relative to its first parent (the commits a superproject
// subscription makes). Such a commit ships only its submodules' commits,
// which are checked on their own.
func onlyGitlinks(s storer.EncodedObjectStorer, co *object.Commit) (bool, error) {
	if len(co.ParentHashes) == 0 {
		return false, nil
	}
	parent, err := object.GetCommit(s, co.ParentHashes[0])
	if err != nil {
		return false, fmt.Errorf("gitrepo: parent of %s: %w", co.Hash, err)
	}
	return onlyGitlinksDiffer(s, parent.TreeHash, co.TreeHash)
}

// onlyGitlinksDiffer compares two trees, skipping equal subtrees, and
// reports whether every difference is a gitlink on both sides.
func onlyGitlinksDiffer(s storer.EncodedObjectStorer, a, b plumbing.Hash) (bool, error) {
	if a == b {
		return true, nil
	}
	ea, err := readTree(s, a)
	if err != nil {
		return false, err
	}
	eb, err := readTree(s, b)
	if err != nil {
		return false, err
	}
	byName := map[string]object.TreeEntry{}
	for _, e := range ea {
		byName[e.Name] = e
	}
	for _, e := range eb {
		o, ok := byName[e.Name]
		delete(byName, e.Name)
		switch {
		case ok && o.Hash == e.Hash && o.Mode == e.Mode:
		case ok && o.Mode == filemode.Submodule && e.Mode == filemode.Submodule:
		case ok && o.Mode == filemode.Dir && e.Mode == filemode.Dir:
			same, err := onlyGitlinksDiffer(s, o.Hash, e.Hash)
			if err != nil || !same {
				return false, err
			}
		default:
			return false, nil
		}
	}
	return len(byName) == 0, nil
}
