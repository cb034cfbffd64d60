package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testparts"
)

// The first hour of a newcomer and an operator, against the real bot on a
// real ngircd: the start-up summary on the terminal and in the channel,
// !whoami, and a clean shutdown.

// TestIRCStartupSummaryAndWhoami starts the bot on ngircd with a log file
// (as `deploybot run` does): the terminal still gets the summary, the
// channel a one-line greeting, and !whoami tells a deployer and a stranger
// who the bot sees.
func TestIRCStartupSummaryAndWhoami(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	// Alice is in the channel before the bot comes, so she hears its
	// greeting.
	alice := testparts.JoinIRC(t, srv, "alice", deployChan)
	e := newE2E(t, testTimings, func(m *Main) {
		m.Config.Chat.Console = nil
		onTestIRC(m, srv.Port)
	})
	const patience = 30 * time.Second
	alice.AwaitPresent(patience, "deploybot", deployChan)
	base := e.head()
	greet := alice.AwaitText(patience, "deploybot", deployChan, "deploybot dev is here.",
		"testservers (1): mwdebug1001 on "+base[:10],
		"canaries (2): mw-canary1001, mw-canary1002 on "+base[:10],
		"production (4): ", "Dashboard: http://127.0.0.1:", "!help lists the commands.")
	if len(alice.Lines()) > 0 && alice.Lines()[0].Text != greet.Text {
		t.Errorf("the greeting is not the bot's first line: %s", alice.Lines()[0])
	}

	// The terminal: the summary, then the join, although log.file is set.
	waitOutput(t, e.out, patience, "irc: connected to 127.0.0.1:")
	out := e.out.String()
	for _, want := range []string{
		"deploybot dev started with " + filepath.Join(e.sb.Env.Dir, "deploybot.yaml"),
		fmt.Sprintf("  irc: 127.0.0.1:%d as deploybot, channel #deployments, log channel #operations; connecting", srv.Port),
		"  dashboard: " + e.sb.Main.dashboardURL(),
		"  testservers (1): mwdebug1001 on " + base[:10],
		"  production (4): mw1001, mw1002, mw1003, mw1004 on " + base[:10],
		"  log: " + filepath.Join(e.sb.Env.Dir, "deploybot.log"),
		fmt.Sprintf("irc: connected to 127.0.0.1:%d as deploybot, joined #deployments", srv.Port),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal lacks %q; it shows:\n%s", want, out)
		}
	}

	// !whoami: the mask ngircd reports (no services), the people entry,
	// deployer or not and what to write.
	alice.Say(deployChan, "!whoami")
	alice.AwaitText(patience, "deploybot", deployChan,
		"alice: I see you as irc:mask:alice!~alice@127.0.0.1 (no services account",
		"In people you are Alice Deployer (chat: irc:mask:alice!~alice@127.0.0.1 matches).",
		`You are a deployer: access.deployers has "Alice Deployer".`)
	mallory := testparts.JoinIRC(t, srv, "mallory", deployChan)
	mallory.Say("deploybot", "!whoami") // answered in private too
	mallory.AwaitText(patience, "deploybot", "mallory",
		"mallory: I see you as irc:mask:mallory!~mallory@127.0.0.1",
		"No people entry matches you.",
		`add a people entry with chat: ["irc:mask:*!~mallory@127.0.0.1"] and its name to access.deployers.`)
	bob := testparts.JoinIRC(t, srv, "bob", deployChan)
	bob.Say(deployChan, "deploybot: whoami")
	bob.AwaitText(patience, "deploybot", deployChan, "In people you are Bob Submitter", `to make you one, add "Bob Submitter" to access.deployers.`)

	// A stopped bot says so in its log, and the dashboard's end is no error.
	e.stop()
	log, err := os.ReadFile(filepath.Join(e.sb.Env.Dir, "deploybot.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "level=ERROR") {
		t.Errorf("the log of a clean run and stop has errors:\n%s", grepLines(string(log), "level=ERROR"))
	}
	if !strings.Contains(string(log), `msg="deploybot stopped" clean=true`) {
		t.Errorf("no shutdown line in the log")
	}
}

func waitOutput(t *testing.T, b *testparts.Buffer, timeout time.Duration, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !strings.Contains(b.String(), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q on the terminal within %s:\n%s", want, timeout, b.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
