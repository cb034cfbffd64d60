package main

// End-to-end tests of batches, bisection and backport windows through
// Main, with the model's world: a real upstream git repository, local
// two-slot hosts whose /metrics answer as the tree they serve would, and
// a bbolt file. world.check() asserts every invariant (trees exact on
// every host, records true, no bad change on production, staging tip) at
// each settled step; a watcher checks the hosts between steps too.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// hostWatch samples every host while a deployment runs: production must
// never serve a bad change, and each host's tree must be its commit's. It
// counts the samples in which canaries served a bad change (exposure).
type hostWatch struct {
	w        *world
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	problems []string
	badCan   atomic.Int64 // canary-host samples serving a bad change
	samples  atomic.Int64
}

func watchHosts(w *world, every time.Duration) *hostWatch {
	hw := &hostWatch{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(hw.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-hw.stop:
				return
			case <-t.C:
			}
			hw.samples.Add(1)
			for _, h := range w.hosts {
				k := h.kinds()
				if k[kindBad] && h.stage == "production" {
					hw.add(fmt.Sprintf("production host %s served a bad change", h.name))
				}
				if k[kindBad] && h.stage == "canaries" {
					hw.badCan.Add(1)
				}
			}
		}
	}()
	return hw
}

func (hw *hostWatch) add(p string) {
	hw.mu.Lock()
	defer hw.mu.Unlock()
	if len(hw.problems) < 5 {
		hw.problems = append(hw.problems, p)
	}
}

func (hw *hostWatch) finish(t *testing.T) {
	close(hw.stop)
	<-hw.done
	for _, p := range hw.problems {
		t.Error(p)
	}
}

// verifyTrees checks every host's tree against its commit now.
func (w *world) verifyTrees(t *testing.T) {
	t.Helper()
	for _, hs := range w.m.Fleet {
		for _, h := range hs {
			inner := h.(*faultyHost).Host
			if err := hosts.VerifyHost(context.Background(), inner.(*hosts.Local), w.m.Staging); err != nil {
				t.Fatalf("%s: its tree is not its commit's: %v", h.Name(), err)
			}
		}
	}
}

// waitState waits until deployment id is in a finished state.
func (w *world) waitFinished(t *testing.T, id int64, within time.Duration) *deployer.Deployment {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d, err := w.m.Store.Get(id)
		if err == nil && d.State.Finished() {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	d, _ := w.m.Store.Get(id)
	t.Fatalf("#%d did not finish within %s (it is %s)", id, within, d.State)
	return nil
}

func refs(cs []*modelChange) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.commit[:10])
	}
	return strings.Join(s, " ")
}

// serves reports which of the changes a host's tree holds, as change numbers.
func (w *world) servesChanges(name string) map[int]bool {
	out := map[int]bool{}
	for _, h := range w.hosts {
		if h.name != name {
			continue
		}
		for _, c := range w.changes {
			if b, err := readChange(h, c.n); err == nil && strings.HasPrefix(b, c.kind+"\n") {
				out[c.n] = true
			}
		}
	}
	return out
}

func newBatchWorld(t *testing.T, opt worldOptions) *world {
	opt.batch = true
	w := newWorldWith(t, opt)
	t.Cleanup(func() { w.close(t.Failed()) })
	w.settle()
	return w
}

// startBatch commits a change of each kind upstream and backports them
// as one batch; it returns the deployment's id and the changes.
func startBatch(w *world, kinds ...string) (int64, []*modelChange) {
	var cs []*modelChange
	for _, k := range kinds {
		cs = append(cs, w.commit(k))
	}
	w.say("alice", "!backport --batch "+refs(cs))
	w.settle()
	return w.lastID(), cs
}

