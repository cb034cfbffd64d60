package config

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source says where changes come from.
type Source struct {
	Type   string       `yaml:"type"` // "git" or "gerrit"
	Git    GitSource    `yaml:"git"`
	Gerrit GerritSource `yaml:"gerrit"` // config/gerrit.go
	// Components, when given, make the deploy tree a composite of several
	// repositories (config/components.go, README "Components"): they
	// replace source.git's url and branch, or source.gerrit's project and
	// branch. Without them the one repository configured there is the
	// one-component case: the root, submodules not followed.
	Components []SourceComponent `yaml:"components"`
}

// GitSource is an upstream git remote and the branch deployed from it.
type GitSource struct {
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	// PushReverts lets a rollback push a revert commit to Branch when the
	// rolled-back commit is still its tip.
	PushReverts bool `yaml:"push_reverts"`
}

func (s *Source) defaults() {
	setDefault(&s.Type, "git")
	setDefault(&s.Git.Branch, "main")
	s.Gerrit.defaults()
	for i := range s.Components {
		c := &s.Components[i]
		if s.Type == "gerrit" && c.URL == "" && c.Project != "" && s.Gerrit.URL != "" {
			c.URL = strings.TrimSuffix(s.Gerrit.URL, "/") + "/" + c.Project
		}
	}
}

// check checks the source section: the type, and the settings of the
// source it names.
func (s *Source) check(root *yaml.Node) Problems {
	var ps Problems
	if len(s.Components) > 0 {
		return append(ps, s.checkComponents(root)...)
	}
	switch s.Type {
	case "git":
		if s.Git.URL == "" {
			ps.add(lineOf(root, "source", "git"), "source.git.url is required: the upstream repository (URL or local path)")
		}
	case "gerrit":
		ps = append(ps, s.Gerrit.check(root)...)
	default:
		ps.add(lineOf(root, "source", "type"), "source type %q is not supported (use git or gerrit)", s.Type)
	}
	return ps
}

// componentLines records the line of each component entry.
func (s *Source) componentLines(root *yaml.Node) {
	for i := range s.Components {
		s.Components[i].Line = itemLine(root, i, "source", "components")
	}
}

// checkComponents checks a composite source: the component list
// (CheckComponents), each problem at its component's line, and that the
// one-repository settings it replaces are not given as well.
func (s *Source) checkComponents(root *yaml.Node) Problems {
	var ps Problems
	for _, p := range checkComponents(s.Components) {
		ps.add(itemLine(root, p.i, "source", "components"), "%s", p.msg)
	}
	switch s.Type {
	case "git":
		for i, c := range s.Components {
			if c.Project != "" {
				ps.add(itemLine(root, i, "source", "components"), "%s: project is read only with source.type gerrit; give url", c.label())
			}
		}
		if s.Git.URL != "" {
			ps.add(lineOf(root, "source", "git", "url"), "give source.git.url or source.components, not both: the components say where every part of the tree comes from")
		}
	case "gerrit":
		g := s.Gerrit
		if g.Project != "" {
			ps.add(lineOf(root, "source", "gerrit", "project"), "give source.gerrit.project or source.components, not both: each component names its project")
		}
		g.Project = "-" // each component names its own
		ps = append(ps, g.check(root)...)
		for i, c := range s.Components {
			if c.Project == "" {
				ps.add(itemLine(root, i, "source", "components"), "%s: project is required with source.type gerrit (the Gerrit project its changes come from)", c.label())
			}
		}
	default:
		ps.add(lineOf(root, "source", "type"), "source type %q is not supported (use git or gerrit)", s.Type)
	}
	return ps
}

// resolvePaths makes the source's local paths relative to the
// configuration file's directory.
func (s *Source) resolvePaths(abs func(*string)) {
	if isLocalPath(s.Git.URL) {
		abs(&s.Git.URL)
	}
	s.Gerrit.resolvePaths(abs)
	for i := range s.Components {
		if isLocalPath(s.Components[i].URL) {
			abs(&s.Components[i].URL)
		}
	}
}

// isLocalPath reports whether a git URL is a path on this machine rather
// than a URL (scheme://) or an scp-style address (user@host:path).
func isLocalPath(u string) bool {
	return u != "" && !strings.Contains(u, "://") && !strings.Contains(u, "@")
}
