package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// slackTimings are the pipeline's timings for the Slack end-to-end tests.
var slackTimings = demoTimings{VerifyTimeout: time.Minute, PromoteTimeout: time.Minute,
	BaselineMin: time.Second, Window: 4 * time.Second, Interval: 500 * time.Millisecond, MinRequests: 40}

const (
	slackChannel = "CDEPLOYS"
	slackApp     = "xapp-1-e2e-app-token"
	slackBot     = "xoxb-e2e-bot-token"
	slackWait    = time.Minute
)

// slackE2E is a sandbox whose bot is on a fake Slack, with alice
// (U01ALICE, a deployer) and bob (U02BOB, who wrote the changes) there.
type slackE2E struct {
	*e2e
	fake      *slackfake.Server
	logs      *testparts.Buffer
	configure func(*Main) // what newSlackE2E did to the configuration, for restarts
}

func newSlackE2E(t *testing.T, configure ...func(*Main)) *slackE2E {
	t.Helper()
	fake := slackfake.New(t, slackApp, slackBot)
	dir := t.TempDir()
	appFile, botFile := filepath.Join(dir, "app-token"), filepath.Join(dir, "bot-token")
	for f, tok := range map[string]string{appFile: slackApp, botFile: slackBot} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &testparts.Buffer{}
	setup := func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		m.Config.Chat.Slack = &config.Slack{AppTokenFile: appFile, BotTokenFile: botFile, Channel: slackChannel, APIURL: fake.APIURL()}
		for i, p := range m.Config.People {
			switch p.Name {
			case "Alice Deployer":
				m.Config.People[i].Chat = append(p.Chat, "slack:U01ALICE")
				m.Config.People[i].Slack = "U01ALICE"
			case "Bob Submitter":
				m.Config.People[i].Chat = append(p.Chat, "slack:U02BOB")
				m.Config.People[i].Slack = "U02BOB"
			}
		}
		for _, f := range configure {
			f(m)
		}
	}
	e := newE2E(t, slackTimings, setup)
	t.Cleanup(func() {
		// SLACK_DUMP=1 shows what the bot said in Slack even when the test passes.
		if t.Failed() || os.Getenv("SLACK_DUMP") != "" {
			t.Logf("slack calls:\n%s", dumpCalls(fake.Calls()))
			t.Logf("log:\n%s", logs.String())
		}
	})
	if err := fake.WaitConnections(1, slackWait); err != nil {
		t.Fatal(err)
	}
	return &slackE2E{e2e: e, fake: fake, logs: logs, configure: setup}
}

func dumpCalls(calls []slackfake.Call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "  %d %s ts=%s thread=%s user=%s broadcast=%v text=%q buttons=%q\n    %s\n", c.Seq, c.Method, c.TS, c.Thread, c.User, c.Broadcast(), c.Text,
			buttonsOf(c), strings.ReplaceAll(c.BlockText(), "\n", "\n    "))
	}
	return b.String()
}

func (s *slackE2E) call(after int, what string, match func(slackfake.Call) bool) slackfake.Call {
	s.t.Helper()
	c, err := s.fake.WaitCall(context.Background(), after, slackWait, what, match)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// say types text in the deployment channel as user and waits for Slack to
// see it acknowledged.
func (s *slackE2E) slackSay(user, text string) slackfake.Envelope {
	s.t.Helper()
	env, err := s.fake.Say(user, slackChannel, text)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.fake.WaitAck(env.EnvelopeID, 1, slackWait); err != nil {
		s.t.Fatal(err)
	}
	return env
}

func (s *slackE2E) press(user string, msg slackfake.Call, value string) {
	s.t.Helper()
	env, err := s.fake.Press(user, msg, value)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.fake.WaitAck(env.EnvelopeID, 1, slackWait); err != nil {
		s.t.Fatal(err)
	}
}

// root is deployment id's root message.
func (s *slackE2E) root(id int64) slackfake.Call {
	s.t.Helper()
	return s.call(0, fmt.Sprintf("root message of #%d", id), func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Thread == "" && strings.Contains(c.BlockText(), fmt.Sprintf("*Deployment #%d*", id))
	})
}

