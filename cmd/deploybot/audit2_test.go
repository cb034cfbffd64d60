package main

// Second audit: backport windows and batches at odd moments, through
// Main with the model's world (real git upstream, local hosts, bbolt).

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
	"github.com/deploybot/deploybot/internal/testparts"
)

// openWindowWorld is a batch world whose clock sits one minute into a
// Monday 13:00 UTC window of windowsYAML, the opening announced.
func openWindowWorld(t *testing.T, opt worldOptions) (*world, *testClock) {
	t.Helper()
	clock := &testClock{}
	clock.set(mondayAhead()(13, 1))
	opt.batch, opt.windows = true, windowsYAML
	w := newWorldWithClock(t, opt, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	return w, clock
}

// carolsChange commits a change authored by Carol, whom nobody maps to a
// person who answers.
func carolsChange(w *world) string {
	w.write("changes/carol.txt", "good\ncarol's\n")
	w.git("-C", w.upstream, "add", "-A")
	w.git("-C", w.upstream, "-c", "user.name=Carol", "-c", "user.email=carol@example.org", "commit", "-q", "--author=Carol Tester <carol@example.org>", "-m", "carol's change")
	return w.git("-C", w.upstream, "rev-parse", "HEAD")
}

// A change dropped from a window's batch because nobody verified it: the
// bot says to put it on a later window with `!add`. Following that advice
// while the window is still open must work, and a later `!window go`
// must deploy it.
func TestAudit2DroppedChangeCanBeAddedAgain(t *testing.T) {
	w, clock := openWindowWorld(t, worldOptions{verify: "1500ms"})
	carol, id := windowBatchDroppingCarol(t, w, clock)
	if !strings.Contains(w.out.String(), "`!add "+carol[:10]+"`") {
		t.Fatalf("the drop does not advise !add:\n%s", w.out.String())
	}
	mark := len(w.out.String())
	w.say("alice", "!add "+carol[:10])
	w.settle()
	reply := w.out.String()[mark:]
	if !strings.Contains(reply, "added "+carol[:10]) {
		t.Fatalf("following the bot's advice failed:\n%s", reply)
	}
	mark = len(w.out.String())
	w.say("alice", "!window go")
	w.settle()
	got := w.lastID()
	if got == id {
		t.Fatalf("!window go after re-adding queued nothing:\n%s", w.out.String()[mark:])
	}
	// Carol is nobody the bot knows: her change's submitter is Alice.
	w.say("alice", "verified")
	if d := w.waitFinished(t, got, 10*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d, carol's change again, ended %s (%s):\n%s", got, d.State, d.Reason, w.out.String()[mark:])
	}
	for _, h := range w.hosts {
		if _, err := os.Stat(h.root + "/current/changes/carol.txt"); err != nil {
			t.Fatalf("%s does not serve carol's change: %v", h.name, err)
		}
	}
}

// `!drop` of a change that already went out in a deployment must not
// claim it was taken off the window while that deployment still ships it.
func TestAudit2DropOfADeployingChange(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{})
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	d, _ := w.m.Store.Get(id)
	if d.State != deployer.StateAwaitingVerification {
		t.Fatalf("#%d is %s", id, d.State)
	}
	mark := len(w.out.String())
	w.say("alice", "!drop "+a.commit[:10])
	w.settle()
	reply := w.out.String()[mark:]
	w.say("bob", "verified")
	w.settle()
	d = w.waitFinished(t, id, 5*time.Second)
	shipped := false
	for _, c := range d.Changes {
		shipped = shipped || c.Commit == a.commit
	}
	if shipped && (strings.Contains(reply, "took "+a.commit[:10]) || !strings.Contains(reply, "went out in #")) {
		t.Fatalf("the bot said %q, yet #%d shipped it (%s)", strings.TrimSpace(reply), id, d.State)
	}
}

