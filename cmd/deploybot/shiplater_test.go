package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// A change dropped from a batch because nobody verified it stays merged
// upstream unshipped. With no backport windows configured, the bot's
// advice must not be `!add` (refused: there is no window); it is
// `!backport`, and following it deploys the change.
func TestDroppedChangeAdviceWithoutWindows(t *testing.T) {
	w := newBatchWorld(t, worldOptions{verify: "1500ms"})
	carol := carolsChange(w)
	id := batchDropping(t, w, carol)
	out := w.out.String()
	if strings.Contains(out, "`!add ") || !strings.Contains(out, "`!backport "+carol[:10]+"`") {
		t.Fatalf("the drop does not advise !backport (and only it):\n%s", out)
	}
	mark := len(w.out.String())
	w.say("alice", "!backport "+carol[:10])
	w.settle()
	if got := w.lastID(); got == id {
		t.Fatalf("following the bot's advice queued nothing:\n%s", w.out.String()[mark:])
	}
	w.say("carol", "verified")
	w.say("alice", "verified")
	d := w.waitFinished(t, w.lastID(), 15*time.Second)
	shipped := false
	for _, c := range d.Changes {
		shipped = shipped || c.Commit == carol || c.ID == carol
	}
	if d.State != deployer.StateDone || !shipped {
		t.Fatalf("#%d ended %s with %+v; want carol's change shipped:\n%s", d.ID, d.State, d.Changes, w.out.String()[mark:])
	}
}

// A change dropped from a batch unverified is merged upstream but on no
// host. The next deployment stages the whole upstream tree: it must not
// ship that change without naming it. It is refused, with the request
// that names it too; that request ships both, and the dropped change's
// submitter is asked to verify it.
func TestDroppedChangeNeverShipsUnnamed(t *testing.T) {
	w := newBatchWorld(t, worldOptions{verify: "1500ms"})
	carol := carolsChange(w)
	id := batchDropping(t, w, carol)
	c := w.commit(kindGood)
	mark := len(w.out.String())
	w.say("alice", "!backport "+c.commit[:10])
	w.settle()
	d := w.waitFinished(t, w.lastID(), 15*time.Second)
	text := w.out.String()[mark:]
	if d.State != deployer.StateFailed || !strings.Contains(text, "dropped from #"+strconv.FormatInt(id, 10)) ||
		!strings.Contains(text, "`!backport "+c.commit[:10]+" "+carol[:10]+"`") {
		t.Fatalf("#%d ended %s; want refused, naming carol's change and the request that names it too:\n%s", d.ID, d.State, text)
	}
	for _, h := range w.hosts {
		if _, err := os.Stat(h.root + "/current/changes/carol.txt"); err == nil {
			t.Fatalf("%s serves carol's unverified change", h.name)
		}
	}
	mark = len(w.out.String())
	w.say("alice", "!backport "+c.commit[:10]+" "+carol[:10])
	w.settle()
	next := w.lastID()
	w.say("bob", "verified")
	d = w.waitFinished(t, next, 15*time.Second)
	text = w.out.String()[mark:]
	if d.State != deployer.StateDone || len(d.Changes) != 2 {
		t.Fatalf("#%d ended %s with %+v; want both shipped:\n%s", next, d.State, d.Changes, text)
	}
	if !strings.Contains(text, "on ts1 now: "+carol[:10]) {
		t.Fatalf("#%d never asked for carol's change to be tested:\n%s", next, text)
	}
	for _, h := range w.hosts {
		if _, err := os.Stat(h.root + "/current/changes/carol.txt"); err != nil {
			t.Fatalf("%s does not serve carol's change after #%d: %v", h.name, next, err)
		}
	}
}

// A change bisection found guilty is blocked, and the block's advice is
// what the next deployment hears (naming it would not help). Once a
// deployer lifts the block, the change is still on no host: the next
// deployment may ship it only by naming it.
func TestGuiltyChangeAfterUnblockShipsOnlyNamed(t *testing.T) {
	w := newBatchWorld(t, worldOptions{noPushReverts: true})
	d, cs, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateDone || len(d.Dropped) != 1 {
		t.Fatalf("#%d ended %s, dropped %+v", d.ID, d.State, d.Dropped)
	}
	bad := cs[3].commit[:10]
	c := w.commit(kindGood)
	mark := len(w.out.String())
	w.say("alice", "!backport "+c.commit[:10])
	w.settle()
	d = w.waitFinished(t, w.lastID(), 10*time.Second)
	text := w.out.String()[mark:]
	if d.State != deployer.StateFailed || !strings.Contains(text, "`!unblock "+bad+"`") || strings.Contains(text, "name it too") {
		t.Fatalf("#%d ended %s; want refused by the block alone:\n%s", d.ID, d.State, text)
	}
	w.say("alice", "!unblock "+bad)
	w.settle()
	mark = len(w.out.String())
	w.say("alice", "!backport "+c.commit[:10])
	w.settle()
	d = w.waitFinished(t, w.lastID(), 10*time.Second)
	text = w.out.String()[mark:]
	if d.State != deployer.StateFailed || !strings.Contains(text, "`!backport "+c.commit[:10]+" "+bad+"`") {
		t.Fatalf("#%d ended %s; want refused until the unblocked change is named:\n%s", d.ID, d.State, text)
	}
	for _, h := range w.hosts {
		if w.servesChanges(h.name)[cs[3].n] {
			t.Fatalf("%s serves the guilty change, which nobody named", h.name)
		}
	}
}