// prompt is deployment id's verification prompt.
func (s *slackE2E) prompt(id int64) slackfake.Call {
	s.t.Helper()
	return s.call(0, fmt.Sprintf("verification prompt of #%d", id), func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && hasButton(c, fmt.Sprintf("verified %d", id))
	})
}

func hasButton(c slackfake.Call, value string) bool {
	for _, b := range c.Buttons() {
		if b.Value == value {
			return true
		}
	}
	return false
}

// finalRoot waits for the root's status to reach state and returns that
// update.
func (s *slackE2E) finalRoot(root slackfake.Call, state deployer.State) slackfake.Call {
	s.t.Helper()
	return s.call(0, "root status "+string(state), func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.TS == root.TS && strings.Contains(c.BlockText(), "stage: *"+string(state)+"*")
	})
}

// TestSlackScenario plays the demo's scenario over Slack: a good change
// to done and a bad one caught on the canaries, typed and answered with
// buttons, with a stranger's press refused in private on the way.
func TestSlackScenario(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t)
	base := s.head()

	// 1. The good change.
	typed := s.slackSay("U01ALICE", "!backport good-change")
	s.call(0, "queued reply", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Thread == "" && strings.Contains(c.Text, "<@U01ALICE>: queued good-change as #1")
	})
	root := s.root(1)
	prompt := s.prompt(1)
	if prompt.Thread != root.TS {
		t.Errorf("the verify prompt is in thread %q, not the root's %q", prompt.Thread, root.TS)
	}
	if !strings.Contains(prompt.Text, "<@U02BOB>") {
		t.Errorf("the verify prompt does not mention bob: %q", prompt.Text)
	}
	if got := strings.Join(buttonsOf(prompt), ","); got != "Verified=verified 1,Abort=!abort 1" {
		t.Errorf("verify prompt buttons: %s", got)
	}

	// A stranger's press is refused in private; the deployment waits on.
	s.press("U03EVE", prompt, "verified 1")
	eph := s.call(0, "ephemeral refusal", func(c slackfake.Call) bool { return c.Method == "chat.postEphemeral" })
	if eph.User != "U03EVE" || eph.Text != "<@U03EVE>: only the submitter (<@U02BOB>) or a deployer may answer for #1" {
		t.Errorf("refusal to %q: %q", eph.User, eph.Text)
	}
	if d := s.get(1); d.State != deployer.StateAwaitingVerification {
		t.Fatalf("after a stranger's press #1 is %s", d.State)
	}
	if _, ok := s.fake.LastUpdate(prompt.TS); ok {
		t.Errorf("a refused press changed the prompt")
	}

	// Bob's press is accepted: the buttons give way to who and when.
	s.press("U02BOB", prompt, "verified 1")
	answered := s.call(0, "prompt answered", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.TS == prompt.TS })
	if len(answered.Buttons()) != 0 || !strings.Contains(answered.BlockText(), "<@U02BOB> pressed *Verified* at ") {
		t.Errorf("answered prompt: %q with %d buttons", answered.BlockText(), len(answered.Buttons()))
	}
	s.wait(1, slackWait, finished...)
	good := s.get(1)
	if good.State != deployer.StateDone {
		t.Fatalf("good change ended %s (%s)", good.State, good.Reason)
	}
	s.expect(all(good.Commit))
	if good.Base != base {
		t.Errorf("base %.10s, want %.10s", good.Base, base)
	}
	done := s.call(0, "done in the channel", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.Contains(c.Text, "[#1] done:")
	})
	if done.Thread != root.TS || !done.Broadcast() {
		t.Errorf("done notice: thread %q (root %q), broadcast %v", done.Thread, root.TS, done.Broadcast())
	}
	final := s.finalRoot(root, deployer.StateDone)
	for _, want := range []string{"hosts synced: 7/7", "verdict: pass", good.Changes[0].Subject} {
		if !strings.Contains(final.BlockText(), want) {
			t.Errorf("final root %q lacks %q", final.BlockText(), want)
		}
	}
	if got := strings.Join(buttonsOf(final), ","); got != "Roll back=!rollback 1" {
		t.Errorf("finished root's buttons: %q", got)
	}
	// Every notice about #1 went in its thread, in the order it was made.
	var thread []string
	for _, c := range s.fake.Calls() {
		if c.Method == "chat.postMessage" && c.Thread == root.TS {
			thread = append(thread, c.Text)
		}
	}
	var notices []string
	for _, n := range s.sb.Tap.Notices() {
		if n.Deployment == 1 {
			notices = append(notices, fmt.Sprintf("[#1] %s", firstLineOf(n.Text)))
		}
	}
	if len(thread) != len(notices) {
		t.Fatalf("%d posts in #1's thread for %d notices:\n%q\n%q", len(thread), len(notices), thread, notices)
	}
	unescape := strings.NewReplacer("<@U02BOB>: ", "", "&lt;", "<", "&gt;", ">", "&amp;", "&")
	for i := range thread {
		if got := unescape.Replace(thread[i]); got != notices[i] {
			t.Errorf("thread post %d = %q, notice %q", i, got, notices[i])
		}
	}
	s.call(0, "reaction on the typed command", func(c slackfake.Call) bool {
		return c.Method == "reactions.add" && strings.Contains(string(typed.Payload), `"ts":"`+c.TS+`"`) && c.Values.Get("name") == "white_check_mark"
	})

	// 2. The bad change, caught on the canaries.
	s.slackSay("U01ALICE", "!backport bad-change")
	root2 := s.root(2)
	s.press("U02BOB", s.prompt(2), "verified 2")
	s.wait(2, slackWait, finished...)
	bad := s.get(2)
	if bad.State != deployer.StateRolledBack || len(bad.Verdicts) == 0 || bad.Verdicts[len(bad.Verdicts)-1].Outcome != deployer.Fail {
		t.Fatalf("bad change ended %s (%s)", bad.State, bad.Reason)
	}
	s.expect(all(good.Commit))
	rolled := s.call(0, "rolled back in the channel", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Text, "[#2] rolled back")
	})
	if rolled.Thread != root2.TS || !rolled.Broadcast() {
		t.Errorf("rollback notice: thread %q (root %q), broadcast %v", rolled.Thread, root2.TS, rolled.Broadcast())
	}
	final2 := s.finalRoot(root2, deployer.StateRolledBack)
	if !strings.Contains(final2.BlockText(), "verdict: fail") || !strings.Contains(final2.BlockText(), "hosts synced: 0/7") || len(final2.Buttons()) != 0 {
		t.Errorf("rolled-back root: %q, buttons %v", final2.BlockText(), buttonsOf(final2))
	}
	if last, _ := s.fake.LastUpdate(root.TS); !hasButton(last, "!rollback 1") {
		t.Errorf("#1, still the latest done, lost its Roll back button: %q", last.BlockText())
	}
}

