package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// TestMistypedIDNeverFallsBackToTheRunningDeployment: a deployment id that
// does not parse ("1x", a number too large, "#0") is refused, not read as
// "no id" and applied to whatever is running.
func TestMistypedIDNeverFallsBackToTheRunningDeployment(t *testing.T) {
	b, st := newStoreBot(t)
	id := finish(t, st, "Fix the frobnicator", deployer.StateAwaitingVerification, time.Now())
	for _, text := range []string{"!abort 99999999999999999999", "!abort 1x", "!abort #0", "verified 1O", "!promote #x"} {
		out := strings.Join(ask(b, "alice", text, false), "\n")
		if strings.Contains(out, "deployment #1") || strings.Contains(out, "aborting #1") || !strings.Contains(out, "is not a deployment id") {
			t.Errorf("%s (while #%d runs) got %q; want it refused as not a deployment id", text, id, out)
		}
	}
	if out := strings.Join(ask(b, "alice", "!abort 42", false), "\n"); !strings.Contains(out, "there is no deployment #42") {
		t.Errorf("!abort 42 got %q; want it to name the missing id", out)
	}
	// A sentence's full stop after an id is not a mistyped id.
	if out := strings.Join(ask(b, "alice", "verified 42.", false), "\n"); !strings.Contains(out, "there is no deployment #42") {
		t.Errorf("verified 42. got %q; want it read as #42", out)
	}
}

// TestRefusalNamesNoEmptySubmitter: a deployment without a submitter (it
// failed while preparing) is refused to a stranger without "()".
func TestRefusalNamesNoEmptySubmitter(t *testing.T) {
	b, st := newStoreBot(t)
	id, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "Alice Deployer", Refs: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join(ask(b, "mallory", "verified 1", false), "\n")
	if strings.Contains(out, "()") || !strings.Contains(out, "only a deployer may answer for #1") {
		t.Errorf("verified %d by a stranger got %q", id, out)
	}
}

// TestWhoamiIsSentences: !whoami's parts are joined into one line; each
// ends with a full stop, so it does not read "console:alice In people".
func TestWhoamiIsSentences(t *testing.T) {
	b, _ := newStoreBot(t)
	b.Dir.People = []Person{{Name: "Alice Deployer", Chat: []string{"console:alice"}}}
	out := strings.Join(ask(b, "alice", "!whoami", false), "\n")
	if !strings.Contains(out, "I see you as console:alice. In people you are Alice Deployer") {
		t.Errorf("!whoami: %q", out)
	}
}

// TestNoticeWithChoicesEndsOneSentenceOnce: a notice that ends with a full
// stop and offers choices reads "... lifted. Next: ...", not "lifted.. Next".
func TestNoticeWithChoicesEndsOneSentenceOnce(t *testing.T) {
	b, _ := newStoreBot(t)
	n := b.renderNotice(deployer.Notice{Deployment: 3, Text: "ROLLBACK FAILED: fix the hosts; once they are restored the lock is lifted.",
		Next: []deployer.Choice{deployer.Do(deployer.VerbRollback, 3, "try the rollback again")}})
	if strings.Contains(n.Text, "..") || !strings.Contains(n.Text, "lifted. Next: `!rollback 3`") {
		t.Errorf("rendered: %q", n.Text)
	}
	n = b.renderNotice(deployer.Notice{Deployment: 3, Text: "canary check INCONCLUSIVE",
		Next: []deployer.Choice{deployer.Do(deployer.VerbRollback, 3, "roll back")}})
	if !strings.Contains(n.Text, "INCONCLUSIVE. Next: `!rollback 3`") {
		t.Errorf("rendered: %q", n.Text)
	}
}
