package deployer_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
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