func buttonsOf(c slackfake.Call) []string {
	var out []string
	for _, b := range c.Buttons() {
		out = append(out, b.Text.Text+"="+b.Value)
	}
	return out
}

func firstLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// TestSlackDuplicatesAndDroppedSocket delivers one command three times
// (the same envelope twice, then a retry under a new envelope id) and
// drops the socket while the deployment waits for verification: the
// command is acted on once, the bot reconnects, and the prompt posted
// before the drop still completes the deployment, which the root's Roll
// back button then undoes.
func TestSlackDuplicatesAndDroppedSocket(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t)
	f := s.fake
	ts := f.NewTS()
	first := f.MessageEnvelope("U01ALICE", slackChannel, "!backport good-change", ts, nil)
	retry := f.MessageEnvelope("U01ALICE", slackChannel, "!backport good-change", ts, nil)
	retry.Retry = 1
	for _, env := range []slackfake.Envelope{first, first, retry} {
		if err := f.Send(env); err != nil {
			t.Fatal(err)
		}
	}
	for env, n := range map[string]int{first.EnvelopeID: 2, retry.EnvelopeID: 1} {
		if err := f.WaitAck(env, n, slackWait); err != nil {
			t.Fatal(err)
		}
	}
	prompt := s.prompt(1)
	ds, err := s.sb.Main.Store.List(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("one command delivered three times made %d deployments", len(ds))
	}
	queued := 0
	for _, c := range f.Calls() {
		if strings.Contains(c.Text, "queued good-change") {
			queued++
		}
	}
	if queued != 1 {
		t.Errorf("%d queued replies, want 1", queued)
	}

	f.Drop()
	if err := f.WaitConnections(2, slackWait); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(slackWait)
	for !strings.Contains(s.logs.String(), `msg="chat reconnected" adapter=slack`) {
		if time.Now().After(deadline) {
			t.Fatal("the bot was not told of the reconnection")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := s.get(1); d.State != deployer.StateAwaitingVerification {
		t.Fatalf("after the drop #1 is %s", d.State)
	}
	s.press("U02BOB", prompt, "verified 1")
	s.wait(1, slackWait, finished...)
	d := s.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("#1 ended %s (%s)", d.State, d.Reason)
	}
	s.expect(all(d.Commit))
	root := s.root(1)
	done := s.call(0, "done", func(c slackfake.Call) bool { return strings.HasPrefix(c.Text, "[#1] done:") })
	if done.Thread != root.TS {
		t.Errorf("after the reconnect the outcome went to thread %q, not #1's root %q", done.Thread, root.TS)
	}
	if n := f.Connections(); n != 2 {
		t.Errorf("%d socket connections, want 2", n)
	}

	// The finished root's Roll back button undoes the deployment.
	finalRoot := s.finalRoot(root, deployer.StateDone)
	s.press("U01ALICE", finalRoot, "!rollback 1")
	s.wait(1, slackWait, deployer.NoticeRolledBack)
	if d := s.get(1); d.State != deployer.StateRolledBack {
		t.Fatalf("after Roll back #1 is %s (%s)", d.State, d.Reason)
	}
	s.expect(all(d.Base))
	rolled := s.finalRoot(root, deployer.StateRolledBack)
	if len(rolled.Buttons()) != 0 || !strings.Contains(rolled.BlockText(), "<@U01ALICE> pressed *Roll back*") {
		t.Errorf("rolled-back root: %q, buttons %v", rolled.BlockText(), buttonsOf(rolled))
	}
}

