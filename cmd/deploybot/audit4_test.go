package main

import (
	"testing"
	"time"

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
