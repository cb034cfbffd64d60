package bot

import (
	"fmt"
	"strings"
)

// whoami answers "who does the bot think I am": the identities the
// adapter proved for the sender, the person they match in `people`, and
// whether that makes the sender a deployer, with what to write in the
// configuration when it does not. On a server without services it is how
// a newcomer learns the mask to put in `irc:mask:`.
func (b *Bot) whoami(m Message, who string, args []string) ([]string, error) {
	s := m.Sender
	var lines []string
	switch {
	case len(s.Keys) == 0:
		lines = append(lines, fmt.Sprintf("%s: %s proves no identity for you, so you can never deploy from there.", s.Nick, s.Adapter))
	case s.Adapter == "irc" && !strings.HasPrefix(s.Keys[0], "irc:account:"):
		lines = append(lines, fmt.Sprintf("%s: I see you as %s (no services account: this server vouches for none, so only your mask is known).", s.Nick, s.Keys[0]))
	default:
		lines = append(lines, fmt.Sprintf("%s: I see you as %s.", s.Nick, strings.Join(s.Keys, " and ")))
	}
	p, glob := b.Dir.personMatch(s)
	if p != nil {
		lines = append(lines, fmt.Sprintf("In people you are %s (chat: %s matches).", p.Name, glob))
	} else {
		lines = append(lines, "No people entry matches you.")
	}
	if rule := b.Dir.deployerRule(s, p); rule != "" {
		lines = append(lines, fmt.Sprintf("You are a deployer: access.deployers has %q.", rule))
		return []string{strings.Join(lines, " ")}, nil
	}
	key := suggestKey(s)
	switch {
	case key == "":
		lines = append(lines, "You are not a deployer.")
	case p != nil:
		lines = append(lines, fmt.Sprintf("You are not a deployer: to make you one, add %q to access.deployers.", p.Name))
	default:
		lines = append(lines, fmt.Sprintf("You are not a deployer: to make you one, add a people entry with chat: [%q] and its name to access.deployers.", key))
	}
	return []string{strings.Join(lines, " ")}, nil
}

// suggestKey is the identity to write in the configuration for s: the
// services account when there is one, else the mask with any nick (a nick
// proves nothing and changes), keeping the user and host, which the server
// reports.
func suggestKey(s Sender) string {
	for _, k := range s.Keys {
		if strings.HasPrefix(k, "irc:account:") {
			return k
		}
	}
	for _, k := range s.Keys {
		if rest, ok := strings.CutPrefix(k, "irc:mask:"); ok {
			if _, uh, ok := strings.Cut(rest, "!"); ok {
				return "irc:mask:*!" + uh
			}
			return k
		}
	}
	if len(s.Keys) > 0 {
		return s.Keys[0]
	}
	return ""
}

// personMatch is PersonOf, with the chat glob that matched. The keys are
// tried strongest first.
func (dir *Directory) personMatch(s Sender) (*Person, string) {
	for _, k := range s.Keys {
		for i := range dir.People {
			for _, g := range dir.People[i].Chat {
				if matchKey(g, []string{k}) {
					return &dir.People[i], g
				}
			}
		}
	}
	return nil, ""
}

// deployerRule is the access.deployers entry that makes s a deployer, or
// "" (the same decision as IsDeployer).
func (dir *Directory) deployerRule(s Sender, p *Person) string {
	for _, d := range dir.Deployers {
		if p != nil && d == p.Name {
			return d
		}
		if strings.Contains(d, ":") && matchKey(d, s.Keys) {
			return d
		}
	}
	return ""
}
