package main

// Scripted sequences of the model (model_test.go), one per defect the
// sequences issue measured. Each runs through the same world, and every
// settle() checks every invariant of the model after the step.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

func (w *world) state(id int64) *deployer.Deployment {
	w.t.Helper()
	d, err := w.m.Store.Get(id)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func (w *world) mustState(id int64, want deployer.State) *deployer.Deployment {
	w.t.Helper()
	d := w.state(id)
	if d.State != want {
		w.t.Fatalf("#%d is %s (%s), want %s\n%s", id, d.State, d.Reason, want, w.out.String())
	}
	return d
}

func (w *world) said(s string) bool { return strings.Contains(w.out.String(), s) }

func (w *world) mustSay(s string) {
	w.t.Helper()
	if !w.said(s) {
		w.t.Fatalf("the bot never said %q:\n%s", s, w.out.String())
	}
}

func (w *world) deploy(kind string, verify bool, extra string) (int64, *modelChange) {
	w.t.Helper()
	c := w.commit(kind)
	w.say("alice", "!backport "+c.commit[:10]+extra)
	w.settle()
	id := w.lastID()
	if verify {
		w.say("bob", fmt.Sprintf("verified %d", id))
		w.settle()
	}
	return id, c
}

// TestSequenceRollbackAfterAnotherRollback (defects 1 and 2): the demo's
// own suggestion, `!rollback 1` after #2 was rolled back, used to leave #1
// rolling back for ever ("staging tip is neither deployment #1's commit nor
// a revert to its base") and announced a restart that never happened; the
// next backport waited for ever.
func TestSequenceRollbackAfterAnotherRollback(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	one, c1 := w.deploy(kindGood, true, "")
	w.mustState(one, deployer.StateDone)
	two, _ := w.deploy(kindBad, true, "")
	w.mustState(two, deployer.StateRolledBack)
	w.say("alice", "!rollback 1")
	w.settle()
	d := w.mustState(one, deployer.StateRolledBack)
	if strings.Contains(w.out.String(), "resuming after a restart") {
		t.Errorf("a rollback asked of the running bot was announced as a resume:\n%s", w.out.String())
	}
	if !strings.Contains(w.out.String(), "Restored 6 hosts to what they served before #1") {
		t.Errorf("the rollback of #1 does not say it restored every host:\n%s", w.out.String())
	}
	// #1 was rolled back by a person: its change is blocked until it is
	// reverted upstream. Then the queue moves: the next backport ships.
	w.revert(c1)
	three, _ := w.deploy(kindGood, true, " --include-unexpected")
	w.mustState(three, deployer.StateDone)
	_ = d
}

// TestSequenceBlameSparesReverts (defect 4): a deployment that carries a
// revert and fails blames only its suspects; the revert is named as not
// blamed, and no revert of a revert is pushed.
func TestSequenceBlameSparesReverts(t *testing.T) {
	w := newWorldWith(t, worldOptions{noPushReverts: true})
	defer func() { w.close(t.Failed()) }()
	w.settle()
	one, c1 := w.deploy(kindGood, true, "")
	w.mustState(one, deployer.StateDone)
	rc := w.revert(c1)
	two, bad := w.deploy(kindBad, true, " --include-unexpected")
	w.mustState(two, deployer.StateRolledBack)
	w.mustSay("Suspected: " + bad.commit[:10])
	w.mustSay(rc.commit[:10] + " (Revert")
	w.mustSay("is a revert: not blamed")
	bs, _ := w.m.Store.Blocks()
	for _, b := range bs {
		if b.Change.ID == rc.commit {
			t.Errorf("the revert %.10s is blocked", rc.commit)
		}
	}
}

// TestSequenceBlockIsSaidFirst (defect 5): after C was rolled back and
// blocked, a backport of D on top of C names the block, not "repeat with
// --include-unexpected"; once C is reverted upstream, C and its revert in
// the same range ship nothing and need no --include-unexpected.
func TestSequenceBlockIsSaidFirst(t *testing.T) {
	w := newWorldWith(t, worldOptions{noPushReverts: true})
	defer func() { w.close(t.Failed()) }()
	w.settle()
	one, c := w.deploy(kindBad, true, "")
	w.mustState(one, deployer.StateRolledBack)
	two, c2 := w.deploy(kindGood, false, "")
	d := w.mustState(two, deployer.StateFailed)
	if !strings.Contains(d.Reason, "was rolled back in #1") || strings.Contains(d.Reason, "--include-unexpected") {
		t.Errorf("refusal: %q", d.Reason)
	}
	rc := w.revert(c)
	next := w.commit(kindGood)
	w.say("alice", "!backport "+c2.commit[:10]+" "+rc.commit[:10]+" "+next.commit[:10])
	w.settle()
	three := w.lastID()
	d = w.state(three)
	if d.State != deployer.StateAwaitingVerification || !strings.Contains(w.out.String(), "cancel out: they ship nothing") {
		t.Fatalf("#%d: %s %q\n%s", three, d.State, d.Reason, w.out.String())
	}
}

// TestSequenceJunkRefsAreRefusedAtOnce (defect 6): junk refs are refused
// when typed, spending no deployment id, even behind a running deployment.
func TestSequenceJunkRefsAreRefusedAtOnce(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	w.deploy(kindGood, false, "") // #1 waits for verification
	for _, junk := range []string{";id", "$(touch x)", "../../etc/passwd", "HEAD~1", strings.Repeat("a", 10000), "caf\xff"} {
		w.say("alice", "!backport "+junk)
		w.settle()
	}
	if n := w.lastID(); n != 1 {
		t.Fatalf("junk refs were queued: last id %d", n)
	}
	if got := strings.Count(w.out.String(), "nothing was queued"); got != 6 {
		t.Errorf("%d refusals, want 6:\n%s", got, w.out.String())
	}
}

// TestSequenceFirstStartWithEmptyHosts (defect 7): the bot reads what its
// hosts serve when it starts, says which serve nothing, and `!sync` brings
// them to the fleet's commit.
func TestSequenceFirstStartWithEmptyHosts(t *testing.T) {
	w := newWorldWith(t, worldOptions{noProvision: true})
	defer func() { w.close(t.Failed()) }()
	// Settle without the invariants first: the hosts are empty.
	for end := time.Now().Add(30 * time.Second); !w.said("6 of 6 hosts are not on the commit the fleet serves"); w.settleQuietly() {
		if time.Now().After(end) {
			t.Fatalf("the bot never said at start that its hosts serve nothing:\n%s", w.out.String())
		}
	}
	w.say("alice", "!status")
	w.mustSay("hosts not on the fleet's commit: ts1 (serves nothing)")
	w.say("alice", "!sync")
	w.settle()
	w.mustSay("ts1 is now on the fleet's commit")
	w.mustSay("mw1, mw2, mw3 are now on the fleet's commit")
}

// TestSequenceHostLeftBehindIsSaid (defect 8): a production host that
// fails within max_failed_hosts is named in the final line, the production
// watch does not judge it, !status names it until `!sync` brings it up.
func TestSequenceHostLeftBehindIsSaid(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	w.broken["mw3"] = true
	id, _ := w.deploy(kindGood, true, "")
	w.mustState(id, deployer.StateDone)
	w.mustSay("production synced (2 hosts)")
	w.mustSay("done on 5 of 6 hosts")
	w.mustSay("is NOT on mw3")
	w.say("alice", "!status")
	w.mustSay("hosts not on the fleet's commit: mw3")
	w.mu.Lock()
	w.broken = map[string]bool{}
	w.mu.Unlock()
	w.say("alice", "!sync mw3")
	w.settle()
	w.mustSay("mw3 is now on the fleet's commit")
	v, _ := w.m.Runner.FleetView(context.Background())
	if b := v.Behind(); len(b) != 0 {
		t.Errorf("still behind after !sync: %+v", b)
	}
}

// TestSequenceRestartWhileWaitingPingsAgain (defects 9 and 11): a restart
// during the verification wait pings the submitter again; a second
// `verified` is answered; a one-file change says "1 file changed"; no
// "every smoke check passed" when none is configured.
func TestSequenceRestartWhileWaitingPingsAgain(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	id, _ := w.deploy(kindGood, false, "")
	w.restart()
	w.settle()
	w.mustSay("still waiting for you (the bot restarted)")
	w.say("bob", fmt.Sprintf("verified %d", id))
	w.settle()
	w.say("alice", fmt.Sprintf("verified %d", id))
	w.settle()
	w.mustSay(fmt.Sprintf("#%d was already verified by", id))
	w.mustSay("1 file changed: changes/")
	evs, _ := w.m.Store.Events(id)
	for _, e := range evs {
		if strings.Contains(e.Message, "smoke check") {
			t.Errorf("a smoke event with no smoke check configured: %q", e.Message)
		}
	}
}

// TestSequenceBrokenCanaryMetricsAreSaidBeforeTheSync (issue 13): a
// canary whose metrics cannot be read is said when the change is
// verified, before the canaries are synced; deployers decide.
func TestSequenceBrokenCanaryMetricsAreSaidBeforeTheSync(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	w.hosts[1].metricsDown.Store(true) // can1
	w.faults++
	id, _ := w.deploy(kindGood, true, "")
	w.mustState(id, deployer.StateAwaitingMetrics)
	w.mustSay("the canaries' metrics cannot be read: can1")
	w.mustSay(fmt.Sprintf("`!promote %d` (sync the canaries without those metrics)", id))
	w.say("alice", "!promote")
	w.settle()
	// Without can1's readings the canary check is inconclusive: asked again.
	w.mustState(id, deployer.StateAwaitingPromotion)
	w.say("alice", "!promote")
	w.settle()
	w.mustState(id, deployer.StateDone)
}

// TestSequenceNobodyCanAnswer (issue 16): when the last chat connection
// stops for good, a deployment waiting for its submitter is rolled back
// without blame instead of waiting on a connection that is gone, and
// deployments are locked.
func TestSequenceNobodyCanAnswer(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	id, _ := w.deploy(kindGood, false, "")
	w.mustState(id, deployer.StateAwaitingVerification)
	w.m.Runner.NobodyCanAnswer("the slack connection, the last one, stopped for good")
	w.settle()
	d := w.mustState(id, deployer.StateRolledBack)
	if d.Blame || !strings.Contains(d.Reason, "nobody can answer any more") {
		t.Errorf("#%d: blame %v, reason %q", id, d.Blame, d.Reason)
	}
	if l, _ := w.m.Store.Lock(); l == nil || !strings.Contains(l.Reason, "nobody can answer the bot") {
		t.Errorf("deployments are not locked: %+v", l)
	}
}

// TestSequenceRollbackWithoutIDAsksWhich (issue 12): `!rollback` without
// an id, after a later deployment was rolled back, does not silently undo
// the earlier good one: it names it and asks for the id.
func TestSequenceRollbackWithoutIDAsksWhich(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	one, _ := w.deploy(kindGood, true, "")
	w.mustState(one, deployer.StateDone)
	two, _ := w.deploy(kindBad, true, "")
	w.mustState(two, deployer.StateRolledBack)
	w.say("alice", "!rollback")
	w.settle()
	w.mustState(one, deployer.StateDone)
	w.mustSay(fmt.Sprintf("#%d came after it. Say which one you mean. Next: `!rollback %d`", two, one))
}

// TestSequenceRepoolWaitsForTheRunningDeployment: found by `make soak`: a
// repool during a deployment synced a canary back to the fleet's commit
// while the running deployment's canaries serve its own. Repool (like
// !sync) now refuses while a deployment runs.
func TestSequenceRepoolWaitsForTheRunningDeployment(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	one, _ := w.deploy(kindQuiet, true, "")
	w.mustState(one, deployer.StateAwaitingPromotion)
	// can1 cannot be restored by the rollback: it is depooled.
	w.mu.Lock()
	w.broken["can1"] = true
	w.mu.Unlock()
	w.faults++
	w.say("alice", fmt.Sprintf("!rollback %d", one))
	w.settle()
	w.mustState(one, deployer.StateRolledBack)
	w.mustSay("Depooled can1")
	w.mu.Lock()
	w.broken["can1"] = false
	w.mu.Unlock()
	next, _ := w.deploy(kindQuiet, true, " --include-unexpected")
	w.mustState(next, deployer.StateAwaitingPromotion)
	w.say("alice", "!repool can1")
	w.settle()
	w.mustSay(fmt.Sprintf("deployment #%d is running; repool hosts when it has finished", next))
}

// TestSequenceRollbackOfADoneDeploymentLeavesAHostBehind (found by `make
// soak`): a deployment done on all hosts, then a host's disk fills and a
// deployer rolls that deployment back. The rollback cannot restore the
// host and says so; "done: ... on all 6 hosts" was true when it was said,
// and the model holds it against the deployment's sync, not against the
// later rollback's failures.
func TestSequenceRollbackOfADoneDeploymentLeavesAHostBehind(t *testing.T) {
	w := newWorld(t)
	defer func() { w.close(t.Failed()) }()
	w.settle()
	id, _ := w.deploy(kindGood, true, "")
	w.mustState(id, deployer.StateDone)
	w.mustSay("is on all 6 hosts")
	w.mu.Lock()
	w.broken["mw3"] = true
	w.mu.Unlock()
	w.say("alice", fmt.Sprintf("!rollback %d", id))
	w.settle()
	w.mustState(id, deployer.StateRolledBack)
	w.mustSay("COULD NOT RESTORE: mw3 (no space left on device)")
	w.mustSay("Depooled mw3")
}

// TestSequenceCompositeBlockHoldsWhileItsBranchHoldsIt (found by the
// model's composite mode): a bad root change is rolled back and blocked;
// a deployment of core alone does not ship it, and used to lift its block
// ("upstream no longer contains it") although master still held it, so a
// later deployment of the root shipped it again. The block now stays until
// master no longer holds it (reverts are not pushed here, so it does).
func TestSequenceCompositeBlockHoldsWhileItsBranchHoldsIt(t *testing.T) {
	w := newWorldWith(t, worldOptions{composite: true, noPushReverts: true})
	defer func() { w.close(t.Failed()) }()
	w.settle()
	bad := w.comp.commitAt("root", kindBad, false, false)
	w.say("alice", "!backport "+bad.ref)
	w.settle()
	w.say("bob", "verified 1")
	w.settle()
	w.mustState(1, deployer.StateRolledBack)
	good := w.comp.commitAt("core", kindGood, false, false)
	w.say("alice", "!backport "+good.ref)
	w.settle()
	w.say("bob", "verified 2")
	w.settle()
	w.mustState(2, deployer.StateDone)
	blocks, err := w.m.Store.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, b := range blocks {
		held = held || b.Change.Commit == bad.commit || b.Change.ID == bad.commit
	}
	if !held {
		t.Fatalf("#2 (core only) lifted the block on %.10s, which master still holds:\n%s", bad.commit, w.out.String())
	}
	w.say("alice", "!backport root:master")
	w.settle()
	w.mustState(3, deployer.StateFailed)
	w.mustSay("[#3] cannot deploy: " + bad.commit[:10])
}
