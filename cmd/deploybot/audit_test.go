package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/store"
)

// TestAuditRollbackNamesWhatTheHostsAreBackOn: after #1 was rolled back,
// the rollback of #2 (whose base is #1's outcome) must not say the hosts
// are back on "what #1 deployed": #1 deployed nothing.
func TestAuditRollbackNamesWhatTheHostsAreBackOn(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	e.abortedAtVerification(1, "good-change", "alice")
	e.say("alice", "!unblock cf16831760")
	n := e.abortedAtVerification(2, "good-change", "alice")
	if strings.Contains(n.Text, "what #1 deployed") || !strings.Contains(n.Text, "what they served before #2") {
		t.Errorf("#2's rollback names a rolled-back deployment as what the hosts are back on: %s", n.Text)
	}
	e.expect(all(base))
}

// TestAuditCompositeRefusesJunkRefsWhenTyped: with source.components (the
// demo's source), a ref that can be no commit or branch is refused when it
// is typed and spends no deployment id, as README says and as with one
// repository.
func TestAuditCompositeRefusesJunkRefsWhenTyped(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	for _, ref := range []string{"../../etc/passwd", "good-change..bad-change", "HEAD~1", "php-1.46.0-wmf.3:x..y", ":good-change"} {
		e.say("alice", "!backport "+ref)
	}
	if ds, err := e.sb.Main.Store.List(0, 10); err != nil || len(ds) != 0 {
		t.Errorf("junk refs were queued as deployments (%d, %v); want each refused when typed", len(ds), err)
	}
	if out := e.out.String(); strings.Count(out, "nothing was queued") != 5 {
		t.Errorf("want 5 refusals that queue nothing; the console shows:\n%s", out)
	}
}

// TestAuditUnexpectedBlockedChangeIsNamedFirst: with source.components,
// when the commits a backport would also ship include a blocked,
// rolled-back change, the refusal says so first (README), rather than
// advising --include-unexpected, which would only be refused again.
func TestAuditUnexpectedBlockedChangeIsNamedFirst(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.abortedAtVerification(1, "good-change", "bob")
	e.say("alice", "!backport bad-change") // bad-change builds on good-change
	n := e.wait(2, time.Minute, finished...)
	if strings.Contains(n.Text, "--include-unexpected") || !strings.Contains(n.Text, "was rolled back in #1") {
		t.Errorf("#2's refusal does not name the blocked change first:\n%s", n.Text)
	}
}

// TestAuditCheckConfigRefusesTwoHostsInOneRoot: two hosts with one root
// directory would write the same slots and flip the same link; check-config
// must say so rather than call the file valid.
func TestAuditCheckConfigRefusesTwoHostsInOneRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deploybot.yaml")
	os.WriteFile(cfg, []byte(`source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: test1, root: fleet/test1}]
    canaries: [{name: canary1, root: fleet/canary1}]
    production: [{name: web1, root: fleet/web1}, {name: web2, root: ./fleet/web1/}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`), 0o644)
	var out, errOut bytes.Buffer
	code := realMain([]string{"check-config", "--config", cfg}, nil, &out, &errOut)
	if code != 1 || !strings.Contains(out.String()+errOut.String(), `line 6: host "web2" has the same root as host "web1"`) {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
}

