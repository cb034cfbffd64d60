package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// The IRC end-to-end tests run the real bot (Main.Open/Run on the demo
// sandbox) with only the IRC adapter, against a real ngircd, and play the
// people with girc clients. ngircd has no services, so people are known
// by their masks: nick!~user@127.0.0.1.

const (
	deployChan = "#deployments"
	logChan    = "#operations"
)

// newIRCE2E starts ngircd and the bot on it, configured for IRC only.
func newIRCE2E(t *testing.T) (*e2e, *testparts.Ngircd) {
	t.Helper()
	srv := testparts.StartNgircd(t)
	e := newE2E(t, testTimings, func(m *Main) {
		m.Config.Chat.Console = nil
		onTestIRC(m, srv.Port)
	})
	return e, srv
}

// join brings a person into the channels and waits until the bot is there.
func join(t *testing.T, srv *testparts.Ngircd, nick string, channels ...string) *testparts.IRCUser {
	t.Helper()
	u := testparts.JoinIRC(t, srv, nick, channels...)
	u.AwaitPresent(20*time.Second, "deploybot", deployChan)
	return u
}

// checkLineLengths fails for any line longer than IRC allows.
func checkLineLengths(t *testing.T, u *testparts.IRCUser) {
	t.Helper()
	for _, l := range u.Lines() {
		if l.Len > 510 {
			t.Errorf("%s received a %d-byte line (IRC allows 510 + CR LF): %.80s...", u.Nick, l.Len, l.Text)
		}
	}
}

func firstLine(s string) string { return strings.SplitN(s, "\n", 2)[0] }

// TestIRCBackportConversation plays the demo's scenario over IRC: a good
// change goes everywhere, a bad one is rolled back from the canaries.
func TestIRCBackportConversation(t *testing.T) {
	t.Parallel()
	e, srv := newIRCE2E(t)
	alice := join(t, srv, "alice", deployChan, logChan)
	bob := join(t, srv, "bob", deployChan)
	const patience = time.Minute

	alice.Say(deployChan, "!backport good-change")
	alice.AwaitText(patience, "deploybot", deployChan, "alice: queued good-change as #1")
	// The submitter is pinged by nick, with the choices.
	bob.AwaitText(patience, "deploybot", deployChan, "bob: [#1] ", "`verified ", "!abort 1")
	bob.Say(deployChan, "verified")
	bob.AwaitText(patience, "deploybot", deployChan, "[#1] verified by Bob Submitter")
	verdict := e.wait(1, patience, deployer.NoticeVerdict)
	e.wait(1, patience, finished...)
	d := e.get(1)
	if d.State != deployer.StateDone || d.Requester != "Alice Deployer" || d.Submitter != "Bob Submitter" {
		t.Fatalf("deployment ended %s (%s), requester %q, submitter %q", d.State, d.Reason, d.Requester, d.Submitter)
	}
	e.expect(all(d.Commit))
	alice.AwaitText(patience, "deploybot", deployChan, "[#1] "+firstLine(verdict.Text))
	alice.AwaitText(patience, "deploybot", deployChan, "[#1] done: ")

	// Every notice of the deployment reached the channel, tagged.
	for _, n := range e.sb.Tap.Notices() {
		if n.Deployment == 1 {
			alice.AwaitText(10*time.Second, "deploybot", deployChan, "[#1] "+firstLine(n.Text))
		}
	}
	// The log channel gets one SAL line for the finished deployment.
	l := alice.AwaitText(10*time.Second, "deploybot", logChan, "!log alice@deploybot Synchronized ", "[#1] (duration ")
	if !strings.Contains(l.Text, d.Changes[0].Subject) {
		t.Errorf("!log line without the change's subject %q: %s", d.Changes[0].Subject, l.Text)
	}
	var logLines int
	for _, l := range alice.Lines() {
		if l.Target == logChan {
			logLines++
		}
	}
	if logLines != 1 {
		t.Errorf("%d lines in the log channel, want 1", logLines)
	}

	// The second half of the demo's scenario: a bad change is caught on
	// the canaries and rolled back, and the channel is told why.
	alice.Say(deployChan, "deploybot: backport bad-change")
	bob.AwaitText(patience, "deploybot", deployChan, "bob: [#2] ", "`verified ")
	bob.Say(deployChan, "verified")
	e.wait(2, patience, finished...)
	bad := e.get(2)
	if bad.State != deployer.StateRolledBack || len(bad.Verdicts) == 0 || bad.Verdicts[len(bad.Verdicts)-1].Outcome != deployer.Fail {
		t.Fatalf("the bad change ended %s (%s), want rolled back on a failing verdict", bad.State, bad.Reason)
	}
	for _, h := range e.sb.Main.Fleet[deployer.Production] {
		for _, touched := range bad.Touched {
			if touched == h.Name() {
				t.Errorf("production host %s received the bad change", touched)
			}
		}
	}
	e.expect(all(d.Commit))
	bob.AwaitText(patience, "deploybot", deployChan, "[#2] rolled back ", "canary check failed")
	// A long reason puts "Restored ..." on a line of its own, under the
	// same prefix.
	bob.AwaitText(patience, "deploybot", deployChan, "[#2] ", "Restored 3 hosts")
	// The reason may be cut to keep the entry on one line.
	alice.AwaitText(10*time.Second, "deploybot", logChan, "!log alice@deploybot Rolled back ", "[#2]: "+bad.Reason[:20])
	checkLineLengths(t, alice)
	checkLineLengths(t, bob)
}

