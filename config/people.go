package config

import "go.yaml.in/yaml/v3"

// Person links one human's identities: as a commit author, in Gerrit and
// in each chat.
type Person struct {
	Name   string   `yaml:"name"`
	Emails []string `yaml:"emails"`
	Gerrit string   `yaml:"gerrit"`
	// Chat lists identities (globs allowed) that prove a chat sender is
	// this person, e.g. console:bob, irc:account:bob, slack:U012AB3CD.
	Chat []string `yaml:"chat"`
	// Nick is who to ping: the console name or IRC nick.
	Nick  string `yaml:"nick"`
	Slack string `yaml:"slack"` // Slack user id to mention
}

// checkPeople checks that every person has a name of their own.
func checkPeople(people []Person, root *yaml.Node) Problems {
	var ps Problems
	names := map[string]bool{}
	for i, p := range people {
		line := itemLine(root, i, "people")
		if p.Name == "" {
			ps.add(line, "a person needs a name")
		} else if names[p.Name] {
			ps.add(line, "person %q is listed twice", p.Name)
		}
		names[p.Name] = true
	}
	return ps
}