// TestAuditJudgeThresholdsMustBeNumbers: YAML's .nan and .inf pass every
// range check, and a NaN alpha or an infinite factor would keep the
// sequential test from ever failing a canary. check-config and judge
// replay refuse them, and replay's header shows the thresholds it really
// uses (a zero given on the command line means the default).
func TestAuditJudgeThresholdsMustBeNumbers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(judge string) string {
		cfg := filepath.Join(dir, "deploybot.yaml")
		os.WriteFile(cfg, []byte(`source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: test1, root: fleet/test1}]
    canaries: [{name: canary1, root: fleet/canary1}]
    production: [{name: web1, root: fleet/web1}]
canary: {judge: `+judge+`}
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`), 0o644)
		return cfg
	}
	var out, errOut bytes.Buffer
	cfg := write("{alpha: .nan, factor: .inf}")
	if code := realMain([]string{"check-config", "--config", cfg}, nil, &out, &errOut); code != 1 ||
		!strings.Contains(out.String()+errOut.String(), "canary.judge.alpha must be a number, not NaN") ||
		!strings.Contains(out.String()+errOut.String(), "canary.judge.factor must be a number, not +Inf") {
		t.Errorf("check-config with alpha .nan, factor .inf: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	cfg = write("{}")
	st, err := store.Open(filepath.Join(dir, "deploybot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"judge", "replay", "--config", cfg, "--alpha", "nan"}, nil, &out, &errOut); code != 2 {
		t.Errorf("judge replay --alpha nan: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"judge", "replay", "--config", cfg, "--factor", "0", "--abs-diff", "0"}, nil, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "factor 1.3, abs_diff 0.002,") {
		t.Errorf("judge replay --factor 0 --abs-diff 0 (the defaults): exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestAuditStatusDuringTheFirstDeployment: while the very first deployment
// waits for verification, the canaries and production still serve the
// baseline, as they should. !status must not call them "not on the
// fleet's commit" (the staging tip, the running deployment's commit) and
// advise !sync, which is refused while a deployment runs (and would ship
// an unverified change if it were not).
func TestAuditStatusDuringTheFirstDeployment(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	from := len(e.out.String())
	e.say("alice", "!status")
	if out := e.out.String()[from:]; strings.Contains(out, "not on the fleet's commit") || !strings.Contains(out, "#1 awaiting-verification") {
		t.Errorf("!status during the first deployment:\n%s", out)
	}
	v, err := e.sb.Main.Runner.FleetView(context.Background())
	if err != nil || v.Commit != base {
		t.Errorf("FleetView during the first deployment: commit %.10s, %v; want the baseline %.10s", v.Commit, err, base)
	}
}

// TestAuditConsoleFollowsTheMsgAdvice: in the channel !help and a long
// !history are cut short with "ask me in private (/msg deploybot ...)".
// On the console (make demo) that advice must work: /msg deploybot !help
// gives the whole list.
func TestAuditConsoleFollowsTheMsgAdvice(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.say("alice", "!help")
	if !strings.Contains(e.out.String(), "/msg deploybot !help") {
		t.Fatalf("!help in the channel is not cut short any more:\n%s", e.out.String())
	}
	from := len(e.out.String())
	e.say("alice", "/msg deploybot !help")
	if out := e.out.String()[from:]; !strings.Contains(out, "!unblock <change>") || !strings.Contains(out, "[deployers]") {
		t.Errorf("/msg deploybot !help on the console gave:\n%s", out)
	}
	from = len(e.out.String())
	e.say("alice", "/msg deploybot !backport good-change")
	if out := e.out.String()[from:]; !strings.Contains(out, "In private I answer only") {
		t.Errorf("/msg deploybot !backport on the console gave:\n%s", out)
	}
}

// TestAuditStatusNamesWhatTheFleetServesAfterARollback: after #2 is rolled
// back the fleet is back on #1's commit, and after the very first
// deployment is rolled back it is on the baseline. !status must say so,
// not "the fleet serves #2 <its change>: what it replaced".
func TestAuditStatusNamesWhatTheFleetServesAfterARollback(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.abortedAtVerification(1, "good-change", "bob")
	status := func() string {
		from := len(e.out.String())
		e.say("alice", "!status")
		return e.out.String()[from:]
	}
	if out := status(); strings.Contains(out, "the fleet serves #1") || strings.Contains(out, "nothing was deployed through me yet; since then") ||
		!strings.Contains(out, "the fleet serves the baseline") {
		t.Errorf("!status after the first deployment was rolled back:\n%s", out)
	}
	e.say("alice", "!unblock cf16831760")
	e.say("alice", "!backport good-change")
	e.wait(2, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	if d := e.get(2); d.State == deployer.StateAwaitingVerification {
		e.wait(2, time.Minute, deployer.NoticeVerdict)
	}
	e.wait(2, time.Minute, finished...)
	if d := e.get(2); d.State != deployer.StateDone {
		t.Fatalf("#2 ended %s: %s", d.State, d.Reason)
	}
	e.say("alice", "!backport bad-change")
	e.wait(3, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.wait(3, 2*time.Minute, finished...)
	if d := e.get(3); d.State != deployer.StateRolledBack {
		t.Fatalf("#3 (bad-change) ended %s: %s", d.State, d.Reason)
	}
	if out := status(); !strings.Contains(out, "the fleet serves #2 cf16831760 (Fix typo on the front page): its commit, since") || !strings.Contains(out, "(#3 was rolled back)") {
		t.Errorf("!status after #3 was rolled back onto #2:\n%s", out)
	}
}

// TestAuditBrokenInactiveSlotDoesNotFailTheRollback: mw1004's inactive
// slot is a file, so the production sync fails there. mw1004 never left
// the base, so the rollback must succeed: every host restored, no
// "ROLLBACK FAILED" and no lock on a fleet that serves the base.
func TestAuditBrokenInactiveSlotDoesNotFailTheRollback(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	var root string
	for _, h := range e.sb.Env.Hosts {
		if h.Name == "mw1004" {
			root = h.Root
		}
	}
	cur, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		t.Fatal(err)
	}
	inactive := filepath.Join(root, "slots", map[string]string{"a": "b", "b": "a"}[filepath.Base(cur)])
	if err := os.RemoveAll(inactive); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inactive, []byte("not a slot"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	n := e.wait(1, 2*time.Minute, finished...)
	d := e.get(1)
	if d.State != deployer.StateRolledBack || strings.Contains(n.Text, "ROLLBACK FAILED") {
		t.Fatalf("#1 ended %s: %s", d.State, n.Text)
	}
	if l, err := e.sb.Main.Store.Lock(); err != nil || l != nil {
		t.Errorf("the fleet is locked after a complete rollback: %+v, %v", l, err)
	}
	e.expect(all(base))
}

// TestAuditRefusalsAreRecorded: README says refused commands are answered
// with the reason and recorded in the store. Those refused for what they
// ask (a junk ref, an answer to a finished deployment) are recorded too,
// and a stranger's !backport is not put in the running deployment's
// timeline.
func TestAuditRefusalsAreRecorded(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.say("alice", "!backport $(x)")
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("mallory", "!backport bad-change")
	e.say("alice", "!abort 1")
	e.wait(1, time.Minute, finished...)
	e.say("alice", "!promote 1")
	has := func(id int64, want string) bool {
		evs, err := e.sb.Main.Store.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == "refused" && strings.Contains(ev.Message, want) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		id   int64
		want string
	}{
		{0, `!backport refused: nothing was queued: "$(x)" holds '$'`},
		{0, "!backport refused: only deployers may do that"},
		{1, "!promote refused: deployment #1 is not waiting for a promote decision"},
	} {
		if !has(c.id, c.want) {
			t.Errorf("no refused event %q in the timeline of #%d", c.want, c.id)
		}
	}
	if has(1, "!backport refused") {
		t.Errorf("a stranger's !backport refusal is in #1's timeline")
	}
}

// abortedAtVerification backports ref as #id and has who abort it at the
// verification prompt; it returns the notice that ended it.
func (e *e2e) abortedAtVerification(id int64, ref, who string) deployer.Notice {
	e.t.Helper()
	e.say("alice", "!backport "+ref)
	e.wait(id, time.Minute, deployer.NoticeVerify)
	e.say(who, fmt.Sprintf("!abort %d", id))
	return e.wait(id, time.Minute, finished...)
}
