package config

import "go.yaml.in/yaml/v3"

// Chat configures the chat adapters; slack.go and irc.go hold theirs.
type Chat struct {
	Console *Console `yaml:"console"`
	Slack   *Slack   `yaml:"slack"`
	IRC     *IRC     `yaml:"irc"`
}

// Console is the standard-input adapter.
type Console struct {
	User string `yaml:"user"` // who a line on standard input is from
}

func (c *Chat) defaults(botName string) {
	c.Slack.defaults()
	c.IRC.defaults(botName)
}

// check wants at least one adapter, and checks each one configured.
func (c *Chat) check(root *yaml.Node) Problems {
	var ps Problems
	if c.Console == nil && c.Slack == nil && c.IRC == nil {
		ps.add(lineOf(root, "chat"), "no chat adapter is configured (chat.console, chat.slack or chat.irc)")
	} else if c.Console != nil && c.Console.User == "" {
		ps.add(lineOf(root, "chat", "console"), "chat.console.user is required: who the lines on standard input are from")
	}
	ps = append(ps, c.Slack.check(root)...)
	ps = append(ps, c.IRC.check(root)...)
	return ps
}
