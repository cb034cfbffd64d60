package irc

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// Regression tests from the fourth audit (the chat side). Each names the
// defect it pins.

// TestControlCodesFromChangesAreNotRelayed: a change's subject (anyone
// who can upload a change writes it) or a host's error text reaches the
// channel in the bot's notices. IRC control codes in it were relayed
// as they were: a colour code could paint the rest of the bot's line
// black on black (hiding "rolled back" after it), \x01 makes a line a
// CTCP request, and an ANSI escape from a host's stderr arrived raw. The
// bot itself uses no formatting, so what it relays carries none either;
// the words stay.
func TestControlCodesFromChangesAreNotRelayed(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")

	subject := "Fix \x0301,01the frobnicator\x0f \x02now\x02 \x1b[31mred\x1b[0m \x16\x1d\x1f\x1e\x11\x04ff0000x\x07"
	a.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeStarted, Text: "started: 1a2b3c4d5e: " + subject}, nil)
	// An answer's continuation line has no prefix: a CTCP there would be
	// read as the bot's own /me.
	a.enqueue("#deployments", "", "", []string{"\x01ACTION is rolling back everything\x01"})
	a.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeInfo, Text: "the end"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "[#4] the end")

	for _, l := range botLines(alice, "#deployments") {
		for _, r := range l {
			if r < 0x20 || r == 0x7f {
				t.Errorf("a line relayed control code %#x: %q", r, l)
				break
			}
		}
	}
	got := strings.Join(botLines(alice, "#deployments"), "|")
	for _, words := range []string{"the frobnicator", "now", "red", "ACTION is rolling back everything"} {
		if !strings.Contains(got, words) {
			t.Errorf("the words %q were lost: %s", words, got)
		}
	}
}