// A person's !rollback during a bisection round: every host back on the
// base, the channel told, and nothing of the batch shipped.
func TestAudit2RollbackDuringBisection(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	id, _ := startBatch(w, kindGood, kindBad, kindGood, kindGood)
	w.say("bob", "verified")
	waitRound(t, w, id, 2)
	mark := len(w.out.String())
	w.say("alice", "!rollback")
	w.settle()
	d := w.waitFinished(t, id, 5*time.Second)
	w.settle()
	w.say("alice", "!status")
	w.say("alice", "!status "+strconv.FormatInt(id, 10))
	w.settle()
	text := w.out.String()[mark:]
	if d.State != deployer.StateRolledBack || !strings.Contains(text, "rolled back by Alice Deployer during the bisection") {
		t.Fatalf("#%d ended %s: %s\n%s", id, d.State, d.Reason, text)
	}
	for _, h := range w.hosts {
		for n, on := range w.servesChanges(h.name) {
			if on {
				t.Errorf("%s still serves change %d of the rolled-back batch", h.name, n)
			}
		}
	}
	if strings.Contains(text, "bisecting") {
		t.Errorf("after the rollback the channel still reads bisecting:\n%s", text)
	}
	w.verifyTrees(t)
}

// A window's batch cancelled before it started (or failed before it
// synced anything) shipped nothing: `!window go` must deploy its changes
// again rather than answer that nothing is left.
func TestAudit2WindowGoAfterACancelledBatch(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{})
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.say("alice", "!lock not yet")
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	w.say("alice", "!cancel "+strconv.FormatInt(id, 10))
	w.say("alice", "!unlock")
	w.settle()
	if d, _ := w.m.Store.Get(id); d.State != deployer.StateCancelled {
		t.Fatalf("#%d is %s, want cancelled", id, d.State)
	}
	mark := len(w.out.String())
	w.say("alice", "!window go")
	w.settle()
	if got := w.lastID(); got == id {
		t.Fatalf("!window go after the batch was cancelled queued nothing:\n%s", w.out.String()[mark:])
	}
	d, _ := w.m.Store.Get(w.lastID())
	if len(d.Refs) != 2 {
		t.Fatalf("#%d deploys %v, want both changes", d.ID, d.Refs)
	}
	w.say("bob", "verified")
	w.settle()
	if d = w.waitFinished(t, d.ID, 5*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s", d.ID, d.State)
	}
	mark = len(w.out.String())
	w.say("alice", "!window")
	w.settle()
	if got := w.out.String()[mark:]; strings.Count(got, "shipped in #"+strconv.FormatInt(d.ID, 10)) != 2 {
		t.Errorf("!window does not say both shipped in #%d:\n%s", d.ID, got)
	}
}

// A window's list longer than a batch may be: `!window go` must say what
// to do about the list, not repeat a limit on what the person "named".
func TestAudit2WindowGoWithMoreThanABatch(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{})
	var last string
	for i := 0; i < 9; i++ {
		c := w.commit(kindGood)
		w.say("alice", "!add "+c.commit[:10])
		last = c.commit[:10]
	}
	w.settle()
	mark := len(w.out.String())
	w.say("alice", "!window go")
	w.settle()
	reply := w.out.String()[mark:]
	if w.lastID() != 0 {
		return // it deployed the list: fine
	}
	t.Log(reply)
	if strings.Contains(reply, "this one names") || !strings.Contains(reply, "!drop "+last) {
		t.Fatalf("!window go with 9 changes on the list (a batch holds 8) answered:\n%s", reply)
	}
}