func TestIRCRefusesWhoMayNotDeploy(t *testing.T) {
	t.Parallel()
	e, srv := newIRCE2E(t)
	bob := join(t, srv, "bob", deployChan)
	mallory := join(t, srv, "mallory", deployChan)
	const patience = 30 * time.Second

	mallory.Say(deployChan, "!backport good-change")
	mallory.AwaitText(patience, "deploybot", deployChan, "mallory: only deployers may do that")
	// The submitter of changes is not a deployer either.
	bob.Say(deployChan, "deploybot: backport good-change")
	bob.AwaitText(patience, "deploybot", deployChan, "bob: only deployers may do that")
	// Someone who takes a deployer's nick is not that deployer: the mask
	// (user name) differs.
	impostor := testparts.JoinIRCAs(t, srv, "alice", "mallory", deployChan)
	impostor.Say(deployChan, "!backport good-change")
	impostor.AwaitText(patience, "deploybot", deployChan, "alice: only deployers may do that")
	// In private, only status and help are answered.
	mallory.Say("deploybot", "!backport good-change")
	mallory.AwaitText(patience, "deploybot", "mallory", "In private I answer only !status, !history, !whoami and !help")
	mallory.Say("deploybot", "!status")
	mallory.AwaitText(patience, "deploybot", "mallory", "nothing is deploying right now")

	if ds, err := e.sb.Main.Store.List(0, 10); err != nil || len(ds) != 0 {
		t.Errorf("refused requests created deployments: %d, %v", len(ds), err)
	}
	evs, err := e.sb.Main.Store.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	var refusedBy []string
	for _, ev := range evs {
		if ev.Kind == "refused" {
			refusedBy = append(refusedBy, ev.Actor)
		}
	}
	want := "irc:mask:mallory!~mallory@127.0.0.1 Bob Submitter irc:mask:alice!~mallory@127.0.0.1"
	if got := strings.Join(refusedBy, " "); got != want {
		t.Errorf("refusals recorded for %q, want %q", got, want)
	}
}

func TestIRCServerRestartWhileAwaitingVerification(t *testing.T) {
	t.Parallel()
	e, srv := newIRCE2E(t)
	alice := join(t, srv, "alice", deployChan)
	bob := join(t, srv, "bob", deployChan)
	const patience = time.Minute

	alice.Say(deployChan, "!backport good-change")
	bob.AwaitText(patience, "deploybot", deployChan, "bob: [#1] ", "`verified ")

	// The IRC server dies and comes back; the deployment keeps waiting.
	srv.Stop()
	time.Sleep(300 * time.Millisecond)
	if d := e.get(1); d.State != deployer.StateAwaitingVerification {
		t.Fatalf("during the outage #1 is %s, want awaiting-verification", d.State)
	}
	srv.Start()
	bob.AwaitPresent(30*time.Second, "deploybot", deployChan)
	bob.Say(deployChan, "verified")
	bob.AwaitText(patience, "deploybot", deployChan, "[#1] verified by Bob Submitter")
	e.wait(1, patience, finished...)
	d := e.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("after the reconnect #1 ended %s: %s", d.State, d.Reason)
	}
	e.expect(all(d.Commit))
	bob.AwaitText(patience, "deploybot", deployChan, "[#1] done: ")

	// The bot told the core it reconnected (bot.Bot.Reconnected).
	log, err := os.ReadFile(filepath.Join(e.sb.Env.Dir, "deploybot.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `msg="chat reconnected" adapter=irc`) {
		t.Errorf("the bot's log does not record the IRC reconnect")
	}
}

