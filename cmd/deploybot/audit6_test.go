package main

// Sixth audit: batches, bisection and backport windows in sequences of
// several steps, through Main with the model's world (real git upstream,
// local hosts, bbolt).

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// A change dropped from a window's batch (nobody verified it) was not
// deployed. When the window closes before anyone puts it back on the
// list, it must move to the next window's list like any change the
// window closed without deploying, and the channel be told.
func TestAudit6DroppedChangeIsCarriedOver(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	carol, _ := windowBatchDroppingCarol(t, w, clock)
	clock.set(mondayAhead()(14, 10)) // the window closed
	for i := 0; i < 2; i++ {
		if err := w.m.Runner.CheckWindows(); err != nil {
			t.Fatal(err)
		}
	}
	v, err := w.m.Runner.WindowStatus()
	if err != nil || v.Window == nil {
		t.Fatalf("window %+v (%v)", v.Window, err)
	}
	found := false
	for _, it := range v.Items {
		found = found || it.Change.Commit == carol || it.Change.ID == carol
	}
	if !found {
		t.Errorf("the next window's list is %+v: carol's change, dropped and on no host, is on no list", v.Items)
	}
	n := 0
	for _, x := range w.tap.Notices() {
		if x.Kind == deployer.NoticeWindow && strings.Contains(x.Text, carol[:10]) && strings.Contains(x.Text, "closed") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d notices say carol's change moved to the next window, want 1", n)
	}
}

// A change dropped unverified from two batches in a row is one withheld
// change: the refusal of the next deployment, the request it advises and
// !status name it once.
func TestAudit6DroppedTwiceIsNamedOnce(t *testing.T) {
	w := newBatchWorld(t, worldOptions{verify: "1500ms"})
	carol := carolsChange(w)
	batchDropping(t, w, carol)
	batchDropping(t, w, carol)
	ws, err := w.m.Runner.Withheld()
	if err != nil || len(ws) != 1 {
		t.Errorf("withheld %+v (%v), want carol's change once", ws, err)
	}
	c := w.commit(kindGood)
	mark := len(w.out.String())
	w.say("alice", "!backport "+c.commit[:10])
	w.settle()
	d := w.waitFinished(t, w.lastID(), 15*time.Second)
	text := w.out.String()[mark:]
	if d.State != deployer.StateFailed || strings.Count(text, carol[:10]+" (carol's change)") != 1 ||
		!strings.Contains(text, "`!backport "+c.commit[:10]+" "+carol[:10]+"`") {
		t.Errorf("#%d ended %s; want refused, naming carol's change once, and the request naming it once:\n%s", d.ID, d.State, text)
	}
	mark = len(w.out.String())
	w.say("alice", "!status")
	w.settle()
	if text := w.out.String()[mark:]; strings.Count(text, carol[:10]) != 2 { // the change, and the command
		t.Errorf("!status names carol's change other than once:\n%s", text)
	}
}

// A window's batch that nobody verified in time is rolled back without
// blaming its changes (nothing is blocked): they were not deployed. When
// the window closes they move to the next window's list.
func TestAudit6UnverifiedBatchIsCarriedOver(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	d, _ := w.m.Store.Get(id)
	time.Sleep(d.Deadline.Sub(clock.Now()) + 100*time.Millisecond)
	w.settle()
	if d = w.waitFinished(t, id, 10*time.Second); d.State != deployer.StateRolledBack || d.Blame {
		t.Fatalf("#%d ended %s (blame %v); want rolled back without blame", id, d.State, d.Blame)
	}
	clock.set(mondayAhead()(14, 10)) // the window closed
	for i := 0; i < 2; i++ {
		if err := w.m.Runner.CheckWindows(); err != nil {
			t.Fatal(err)
		}
	}
	v, err := w.m.Runner.WindowStatus()
	if err != nil || v.Window == nil || len(v.Items) != 2 {
		t.Fatalf("the next window's list is %+v (%v): want both changes of the unverified batch", v.Items, err)
	}
	for _, it := range v.Items {
		if it.Deployment != 0 {
			t.Errorf("%s is on the next list as sent in #%d", it.Change.ID, it.Deployment)
		}
	}
}

// A window's batch aborted by a person is blamed: its changes are
// blocked, and a blocked change does not move to the next window's list
// (!add refuses it there too).
func TestAudit6AbortedBatchIsNotCarriedOver(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{noPushReverts: true})
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	w.say("alice", "!abort")
	w.settle()
	if d := w.waitFinished(t, id, 10*time.Second); d.State != deployer.StateRolledBack || !d.Blame {
		t.Fatalf("#%d ended %s (blame %v); want rolled back, blamed", id, d.State, d.Blame)
	}
	clock.set(mondayAhead()(14, 10))
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	if v, err := w.m.Runner.WindowStatus(); err != nil || len(v.Items) != 0 {
		t.Fatalf("the next window's list is %+v (%v): want the blocked changes left off", v.Items, err)
	}
}

