package deployer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/deployertest"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/store"
)

// restart stops e's runner and starts another on the same store, staging
// repository and hosts, with fleet instead of e.Fleet when it is not nil.
func restart(t *testing.T, e *deployertest.Env, cfg deployer.Config, fleet deployer.Fleet, pool deployer.Pool) *deployer.Runner {
	r, _ := restartWith(t, e, cfg, func(d *deployer.Deps) {
		if fleet != nil {
			d.Fleet = fleet
		}
		if pool != nil {
			d.Pool = pool
		}
	})
	return r
}

// restartWith is restart with the runner's parts changed by edit; stop
// stops the runner as a crash does.
func restartWith(t *testing.T, e *deployertest.Env, cfg deployer.Config, edit func(*deployer.Deps)) (r *deployer.Runner, stop func()) {
	t.Helper()
	e.Stop()
	deps := deployer.Deps{
		Store: e.Store, Source: &gitrepo.Reverter{Repo: e.Staging}, Staging: e.Staging, Fleet: e.Fleet,
		Metrics: e.Metrics, Judge: e.Judge, Announcer: e.Notices,
	}
	edit(&deps)
	r = deployer.NewRunner(cfg, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	stop = func() {
		if cancel != nil {
			cancel()
			<-done
			cancel = nil
		}
	}
	t.Cleanup(stop)
	<-r.Ready()
	return r, stop
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

// deployDone deploys a new change through to done and returns it.
func deployDone(t *testing.T, e *deployertest.Env) *deployer.Deployment {
	t.Helper()
	d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateAwaitingVerification)
	if err := e.Runner.Verify(d.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	return e.Await(d.ID, deployer.StateDone)
}

// TestAudit3HostDepooledByAnEarlierTryIsNamed: the first try of a rollback
// could not restore can1 and can2; can1 was depooled, can2's depool failed,
// so the rollback was tried again, and the second try restored both. can1
// is still out of service (the store says depooled by #1); the channel
// must be told so, and how to put it back, not only "restored 5 hosts".
func TestAudit3HostDepooledByAnEarlierTryIsNamed(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	cfg.RollbackTries = 3
	e := deployertest.New(t, cfg)
	d := deployDone(t, e)
	// can1's and can2's hooks fail on their first run only.
	flags := t.TempDir()
	once := []string{"sh", "-c", `f="$0/{host}"; test -e "$f" || { touch "$f"; echo reload failed; exit 1; }`, flags}
	fleet := withHook(e, "can1", once...)
	for i, h := range fleet[deployer.Canaries] {
		if h.Name() == "can2" {
			fleet[deployer.Canaries][i] = hosts.WithHook(h, hosts.Hook{Argv: once})
		}
	}
	pool := hosts.NewCommandPool(fleet, map[deployer.Stage]hosts.PoolCommands{
		deployer.Canaries: {Depool: []string{"sh", "-c", `test "$0" != can2`, "{host}"}, Repool: []string{"true"}},
	})
	r := restart(t, e, cfg, fleet, pool)
	if err := r.Rollback(d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	got := e.Await(d.ID, deployer.StateRolledBack, deployer.StateRollbackFailed)
	if got.State != deployer.StateRolledBack {
		t.Fatalf("#%d is %s; want rolled back on the second try:\n%s", d.ID, got.State, e.Notices.Text())
	}
	recs, err := e.Store.Hosts()
	if err != nil {
		t.Fatal(err)
	}
	if !recs["can1"].Depooled {
		t.Fatalf("can1 is not recorded depooled; the test wants it depooled by the first try:\n%s", e.Notices.Text())
	}
	if !e.AwaitSaid("rolled back") {
		t.Fatal("no rolled-back notice")
	}
	text := e.Notices.Text()
	final := text[strings.LastIndex(text, "rolled-back: "):]
	if !strings.Contains(final, "can1") || !strings.Contains(final, "depooled") {
		t.Errorf("can1 is still depooled after the rollback of #%d, but the channel was not told so:\n%s", d.ID, text)
	}
}

// TestAudit3FailedRollbackNamesTheDepooledHosts: a rollback that ends
// rollback-failed (can2 could be neither restored nor depooled) had
// depooled can1; the host-by-host account must say can1 is out of
// service, not leave a deployer to think it still takes traffic.
// failedRollbackWithCan1Depooled deploys a change, then rolls it back
// with can1's and can2's hooks failing every time: can1 is depooled, can2's
// depool fails, and the rollback ends rollback-failed.
func failedRollbackWithCan1Depooled(t *testing.T) (*deployertest.Env, *deployer.Runner, *deployer.Deployment) {
	t.Helper()
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	e := deployertest.New(t, cfg)
	d := deployDone(t, e)
	fleet := withHook(e, "can1", "false")
	for i, h := range fleet[deployer.Canaries] {
		if h.Name() == "can2" {
			fleet[deployer.Canaries][i] = hosts.WithHook(h, hosts.Hook{Argv: []string{"false"}})
		}
	}
	pool := hosts.NewCommandPool(fleet, map[deployer.Stage]hosts.PoolCommands{
		deployer.Canaries: {Depool: []string{"sh", "-c", `test "$0" != can2`, "{host}"}, Repool: []string{"true"}},
	})
	r := restart(t, e, cfg, fleet, pool)
	if err := r.Rollback(d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateRollbackFailed)
	if !e.AwaitSaid("ROLLBACK FAILED") {
		t.Fatal("no ROLLBACK FAILED notice")
	}
	return e, r, d
}

func TestAudit3FailedRollbackNamesTheDepooledHosts(t *testing.T) {
	e, _, _ := failedRollbackWithCan1Depooled(t)
	text := e.Notices.Text()
	final := text[strings.LastIndex(text, "ROLLBACK FAILED"):]
	i := strings.Index(final, "can1: ")
	if i < 0 {
		t.Fatalf("can1 is not in the host-by-host account:\n%s", final)
	}
	can1, _, _ := strings.Cut(final[i:], ";")
	if !strings.Contains(can1, "depooled") {
		t.Errorf("can1 was depooled, but the ROLLBACK FAILED notice says only %q:\n%s", can1, text)
	}
}

// TestAudit3RestartMidDeploymentDoesNotCallItsHostsBehind: the bot
// restarts while #1 waits for verification on ts1. The start-up check
// must not tell the channel that ts1 is off the fleet's commit and that
// !sync brings it up to date: #1 put it there on purpose, and !sync would
// take the change off the testserver being tested.
func TestAudit3RestartMidDeploymentDoesNotCallItsHostsBehind(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	e := deployertest.New(t, cfg)
	d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateAwaitingVerification)
	restart(t, e, cfg, nil, nil)
	if !e.AwaitSaid("still waiting for you (the bot restarted)") {
		t.Fatalf("#1 was not resumed:\n%s", e.Notices.Text())
	}
	if text := e.Notices.Text(); strings.Contains(text, "not on the commit the fleet serves") {
		t.Errorf("after a restart mid-deployment, the channel heard that #1's host is behind:\n%s", text)
	}
}

// stallingSmoker has one production smoke check, which hangs until the
// bot stops (entered is closed when it starts).
type stallingSmoker struct{ entered chan struct{} }

func (s *stallingSmoker) Checks(st deployer.Stage) int {
	if st == deployer.Production {
		return 1
	}
	return 0
}

func (s *stallingSmoker) Smoke(ctx context.Context, st deployer.Stage, hs []string) []string {
	close(s.entered)
	<-ctx.Done()
	return nil
}

// TestAudit3HostThatSyncsOnTheRedoIsNotCalledBehind: mw1's production
// sync failed within max_failed_hosts and it was put back on the base; the
// bot stopped during the production smoke checks, and on the redo of the
// sync after the restart mw1 synced fine. The done notice must not say
// "is NOT on mw1" (nor !sync it) while mw1 serves the deployment.
func TestAudit3HostThatSyncsOnTheRedoIsNotCalledBehind(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	cfg.MaxFailedProduction = func(int) int { return 1 }
	e := deployertest.New(t, cfg)
	flags := t.TempDir()
	once := []string{"sh", "-c", `f="$0/{host}"; test -e "$f" || { touch "$f"; echo reload failed; exit 1; }`, flags}
	fleet := withHook(e, "mw1", once...)
	smoker := &stallingSmoker{entered: make(chan struct{})}
	r, stop := restartWith(t, e, cfg, func(d *deployer.Deps) { d.Fleet, d.Smoker = fleet, smoker })
	d, _, err := r.Submit(deployer.Request{Refs: []string{e.Change()}, Requester: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e.Await(d.ID, deployer.StateAwaitingVerification)
	if err := r.Verify(d.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-smoker.entered:
	case <-time.After(20 * time.Second):
		t.Fatalf("the production smoke check never started:\n%s", e.Notices.Text())
	}
	stop()
	if got, _ := e.Store.Get(d.ID); got.State != deployer.StateSyncingProduction || got.FailedHosts["mw1"] == "" {
		t.Fatalf("#%d is %s with failed hosts %v; the test wants mw1 tolerated mid-production", d.ID, got.State, got.FailedHosts)
	}
	restart(t, e, cfg, fleet, nil)
	got := e.Await(d.ID, deployer.StateDone, deployer.StateRolledBack)
	if got.State != deployer.StateDone {
		t.Fatalf("#%d ended %s", d.ID, got.State)
	}
	if !e.AwaitSaid("done") {
		t.Fatal("no done notice")
	}
	serving := e.Serving()
	if serving["mw1"] != serving["mw2"] {
		t.Fatalf("mw1 serves %.10s, mw2 %.10s; the test wants the redo to have synced mw1", serving["mw1"], serving["mw2"])
	}
	text := e.Notices.Text()
	if done := text[strings.LastIndex(text, "done: "):]; strings.Contains(done, "NOT on") {
		t.Errorf("mw1 serves #%d's commit, read back, but the done notice says:\n%s", d.ID, done)
	}
}

// TestAudit3UnreadableHostIsNotCalledNotReadYet: a host the bot tried to
// read back and could not is "could not be read back", not "not read back
// yet" (which promises a reading that nothing will make).
func TestAudit3UnreadableHostIsNotCalledNotReadYet(t *testing.T) {
	e := deployertest.New(t, deployer.Config{})
	breakHost(t, e, "mw1")
	lines, err := e.Runner.SyncFleet(context.Background(), []string{"mw1"}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(lines, "\n"); !strings.Contains(text, "could not be read back") {
		t.Errorf("!sync mw1, whose current is a directory, says:\n%s", text)
	}
	v, err := e.Runner.FleetView(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range v.Hosts {
		if h.Record.Name == "mw1" && (strings.Contains(h.OffFleet, "not read back yet") || !strings.Contains(h.OffFleet, "could not be read back")) {
			t.Errorf("mw1, which the sync just failed to read back, is shown as %q", h.OffFleet)
		}
	}
}

// TestAudit3RepoolSaysWhatTheHostServes: !repool of can1, whose sync to
// the deployed commit fails after its flip (its hook fails), must not say
// can1 "does not serve the deployed commit": it does, read back.
func TestAudit3RepoolSaysWhatTheHostServes(t *testing.T) {
	e, r, d := failedRollbackWithCan1Depooled(t)
	err := r.Repool(context.Background(), "can1", "alice")
	if err == nil {
		t.Fatal("!repool can1 succeeded although its hook fails")
	}
	if got := e.Serving()["can1"]; got != d.Base {
		t.Fatalf("can1 serves %.10s; the test wants it on the base %.10s", got, d.Base)
	}
	if msg := deployer.ErrorMessage(err); strings.Contains(msg, "does not serve") || !strings.Contains(msg, "serves the fleet's commit") {
		t.Errorf("!repool can1, which serves the deployed commit (read back) but whose hook fails, answers: %s", msg)
	}
}

// TestAudit3RolledBackSaysWhatAnUnrestoredHostServes: can1's restore
// failed after its flip (its hook fails), so it serves the base again,
// read back; the rolled-back notice must say so rather than only "COULD
// NOT RESTORE: can1", and must not say it may still serve the change.
func TestAudit3RolledBackSaysWhatAnUnrestoredHostServes(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	e := deployertest.New(t, cfg)
	d := deployDone(t, e)
	fleet := withHook(e, "can1", "false")
	pool := hosts.NewCommandPool(fleet, map[deployer.Stage]hosts.PoolCommands{deployer.Canaries: {Depool: []string{"true"}, Repool: []string{"true"}}})
	r := restart(t, e, cfg, fleet, pool)
	if err := r.Rollback(d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	got := e.Await(d.ID, deployer.StateRolledBack, deployer.StateRollbackFailed)
	if got.State != deployer.StateRolledBack || !e.AwaitSaid("COULD NOT RESTORE") {
		t.Fatalf("#%d ended %s; the test wants it rolled back with can1 depooled:\n%s", d.ID, got.State, e.Notices.Text())
	}
	if s := e.Serving()["can1"]; s != d.Base {
		t.Fatalf("can1 serves %.10s; the test wants it back on the base %.10s", s, d.Base)
	}
	text := e.Notices.Text()
	for _, n := range strings.Split(text, "\n") {
		if strings.Contains(n, "COULD NOT RESTORE") || strings.Contains(n, "rollback is not complete") {
			if !strings.Contains(n, "serves the base again") || strings.Contains(n, "may still serve the change") {
				t.Errorf("can1 serves the base again (read back) but the channel reads:\n%s", n)
			}
		}
	}
}

// slowRead is a host whose first read back waits until release is closed
// (a slow ssh host at start-up); everything else is the real host's.
type slowRead struct {
	deployer.Host
	reading chan struct{} // closed when the first read starts
	release chan struct{}
	first   sync.Once
}

func (s *slowRead) Current(ctx context.Context) (string, error) {
	cur, err := s.Host.Current(ctx)
	wait := false
	s.first.Do(func() { wait = true })
	if wait {
		close(s.reading)
		<-s.release
	}
	return cur, err
}

// TestAudit3SyncWhileStartingIsNotUndone: a deployer says !sync while the
// bot, just started, is still reading its hosts back. Whatever the
// start-up check read before the sync must not overwrite what the sync
// recorded: the store would say mw1 serves nothing while it serves the
// fleet's commit.
func TestAudit3SyncWhileStartingIsNotUndone(t *testing.T) {
	e := deployertest.New(t, deployer.Config{})
	fleetCommit := e.Serving()["mw1"]
	e.Stop()
	if err := os.RemoveAll(filepath.Join(e.Dir, "hosts", "mw1")); err != nil {
		t.Fatal(err)
	}
	slow := &slowRead{reading: make(chan struct{}), release: make(chan struct{})}
	fleet := deployer.Fleet{}
	for st, hs := range e.Fleet {
		for _, h := range hs {
			if h.Name() == "mw1" {
				slow.Host = h
				h = slow
			}
			fleet[st] = append(fleet[st], h)
		}
	}
	r := deployer.NewRunner(deployertest.Timings, deployer.Deps{
		Store: e.Store, Source: &gitrepo.Reverter{Repo: e.Staging}, Staging: e.Staging, Fleet: fleet,
		Metrics: e.Metrics, Judge: e.Judge, Announcer: e.Notices,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-slow.reading
	var (
		lines  []string
		err    error
		synced = make(chan struct{})
	)
	go func() { defer close(synced); lines, err = r.SyncFleet(context.Background(), []string{"mw1"}, "alice") }()
	select {
	case <-synced: // it did not wait for the start-up check
	case <-time.After(500 * time.Millisecond):
	}
	close(slow.release)
	<-synced
	<-r.Ready()
	if err != nil {
		t.Fatalf("!sync during the start-up check: %v", err)
	}
	recs, rerr := e.Store.Hosts()
	if rerr != nil {
		t.Fatal(rerr)
	}
	if serves := e.Serving()["mw1"]; serves != fleetCommit || recs["mw1"].Commit != serves {
		t.Errorf("!sync during the start-up check said %q; mw1 serves %.10s, but the store says it serves %q", lines, serves, recs["mw1"].Commit)
	}
}

// TestAudit3StartUpCheckDoesNotCallADepooledHostBehind: can1 was depooled
// by a rollback and serves the fleet's commit. After a restart the
// channel must not read that can1 is "not on the commit the fleet serves",
// and the advice for it is !repool, not !sync.
func TestAudit3StartUpCheckDoesNotCallADepooledHostBehind(t *testing.T) {
	e, _, d := failedRollbackWithCan1Depooled(t)
	if s := e.Serving()["can1"]; s != d.Base {
		t.Fatalf("can1 serves %.10s; the test wants it on the fleet's commit %.10s", s, d.Base)
	}
	before := len(e.Notices.Text())
	restart(t, e, deployertest.Timings, nil, nil)
	text := e.Notices.Text()[before:]
	for _, n := range strings.Split(text, "\n") {
		if strings.Contains(n, "not on the commit the fleet serves") && strings.Contains(n, "can1") {
			t.Errorf("can1 serves the fleet's commit (depooled), but the channel reads:\n%s", n)
		}
	}
	if !strings.Contains(text, "can1") || !strings.Contains(text, "depooled") {
		t.Errorf("after the restart the channel is not told can1 is depooled:\n%s", text)
	}
}

// fullDisk is the real store whose host records cannot be written while
// full is set (the deploy host's disk is full: bbolt's write fails).
type fullDisk struct {
	*store.Store
	full atomic.Bool
}

func (f *fullDisk) UpdateHosts(names []string, mutate func(*deployer.HostRecord)) error {
	if f.full.Load() {
		return errors.New("write d.db: no space left on device")
	}
	return f.Store.UpdateHosts(names, mutate)
}

// TestAudit3StoreFailureDepoolsNoHost: while the bot cannot record what
// its hosts serve (its own disk is full), a rollback restores every host;
// none of them failed. The bot must not depool them as "could not be
// restored": that takes the whole fleet out of service, and with the
// depools unrecorded, nobody is told once the disk has room again.
func TestAudit3StoreFailureDepoolsNoHost(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	cfg.RollbackTries = 5
	cfg.RetryDelay = 50 * time.Millisecond
	e := deployertest.New(t, cfg)
	d := deployDone(t, e)
	marks := t.TempDir()
	depool := map[deployer.Stage]hosts.PoolCommands{}
	for _, st := range deployer.Stages {
		depool[st] = hosts.PoolCommands{Depool: []string{"touch", filepath.Join(marks, "{host}")}, Repool: []string{"true"}}
	}
	fd := &fullDisk{Store: e.Store}
	r, _ := restartWith(t, e, cfg, func(deps *deployer.Deps) {
		deps.Store = fd
		deps.Pool = hosts.NewCommandPool(e.Fleet, depool)
	})
	fd.full.Store(true)
	if err := r.Rollback(d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a few tries while the disk is full
	fd.full.Store(false)
	got := e.Await(d.ID, deployer.StateRolledBack, deployer.StateRollbackFailed)
	if got.State != deployer.StateRolledBack {
		t.Errorf("#%d ended %s", d.ID, got.State)
	}
	if s := e.Serving(); s["mw1"] != d.Base || s["ts1"] != d.Base {
		t.Errorf("after the rollback the hosts serve %v; want the base %.10s", s, d.Base)
	}
	if ms, _ := os.ReadDir(marks); len(ms) > 0 {
		var names []string
		for _, m := range ms {
			names = append(names, m.Name())
		}
		recs, _ := e.Store.Hosts()
		t.Errorf("no host failed, yet the rollback depooled %v (the store records mw1 as %+v); the channel read:\n%s", names, recs["mw1"], e.Notices.Text())
	}
}

// fullDiskFile is the real store whose host records cannot be written
// while the file full exists (a process outside the bot can fill the disk).
type fullDiskFile struct {
	*store.Store
	full string
}

func (f *fullDiskFile) UpdateHosts(names []string, mutate func(*deployer.HostRecord)) error {
	if _, err := os.Stat(f.full); err == nil {
		return errors.New("write d.db: no space left on device")
	}
	return f.Store.UpdateHosts(names, mutate)
}

// TestAudit3DepoolIsRecordedBeforeItRuns: a depool is a side effect
// outside the bot; like a state, it must be in the store before it
// happens. Here the store cannot record anything from the moment the depool
// command ran (as after a crash right then): the rollback is redone, can1
// is restored on the next try, and the channel must still be told that
// can1 is out of service.
func TestAudit3DepoolIsRecordedBeforeItRuns(t *testing.T) {
	cfg := deployertest.Timings
	cfg.VerifyTimeout = time.Minute
	cfg.RollbackTries = 5
	cfg.RetryDelay = 50 * time.Millisecond
	e := deployertest.New(t, cfg)
	d := deployDone(t, e)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	once := []string{"sh", "-c", `f="$0/{host}"; test -e "$f" || { touch "$f"; exit 1; }`, dir}
	fleet := withHook(e, "can1", once...)
	fd := &fullDiskFile{Store: e.Store, full: full}
	r, _ := restartWith(t, e, cfg, func(deps *deployer.Deps) {
		deps.Store, deps.Fleet = fd, fleet
		deps.Pool = hosts.NewCommandPool(fleet, map[deployer.Stage]hosts.PoolCommands{
			deployer.Canaries: {Depool: []string{"touch", full}, Repool: []string{"true"}},
		})
	})
	if err := r.Rollback(d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(full); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("can1 was never depooled:\n%s", e.Notices.Text())
		}
	}
	time.Sleep(200 * time.Millisecond) // a try or two while the disk is full
	os.Remove(full)
	got := e.Await(d.ID, deployer.StateRolledBack, deployer.StateRollbackFailed)
	if got.State != deployer.StateRolledBack || !e.AwaitSaid("rolled back f") {
		t.Fatalf("#%d ended %s:\n%s", d.ID, got.State, e.Notices.Text())
	}
	text := e.Notices.Text()
	final := text[strings.LastIndex(text, "rolled-back: "):]
	if recs, _ := e.Store.Hosts(); !recs["can1"].Depooled || !strings.Contains(final, "can1, depooled") {
		t.Errorf("can1 was depooled, but the store records %+v and the channel read:\n%s", recs["can1"], final)
	}
}