func TestIRCHistoryOf50IsSplitWithNothingLost(t *testing.T) {
	t.Parallel()
	e, srv := newIRCE2E(t)
	alice := join(t, srv, "alice", deployChan)
	const patience = time.Minute

	// Locked, backports queue without starting, so 50 of them are quick.
	alice.Say(deployChan, "!lock testing the history")
	alice.AwaitText(patience, "deploybot", deployChan, "deployments locked by Alice Deployer")
	refs := func(i int) []string {
		var rs []string
		for j := 1; j <= 4; j++ {
			// Four refs keep alice's own line within one IRC message.
			rs = append(rs, fmt.Sprintf("r%02d-%d-%s", i, j, strings.Repeat("abcdefghij", 8)))
		}
		return rs
	}
	for i := 1; i <= 50; i++ {
		alice.Say(deployChan, "!backport "+strings.Join(refs(i), " "))
	}
	alice.AwaitText(patience, "deploybot", deployChan, "as #50")
	// In the channel a long answer is cut short; in private it is whole.
	alice.Say(deployChan, "!history 50")
	alice.AwaitText(patience, "deploybot", deployChan, "... 46 more line(s): ask me in private (/msg deploybot !history 50) or see http://127.0.0.1:")
	alice.Say("deploybot", "!history 50")
	last := refs(1)[3]
	alice.AwaitText(patience, "deploybot", "alice", last)
	time.Sleep(200 * time.Millisecond) // anything after the last entry would be a bug

	var got []string
	for _, l := range alice.Lines() {
		if l.Nick != "deploybot" || l.Target != "alice" {
			continue
		}
		if strings.HasPrefix(l.Text, "last 50 deployment(s), newest first:") {
			got = nil
		}
		got = append(got, strings.TrimPrefix(l.Text, "… ")) // "… ": a piece of a line cut for length
	}
	if len(got) == 0 || !strings.HasPrefix(got[0], "last 50 deployment(s), newest first:") {
		t.Fatalf("no history header among the lines received")
	}
	// Each entry is longer than one IRC line, so it was split; joined
	// back, the entries come newest first, each with all its refs.
	text := strings.Join(got, " ")
	pos := 0
	for i := 50; i >= 1; i-- {
		entry := fmt.Sprintf("#%d queued: %s, requested by Alice Deployer", i, strings.Join(refs(i), " "))
		k := strings.Index(text[pos:], entry)
		if k < 0 {
			t.Fatalf("history entry #%d missing or out of order; received %d lines:\n%s", i, len(got), strings.Join(got, "\n"))
		}
		pos += k + len(entry)
	}
	if len(got) <= 51 {
		t.Errorf("%d lines for 51 lines of history whose entries do not fit one IRC line: nothing was split", len(got))
	}
	checkLineLengths(t, alice)
	if d := e.get(50); d.State != deployer.StateQueued {
		t.Errorf("#50 is %s, want queued (locked)", d.State)
	}
}

func TestIRCMissingSASLPasswordStopsTheStart(t *testing.T) {
	t.Parallel()
	out := &testparts.Buffer{}
	sb, err := startSandbox(t.Context(), t.TempDir(), testTimings, "info", strings.NewReader(""), out, out, func(m *Main) {
		m.Config.Chat.IRC = &config.IRC{Server: "irc.example.org", Port: 6697, TLS: true, Nick: "deploybot", User: "deploybot",
			Channel: deployChan, Flood: config.Flood{Burst: 5, Interval: config.Dur(time.Second)},
			SASL: &config.SASL{Mechanism: "PLAIN", User: "deploybot", PasswordEnv: "DEPLOYBOT_TEST_IRC_PASSWORD_UNSET"}}
	})
	if err == nil {
		sb.Close()
		t.Fatal("the bot opened without its IRC password")
	}
	want := "chat.irc.sasl.password_env: the environment variable DEPLOYBOT_TEST_IRC_PASSWORD_UNSET is not set or empty"
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
}

// onTestIRC puts the bot on the test ngircd at port, in the deployment and
// log channels, and lets each demo person be recognised by the mask the
// test's girc clients connect with.
func onTestIRC(m *Main, port int) {
	m.Config.Chat.IRC = &config.IRC{
		Server: "127.0.0.1", Port: port, Nick: "deploybot", User: "deploybot", RealName: "deploybot",
		Channel: deployChan, LogChannel: logChan,
		// The test server has no flood limits; pacing would only slow the
		// 50-line history down.
		Flood:     config.Flood{Burst: 5, Interval: config.Dur(time.Second), Disable: true},
		Reconnect: config.Backoff{Min: config.Dur(300 * time.Millisecond), Max: config.Dur(2 * time.Second)},
	}
	for i := range m.Config.People {
		p := &m.Config.People[i]
		p.Chat = append(p.Chat, fmt.Sprintf("irc:mask:%s!~%s@127.0.0.1", p.Nick, p.Nick))
	}
}
