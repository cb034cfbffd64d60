package main

import (
	"fmt"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// stagingUpstream is the repository and branch the staging repository
// fetches for the configured source: the git remote, or the Gerrit
// project's git URL.
func stagingUpstream(c *config.Config) gitrepo.Upstream {
	if c.Source.Type == "gerrit" {
		return gitrepo.Upstream{URL: c.Source.Gerrit.GitURL, Branch: c.Source.Gerrit.Branch}
	}
	return gitrepo.Upstream{URL: c.Source.Git.URL, Branch: c.Source.Git.Branch}
}

// changeSource builds the change source the configuration names, around
// the staging repository (which Open has opened on stagingUpstream). Both
// sources are deployer.Reverters, so the runner blocks and reverts what a
// rollback blames.
func (m *Main) changeSource(c *config.Config) (deployer.ChangeSource, error) {
	switch c.Source.Type {
	case "gerrit":
		pw, err := c.GerritPassword()
		if err != nil {
			return nil, err
		}
		g := c.Source.Gerrit
		src, err := gerrit.New(gerrit.Config{
			URL: g.URL, Project: g.Project, Branch: g.Branch,
			Username: g.Username, Password: pw, Approve: g.Approve,
			MergeTimeout: g.MergeTimeout.D(), PollInterval: g.PollInterval.D(),
			Logger: m.Logger,
		}, m.Staging)
		if err != nil {
			return nil, fmt.Errorf("source.gerrit: %w", err)
		}
		return src, nil
	case "git":
		return &gitrepo.Reverter{Repo: m.Staging, Push: c.Source.Git.PushReverts, Log: m.Logger}, nil
	}
	return nil, fmt.Errorf("source type %q is not supported (use git or gerrit)", c.Source.Type)
}