// newGerritWindowSandbox is newGerritSandbox with a one-off backport
// window open now.
func newGerritWindowSandbox(t *testing.T) *gerritSandbox {
	t.Helper()
	testparts.Need(t, "git", "git")
	gs := &gerritSandbox{}
	gs.e2e = newE2E(t, testTimings, func(m *Main) {
		up := m.Config.Source.Components[0].URL
		repo, err := git.PlainOpen(up)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := repo.Reference(plumbing.NewBranchReferenceName(demo.GoodBranch), true)
		if err != nil {
			t.Fatal(err)
		}
		gs.g = gerrittest.New(t, gerrittest.Options{Dir: up, Branch: demo.MainBranch, AutoSubmit: true})
		gs.good = gs.g.Import("bob", ref.Hash().String())
		pw := filepath.Join(t.TempDir(), "gerrit-password")
		if err := os.WriteFile(pw, []byte(gs.g.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.Config.Source.Type = "gerrit"
		m.Config.Source.Components = nil
		m.Config.Source.Gerrit = config.GerritSource{
			URL: gs.g.URL, Project: gs.g.Project, Branch: demo.MainBranch, GitURL: up,
			Username: gs.g.Username, PasswordFile: pw, Approve: true,
			MergeTimeout: config.Dur(30 * time.Second), PollInterval: config.Dur(50 * time.Millisecond),
		}
		m.Config.Windows = config.Windows{Once: []config.OnceWindow{{
			Start: time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), Duration: config.Dur(2 * time.Hour), Name: "audit window"}}}
	})
	return gs
}

// A Gerrit change put on the window by number can be taken off by its
// link (people paste links), and the other way round.
func TestAudit2GerritDropByLink(t *testing.T) {
	gs := newGerritWindowSandbox(t)
	link := fmt.Sprintf("%s/c/app/+/%d", gs.g.URL, gs.good)
	num := strconv.Itoa(gs.good)
	reply := func(user, text string) string {
		t.Helper()
		mark := len(gs.out.String())
		gs.say(user, text)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if got := gs.out.String()[mark:]; strings.Contains(got, "<deploybot>") {
				time.Sleep(50 * time.Millisecond)
				return gs.out.String()[mark:]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no answer to %q", text)
		return ""
	}
	if got := reply("alice", "!add "+num); !strings.Contains(got, "added "+num) {
		t.Fatalf("!add %s: %s", num, got)
	}
	if got := reply("alice", "!drop "+link); !strings.Contains(got, "took "+num) {
		t.Errorf("!drop %s of change %d, added by number, answered:\n%s", link, gs.good, got)
	}
	if got := reply("alice", "!add "+link); !strings.Contains(got, "added "+num) {
		t.Fatalf("!add %s: %s", link, got)
	}
	if got := reply("alice", "!drop "+link+"/1"); !strings.Contains(got, "took "+num) {
		t.Errorf("!drop of the patch-set link of change %d, added by another link, answered:\n%s", gs.good, got)
	}
}

// A change on the window's list that was deployed on its own (a
// `!backport` in the window) before `!window go`.
func TestAudit2WindowGoAfterOneWasBackported(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{})
	a, b := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.say("alice", "!add "+b.commit[:10])
	w.say("alice", "!backport "+a.commit[:10])
	w.settle()
	first := w.lastID()
	w.say("bob", "verified")
	w.settle()
	if d := w.waitFinished(t, first, 5*time.Second); d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s", first, d.State)
	}
	mark := len(w.out.String())
	w.say("alice", "!window")
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	if id != first {
		w.say("bob", "verified")
		w.settle()
		d := w.waitFinished(t, id, 5*time.Second)
		t.Logf("#%d %s: %s", id, d.State, d.Reason)
	}
	w.say("alice", "!window")
	w.settle()
	t.Logf("\n%s", w.out.String()[mark:])
	if got := w.servesChanges("mw1"); !got[a.n] || !got[b.n] {
		t.Errorf("mw1 serves %v, want both changes", got)
	}
	if text := w.out.String()[mark:]; !strings.Contains(text, "alice: queued the window's change "+b.commit[:10]+" as #") {
		t.Errorf("!window go with one change left to deploy answered:\n%s", text)
	}
}

// A change rolled back and blocked, put on the window: what the bot says.
func TestAudit2BlockedChangeOnTheWindow(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{noPushReverts: true})
	bad := w.commit(kindBad)
	w.say("alice", "!backport "+bad.commit[:10])
	w.settle()
	w.say("bob", "verified")
	w.settle()
	if d := w.waitFinished(t, w.lastID(), 5*time.Second); d.State != deployer.StateRolledBack {
		t.Fatalf("#%d ended %s", d.ID, d.State)
	}
	good := w.commit(kindGood)
	mark := len(w.out.String())
	w.say("alice", "!add "+bad.commit[:10])
	w.say("alice", "!add "+good.commit[:10])
	w.say("alice", "!window go")
	w.settle()
	id := w.lastID()
	d, _ := w.m.Store.Get(id)
	if d.State.Active() {
		w.say("bob", "verified")
		w.settle()
		d = w.waitFinished(t, id, 5*time.Second)
	}
	w.say("alice", "!window go")
	w.settle()
	text := w.out.String()[mark:]
	if !strings.Contains(text, bad.commit[:10]+" (change 1 (bad)) was rolled back in #1 and is blocked") {
		t.Errorf("!add of the blocked change was not refused:\n%s", text)
	}
	// The good change sits on top of the bad one upstream: it cannot
	// ship without it, and the bad one stays off every host.
	for _, h := range w.hosts {
		if w.servesChanges(h.name)[bad.n] {
			t.Errorf("%s serves the blocked change (#%d ended %s)", h.name, id, d.State)
		}
	}
}

