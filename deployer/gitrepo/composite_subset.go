package gitrepo

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// A composite deployment's parts are staged by the staging Repo
// (subset.go): each change carries its component's or submodule's deploy
// path, so its commit's files land where the composition put them.

var _ deployer.ChangeDescriber = (*Composite)(nil)

// Describe implements deployer.ChangeDescriber: what a ref ("where:ref"
// or a bare ref, as Prepare takes them) names, after fetching, for a
// window's list. The change's Component is where it deploys, so the
// window deploys it as Component:ID.
func (c *Composite) Describe(ref string) (deployer.Change, error) {
	r, err := parseCRef(ref)
	if err != nil {
		return deployer.Change{}, err
	}
	ctx := context.Background()
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
	ch.Component = states[r.comp].Path
	if r.sub != "" {
		ch.Component = joinPath(ch.Component, r.sub)
	}
	return ch, nil
}