// !status names a change a batch dropped and nothing shipped since, and
// how it ships; once a deployment ships it, it is no longer named.
func TestStatusNamesDroppedChanges(t *testing.T) {
	w := newBatchWorld(t, worldOptions{verify: "1500ms"})
	carol := carolsChange(w)
	id := batchDropping(t, w, carol)
	mark := len(w.out.String())
	w.say("alice", "!status")
	w.settle()
	want := fmt.Sprintf("dropped from a batch and not deployed since: %s (carol's change; dropped from #%d); a deployment ships it only when it names it (!backport %s) or says --include-unexpected", carol[:10], id, carol[:10])
	if text := w.out.String()[mark:]; !strings.Contains(text, want) {
		t.Fatalf("!status does not say %q:\n%s", want, text)
	}
	w.checkStatus(0, w.out.String()[mark:])
	w.say("alice", "!backport "+carol[:10])
	w.settle()
	w.say("alice", "verified")
	if d := w.waitFinished(t, w.lastID(), 15*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s: %s", d.ID, d.State, d.Reason)
	}
	mark = len(w.out.String())
	w.say("alice", "!status")
	w.settle()
	if text := w.out.String()[mark:]; strings.Contains(text, "dropped from a batch") {
		t.Fatalf("!status still names carol's change after it shipped:\n%s", text)
	}
}

// batchDropping backports a new good change of bob's and the change
// commit (carol's) as one batch: bob verifies, nobody verifies the other,
// and the wait runs out. It returns the batch's id.
func batchDropping(t *testing.T, w *world, commit string) int64 {
	t.Helper()
	a := w.commit(kindGood)
	w.say("alice", "!backport --batch "+a.commit[:10]+" "+commit[:10])
	w.settle()
	id := w.lastID()
	w.say("bob", "verified")
	if d := w.waitFinished(t, id, 15*time.Second); d.State != deployer.StateDone || len(d.Dropped) != 1 {
		t.Fatalf("#%d ended %s, dropped %+v; want %.10s dropped, the rest done", id, d.State, d.Dropped, commit)
	}
	return id
}

// windowBatchDroppingCarol puts a good change of bob's and carol's change
// on the open window's list and deploys it: bob verifies, nobody verifies
// carol's, and the wait runs out. It returns carol's commit and the
// batch's id.
func windowBatchDroppingCarol(t *testing.T, w *world, clock *testClock) (string, int64) {
	t.Helper()
	a := w.commit(kindGood)
	carol := carolsChange(w)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+carol[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	w.say("bob", "verified")
	w.settle()
	d, _ := w.m.Store.Get(id)
	time.Sleep(d.Deadline.Sub(clock.Now()) + 100*time.Millisecond)
	w.settle()
	if d = w.waitFinished(t, id, 10*time.Second); d.State != deployer.StateDone || len(d.Dropped) != 1 {
		t.Fatalf("#%d ended %s, dropped %+v; want carol's dropped, the rest done", id, d.State, d.Dropped)
	}
	return carol, id
}

// After a window's batch dropped a change, `!window go` has nothing left
// to deploy, and says why: the dropped change went out and did not ship,
// and `!add` puts it back; following that, the list deploys again.
func TestWindowGoAfterADropSaysWhatToDo(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	carol, id := windowBatchDroppingCarol(t, w, clock)
	mark := len(w.out.String())
	w.say("alice", "!window go")
	w.settle()
	text := w.out.String()[mark:]
	if w.lastID() != id || !strings.Contains(text, carol[:10]+" went out and did not ship") || !strings.Contains(text, "`!add "+carol[:10]+"`") {
		t.Fatalf("!window go after the drop:\n%s", text)
	}
	w.say("alice", "!add "+carol[:10])
	w.say("alice", "!window go")
	w.settle()
	if w.lastID() == id {
		t.Fatalf("following the advice queued nothing:\n%s", w.out.String()[mark:])
	}
}
