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
}

// check checks the source section: the type, and the settings of the
// source it names.
func (s *Source) check(root *yaml.Node) Problems {
	var ps Problems
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

// resolvePaths makes the source's local paths relative to the
// configuration file's directory.
func (s *Source) resolvePaths(abs func(*string)) {
	if isLocalPath(s.Git.URL) {
		abs(&s.Git.URL)
	}
	s.Gerrit.resolvePaths(abs)
}

// isLocalPath reports whether a git URL is a path on this machine rather
// than a URL (scheme://) or an scp-style address (user@host:path).
func isLocalPath(u string) bool {
	return u != "" && !strings.Contains(u, "://") && !strings.Contains(u, "@")
}
