package config

import (
	"fmt"
	"strings"
)

// SourceComponent is one part of a composite deploy tree (source.components):
// a git repository and branch placed at a path, the root ("") or a
// directory such as php-1.46.0-wmf.3, and whether its submodules are
// followed (fetched from their own URLs and deployed as files). See
// deployer/gitrepo.Component, which it maps to one for one.
//
// With source.type gerrit a component names its Gerrit Project; its URL
// then defaults to the site's URL/Project, where Gerrit serves anonymous
// clones.
type SourceComponent struct {
	Name       string `yaml:"name"` // how refs name it; default: the path, or "root"
	Path       string `yaml:"path"`
	URL        string `yaml:"url"`
	Project    string `yaml:"project"` // the Gerrit project (source.type gerrit)
	Branch     string `yaml:"branch"`
	Submodules bool   `yaml:"submodules"`
	// Line is where the entry starts in the file, for check-config's
	// online checks (set by Parse).
	Line int `yaml:"-"`
}

func (c SourceComponent) label() string {
	if c.Path == "" {
		return "source.components: the root component"
	}
	return fmt.Sprintf("source.components: component %q", c.Path)
}

// CheckComponents returns the problems of a component list that can be
// seen without fetching: malformed or repeated paths and names, missing
// URLs and branches, and a component nested inside another non-root
// component that does not follow submodules (it could only be placed
// over a submodule path the enclosing component owns). Whether a nested
// component sits exactly on a submodule, and whether every remote is
// reachable, is checked online (gitrepo.CheckComponents).
func CheckComponents(cs []SourceComponent) []string {
	var out []string
	for _, p := range checkComponents(cs) {
		out = append(out, p.msg)
	}
	return out
}

// componentProblem is one problem of a component list and the index of
// the component it is about, so that Load can name its line.
type componentProblem struct {
	i   int
	msg string
}

func checkComponents(cs []SourceComponent) []componentProblem {
	var ps []componentProblem
	paths, names := map[string]bool{}, map[string]bool{}
	for i, c := range cs {
		l := c.label()
		out := []string{}
		if !componentPathOK(c.Path) {
			out = append(out, l+": the path must be relative and slash-separated, without \".\", \"..\", \".git\", empty parts, \":\" or whitespace")
		}
		dup := paths[c.Path]
		if dup {
			out = append(out, l+": another component has the same path (overlapping paths)")
		}
		paths[c.Path] = true
		name := c.Name
		if name == "" {
			name = c.Path
			if name == "" {
				name = "root"
			}
		}
		if names[name] && !dup {
			out = append(out, fmt.Sprintf("%s: the name %q is taken by another component", l, name))
		}
		names[name] = true
		if strings.ContainsAny(c.Name, ": \t/") || strings.HasPrefix(c.Name, "-") {
			out = append(out, l+": a name may not hold \":\", \"/\" or whitespace, or start with \"-\"")
		}
		if c.URL == "" {
			out = append(out, l+": url is required")
		} else if strings.HasPrefix(c.URL, "-") || strings.ContainsAny(c.URL, " \t\n") {
			out = append(out, l+": the url may not start with \"-\" or hold whitespace")
		}
		if c.Branch == "" {
			out = append(out, l+": branch is required")
		}
		for _, m := range out {
			ps = append(ps, componentProblem{i, m})
		}
	}
	for i, inner := range cs {
		for _, outer := range cs {
			if outer.Path == "" || inner.Path == outer.Path || !strings.HasPrefix(inner.Path, outer.Path+"/") {
				continue
			}
			if !outer.Submodules {
				ps = append(ps, componentProblem{i, fmt.Sprintf("%s lies inside component %q, which does not follow submodules: components overlap only where the inner one replaces a submodule of the outer", inner.label(), outer.Path)})
			}
		}
	}
	return ps
}

func componentPathOK(p string) bool {
	if p == "" {
		return true
	}
	if strings.ContainsAny(p, " \t\n\\:") || strings.HasPrefix(p, "/") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(part, ".git") {
			return false
		}
	}
	return true
}
