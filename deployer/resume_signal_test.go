package deployer_test

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/deployertest"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// TestAbortRightAfterARestartIsNotLost: after a restart the bot reads its
// hosts back before it picks up the deployment it was running; a person's
// !abort in that moment must be taken (and acted on once it resumes), not
// refused with "not running right now".
func TestAbortRightAfterARestartIsNotLost(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	e := deployertest.New(t, cfg)
	base := e.Serving()["ts1"]
	d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateAwaitingVerification)
	e.Stop()

	// The restarted bot, before its runner has started.
	r := deployer.NewRunner(cfg, deployer.Deps{
		Store: e.Store, Source: &gitrepo.Reverter{Repo: e.Staging}, Staging: e.Staging, Fleet: e.Fleet,
		Metrics: e.Metrics, Judge: e.Judge, Announcer: e.Notices,
	})
	if err := r.Abort(d.ID, "alice"); err != nil {
		t.Fatalf("!abort before the runner picked #%d up again: %v", d.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	got := e.Await(d.ID, deployer.StateRolledBack, deployer.StateRollbackFailed)
	if got.State != deployer.StateRolledBack || got.Reason != "aborted by alice" {
		t.Errorf("#%d ended %s (%q), want rolled back as aborted by alice", d.ID, got.State, got.Reason)
	}
	if s := e.Serving()["ts1"]; s != base {
		t.Errorf("ts1 serves %.10s after the abort, want the base %.10s", s, base)
	}
}
