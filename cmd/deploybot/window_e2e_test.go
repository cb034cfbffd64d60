package main

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// testClock is the runner's clock in window tests: real time moved by an
// offset the test sets, so waits still pass but windows open on demand.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// set makes the clock read t now.
func (c *testClock) set(t time.Time) { c.offset.Store(int64(time.Until(t))) }

const windowsYAML = `windows:
  timezone: UTC
  weekly:
    - {days: [mon, tue, wed, thu], at: ["07:00", "13:00", "20:00"], duration: 60m, name: the backport window}
`

// mondayAhead returns the times of a Monday ahead, UTC: window tests set
// their clock to it (the clock only moves forward from real time: the
// metrics' own readings carry real time, and a window must never end
// before they began).
func mondayAhead() func(h, m int) time.Time {
	day := time.Now().UTC().AddDate(0, 0, 1)
	for day.Weekday() != time.Monday {
		day = day.AddDate(0, 0, 1)
	}
	return func(h, m int) time.Time { return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, time.UTC) }
}

func TestWindowOpeningPingsAndEmergency(t *testing.T) {
	clock := &testClock{}
	// Ten minutes before the 13:00 window.
	at := mondayAhead()
	clock.set(at(12, 50))
	opt := worldOptions{batch: true, windows: windowsYAML}
	w := newWorldWithClock(t, opt, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()

	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!backport "+a.commit[:10])
	w.settle()
	if w.lastID() != 0 {
		t.Fatal("a backport outside the window was queued without --emergency")
	}
	if !strings.Contains(w.out.String(), "no backport window is open now; the next is "+at(13, 0).Format("Mon 2 Jan")+" 13:00–14:00 UTC (in 10m0s)") {
		t.Fatalf("the refusal does not name the next window:\n%s", w.out.String())
	}
	w.say("eve", "!add "+a.commit[:10])
	w.say("bob", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.settle()
	v, err := w.m.Runner.WindowStatus()
	if err != nil || len(v.Items) != 2 || v.Open {
		t.Fatalf("window %+v (%v): want the next window with two changes (eve may not add bob's)", v, err)
	}
	if !strings.Contains(w.out.String(), "only its submitter or a deployer may put it on the window") {
		t.Error("eve's !add was not refused")
	}
	if n := countKind(w, deployer.NoticeWindow); n != 0 {
		t.Fatalf("%d window notices before the window opened", n)
	}

	clock.set(at(13, 0).Add(time.Second))
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	var open deployer.Notice
	n := 0
	for _, x := range w.tap.Notices() {
		if x.Kind == deployer.NoticeWindow {
			open, n = x, n+1
		}
	}
	if n != 1 || len(open.Mention) != 1 || open.Mention[0] != "Bob Submitter" || !strings.Contains(open.Text, "any deployer may deploy") {
		t.Fatalf("%d opening notices; the last: %+v", n, open)
	}
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	d, _ := w.m.Store.Get(id)
	if !d.Batch || len(d.Refs) != 2 || d.State != deployer.StateAwaitingVerification {
		t.Fatalf("window go made #%d %+v", id, d)
	}
	w.say("bob", "verified")
	w.settle()
	if d = w.waitFinished(t, id, 5*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s: %s", id, d.State, d.Reason)
	}

	// After the window: an emergency goes out, recorded and announced,
	// but the lock still wins.
	clock.set(at(14, 10))
	c := w.commit(kindGood)
	w.say("alice", "!lock investigating")
	w.say("alice", "!backport "+c.commit[:10]+" --emergency the login page is down")
	w.settle()
	id = w.lastID()
	d, _ = w.m.Store.Get(id)
	if d.Emergency != "the login page is down" || d.State != deployer.StateQueued {
		t.Fatalf("#%d: emergency %q, state %s; want queued behind the lock", id, d.Emergency, d.State)
	}
	if !strings.Contains(w.out.String(), "EMERGENCY backport #"+strconv.FormatInt(id, 10)+" outside the backport windows, by Alice Deployer: the login page is down") {
		t.Error("the emergency was not announced")
	}
	w.say("alice", "!unlock")
	w.settle()
	w.say("bob", "verified")
	w.settle()
	if d = w.waitFinished(t, id, 5*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s", id, d.State)
	}
	evs, _ := w.m.Store.Events(id)
	found := false
	for _, e := range evs {
		found = found || e.Kind == "emergency"
	}
	if !found {
		t.Error("the emergency is not in the timeline")
	}
}

func countKind(w *world, k deployer.NoticeKind) int {
	n := 0
	for _, x := range w.tap.Notices() {
		if x.Kind == k {
			n++
		}
	}
	return n
}

// TestWindowDeployersAreEnforced: a window that names its deployers is
// theirs: another deployer's !window go and !backport are refused, and an
// emergency still goes out, announced as one in that window.
func TestWindowDeployersAreEnforced(t *testing.T) {
	clock := &testClock{}
	clock.set(mondayAhead()(13, 0).Add(time.Second))
	opt := worldOptions{batch: true, windows: `windows:
  timezone: UTC
  weekly:
    - {days: [mon], at: ["13:00"], duration: 60m, name: the backport window, deployers: ["console:carol"]}
`}
	w := newWorldWithClock(t, opt, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.out.String(), "console:carol may deploy") {
		t.Fatalf("the opening does not say whose window it is:\n%s", w.out.String())
	}
	a := w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!window go")
	w.say("alice", "!backport "+a.commit[:10])
	w.settle()
	if id := w.lastID(); id != 0 {
		t.Fatalf("#%d was queued in carol's window by Alice", id)
	}
	if n := strings.Count(w.out.String(), "window is for console:carol to deploy in, and you are Alice Deployer: ask one of them"); n != 2 {
		t.Fatalf("%d refusals naming the window's deployer, want 2 (!window go and !backport):\n%s", n, w.out.String())
	}
	w.say("alice", "!backport "+a.commit[:10]+" --emergency the login page is down")
	w.settle()
	id := w.lastID()
	if d, _ := w.m.Store.Get(id); d == nil || d.Emergency != "the login page is down" {
		t.Fatalf("the emergency was not queued: %+v", d)
	}
	if !strings.Contains(w.out.String(), "EMERGENCY backport #"+strconv.FormatInt(id, 10)+" in the ") {
		t.Errorf("the emergency is not announced as one in the window:\n%s", w.out.String())
	}
}
