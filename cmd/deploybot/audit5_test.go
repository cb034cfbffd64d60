package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
)

// TestGerritReworkedBehindTheBotIsNotDeployed runs through the real bot
// the race a release engineer fears: the bot checks patch set 1 of a
// change; before its vote lands, someone uploads patch set 2 with other
// content and submits it. The change is merged, but not with what the bot
// checked: the deployment must fail, say why in one plain line, and leave
// every host on what it served.
func TestGerritReworkedBehindTheBotIsNotDeployed(t *testing.T) {
	t.Parallel()
	gs := newGerritSandbox(t)
	g := gs.g
	base := gs.head()
	g.BeforeReview = func(n int) {
		if n != gs.good || g.Status(n) != gerrit.StatusNew {
			return
		}
		g.NewPatchSet(n, map[string]string{"README.md": "# never checked by the bot\n"})
		g.Vote(n, "carol", gerrit.CodeReview, 2)
		if err := g.Submit(n); err != nil {
			t.Error(err)
		}
	}
	gs.say("alice", "!backport "+strconv.Itoa(gs.good))
	n := gs.wait(1, time.Minute, finished...)
	d := gs.get(1)
	if d.State != deployer.StateFailed {
		t.Fatalf("deployment #1 ended %s (%s); want it refused\n%s", d.State, d.Reason, gs.noticeText(1))
	}
	for _, want := range []string{"merged as patch set 2", "I checked and approved patch set 1", "nothing was deployed"} {
		if !strings.Contains(d.Reason, want) || !strings.Contains(n.Text, want) {
			t.Errorf("reason %q / said %q lacks %q", d.Reason, n.Text, want)
		}
	}
	if strings.Contains(n.Text, "gerrit: ") || strings.Contains(n.Text, "internal error") {
		t.Errorf("the channel got an error chain: %q", n.Text)
	}
	gs.expect(all(base))
}