// waitRound waits until deployment id is judging bisection round n.
func waitRound(t *testing.T, w *world, id int64, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := w.m.Store.Get(id)
		if d.State == deployer.StateBisecting && d.Bisect.Round >= n && d.Bisect.Testing != nil {
			return
		}
		if time.Now().After(deadline) || d.State.Finished() {
			t.Fatalf("#%d never reached bisection round %d (it is %s)", id, n, d.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bisectBatch deploys kinds as one batch, verifies it, and waits for the
// end; it returns the deployment and the changes.
func bisectBatch(t *testing.T, w *world, kinds ...string) (*deployer.Deployment, []*modelChange, *hostWatch) {
	t.Helper()
	id, cs := startBatch(w, kinds...)
	d, _ := w.m.Store.Get(id)
	if d.State != deployer.StateAwaitingVerification {
		t.Fatalf("#%d is %s (%s), want awaiting-verification", id, d.State, d.Reason)
	}
	hw := watchHosts(w, 10*time.Millisecond)
	w.say("bob", "verified")
	w.settle()
	hw.finish(t)
	d = w.waitFinished(t, id, 5*time.Second)
	return d, cs, hw
}

func TestBatchFourOneBadTwoRounds(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	d, cs, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s: %s", d.ID, d.State, d.Reason)
	}
	if d.Bisect == nil || d.Bisect.Round != 2 || len(d.Bisect.Rounds) != 2 {
		t.Fatalf("bisection: %+v, want 2 rounds", d.Bisect)
	}
	if len(d.Changes) != 3 || len(d.Dropped) != 1 || d.Dropped[0].Change.Commit != cs[3].commit || !d.Dropped[0].Guilty {
		t.Fatalf("shipped %v, dropped %+v; want the three good ones shipped and change 4 guilty", d.Changes, d.Dropped)
	}
	for _, h := range []string{"ts1", "can1", "can2", "mw1", "mw2", "mw3"} {
		got := w.servesChanges(h)
		if !got[1] || !got[2] || !got[3] || got[4] {
			t.Errorf("%s serves changes %v, want 1, 2 and 3 only", h, got)
		}
	}
	bs, _ := w.m.Store.Blocks()
	upstreamReverted := false
	for _, c := range w.changes {
		upstreamReverted = upstreamReverted || c.of == cs[3].commit
	}
	if len(bs) != 1 || bs[0].Change.Commit != cs[3].commit {
		t.Errorf("blocks %+v, want change 4 blocked", bs)
	}
	text := w.out.String()
	for _, want := range []string{"testing 2 of 4 changes on the canaries", "testing 3 of 4 changes on the canaries", "bisection done in 2 rounds"} {
		if !strings.Contains(text, want) {
			t.Errorf("the channel was not told %q", want)
		}
	}
	evs, _ := w.m.Store.Events(d.ID)
	n := 0
	for _, e := range evs {
		if e.Kind == "bisect" {
			n++
		}
	}
	if n < 2 {
		t.Errorf("the timeline holds %d bisect events, want the rounds", n)
	}
	w.verifyTrees(t)
}

func TestBatchEightTwoBad(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	d, cs, _ := bisectBatch(t, w, kindGood, kindBad, kindGood, kindGood, kindGood, kindGood, kindBad, kindGood)
	if d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s: %s", d.ID, d.State, d.Reason)
	}
	guilty := map[string]bool{}
	for _, x := range d.Dropped {
		if x.Guilty {
			guilty[x.Change.Commit] = true
		}
	}
	if len(guilty) != 2 || !guilty[cs[1].commit] || !guilty[cs[6].commit] || len(d.Changes) != 6 {
		t.Fatalf("guilty %v, shipped %d; want changes 2 and 7 guilty, 6 shipped", guilty, len(d.Changes))
	}
	t.Logf("two bad among eight: %d rounds", d.Bisect.Round)
	w.verifyTrees(t)
}

func TestBatchDependencyPairKeptTogether(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	a := w.commit(kindGood)
	// b edits a's file: it depends on a, and is bad.
	w.write(fmt.Sprintf("changes/c%d.txt", a.n), fmt.Sprintf("%s\nchange %d, amended\n", kindBad, a.n))
	w.git("-C", w.upstream, "commit", "-qam", "amend change 1 (bad)")
	b := &modelChange{n: len(w.changes) + 1, kind: kindBad, commit: w.git("-C", w.upstream, "rev-parse", "HEAD")}
	w.changes = append(w.changes, b)
	w.byCommit[b.commit] = b
	c1, c2 := w.commit(kindGood), w.commit(kindGood)
	w.say("alice", "!backport --batch "+refs([]*modelChange{a, b, c1, c2}))
	w.settle()
	id := w.lastID()
	w.say("bob", "verified")
	w.settle()
	d := w.waitFinished(t, id, 5*time.Second)
	if d.State != deployer.StateDone {
		t.Fatalf("#%d ended %s: %s", id, d.State, d.Reason)
	}
	if len(d.Bisect.Units[0]) != 2 {
		t.Fatalf("units %v: want change 1 and its amendment as one unit", d.Bisect.Units)
	}
	for _, r := range d.Bisect.Rounds {
		has := map[string]bool{}
		for _, id := range r.Changes {
			has[id] = true
		}
		if has[a.commit[:10]] != has[b.commit[:10]] {
			t.Errorf("round %d separated change 1 from the change that depends on it: %v", r.Round, r.Changes)
		}
	}
	if len(d.Changes) != 2 {
		t.Errorf("shipped %d changes, want the two independent good ones", len(d.Changes))
	}
	w.verifyTrees(t)
}

func TestBatchRestartDuringBisection(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	id, _ := startBatch(w, kindGood, kindBad, kindGood, kindGood)
	w.say("bob", "verified")
	// Wait for the first round to be staged, then restart.
	waitRound(t, w, id, 1)
	w.log = append(w.log, "restart during the bisection")
	w.restart()
	w.settle()
	d := w.waitFinished(t, id, 5*time.Second)
	if d.State != deployer.StateDone || len(d.Changes) != 3 {
		t.Fatalf("#%d ended %s with %d changes: %s", id, d.State, len(d.Changes), d.Reason)
	}
	if !strings.Contains(w.out.String(), "the bot restarted during bisection round") {
		t.Error("the channel was not told the round is judged again")
	}
	w.verifyTrees(t)
}

func TestBatchSubmitterDoesNotVerify(t *testing.T) {
	w := newBatchWorld(t, worldOptions{verify: "1500ms"})
	a := w.commit(kindGood)
	// Carol's change, which nobody verifies.
	w.write("changes/carol.txt", "good\ncarol's\n")
	w.git("-C", w.upstream, "add", "-A")
	cmd := []string{"-C", w.upstream, "-c", "user.name=Carol", "-c", "user.email=carol@example.org", "commit", "-q", "--author=Carol Tester <carol@example.org>", "-m", "carol's change"}
	w.git(cmd...)
	carol := w.git("-C", w.upstream, "rev-parse", "HEAD")
	b := w.commit(kindGood)
	w.say("alice", "!backport --batch "+a.commit[:10]+" "+carol[:10]+" "+b.commit[:10])
	w.settle()
	id := w.lastID()
	w.say("bob", "verified")
	w.settle()
	d, _ := w.m.Store.Get(id)
	if d.State != deployer.StateAwaitingVerification {
		t.Fatalf("#%d is %s after bob verified his two; carol's is still unverified", id, d.State)
	}
	time.Sleep(time.Until(d.Deadline) + 100*time.Millisecond)
	w.settle()
	d = w.waitFinished(t, id, 5*time.Second)
	if d.State != deployer.StateDone || len(d.Changes) != 2 || len(d.Dropped) != 1 || d.Dropped[0].Change.Commit != carol {
		t.Fatalf("#%d ended %s, shipped %d, dropped %+v; want carol's change dropped, the rest done", id, d.State, len(d.Changes), d.Dropped)
	}
	if got := w.servesChanges("mw1"); !got[a.n] || !got[b.n] {
		t.Errorf("mw1 serves %v", got)
	}
	if !strings.Contains(w.out.String(), "dropped from the batch") {
		t.Error("the drop was not announced")
	}
	w.verifyTrees(t)
}

func readChange(h *modelHost, n int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/current/changes/c%d.txt", h.root, n))
	return string(b), err
}