// TestSlackAndIRCTogether runs one bot on Slack and IRC (a real ngircd)
// at once: the deployment is announced in both, the Slack prompt is
// answered from IRC, and Slack replaces its buttons with that answer.
func TestSlackAndIRCTogether(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	s := newSlackE2E(t, func(m *Main) { onTestIRC(m, srv.Port) })
	bob := join(t, srv, "bob", deployChan)

	s.slackSay("U01ALICE", "!backport good-change")
	prompt := s.prompt(1)
	if !strings.Contains(prompt.Text, "<@U02BOB>") {
		t.Errorf("Slack prompt does not mention bob by his Slack id: %q", prompt.Text)
	}
	bob.AwaitText(slackWait, "deploybot", deployChan, "bob: [#1] ", "`verified ")
	bob.Say(deployChan, "verified")
	closed := s.call(0, "Slack prompt closed by the IRC answer", func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.TS == prompt.TS
	})
	if len(closed.Buttons()) != 0 || !strings.Contains(closed.BlockText(), "answered: verified by Bob Submitter") {
		t.Errorf("Slack prompt after the IRC answer: %q, buttons %v", closed.BlockText(), buttonsOf(closed))
	}
	s.wait(1, slackWait, finished...)
	d := s.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("#1 ended %s (%s)", d.State, d.Reason)
	}
	s.expect(all(d.Commit))
	bob.AwaitText(slackWait, "deploybot", deployChan, "[#1] done:")
	s.call(0, "done in Slack", func(c slackfake.Call) bool { return strings.HasPrefix(c.Text, "[#1] done:") && c.Broadcast() })
	// A late press in Slack, after IRC answered, is declined in private.
	s.press("U02BOB", prompt, "verified 1")
	eph := s.call(0, "late press declined", func(c slackfake.Call) bool { return c.Method == "chat.postEphemeral" })
	if eph.User != "U02BOB" || !strings.Contains(eph.Text, "#1 was already verified by Bob Submitter") {
		t.Errorf("late press answered to %q: %q", eph.User, eph.Text)
	}
}

