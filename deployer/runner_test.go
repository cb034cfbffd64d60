package deployer_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/deployertest"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/store"
)

// done stores a deployment that went all the way to done.
func done(t *testing.T, st deployer.Store) int64 {
	t.Helper()
	id, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "alice", Refs: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	path := []deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
		deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateSyncingProduction, deployer.StateDone}
	from := deployer.StateQueued
	for _, to := range path {
		if _, err := st.Transition(id, from, to, deployer.Event{Actor: "test"}, nil); err != nil {
			t.Fatal(err)
		}
		from = to
	}
	return id
}

// TestRollbackOfAnOlderDeploymentNamesTheLaterOnes: only the latest
// deployment that reached the hosts may be rolled back; the refusal lists
// the ones in the way, and rolled-back or failed ones are not in the way.
func TestRollbackOfAnOlderDeploymentNamesTheLaterOnes(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "d.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := deployer.NewRunner(deployer.Config{}, deployer.Deps{Store: st})

	first, second := done(t, st), done(t, st)
	failed, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "bob", Refs: []string{"y"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Transition(failed, deployer.StateQueued, deployer.StatePreparing, deployer.Event{}, nil)
	st.Transition(failed, deployer.StatePreparing, deployer.StateFailed, deployer.Event{}, nil)

	err = r.Rollback(first, "alice")
	want := "cannot roll back #1: later deployments stand in the way: #2 (done). Roll those back first, newest first."
	if err == nil || deployer.ErrorMessage(err) != want {
		t.Fatalf("rollback of #1: %v\nwant: %s", err, want)
	}
	if d, _ := st.Get(first); d.State != deployer.StateDone {
		t.Errorf("#1 after a refused rollback: %s", d.State)
	}

	// The latest one may be rolled back; the failed #3 is not in its way.
	if err := r.Rollback(second, "alice"); err != nil {
		t.Fatalf("rollback of #2: %v", err)
	}
	d, _ := st.Get(second)
	if d.State != deployer.StateRollingBack || d.Reason != "rolled back by alice" {
		t.Errorf("#2: %s %q", d.State, d.Reason)
	}
	// A second request while it rolls back is refused with a reason.
	if err := r.Rollback(second, "bob"); err == nil || !strings.Contains(err.Error(), "already rolling back") {
		t.Errorf("second rollback of #2: %v", err)
	}
	if err := r.Rollback(failed, "alice"); err == nil || !strings.Contains(err.Error(), "nothing to roll back") {
		t.Errorf("rollback of a failed deployment: %v", err)
	}
}

// staging is a deploy branch whose Revert fails until mended: a full disk
// on the deploy host. It is this package's own interface, not an outside
// system, so a small implementation is the honest test double here. Each
// commit's tree is named by tree: a revert holds its target's tree.
type staging struct {
	mu     sync.Mutex
	head   string
	tree   map[string]string
	broken bool
}

func (s *staging) Head(context.Context) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head, "up-" + s.head, nil
}
func (s *staging) Commit(context.Context, *deployer.Deployment, string) (string, error) {
	return "", errors.New("unused")
}
func (s *staging) Revert(_ context.Context, _ *deployer.Deployment, to, _ string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return "", errors.New("write staging.git/objects: no space left on device")
	}
	s.tree["revert-of-"+s.head] = s.tree[to]
	s.head = "revert-of-" + s.head
	return s.head, nil
}
func (s *staging) Changed(_ context.Context, a, b string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tree[a] != s.tree[b] {
		return []string{"x"}, nil
	}
	return nil, nil
}
func (s *staging) Diff(context.Context, string, string) ([]deployer.FileChange, error) {
	return nil, nil
}

// TestRollbackThatKeepsFailingEndsAndLocks (defect 3 of the sequences
// issue): a rollback whose staging commit cannot be written is tried a
// bounded number of times, then ends rollback-failed with every host said
// host by host, and the bot locks deployments; once mended, a deployer's
// rollback completes it and lifts the bot's lock. It used to retry for
// ever, holding the queue.
func TestRollbackThatKeepsFailingEndsAndLocks(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "d.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id := done(t, st)
	if _, err := st.Update(id, func(d *deployer.Deployment) { d.Commit, d.Base = "c1", "c0" }); err != nil {
		t.Fatal(err)
	}
	fleet := deployer.Fleet{deployer.Production: {hosts.NewLocal("mw1001", t.TempDir()), hosts.NewLocal("mw1002", t.TempDir())}}
	stg := &staging{head: "c1", tree: map[string]string{"c1": "T1", "c0": "T0"}, broken: true}
	rec := &deployertest.Recorder{}
	r := deployer.NewRunner(deployer.Config{RetryDelay: 10 * time.Millisecond, RollbackTries: 3},
		deployer.Deps{Store: st, Staging: stg, Announcer: rec, Fleet: fleet})
	if err := r.Rollback(id, "alice"); err != nil {
		t.Fatal(err)
	}
	queued, _, err := r.Submit(deployer.Request{Refs: []string{"next"}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	waitState := func(want deployer.State) *deployer.Deployment {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			d, _ := st.Get(id)
			if d.State == want {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("#%d is %s, want %s; notices:\n%s", id, d.State, want, rec.Text())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	d := waitState(deployer.StateRollbackFailed)
	for end := time.Now().Add(5 * time.Second); !strings.Contains(rec.Text(), "ROLLBACK FAILED") && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if d.RollbackTries != 3 {
		t.Errorf("tries: %d, want 3", d.RollbackTries)
	}
	texts := rec.Text()
	for _, want := range []string{"the rollback is not complete (try 1 of 3)", "(try 2 of 3)", "ROLLBACK FAILED", "(rolled back by alice) failed after 3 tries;",
		"mw1001: restored, read back", "mw1002: restored, read back", "Deployments are locked"} {
		if !strings.Contains(texts, want) {
			t.Errorf("notices lack %q:\n%s", want, texts)
		}
	}
	if strings.Contains(texts, "no space left") || strings.Contains(texts, "resuming after a restart") {
		t.Errorf("a Go error or a false resume reached the chat:\n%s", texts)
	}
	if l, _ := st.Lock(); l == nil || l.By != "deploybot" {
		t.Fatalf("deployments are not locked by the bot: %+v", l)
	}
	if q, _ := st.Get(queued.ID); q.State != deployer.StateQueued {
		t.Errorf("the queued deployment started on a fleet in an unknown state: %s", q.State)
	}
	// This runner has no change source: take the queued one off first.
	if err := r.Cancel(queued.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	stg.mu.Lock()
	stg.broken = false
	stg.mu.Unlock()
	if err := r.Rollback(id, "alice"); err != nil {
		t.Fatalf("a deployer's retry: %v", err)
	}
	d = waitState(deployer.StateRolledBack)
	if d.RollbackCommit != "revert-of-c1" {
		t.Errorf("rollback commit %q", d.RollbackCommit)
	}
	if l, _ := st.Lock(); l != nil {
		t.Errorf("the bot's lock was not lifted: %+v", l)
	}
	for _, h := range fleet.Hosts() {
		if cur, err := h.Current(ctx); err != nil || cur != "c0" {
			t.Errorf("%s serves %q (%v), want c0", h.Name(), cur, err)
		}
	}
}
