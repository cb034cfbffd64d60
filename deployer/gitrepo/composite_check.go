package gitrepo

import (
	"context"
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
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
