package deployer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/deployertest"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// restart stops e's runner and starts another on the same store, staging
// repository and hosts, with fleet instead of e.Fleet when it is not nil.
func restart(t *testing.T, e *deployertest.Env, cfg deployer.Config, fleet deployer.Fleet, pool deployer.Pool) *deployer.Runner {
	t.Helper()
	e.Stop()
	if fleet == nil {
		fleet = e.Fleet
	}
	r := deployer.NewRunner(cfg, deployer.Deps{
		Store: e.Store, Source: &gitrepo.Reverter{Repo: e.Staging}, Staging: e.Staging, Fleet: fleet,
		Metrics: e.Metrics, Judge: e.Judge, Announcer: e.Notices, Pool: pool,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-r.Ready()
	return r
}

// withHook returns e's fleet with host name's syncs followed by argv.
func withHook(e *deployertest.Env, name string, argv ...string) deployer.Fleet {
	fleet := deployer.Fleet{}
	for st, hs := range e.Fleet {
		for _, h := range hs {
			if h.Name() == name {
				h = hosts.WithHook(h, hosts.Hook{Argv: argv})
			}
			fleet[st] = append(fleet[st], h)
		}
	}
	return fleet
}

// TestAudit3SyncFleetSaysWhatAFailedHostServes: a host whose sync failed
// after its flip (here its hook failed) serves the fleet's commit now;
// `!sync` must not tell the channel "it still serves what it served".
func TestAudit3SyncFleetSaysWhatAFailedHostServes(t *testing.T) {
	e := deployertest.New(t, deployer.Config{})
	fleetCommit := e.Serving()["mw1"]
	// mw1 was reimaged: it serves nothing.
	e.Stop()
	if err := os.RemoveAll(filepath.Join(e.Dir, "hosts", "mw1")); err != nil {
		t.Fatal(err)
	}
	r := restart(t, e, deployertest.Timings, withHook(e, "mw1", "false"), nil)
	lines, err := r.SyncFleet(context.Background(), nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(lines, "\n")
	if got := e.Serving()["mw1"]; got != fleetCommit {
		t.Fatalf("mw1 serves %q after the sync; the test wants the flip to have happened (%.10s)", got, fleetCommit)
	}
	if !strings.Contains(text, "FAILED") || strings.Contains(text, "still serves what it served") || !strings.Contains(text, fleetCommit[:10]) {
		t.Errorf("!sync of mw1, which now serves the fleet's commit %.10s but whose hook failed, says:\n%s", fleetCommit, text)
	}
}

// breakHost makes a local host unreadable and unsyncable: its current is a
// directory, not a symlink (a person's mistake on the host).
func breakHost(t *testing.T, e *deployertest.Env, name string) {
	t.Helper()
	cur := filepath.Join(e.Dir, "hosts", name, "current")
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cur, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestAudit3FailedRollbackKeepsDeploymentsLocked: deployments were locked
// by a person (an incident) when a rollback failed, so the bot set no lock
// of its own, yet told the channel "Deployments are locked so nothing
// deploys onto this fleet ... once every host is restored the lock is
// lifted". The person's !unlock must not let the queue deploy onto a
// fleet in an unknown state.
func TestAudit3FailedRollbackKeepsDeploymentsLocked(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	e := deployertest.New(t, cfg)
	d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateAwaitingVerification)
	if err := e.Runner.Lock("bob", "incident in progress"); err != nil {
		t.Fatal(err)
	}
	breakHost(t, e, "ts1")
	if err := e.Runner.Abort(d.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateRollbackFailed)
	if !e.AwaitSaid("Deployments are locked so nothing deploys onto this fleet") {
		t.Fatalf("no ROLLBACK FAILED notice:\n%s", e.Notices.Text())
	}
	// The incident is over; bob lifts his lock. A backport is queued.
	err = e.Runner.Unlock("bob")
	next, _, serr := e.Runner.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "carol"})
	if serr != nil {
		t.Fatal(serr)
	}
	time.Sleep(300 * time.Millisecond)
	l, lerr := e.Store.Lock()
	if lerr != nil {
		t.Fatal(lerr)
	}
	got, _ := e.Store.Get(next.ID)
	if l == nil || got.State != deployer.StateQueued {
		t.Errorf("after bob's !unlock (answered %v) the lock is %+v and #%d is %s: deployments go onto a fleet whose rollback failed", err, l, next.ID, got.State)
	}
	if err == nil || !strings.Contains(deployer.ErrorMessage(err), "rollback of #1 failed") {
		t.Errorf("bob's !unlock was answered %v; want it to say the deployments stay locked because the rollback of #1 failed", err)
	}
	// Unlocking again is a deliberate override, as with the bot's lock.
	if err := e.Runner.Unlock("bob"); err != nil {
		t.Errorf("the second !unlock: %v", err)
	}
	if l, _ := e.Store.Lock(); l != nil {
		t.Errorf("after the second !unlock the lock is %+v", l)
	}
}