// TestSlackPromoteButtons makes the canary check inconclusive (it asks for
// more requests than the window can see): the verdict carries Promote and
// Roll back, the submitter's Promote is refused in private (deployers
// only), a deployer's is accepted and the deployment goes on to done.
func TestSlackPromoteButtons(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t, func(m *Main) { m.Config.Canary.Judge.MinRequests = 1000000 })
	s.slackSay("U01ALICE", "!backport good-change")
	s.press("U02BOB", s.prompt(1), "verified 1")
	promote := s.call(0, "promote prompt", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && hasButton(c, "!promote 1")
	})
	if got := strings.Join(buttonsOf(promote), ","); got != "Promote=!promote 1,Roll back=!rollback 1" {
		t.Errorf("promote prompt buttons: %s", got)
	}
	if !strings.Contains(promote.BlockText(), "INCONCLUSIVE") || !strings.Contains(promote.BlockText(), "```") {
		t.Errorf("promote prompt without the verdict and its table: %q", promote.BlockText())
	}
	s.press("U02BOB", promote, "!promote 1")
	eph := s.call(0, "refusal", func(c slackfake.Call) bool { return c.Method == "chat.postEphemeral" })
	if eph.User != "U02BOB" || !strings.Contains(eph.Text, "only deployers may do that") {
		t.Errorf("refusal to %q: %q", eph.User, eph.Text)
	}
	if d := s.get(1); d.State != deployer.StateAwaitingPromotion {
		t.Fatalf("after a refused Promote #1 is %s", d.State)
	}
	s.press("U01ALICE", promote, "!promote 1")
	closed := s.call(0, "promote prompt answered", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.TS == promote.TS })
	if len(closed.Buttons()) != 0 || !strings.Contains(closed.BlockText(), "<@U01ALICE> pressed *Promote*") {
		t.Errorf("answered promote prompt: %q", closed.BlockText())
	}
	s.wait(1, slackWait, finished...)
	d := s.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("#1 ended %s (%s)", d.State, d.Reason)
	}
	s.expect(all(d.Commit))
	final := s.finalRoot(s.root(1), deployer.StateDone)
	if !strings.Contains(final.BlockText(), "verdict: inconclusive") {
		t.Errorf("final root: %q", final.BlockText())
	}
}

// TestSlackRestartDuringVerification restarts the bot while it waits for
// verification. The deployment's root message is kept in the store, so the
// resumed deployment goes on in the same thread; the prompt posted before
// the restart still works, and its buttons are replaced.
func TestSlackRestartDuringVerification(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t)
	s.slackSay("U01ALICE", "!backport good-change")
	before := s.prompt(1)
	oldRoot := s.root(1)
	s.restart(s.configure)
	if err := s.fake.WaitConnections(2, slackWait); err != nil {
		t.Fatal(err)
	}
	resumed := s.call(0, "resumed notice", func(c slackfake.Call) bool { return strings.Contains(c.Text, "resuming after a restart") })
	if resumed.Thread != oldRoot.TS {
		t.Errorf("the resumed deployment's notice went to thread %q, want the root from before the restart %q", resumed.Thread, oldRoot.TS)
	}
	s.press("U02BOB", before, "verified 1")
	closed := s.call(0, "old prompt answered", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.TS == before.TS })
	if len(closed.Buttons()) != 0 || !strings.Contains(closed.BlockText(), "<@U02BOB> pressed *Verified*") || !strings.Contains(closed.BlockText(), "Test it there") {
		t.Errorf("old prompt after the press: %q, buttons %v", closed.BlockText(), buttonsOf(closed))
	}
	s.wait(1, slackWait, finished...)
	d := s.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("#1 ended %s (%s)", d.State, d.Reason)
	}
	s.expect(all(d.Commit))
	done := s.call(0, "done", func(c slackfake.Call) bool { return strings.HasPrefix(c.Text, "[#1] done:") })
	if done.Thread != resumed.Thread {
		t.Errorf("done went to thread %q, the resumed root is %q", done.Thread, resumed.Thread)
	}
}
