package config

import "go.yaml.in/yaml/v3"

// Access lists who may deploy.
type Access struct {
	// Deployers are identities (console:alice, irc:account:alice,
	// irc:mask:*!alice@example/*, slack:U012AB3CD) or names of people.
	Deployers []string `yaml:"deployers"`
}

func (a *Access) check(root *yaml.Node) Problems {
	var ps Problems
	if len(a.Deployers) == 0 {
		ps.add(lineOf(root, "access", "deployers"), "access.deployers is empty: nobody could deploy")
	}
	return ps
}
