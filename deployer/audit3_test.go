package deployer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
