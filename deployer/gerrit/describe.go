package gerrit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// The window's `!add` asks the source what a ref names before anything is
// deployed (deployer.ChangeDescriber): who may add it, and whom to ping
// when the window opens.

var (
	_ deployer.ChangeDescriber = (*Source)(nil)
	_ deployer.ChangeDescriber = (*Composite)(nil)
)

// Describe looks change ref (a number or a link) up over Gerrit's REST
// API and describes it as a deployment would: its number, subject,
// author, owner, link and Bug: lines. A change that is not found, is for
// a project or branch the bot does not deploy, or is abandoned is
// refused as !backport would refuse it.
func (s *Source) Describe(ref string) (deployer.Change, error) {
	ch, _, err := s.describe(context.Background(), ref, s.inProject)
	return ch, err
}

// Describe is Source.Describe over every configured project and branch;
// a change is placed where it lands (Change.Component: a component's
// path, or a followed submodule's deploy path). A component:ref is
// described by the git composite.
func (c *Composite) Describe(ref string) (deployer.Change, error) {
	ctx := context.Background()
	if !isChangeRef(ref) && strings.Contains(ref, ":") {
		return c.git.DescribeRef(ctx, ref)
	}
	tbl, err := c.table(ctx)
	if err != nil {
		return deployer.Change{}, err
	}
	ch, ci, err := c.src.describe(ctx, ref, c.scope(tbl))
	if err != nil {
		return deployer.Change{}, err
	}
	if ts := tbl[branchKey{ci.Project, ci.Branch}]; len(ts) > 0 {
		ch.Component = ts[0].comp.Path
		if ts[0].sub != nil {
			ch.Component = ts[0].where
		}
	}
	return ch, nil
}

// describe is Describe with the scope of the source asking.
func (s *Source) describe(ctx context.Context, ref string, in scope) (deployer.Change, *ChangeInfo, error) {
	r, err := ParseRef(ref, s.base)
	if err != nil {
		return deployer.Change{}, nil, err
	}
	ci, err := s.api.change(ctx, r.Number)
	switch {
	case statusOf(err) == http.StatusNotFound:
		return deployer.Change{}, nil, deployer.Errorf(deployer.ENotFound, "change %d was not found on %s", r.Number, s.base.Host)
	case err != nil:
		return deployer.Change{}, nil, s.internal(ctx, "looking up a change", err, r.Number)
	}
	name := fmt.Sprintf("change %d (%s)", ci.Number, clip(ci.Subject))
	if msg := in(ci); msg != "" {
		return deployer.Change{}, nil, deployer.Errorf(deployer.EInvalid, "%s %s", name, msg)
	}
	if ci.Status == StatusAbandoned {
		return deployer.Change{}, nil, deployer.Errorf(deployer.EInvalid, "%s is abandoned; restore it first", name)
	}
	ch := deployer.Change{
		ID:      strconv.Itoa(ci.Number),
		Subject: ci.Subject,
		Owner:   ci.Owner.Username,
		URL:     s.link(ci),
	}
	if _, commit := ci.current(); commit != nil {
		ch.Author, ch.AuthorEmail = commit.Author.Name, commit.Author.Email
		ch.Bugs = gitrepo.Bugs(commit.Message)
	}
	return ch, ci, nil
}
