package bot

import "testing"

// Regression tests from the fourth audit (the chat side): who a sender
// is. Each names the defect it pins.

// TestIRCMasksMatchAsTheServerComparesNicks: an IRC server treats Bob and
// bob, and bob[m] and bob{m}, as one nick (strict RFC 1459 case mapping),
// so only one person can hold it. Masks were matched byte for byte with
// path.Match: Bob, connected as "Bob", was told he is not Bob, and in
// irc:mask:bob[m]!... the brackets were a character class, which matched
// the free nick "bobm" and never the real "bob[m]".
func TestIRCMasksMatchAsTheServerComparesNicks(t *testing.T) {
	dir := &Directory{
		People: []Person{
			{Name: "Bob", Chat: []string{"irc:mask:bob!~bob@127.0.0.1"}},
			{Name: "Dan", Chat: []string{"irc:mask:dan[m]!dan@host.example"}},
			{Name: "Erin", Chat: []string{"irc:account:Erin"}},
		},
	}
	for _, c := range []struct {
		key, want string
	}{
		{"irc:mask:Bob!~bob@127.0.0.1", "Bob"},
		{"irc:mask:BOB!~bob@127.0.0.1", "Bob"},
		{"irc:mask:bob!~bob@127.0.0.1", "Bob"},
		{"irc:mask:bob_!~bob@127.0.0.1", ""},
		{"irc:mask:dan[m]!dan@host.example", "Dan"},
		{"irc:mask:Dan{M}!dan@HOST.example", "Dan"},
		{"irc:mask:danm!dan@host.example", ""},
		{"irc:account:erin", "Erin"},
		{"irc:account:erinx", ""},
	} {
		got := ""
		if p := dir.PersonOf(Sender{Adapter: "irc", Keys: []string{c.key}}); p != nil {
			got = p.Name
		}
		if got != c.want {
			t.Errorf("%s is %q, want %q", c.key, got, c.want)
		}
	}
}

// TestAnAccountOutranksAnotherPersonsMask: a sender's keys come strongest
// first (the services account, then the mask), and the account is the
// identity recorded. PersonOf went through people in their order instead,
// so Bob, logged in to his account, who came from a host an earlier
// person's mask names (a shared bastion), was taken for that person: his
// !backport was refused and his answers were recorded under her name.
func TestAnAccountOutranksAnotherPersonsMask(t *testing.T) {
	dir := &Directory{
		People: []Person{
			{Name: "Carol", Chat: []string{"irc:mask:*!*@bastion.example.org"}},
			{Name: "Bob", Chat: []string{"irc:account:bob"}},
		},
		Deployers: []string{"Bob"},
	}
	bob := Sender{Adapter: "irc", Nick: "bob", Keys: []string{"irc:account:bob", "irc:mask:bob!bob@bastion.example.org"}}
	if got := dir.Identity(bob); got != "Bob" {
		t.Errorf("Bob, logged in as bob, is recorded as %q", got)
	}
	if !dir.IsDeployer(bob) {
		t.Error("Bob, a deployer logged in as bob, may not deploy")
	}
	carol := Sender{Adapter: "irc", Nick: "carol", Keys: []string{"irc:mask:carol!carol@bastion.example.org"}}
	if got := dir.Identity(carol); got != "Carol" {
		t.Errorf("Carol is recorded as %q", got)
	}
}

// TestMentionOfAnIPv6Mask: a person without a people entry is recorded by
// the mask (an !add of a change with no known author names them its
// submitter, pinged when the window opens). A mask with an IPv6 host
// ("dan!~dan@2001:db8::1") was cut at its last colon: the ping went to
// "1", or to nobody for a host ending in "::".
func TestMentionOfAnIPv6Mask(t *testing.T) {
	dir := &Directory{}
	for _, c := range []struct{ adapter, who, want string }{
		{"irc", "irc:mask:dan!~dan@2001:db8::1", "dan"},
		{"irc", "irc:mask:dan!~dan@2001:db8::", "dan"},
		{"slack", "irc:mask:dan!~dan@::1", "dan"},
		{"irc", "irc:mask:dan!d@h", "dan"},
		{"irc", "irc:account:erin", "erin"},
		{"slack", "slack:U0ERIN1", "U0ERIN1"},
	} {
		if got := dir.Mention(c.adapter, c.who); got != c.want {
			t.Errorf("Mention(%s, %s) = %q, want %q", c.adapter, c.who, got, c.want)
		}
	}
}
