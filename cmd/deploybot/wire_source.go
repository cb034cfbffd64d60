package main

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// stagingUpstream is the repository and branch the staging repository
// fetches for the configured source: the git remote, or the Gerrit
// project's git URL. For a composite source it is the first component by
// path (the root, when there is one); the composite fetches every
// component itself.
func stagingUpstream(c *config.Config) gitrepo.Upstream {
	if comps := components(c); len(comps) > 0 {
		first := comps[0]
		for _, comp := range comps {
			if comp.Path < first.Path {
				first = comp
			}
		}
		return gitrepo.Upstream{URL: first.URL, Branch: first.Branch}
	}
	if c.Source.Type == "gerrit" {
		return gitrepo.Upstream{URL: c.Source.Gerrit.GitURL, Branch: c.Source.Gerrit.Branch}
	}
	return gitrepo.Upstream{URL: c.Source.Git.URL, Branch: c.Source.Git.Branch}
}

// components maps source.components onto gitrepo's components, one for one.
func components(c *config.Config) []gitrepo.Component {
	var out []gitrepo.Component
	for _, sc := range c.Source.Components {
		out = append(out, gitrepo.Component{Name: sc.Name, Path: sc.Path, URL: sc.URL, Branch: sc.Branch, Submodules: sc.Submodules})
	}
	return out
}

// changeSource builds the change source the configuration names, around
// the staging repository (which Open has opened on stagingUpstream). Every
// source is a deployer.Reverter, so the runner blocks and reverts what a
// rollback blames. With source.components the git source is the
// composite (gitrepo.Composite) and the gerrit source the Gerrit
// composite on top of it (gerrit.Composite); without them each is the one
// repository or project, the one-component case.
func (m *Main) changeSource(c *config.Config) (deployer.ChangeSource, error) {
	switch c.Source.Type {
	case "gerrit":
		pw, err := c.GerritPassword()
		if err != nil {
			return nil, err
		}
		g := c.Source.Gerrit
		gc := gerrit.Config{
			URL: g.URL, Project: g.Project, Branch: g.Branch,
			Username: g.Username, Password: pw, Approve: g.Approve,
			MergeTimeout: g.MergeTimeout.D(), PollInterval: g.PollInterval.D(),
			Logger: m.Logger,
		}
		if len(c.Source.Components) > 0 {
			return m.gerritComposite(c, gc)
		}
		src, err := gerrit.New(gc, m.Staging)
		if err != nil {
			return nil, fmt.Errorf("source.gerrit: %w", err)
		}
		return src, nil
	case "git":
		if comps := components(c); len(comps) > 0 {
			src, err := gitrepo.NewComposite(m.Staging, comps)
			if err != nil {
				return nil, fmt.Errorf("source.components: %w", err)
			}
			src.Push, src.Log = c.Source.Git.PushReverts, m.Logger
			return src, nil
		}
		return &gitrepo.Reverter{Repo: m.Staging, Push: c.Source.Git.PushReverts, Log: m.Logger}, nil
	}
	return nil, fmt.Errorf("source type %q is not supported (use git or gerrit)", c.Source.Type)
}

// gerritComposite is the Gerrit source over source.components: the git
// composite stages, Gerrit resolves, merges and reverts changes of every
// component's project (gerrit.Composite).
func (m *Main) gerritComposite(c *config.Config, gc gerrit.Config) (deployer.ChangeSource, error) {
	git, err := gitrepo.NewComposite(m.Staging, components(c))
	if err != nil {
		return nil, fmt.Errorf("source.components: %w", err)
	}
	git.Push, git.Log = c.Source.Git.PushReverts, m.Logger
	src, err := gerrit.NewComposite(gc, m.Staging, git, gerritComponents(c))
	if err != nil {
		return nil, fmt.Errorf("source.components: %w", err)
	}
	return src, nil
}

// gerritComponents pairs each component with its Gerrit project.
func gerritComponents(c *config.Config) []gerrit.Component {
	var out []gerrit.Component
	for i, comp := range components(c) {
		out = append(out, gerrit.Component{Component: comp, Project: c.Source.Components[i].Project})
	}
	return out
}

// checkSourceRemotes is check-config's online part for a composite
// source: every component's remote answers and has its branch
// (gitrepo.CheckRemotes), and every component nested in another sits
// exactly on one of its submodules (gitrepo.CheckSubmodulePaths). Each
// problem is at its component's line.
func checkSourceRemotes(ctx context.Context, c *config.Config) config.Problems {
	var ps config.Problems
	comps := components(c)
	for i := range comps {
		for _, msg := range gitrepo.CheckRemotes(ctx, comps[i:i+1]) {
			ps = append(ps, config.Problem{Line: c.Source.Components[i].Line, Msg: "source.components: " + msg})
		}
	}
	if len(ps) > 0 {
		return ps // the submodule check would only fail to fetch again
	}
	nested := gitrepo.CheckSubmodulePaths(ctx, comps)
	for i, comp := range comps {
		if msg, ok := nested[comp.Path]; ok {
			ps = append(ps, config.Problem{Line: c.Source.Components[i].Line, Msg: "source.components: " + msg})
		}
	}
	if c.Source.Type == "gerrit" {
		// A followed submodule must be a project of the Gerrit, or its
		// changes cannot be backported by number.
		unknown := gerrit.CheckSubmoduleProjects(ctx, c.Source.Gerrit.URL, gerritComponents(c))
		for i := range comps {
			for _, msg := range unknown[i] {
				ps = append(ps, config.Problem{Line: c.Source.Components[i].Line, Msg: "source.components: " + msg})
			}
		}
	}
	return ps
}
