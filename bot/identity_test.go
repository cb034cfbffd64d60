package bot

import (
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

func testDir() *Directory {
	return &Directory{
		People: []Person{
			{Name: "Alice Deployer", Emails: []string{"alice@example.org"}, Chat: []string{"console:alice", "irc:account:alice"}, Nick: "alice"},
			{Name: "Bob Submitter", Emails: []string{"Bob@Example.org"}, Gerrit: "bob", Chat: []string{"console:bob", "irc:mask:bob!*@bob.example"}, Nick: "bobby", Slack: "U0BOB"},
		},
		Deployers: []string{"Alice Deployer", "irc:mask:*!carol@ops.example"},
	}
}

func TestDeployers(t *testing.T) {
	dir := testDir()
	cases := []struct {
		name string
		s    Sender
		want bool
	}{
		{"person by console name", Sender{Adapter: "console", Keys: []string{"console:alice"}}, true},
		{"person by IRC account", Sender{Adapter: "irc", Keys: []string{"irc:account:alice"}, Nick: "whoever"}, true},
		{"nick alone grants nothing", Sender{Adapter: "irc", Keys: []string{"irc:mask:alice!x@evil.example"}, Nick: "alice"}, false},
		{"mask glob", Sender{Adapter: "irc", Keys: []string{"irc:mask:carol2!carol@ops.example"}}, true},
		{"mask glob, other host", Sender{Adapter: "irc", Keys: []string{"irc:mask:carol!carol@ops.example.evil"}}, false},
		{"submitter is not a deployer", Sender{Adapter: "console", Keys: []string{"console:bob"}}, false},
		{"stranger", Sender{Adapter: "console", Keys: []string{"console:mallory"}}, false},
		{"no keys", Sender{Adapter: "irc", Nick: "alice"}, false},
	}
	for _, c := range cases {
		if got := dir.IsDeployer(c.s); got != c.want {
			t.Errorf("%s: IsDeployer = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSubmitterAndMention(t *testing.T) {
	dir := testDir()
	got := dir.Submitter([]deployer.Change{{AuthorEmail: "carol@example.org"}, {AuthorEmail: "bob@example.org"}})
	if got != "Bob Submitter" {
		t.Errorf("Submitter by email (case-insensitive) = %q", got)
	}
	if got := dir.Submitter([]deployer.Change{{Owner: "bob"}}); got != "Bob Submitter" {
		t.Errorf("Submitter by Gerrit owner = %q", got)
	}
	if got := dir.Submitter([]deployer.Change{{AuthorEmail: "nobody@example.org"}}); got != "" {
		t.Errorf("unknown author = %q, want empty", got)
	}
	for _, c := range []struct{ adapter, who, want string }{
		{"irc", "Bob Submitter", "bobby"},
		{"slack", "Bob Submitter", "U0BOB"},
		{"slack", "Alice Deployer", "Alice Deployer"},
		{"console", "console:mallory", "mallory"},
		{"irc", "irc:mask:dan!d@h", "dan"},
	} {
		if got := dir.Mention(c.adapter, c.who); got != c.want {
			t.Errorf("Mention(%s, %s) = %q, want %q", c.adapter, c.who, got, c.want)
		}
	}
	bob := Sender{Adapter: "irc", Keys: []string{"irc:mask:bob!b@bob.example"}}
	if !dir.Is(bob, "Bob Submitter") || dir.Is(bob, "Alice Deployer") {
		t.Error("Is: bob's mask must match Bob Submitter only")
	}
	if got := dir.Identity(Sender{Adapter: "console", Keys: []string{"console:mallory"}}); got != "console:mallory" {
		t.Errorf("Identity of a stranger = %q", got)
	}
}

func TestParse(t *testing.T) {
	g := (&Bot{Name: "deploybot", Prefix: "!"}).Grammar()
	cases := []struct {
		text string
		name string
		args []string
		ok   bool
	}{
		{"!backport abc1234", "backport", []string{"abc1234"}, true},
		{"  !STATUS 3 ", "status", []string{"3"}, true},
		{"deploybot: status", "status", nil, true},
		{"deploybot, backport 123 --include-unexpected", "backport", []string{"123", "--include-unexpected"}, true},
		{"DeployBot: !queue", "queue", nil, true},
		{"verified", "verified", nil, true},
		{"Verified 12", "verified", []string{"12"}, true},
		{"I verified that yesterday, it was fine", "", nil, false},
		{"deploybotx: status", "", nil, false},
		{"hello there", "", nil, false},
		{"!", "", nil, false},
	}
	for _, c := range cases {
		name, args, ok := g.Parse(c.text)
		if ok != c.ok || name != c.name || len(args) != len(c.args) {
			t.Errorf("parse(%q) = %q %q %v, want %q %q %v", c.text, name, args, ok, c.name, c.args, c.ok)
			continue
		}
		for i := range args {
			if args[i] != c.args[i] {
				t.Errorf("parse(%q) args = %q, want %q", c.text, args, c.args)
			}
		}
	}
}
