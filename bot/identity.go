package bot

import (
	"path"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// Sender is who wrote a message, as the adapter could verify it. Keys are
// the identities the adapter proved, each with its adapter's scheme:
// "console:alice", "irc:account:alice" (services account), "irc:mask:
// alice!a@host" (a mask, weaker), "slack:U012AB3CD". Nick is the name to
// address the sender by in replies on that adapter. A nick is never a key:
// anybody can take a nick.
type Sender struct {
	Adapter string
	Keys    []string
	Nick    string
}

// Person links one human's identities (see config.Person).
type Person struct {
	Name   string
	Emails []string
	Gerrit string
	Chat   []string // identity globs, e.g. "irc:account:bob", "slack:U1"
	Nick   string   // console name / IRC nick to ping
	Slack  string   // Slack user id to mention
}

// Directory answers who is who: it maps chat senders, commit authors and
// Gerrit accounts to people, and decides who is a deployer.
type Directory struct {
	People    []Person
	Deployers []string // identity globs or people's names
}

// matchKey reports whether an identity glob matches one of keys. IRC
// identities match as IRC servers compare masks: '*' and '?' are the only
// wildcards, and case is folded the strict RFC 1459 way (Bob is bob,
// bob[m] is bob{m}), since the server lets only one person hold a nick
// under that folding. Other identities use path.Match syntax, except that
// '/' has no special meaning.
func matchKey(glob string, keys []string) bool {
	for _, k := range keys {
		if glob == k {
			return true
		}
		if strings.HasPrefix(glob, "irc:") {
			if strings.HasPrefix(k, "irc:") && wildMatch(ircFold(glob), ircFold(k)) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(strings.ReplaceAll(glob, "/", "\x00"), strings.ReplaceAll(k, "/", "\x00")); ok {
			return true
		}
	}
	return false
}

// ircFold folds s the strict RFC 1459 way: A-Z are a-z, and [ ] \ are
// { } |.
func ircFold(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r == '[':
			return '{'
		case r == ']':
			return '}'
		case r == '\\':
			return '|'
		}
		return r
	}, s)
}

// wildMatch matches s against an IRC mask pattern: '*' is any run of
// characters, '?' any one character, everything else stands for itself.
func wildMatch(pattern, s string) bool {
	p, t := []rune(pattern), []rune(s)
	pi, ti := 0, 0
	starP, starT := -1, 0 // where to go back to after the last '*'
	for ti < len(t) {
		switch {
		case pi < len(p) && p[pi] == '*':
			starP, starT = pi, ti
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case starP >= 0:
			starT++
			pi, ti = starP+1, starT
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// PersonOf returns the person a sender proved to be, or nil. The
// sender's keys are tried in their order, strongest first, so a services
// account outranks another person's mask that happens to match too.
func (dir *Directory) PersonOf(s Sender) *Person {
	p, _ := dir.personMatch(s)
	return p
}

// Identity is the name recorded for a sender in deployments: the person's
// name when known, else the sender's strongest key.
func (dir *Directory) Identity(s Sender) string {
	if p := dir.PersonOf(s); p != nil {
		return p.Name
	}
	if len(s.Keys) > 0 {
		return s.Keys[0]
	}
	return s.Adapter + ":" + s.Nick
}

// IsDeployer reports whether the sender may deploy.
func (dir *Directory) IsDeployer(s Sender) bool {
	p := dir.PersonOf(s)
	for _, d := range dir.Deployers {
		if p != nil && d == p.Name {
			return true
		}
		if strings.Contains(d, ":") && matchKey(d, s.Keys) {
			return true
		}
	}
	return false
}

// Is reports whether the sender is the person or identity recorded as who.
func (dir *Directory) Is(s Sender, who string) bool {
	if who == "" {
		return false
	}
	if p := dir.PersonOf(s); p != nil && p.Name == who {
		return true
	}
	for _, k := range s.Keys {
		if k == who {
			return true
		}
	}
	return false
}

// Submitter maps a deployment's changes to the person who should verify
// it: the author (or Gerrit owner) of the last change who is a known
// person. It returns "" when none is known.
func (dir *Directory) Submitter(changes []deployer.Change) string {
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		for _, p := range dir.People {
			if c.Owner != "" && p.Gerrit == c.Owner {
				return p.Name
			}
			for _, e := range p.Emails {
				if c.AuthorEmail != "" && strings.EqualFold(e, c.AuthorEmail) {
					return p.Name
				}
			}
			if c.Author != "" && p.Name == c.Author {
				return p.Name
			}
		}
	}
	return ""
}

// Mention returns how to address who (a person's name or an identity) on
// an adapter: the person's nick or Slack id, or the identity's own name.
func (dir *Directory) Mention(adapter, who string) string {
	for _, p := range dir.People {
		if p.Name != who {
			continue
		}
		if adapter == "slack" && p.Slack != "" {
			return p.Slack
		}
		if adapter != "slack" && p.Nick != "" {
			return p.Nick
		}
		return p.Name
	}
	// An identity like "irc:mask:bob!b@h" or "console:bob". A mask is
	// cut at its '!': its host may hold colons (IPv6).
	if mask, ok := strings.CutPrefix(who, "irc:mask:"); ok {
		nick, _, _ := strings.Cut(mask, "!")
		return nick
	}
	rest := who
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		rest = rest[i+1:]
	}
	if i := strings.Index(rest, "!"); i > 0 {
		rest = rest[:i]
	}
	return rest
}
