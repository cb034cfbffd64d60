package bot

import "strings"

// Grammar is how a chat line is read as a command. Bot reads every message
// with it; an adapter that must tell a command from chatter before the bot
// answers (Slack marks commands with a reaction) uses the same one, so the
// two never disagree.
type Grammar struct {
	Name   string // what people address the bot as: "deploybot: status"
	Prefix string // the command prefix: "!status"
}

// Grammar returns the bot's grammar: its name and its prefix.
func (b *Bot) Grammar() Grammar { return Grammar{Name: b.Name, Prefix: b.Prefix} }

// Parse finds a command in a message: "!status 3", "deploybot: status 3",
// "deploybot, status", or a bare "verified" (the answer to a ping). The
// name is lower case; ok is false for anything else.
func (g Grammar) Parse(text string) (name string, args []string, ok bool) {
	text = strings.TrimSpace(text)
	lower := strings.ToLower(text)
	name = strings.ToLower(g.Name)
	switch {
	case g.Prefix != "" && strings.HasPrefix(text, g.Prefix):
		text = text[len(g.Prefix):]
	case name != "" && strings.HasPrefix(lower, name) && len(text) > len(name) && strings.ContainsRune(":, ", rune(text[len(name)])):
		text = strings.TrimLeft(text[len(name):], ":, ")
		text = strings.TrimPrefix(text, g.Prefix)
	default:
		f := strings.Fields(lower)
		if len(f) > 0 && (f[0] == "verified" || f[0] == "verified.") && len(f) <= 2 {
			return "verified", f[1:], true
		}
		return "", nil, false
	}
	f := strings.Fields(text)
	if len(f) == 0 {
		return "", nil, false
	}
	return strings.ToLower(f[0]), f[1:], true
}