// A bisection that runs out of rounds rolls the whole batch back. The
// changes a round already cleared (the canaries passed with them, and a
// concluded bisection would ship them to production on that) must not be
// blocked and reverted upstream as suspects; the others are.
func TestAudit6MaxRoundsSparesClearedChanges(t *testing.T) {
	w := newBatchWorld(t, worldOptions{maxRounds: 1, noPushReverts: true})
	d, cs, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateRolledBack || d.Bisect == nil || len(d.Bisect.Innocent) == 0 {
		t.Fatalf("#%d ended %s, bisection %+v; want rolled back after one passing round", d.ID, d.State, d.Bisect)
	}
	cleared := map[string]bool{}
	for _, u := range d.Bisect.Innocent {
		for _, c := range d.Bisect.Units[u] {
			cleared[c.Commit] = true
		}
	}
	bs, _ := w.m.Store.Blocks()
	blocked := map[string]bool{}
	for _, b := range bs {
		blocked[b.Change.Commit] = true
		if cleared[b.Change.Commit] {
			t.Errorf("%s passed bisection round 1, yet it is blocked: %+v", deployer.ShortID(b.Change.ID), b)
		}
	}
	if !blocked[cs[3].commit] {
		t.Errorf("blocks %+v: the bad change, never cleared, is not among them", bs)
	}
	if !strings.Contains(w.out.String(), "passed the canaries in the bisection: not blamed") {
		t.Errorf("the channel is not told why the cleared changes are not blamed:\n%s", w.out.String())
	}
	w.verifyTrees(t)
}

// The window closes while its batch still waits for verification; the
// batch then drops a change nobody verified. The next window's list gets
// it once the batch is over.
func TestAudit6WindowClosesWhileItsBatchRuns(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	a := w.commit(kindGood)
	carol := carolsChange(w)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+carol[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	w.say("bob", "verified")
	w.settle()
	clock.set(mondayAhead()(14, 0).Add(time.Second)) // the window closed
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	if d := w.waitFinished(t, id, 10*time.Second); d.State != deployer.StateDone || len(d.Dropped) != 1 {
		t.Fatalf("#%d ended %s, dropped %+v; want carol's dropped, the rest done", id, d.State, d.Dropped)
	}
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	v, err := w.m.Runner.WindowStatus()
	if err != nil || len(v.Items) != 1 || v.Items[0].Change.Commit != carol {
		t.Fatalf("the next window's list is %+v (%v): want carol's change alone", v.Items, err)
	}
}

// `!backport --batch a b` outside a window is refused with the advice to
// put the changes on the next window's list: `!add a b`. Following the
// advice must put both on the list (it answered with !add's usage).
func TestAudit6AddAdviceForABatchWorks(t *testing.T) {
	clock := &testClock{}
	clock.set(mondayAhead()(12, 50))
	w := newWorldWithClock(t, worldOptions{batch: true, windows: windowsYAML}, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!backport --batch "+refs([]*modelChange{a, b}))
	w.settle()
	advice := "`!add " + a.commit[:10] + " " + b.commit[:10] + "`"
	if !strings.Contains(w.out.String(), advice) {
		t.Fatalf("the refusal does not advise %s:\n%s", advice, w.out.String())
	}
	mark := len(w.out.String())
	w.say("alice", strings.Trim(advice, "`"))
	w.settle()
	v, err := w.m.Runner.WindowStatus()
	if err != nil || len(v.Items) != 2 {
		t.Fatalf("following the advice put %d changes on the list (%v), want 2:\n%s", len(v.Items), err, w.out.String()[mark:])
	}
	if reply := w.out.String()[mark:]; strings.Count(reply, "added ") != 2 {
		t.Errorf("the reply does not name both changes added:\n%s", reply)
	}
	// One that cannot go on: the ones before it are added, and the reply
	// says which one is not, and why.
	c := w.commit(kindGood)
	mark = len(w.out.String())
	w.say("alice", "!add "+c.commit[:10]+" "+a.commit[:10])
	w.settle()
	reply := w.out.String()[mark:]
	if v, _ := w.m.Runner.WindowStatus(); len(v.Items) != 3 || !strings.Contains(reply, "added "+c.commit[:10]) ||
		!strings.Contains(reply, "not "+a.commit[:10]+": "+a.commit[:10]+" is on the") {
		t.Errorf("!add of a new change and one on the list: %d on the list, answered:\n%s", len(v.Items), reply)
	}
}

// A change dropped from the window's batch and then deployed on its own
// in the same window was deployed: the window's close does not move it
// to the next list, nor say it was not deployed.
func TestAudit6DroppedThenBackportedIsNotCarriedOver(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	carol, _ := windowBatchDroppingCarol(t, w, clock)
	w.say("alice", "!backport "+carol[:10])
	w.settle()
	w.say("alice", "verified")
	if d := w.waitFinished(t, w.lastID(), 10*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d (carol's change alone) ended %s: %s", d.ID, d.State, d.Reason)
	}
	clock.set(mondayAhead()(14, 10))
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	if v, err := w.m.Runner.WindowStatus(); err != nil || len(v.Items) != 0 {
		t.Errorf("the next window's list is %+v (%v): carol's change was deployed", v.Items, err)
	}
	if n := countKind(w, deployer.NoticeWindow); strings.Contains(w.out.String(), "closed with") {
		t.Errorf("%d window notices; one says the window closed with a change not deployed:\n%s", n, w.out.String())
	}
}
