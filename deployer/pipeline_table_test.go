package deployer_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/deployertest"
)

// TestPipelineStates drives one deployment per row through the real
// runner, store, staging repository and local hosts, with the canary check
// scripted, and checks where it ends, what each host serves, and a line the
// channel heard.
func TestPipelineStates(t *testing.T) {
	cases := []struct {
		name   string
		judge  deployer.Outcome // what the canary check decides
		broken bool             // can1's metrics cannot be read
		answer []string         // what people say, in order, as "verify"/"promote"/"rollback"
		want   deployer.State
		onNew  []string // hosts that serve the new commit at the end
		said   string
	}{
		{"verified and passed", deployer.Pass, false, []string{"verify"}, deployer.StateDone, []string{"ts1", "can1", "can2", "mw1", "mw2"}, "is on all 5 hosts"},
		{"canaries fail", deployer.Fail, false, []string{"verify"}, deployer.StateRolledBack, nil, "canary check failed"},
		{"nobody verifies", deployer.Pass, false, nil, deployer.StateRolledBack, nil, "nobody replied `verified`"},
		{"submitter aborts", deployer.Pass, false, []string{"rollback"}, deployer.StateRolledBack, nil, "Suspected:"},
		{"inconclusive, promoted", deployer.Inconclusive, false, []string{"verify", "promote"}, deployer.StateDone, []string{"ts1", "can1", "can2", "mw1", "mw2"}, "deployers decide"},
		{"inconclusive, unanswered", deployer.Inconclusive, false, []string{"verify"}, deployer.StateRolledBack, nil, "nobody answered"},
		{"metrics broken, rolled back", deployer.Pass, true, []string{"verify", "rollback"}, deployer.StateRolledBack, nil, "metrics cannot be read: can1 (404 Not Found)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := deployertest.New(t, deployer.Config{})
			e.Judge.Decide = func(deployer.Window) deployer.Outcome { return tc.judge }
			if tc.broken {
				e.Metrics.Broken = map[string]string{"can1": "404 Not Found"}
			}
			base := e.Serving()["ts1"]
			c := e.Change()
			d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{c}, Requester: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			e.Await(d.ID, deployer.StateAwaitingVerification)
			for _, a := range tc.answer {
				var err error
				switch a {
				case "verify":
					err = e.Runner.Verify(d.ID, "bob")
					e.Await(d.ID, deployer.StateAwaitingPromotion, deployer.StateAwaitingMetrics, deployer.StateRolledBack, deployer.StateDone)
				case "promote":
					err = e.Runner.Promote(d.ID, "alice")
				case "rollback":
					err = e.Runner.Rollback(d.ID, "bob")
				}
				if err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
			got := e.Await(d.ID, deployer.StateDone, deployer.StateRolledBack)
			if got.State != tc.want {
				t.Fatalf("ended %s (%s), want %s\n%s", got.State, got.Reason, tc.want, e.Notices.Text())
			}
			serving := e.Serving()
			for name, cur := range serving {
				want := base
				for _, n := range tc.onNew {
					if n == name {
						want = got.Commit
					}
				}
				if cur != want {
					t.Errorf("%s serves %.10s, want %.10s", name, cur, want)
				}
			}
			if !e.AwaitSaid(tc.said) {
				t.Errorf("the channel never heard %q:\n%s", tc.said, e.Notices.Text())
			}
		})
	}
}

// TestRunnerKeepsTheStagingRepositoryHealthy (defect 10 of the sequences
// issue): every deployment's fetch adds a pack to the staging repository;
// the runner repacks it itself when it is idle, so packs (and open files)
// stop growing while the bot runs.
func TestRunnerKeepsTheStagingRepositoryHealthy(t *testing.T) {
	e := deployertest.New(t, deployer.Config{})
	packs := func() int {
		ms, _ := filepath.Glob(filepath.Join(e.Dir, "staging.git", "objects", "pack", "*.pack"))
		return len(ms)
	}
	most := 0
	for i := 0; i < 12; i++ {
		c := e.Change()
		d, _, err := e.Runner.Submit(deployer.Request{Refs: []string{c}, Requester: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		e.Await(d.ID, deployer.StateAwaitingVerification)
		if err := e.Runner.Verify(d.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		e.Await(d.ID, deployer.StateDone)
		most = max(most, packs())
	}
	if most < 8 {
		t.Fatalf("only %d packs at most: the test does not make the repository grow", most)
	}
	for end := time.Now().Add(20 * time.Second); packs() > 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d packs after 12 deployments (at most %d): the runner never repacked", packs(), most)
		}
	}
}
