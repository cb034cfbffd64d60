package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// Regression tests from the fourth audit (the chat side), end to end on
// the real bot. Each names the defect it pins.

// TestAudit4SubmitterWithACapitalisedNick: the server treats "Bob" and
// "bob" as one nick, and people[].chat names Bob by the mask
// irc:mask:bob!~bob@127.0.0.1. Connected as "Bob", the submitter was
// refused ("only the submitter (bob) or a deployer may answer") for his
// own change.
func TestAudit4SubmitterWithACapitalisedNick(t *testing.T) {
	t.Parallel()
	e, srv := newIRCE2E(t)
	alice := join(t, srv, "alice", deployChan)
	bob := testparts.JoinIRCAs(t, srv, "Bob", "bob", deployChan)
	bob.AwaitPresent(20*time.Second, "deploybot", deployChan)
	const patience = time.Minute

	alice.Say(deployChan, "!backport good-change")
	bob.AwaitText(patience, "deploybot", deployChan, "bob: [#1] ", "`verified ")
	bob.Say(deployChan, "verified")
	bob.AwaitText(patience, "deploybot", deployChan, "[#1] verified by Bob Submitter")
	e.wait(1, patience, finished...)
	if d := e.get(1); d.State != deployer.StateDone {
		t.Fatalf("#1 ended %s (%s)", d.State, d.Reason)
	}
}

// TestAudit4SlackLateAnswerIsNotTakenForALaterDeployment: Slack
// redelivers an event whose first delivery was not acknowledged (the
// socket was down), a minute or five later. Bob's "verified" for #1,
// typed while #1 waited for him (he then pressed the button), reached the
// bot only after #1 was done and #2 was waiting: the bot took it as Bob's go-ahead for #2,
// a change he had never tested, and synced it to the canaries.
func TestAudit4SlackLateAnswerIsNotTakenForALaterDeployment(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t)
	f := s.fake
	s.slackSay("U01ALICE", "!backport good-change")
	s.prompt(1)
	// Bob answers #1 now; this delivery is lost with the socket.
	typed := time.Now()
	ts := fmt.Sprintf("%d.%06d", typed.Unix(), typed.Nanosecond()/1000)
	time.Sleep(10 * time.Millisecond)

	// Bob hears nothing back and presses the button instead.
	s.press("U02BOB", s.prompt(1), "verified 1")
	s.wait(1, slackWait, finished...)
	s.slackSay("U01ALICE", "!backport bad-change")
	s.prompt(2)
	after := len(f.Calls())

	late := f.MessageEnvelope("U02BOB", slackChannel, "verified", ts, nil)
	late.Retry = 1
	if err := f.Send(late); err != nil {
		t.Fatal(err)
	}
	answer := s.call(after, "the answer to the late verified", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && (strings.Contains(c.Text, "<@U02BOB>: ") || strings.Contains(c.Text, "[#2] verified by"))
	})
	if d := s.get(2); d.State != deployer.StateAwaitingVerification || d.VerifiedBy != "" {
		t.Fatalf("a verified typed for #1 was taken for #2: #2 is %s, verified by %q (bot said %q)", d.State, d.VerifiedBy, answer.Text)
	}
	for _, want := range []string{"#2", "`verified 2`"} {
		if !strings.Contains(answer.Text, want) {
			t.Errorf("the refusal %q does not say %s", answer.Text, want)
		}
	}
	// Said now, with the id, it is taken.
	s.slackSay("U02BOB", "verified 2")
	s.wait(2, slackWait, finished...)
}

// TestAudit4SlackCommandInAnOldThread: each deployment has its thread in
// Slack. Alice, reading #1's thread after it finished, typed "!rollback"
// there to undo #1 while #2 was waiting for its submitter: the bot rolled
// back #2, the running one (blaming its change, which is then blocked and
// reverted upstream), and left #1 on the fleet. An answer that names no
// deployment, written in another deployment's thread, is refused, with
// both ids offered.
func TestAudit4SlackCommandInAnOldThread(t *testing.T) {
	t.Parallel()
	s := newSlackE2E(t)
	f := s.fake
	s.slackSay("U01ALICE", "!backport good-change")
	s.press("U02BOB", s.prompt(1), "verified 1")
	s.wait(1, slackWait, finished...)
	root1 := s.root(1)
	s.slackSay("U01ALICE", "!backport bad-change")
	s.prompt(2)
	after := len(f.Calls())

	env := f.MessageEnvelope("U01ALICE", slackChannel, "!rollback", f.NewTS(), map[string]any{"thread_ts": root1.TS})
	if err := f.Send(env); err != nil {
		t.Fatal(err)
	}
	answer := s.call(after, "the answer to !rollback in #1's thread", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && strings.HasPrefix(c.Text, "<@U01ALICE>: ")
	})
	if d := s.get(2); d.State != deployer.StateAwaitingVerification || strings.Contains(answer.Text, "rolling back #2") {
		t.Fatalf("!rollback in #1's thread acted on #2: #2 is %s (%s); the bot said %q", d.State, d.Reason, answer.Text)
	}
	for _, want := range []string{"#1's thread", "`!rollback 1`", "`!rollback 2`"} {
		if !strings.Contains(answer.Text, want) {
			t.Errorf("the refusal %q does not say %s", answer.Text, want)
		}
	}
	if answer.Thread != root1.TS {
		t.Errorf("the refusal went to thread %q, not #1's %q", answer.Thread, root1.TS)
	}
}
