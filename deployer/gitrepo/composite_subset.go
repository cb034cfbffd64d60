package gitrepo

import (
	"context"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// A composite deployment's parts are staged by the staging Repo
// (subset.go): each change carries its component's or submodule's deploy
// path, so its commit's files land where the composition put them.

var _ deployer.ChangeDescriber = (*Composite)(nil)

// Describe implements deployer.ChangeDescriber for `add` with a git
// composite source: DescribeRef, whose ID is the component:commit ref the
// window deploys; a bare ref (found in exactly one component) keeps the
// bare commit id.
func (c *Composite) Describe(ref string) (deployer.Change, error) {
	ch, err := c.DescribeRef(context.Background(), ref)
	if err == nil && !strings.Contains(ref, ":") {
		ch.ID = ch.Commit
	}
	return ch, err
}
