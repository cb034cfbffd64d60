package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// CheckRemotes asks every component's remote for its branches (git
// ls-remote, nothing is fetched) and returns one line per component whose
// remote cannot be reached or lacks the branch: what check-config reports
// as an unreachable remote.
func CheckRemotes(ctx context.Context, comps []Component) []string {
	var out []string
	for _, c := range comps {
		url := absLocalPath(c.URL)
		rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "check", URLs: []string{url}})
		refs, err := rem.ListContext(ctx, &git.ListOptions{})
		if err != nil {
			out = append(out, fmt.Sprintf("component %s: its remote %s cannot be reached (%v)", c.name(), c.URL, err))
			continue
		}
		found := false
		want := plumbing.NewBranchReferenceName(c.Branch)
		for _, r := range refs {
			found = found || r.Name() == want
		}
		if !found {
			out = append(out, fmt.Sprintf("component %s: %s has no branch %s", c.name(), c.URL, c.Branch))
		}
	}
	return out
}

// CheckSubmodulePaths checks, by fetching the branch tip of every
// component that encloses another (a shallow fetch into memory; the
// staging repository is not touched), that each enclosed component sits
// exactly on one of the enclosing component's submodules: the only place
// two components may overlap. It returns one line per misplaced
// component, keyed by its path: one nested inside a submodule path it
// does not own, or one placed over a directory of the enclosing
// component's own files (except the root's: a release branch's directory
// sits beside the configuration repository's files). Only the enclosing component's own .gitmodules
// is read (not its submodules' submodules).
func CheckSubmodulePaths(ctx context.Context, comps []Component) map[string]string {
	out := map[string]string{}
	for _, outer := range comps {
		var inner []Component
		for _, c := range comps {
			if c.Path != outer.Path && within(c.Path, outer.Path) && enclosing(comps, c.Path) == outer.Path {
				inner = append(inner, c)
			}
		}
		if len(inner) == 0 || !outer.Submodules {
			continue // config.CheckComponents refuses components inside one that does not follow submodules
		}
		subs, err := tipSubmodules(ctx, outer)
		if err != nil {
			for _, c := range inner {
				out[c.Path] = fmt.Sprintf("component %s: I could not read the submodules of component %s to check its place (%v)", c.name(), outer.name(), err)
			}
			continue
		}
		for _, c := range inner {
			rel := c.Path
			if outer.Path != "" {
				rel = strings.TrimPrefix(c.Path, outer.Path+"/")
			}
			placed := false
			for _, sm := range subs {
				switch {
				case rel == sm.Path:
					placed = true
				case within(rel, sm.Path):
					out[c.Path] = fmt.Sprintf("component %s lies inside submodule %s of component %s, which it does not own; configure it at %s or not at all",
						c.name(), joinPath(outer.Path, sm.Path), outer.name(), joinPath(outer.Path, sm.Path))
					placed = true
				}
			}
			if !placed && outer.Path != "" { // the root's other directories may hold components
				out[c.Path] = fmt.Sprintf("component %s lies inside component %s at a path that is not one of its submodules (overlapping paths): a component may only replace a submodule", c.name(), outer.name())
			}
		}
	}
	return out
}

// enclosing returns the path of the deepest component strictly enclosing p.
func enclosing(comps []Component, p string) string {
	best := ""
	for _, c := range comps {
		if c.Path != p && within(p, c.Path) && len(c.Path) >= len(best) {
			best = c.Path
		}
	}
	return best
}

// tipSubmodules fetches c's branch tip shallowly into memory and lists its
// submodules.
func tipSubmodules(ctx context.Context, c Component) ([]submodule, error) {
	st, tree, err := fetchTip(ctx, c)
	if err != nil {
		return nil, err
	}
	return submodules(st, tree)
}

// fetchTip fetches c's branch tip shallowly into memory (the staging
// repository is not touched) and returns the storage and the tip's tree.
func fetchTip(ctx context.Context, c Component) (*memory.Storage, plumbing.Hash, error) {
	st := memory.NewStorage()
	rem := git.NewRemote(st, &config.RemoteConfig{Name: "check", URLs: []string{absLocalPath(c.URL)}})
	ref := plumbing.NewBranchReferenceName(c.Branch)
	err := rem.FetchContext(ctx, &git.FetchOptions{Depth: 1, Tags: git.NoTags,
		RefSpecs: []config.RefSpec{config.RefSpec("+" + ref.String() + ":" + ref.String())}})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, plumbing.ZeroHash, err
	}
	r, err := st.Reference(ref)
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	co, err := object.GetCommit(st, r.Hash())
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	return st, co.TreeHash, nil
}