// `!window go` while no window is open.
func TestAudit2WindowGoWhileClosed(t *testing.T) {
	clock := &testClock{}
	clock.set(mondayAhead()(12, 50))
	w := newWorldWithClock(t, worldOptions{batch: true, windows: windowsYAML}, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	a := w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.settle()
	mark := len(w.out.String())
	w.say("alice", "!window go")
	w.settle()
	reply := w.out.String()[mark:]
	if w.lastID() != 0 {
		t.Fatalf("!window go outside the window queued #%d", w.lastID())
	}
	if !strings.Contains(reply, "no backport window is open now") || strings.Contains(reply, "`!add`") || strings.Contains(reply, "say why with --emergency") {
		t.Errorf("!window go outside the window answered:\n%s", reply)
	}
}

// A restart during a bisection round, then the submitter's !abort during
// the round judged again: every host back on the base.
func TestAudit2AbortAfterRestartDuringBisection(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	id, _ := startBatch(w, kindGood, kindGood, kindGood, kindBad)
	w.say("bob", "verified")
	waitRound(t, w, id, 1)
	w.restart()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.out.String(), "judging it again"); {
		if time.Now().After(deadline) {
			t.Fatal("the round was not resumed after the restart")
		}
		time.Sleep(2 * time.Millisecond)
	}
	mark := len(w.out.String())
	w.say("bob", "!abort "+strconv.FormatInt(id, 10))
	w.settle()
	d := w.waitFinished(t, id, 5*time.Second)
	w.settle()
	text := w.out.String()[mark:]
	if d.State != deployer.StateRolledBack {
		t.Fatalf("#%d ended %s: %s\n%s", id, d.State, d.Reason, text)
	}
	for _, h := range w.hosts {
		for n, on := range w.servesChanges(h.name) {
			if on {
				t.Errorf("%s still serves change %d of the aborted batch", h.name, n)
			}
		}
	}
	w.verifyTrees(t)
}

// A change on a window's list that the window closed without deploying
// is not lost: it is on the next window's list, and the channel is told.
func TestAudit2ListOfAClosedWindowIsCarriedOver(t *testing.T) {
	clock := &testClock{}
	at := mondayAhead()
	clock.set(at(12, 50))
	w := newWorldWithClock(t, worldOptions{batch: true, windows: windowsYAML}, clock.Now)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	a := w.commit(kindGood)
	w.say("alice", "!add "+a.commit[:10])
	w.settle()
	clock.set(at(13, 1))
	if err := w.m.Runner.CheckWindows(); err != nil {
		t.Fatal(err)
	}
	clock.set(at(14, 10)) // the window closed; nobody said !window go
	for i := 0; i < 2; i++ {
		if err := w.m.Runner.CheckWindows(); err != nil {
			t.Fatal(err)
		}
	}
	v, err := w.m.Runner.WindowStatus()
	if err != nil || v.Window == nil || !v.Window.Start.Equal(at(20, 0)) {
		t.Fatalf("window %+v (%v), want the 20:00 one", v.Window, err)
	}
	if len(v.Items) != 1 || v.Items[0].Change.Commit != a.commit {
		t.Errorf("the next window's list is %+v; the change added to the closed window is lost", v.Items)
	}
	n := 0
	for _, x := range w.tap.Notices() {
		if x.Kind == deployer.NoticeWindow && strings.Contains(x.Text, a.commit[:10]) && strings.Contains(x.Text, "closed") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d notices say the change moved to the next window, want 1", n)
	}
}

// `!add` while the window is open: its opening was announced already, so
// the reply must not promise a ping "when it opens".
func TestAudit2AddToTheOpenWindow(t *testing.T) {
	w, _ := openWindowWorld(t, worldOptions{})
	a := w.commit(kindGood)
	mark := len(w.out.String())
	w.say("alice", "!add "+a.commit[:10])
	w.settle()
	if reply := w.out.String()[mark:]; !strings.Contains(reply, "added "+a.commit[:10]) || strings.Contains(reply, "when it opens") {
		t.Errorf("!add to the open window answered:\n%s", reply)
	}
}
