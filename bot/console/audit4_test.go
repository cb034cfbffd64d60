package console

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestRelayedTextCannotDriveTheTerminal (fourth audit): the console
// printed what the bot relays (a change's subject, a host's error) as it
// came, so a subject could carry terminal escape sequences to the
// operator's terminal: clear the screen, set its title, write the
// clipboard (OSC 52) or, with a carriage return, print over the line it
// is on. Control characters are left out; the words stay.
func TestRelayedTextCannotDriveTheTerminal(t *testing.T) {
	out := &testparts.Buffer{}
	c := &Console{Out: out, User: "alice"}
	subject := "Fix\x1b[2J\x1b[H the \x1b]52;c;ZXZpbA==\x07frobnicator\r[#5] verified by Alice \u009b31mred"
	c.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeStarted, Text: "started: 1a2b3c4d5e (" + subject + ")\nsecond\tline"}, []string{"bob"})
	got := out.String()
	for _, r := range strings.TrimSuffix(got, "\n") {
		if (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r < 0xa0) {
			t.Errorf("the console printed control character %U: %q", r, got)
			break
		}
	}
	for _, want := range []string{"<deploybot> bob: [#5] started: 1a2b3c4d5e (Fix", "frobnicator", "second\tline"} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q: %q", want, got)
		}
	}
}
