package web

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/store"
)

// oneFileTree is a deployer.TreeSource whose every commit is a tree of one
// file, VERSION, holding the commit id: enough for real local hosts to
// sync to any commit the fixture names.
type oneFileTree struct{}

func (oneFileTree) Diff(_ context.Context, from, to string) ([]deployer.FileChange, error) {
	if from == to {
		return nil, nil
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(to), to)
	return []deployer.FileChange{{
		Path: "VERSION", Mode: deployer.ModeRegular, Hash: hex.EncodeToString(h.Sum(nil)), Size: int64(len(to)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(to)), nil },
	}}, nil
}

// Commits of the fixture's staging repo.
var (
	commitBase = strings.Repeat("a", 40)
	commitGood = strings.Repeat("b", 40)
	commitBad  = strings.Repeat("c", 40)
)

// t0 is when the fixture's history begins.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// fixture is a real bbolt store holding a history, and a fleet of real
// local hosts serving what that history left them on.
type fixture struct {
	st    *store.Store
	fleet deployer.Fleet
	srv   *Server
}

const evil = `<script>alert("pwned")</script>`

// newFixture stores:
//
//	#1 good-change by alice, verified by bob: done, canary check passed
//	#2 bad-change by alice, verified by bob: canary check failed, rolled back
//	#3 hotfix by carol: failed while preparing
//	#4 a ref and a requester full of HTML, awaiting verification (active)
//	#5 queued behind it
//
// and a lock whose reason is HTML too. Every host serves #1's commit but
// the testserver, which serves #4's.
func newFixture(t *testing.T, opt Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "deploybot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, fleet: deployer.Fleet{}}
	names := map[deployer.Stage][]string{
		deployer.Testservers: {"mwdebug1001"},
		deployer.Canaries:    {"mw-canary1001", "mw-canary1002"},
		deployer.Production:  {"mw1001", "mw1002", "mw1003", "mw1004"},
	}
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, stage := range deployer.Stages {
		for _, n := range names[stage] {
			h := hosts.NewLocal(n, filepath.Join(dir, "hosts", n))
			for _, c := range []string{commitBase, commitGood} {
				if err := h.Sync(ctx, c, oneFileTree{}); err != nil {
					t.Fatal(err)
				}
			}
			f.fleet[stage] = append(f.fleet[stage], h)
		}
	}

	good := f.deploy(t, "console:alice", "console:bob", []string{"good-change"}, t0,
		[]deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
			deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateSyncingProduction, deployer.StateDone},
		func(d *deployer.Deployment) {
			d.Base, d.Commit = commitBase, commitGood
			d.Changes = []deployer.Change{{ID: strings.Repeat("1", 40), Subject: "Fix the welcome typo", Author: "Bob Submitter", AuthorEmail: "bob@example.org"}}
			d.Files = []string{"config/app.json", "index.html"}
			d.Touched = []string{"mwdebug1001", "mw-canary1001", "mw-canary1002", "mw1001", "mw1002", "mw1003", "mw1004"}
		})
	f.verdict(t, good, passVerdict(t0.Add(4900*time.Millisecond)))

	bad := f.deploy(t, "console:alice", "console:bob", []string{"bad-change"}, t0.Add(time.Hour),
		[]deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
			deployer.StateSyncingCanaries, deployer.StateCheckingCanaries},
		func(d *deployer.Deployment) {
			d.Base, d.Commit = commitGood, commitBad
			d.Changes = []deployer.Change{{ID: strings.Repeat("2", 40), Subject: "Add search_v2 flag", Author: "Bob Submitter", URL: "https://gerrit.example.org/c/app/+/4242"}}
			d.Files = []string{"config/app.json", "static/app.js"}
			d.Touched = []string{"mwdebug1001", "mw-canary1001", "mw-canary1002"}
		})
	v := failVerdict(t0.Add(time.Hour + 4900*time.Millisecond))
	f.verdict(t, bad, v)
	f.move(t, bad, deployer.StateCheckingCanaries, deployer.StateRollingBack, v.End.Add(10*time.Millisecond), "canary check failed: "+v.Reason, func(d *deployer.Deployment) {
		d.Reason = "canary check failed: " + v.Reason
	})
	f.move(t, bad, deployer.StateRollingBack, deployer.StateRolledBack, v.End.Add(300*time.Millisecond), "rolled back", func(d *deployer.Deployment) {
		d.RollbackCommit = strings.Repeat("d", 40)
	})

	failed := f.deploy(t, "console:carol", "", []string{"hotfix"}, t0.Add(2*time.Hour), []deployer.State{deployer.StatePreparing}, nil)
	f.move(t, failed, deployer.StatePreparing, deployer.StateFailed, t0.Add(2*time.Hour+2*time.Second), "no such ref", func(d *deployer.Deployment) {
		d.Reason = "hotfix is neither a commit nor a branch upstream"
	})

	active := f.deploy(t, "console:"+evil, "console:bob", []string{evil}, t0.Add(3*time.Hour),
		[]deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification},
		func(d *deployer.Deployment) {
			d.Base, d.Commit = commitGood, strings.Repeat("e", 40)
			d.Touched = []string{"mwdebug1001"}
			d.Deadline = time.Now().Add(10 * time.Minute)
		})
	if err := f.fleet[deployer.Testservers][0].Sync(ctx, strings.Repeat("e", 40), oneFileTree{}); err != nil {
		t.Fatal(err)
	}
	_ = active
	if _, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "console:dave", Refs: []string{"next-change"}, CreatedAt: t0.Add(3*time.Hour + time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLock(&deployer.Lock{By: "console:alice", Reason: "train " + evil, Since: t0.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	opt.Store, opt.Fleet = st, f.fleet
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Pipeline.CanaryWindow == 0 {
		opt.Pipeline = deployer.Config{CanaryWindow: 4 * time.Second, BaselineMin: time.Second}
	}
	f.srv = New(opt)
	return f
}

// deploy creates a deployment and moves it along path, one second per step.
func (f *fixture) deploy(t *testing.T, requester, submitter string, refs []string, at time.Time, path []deployer.State, mutate func(*deployer.Deployment)) int64 {
	t.Helper()
	id, err := f.st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: requester, Refs: refs, CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	from := deployer.StateQueued
	for i, to := range path {
		m := func(d *deployer.Deployment) {}
		if i == 1 || (i == 0 && len(path) == 1) {
			m = func(d *deployer.Deployment) {
				d.Submitter = submitter
				if mutate != nil {
					mutate(d)
				}
			}
		}
		actor := "deploybot"
		msg := string(to)
		if to == deployer.StateSyncingCanaries {
			actor, msg = submitter, "verified by "+submitter
		}
		f.moveBy(t, actor, id, from, to, at.Add(time.Duration(i+1)*time.Second), msg, m)
		from = to
	}
	return id
}

func (f *fixture) move(t *testing.T, id int64, from, to deployer.State, at time.Time, msg string, mutate func(*deployer.Deployment)) {
	t.Helper()
	f.moveBy(t, "deploybot", id, from, to, at, msg, mutate)
}

func (f *fixture) moveBy(t *testing.T, actor string, id int64, from, to deployer.State, at time.Time, msg string, mutate func(*deployer.Deployment)) {
	t.Helper()
	if _, err := f.st.Transition(id, from, to, deployer.Event{Time: at, Actor: actor, Message: msg}, mutate); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) verdict(t *testing.T, id int64, v deployer.Verdict) {
	t.Helper()
	if _, err := f.st.Update(id, func(d *deployer.Deployment) { d.Verdicts = append(d.Verdicts, v) }); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AppendEvent(deployer.Event{Deployment: id, Time: v.End, Actor: "deploybot", Kind: "verdict", Message: string(v.Outcome) + ": " + v.Reason}); err != nil {
		t.Fatal(err)
	}
}

// counts builds a sample from host -> {requests, errors}.
func counts(at time.Time, m map[string][2]float64) deployer.Sample {
	s := deployer.Sample{Time: at, Hosts: map[string]deployer.Counts{}}
	for h, c := range m {
		s.Hosts[h] = deployer.Counts{Requests: c[0], Errors: c[1]}
	}
	return s
}

// failVerdict is a canary check where mw-canary1001 errs on 90% of its
// requests and mw-canary1002 on 50%, 50% and 40% in its three intervals
// (its counter resets once, as when its process restarts), against
// production at 0.5%.
func failVerdict(start time.Time) deployer.Verdict {
	ms := func(n int) time.Time { return start.Add(time.Duration(n) * 500 * time.Millisecond) }
	samples := []deployer.Sample{
		counts(ms(0), map[string][2]float64{"mw-canary1001": {1000, 5}, "mw-canary1002": {1000, 5}, "mw1001": {4000, 20}, "mw1002": {4000, 20}}),
		counts(ms(1), map[string][2]float64{"mw-canary1001": {1010, 14}, "mw-canary1002": {1010, 10}, "mw1001": {4010, 20}, "mw1002": {4010, 20}}),
		counts(ms(2), map[string][2]float64{"mw-canary1001": {1020, 23}, "mw-canary1002": {10, 5}, "mw1001": {4020, 20}, "mw1002": {4020, 21}}),
		counts(ms(3), map[string][2]float64{"mw-canary1001": {1030, 32}, "mw-canary1002": {20, 9}, "mw1001": {4030, 21}, "mw1002": {4030, 21}}),
	}
	return deployer.Verdict{
		Stage: deployer.Canaries, Outcome: deployer.Fail,
		Reason:   "mw-canary1001 error rate 90% (27/30) vs baseline 0.5% (2/80): at or above the 50% gross-failure limit",
		Baseline: deployer.Baseline{Requests: 80, Errors: 2, Rate: 0.005, Source: "production (2 hosts) during the window"},
		Hosts: []deployer.HostResult{
			{Host: "mw-canary1001", Requests: 30, Errors: 27, Rate: 0.9, Threshold: 0.015, Outcome: deployer.Fail},
			{Host: "mw-canary1002", Requests: 30, Errors: 14, Rate: 14.0 / 30, Threshold: 0.015, Outcome: deployer.Fail},
		},
		Start: ms(0), End: ms(3), Samples: samples,
	}
}

func passVerdict(start time.Time) deployer.Verdict {
	var samples []deployer.Sample
	for i := range 5 {
		n := float64(i * 20)
		samples = append(samples, counts(start.Add(time.Duration(i)*time.Second), map[string][2]float64{
			"mw-canary1001": {n, 0}, "mw-canary1002": {n, float64(i / 3)}, "mw1001": {n, 0}}))
	}
	return deployer.Verdict{
		Stage: deployer.Canaries, Outcome: deployer.Pass, Reason: "no significant increase after 4s",
		Baseline: deployer.Baseline{Requests: 80, Errors: 0, Rate: 0, Source: "production (1 host) during the window"},
		Hosts: []deployer.HostResult{
			{Host: "mw-canary1001", Requests: 80, Errors: 0, Threshold: 0.01, Outcome: deployer.Pass},
			{Host: "mw-canary1002", Requests: 80, Errors: 1, Rate: 0.0125, Threshold: 0.01, Outcome: deployer.Pass},
		},
		Start: start, End: start.Add(4 * time.Second), Samples: samples,
	}
}
