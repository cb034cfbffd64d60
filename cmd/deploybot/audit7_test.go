package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// TestAudit7BisectionRoundBaselineLeavesOutTheBadBatch: a bisection
// round's canary check took the canaries' traffic from the verification
// wait up to the round's sync as "the canaries before the sync", old
// code's error rate. But by then the canaries had served the whole batch,
// the one that failed, so its errors (60% here) raised the baseline and
// with it the threshold every round is tested against. A round's baseline
// must be old code's: production's, and not the canaries' own traffic
// since their first sync.
func TestAudit7BisectionRoundBaselineLeavesOutTheBadBatch(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	d, _, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateDone || d.Bisect == nil || len(d.Bisect.Rounds) == 0 {
		t.Fatalf("#%d ended %s (%s), bisection %+v; want done after rounds", d.ID, d.State, d.Reason, d.Bisect)
	}
	// The first verdict is the whole batch's; the others, the rounds'.
	var vs []deployer.Verdict
	for _, v := range d.Verdicts[1:] {
		if v.Stage == deployer.Canaries {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		t.Fatal("no round verdict was stored")
	}
	for _, v := range vs {
		t.Logf("round verdict %s: baseline %.0f/%.0f (%s)", v.Outcome, v.Baseline.Errors, v.Baseline.Requests, v.Baseline.Source)
		// Old code errs on 0.5% of requests; the bad change on 60%.
		if v.Baseline.Requests > 0 && v.Baseline.Errors/v.Baseline.Requests > 0.02 {
			t.Errorf("a round's baseline is %.1f%% errors: it counts the failed batch's traffic as old code's: %s",
				100*v.Baseline.Errors/v.Baseline.Requests, v.Baseline.Source)
		}
		if strings.Contains(v.Baseline.Source, "canaries before the sync") {
			t.Errorf("a round's baseline counts the canaries' traffic since their first sync as before the sync: %s", v.Baseline.Source)
		}
	}
}

// TestAudit7ReplayShowsEachRoundOnce: a bisection round that passed is
// stored twice, among the deployment's verdicts (the watch stores every
// complete verdict) and with its round. `judge replay` replayed both: the
// round came out once unlabelled, as if a second canary check, and once
// as its round, and the closing count said 6 verdicts of a deployment
// that had 4 (a threshold that flipped a round counted as 2 changes).
func TestAudit7ReplayShowsEachRoundOnce(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	d, _, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateDone || d.Bisect == nil || len(d.Bisect.Rounds) == 0 {
		t.Fatalf("#%d ended %s with bisection %+v; want done after rounds", d.ID, d.State, d.Bisect)
	}
	w.stop()
	var out, errOut bytes.Buffer
	if code := realMain([]string{"judge", "replay", "--config", w.cfg, "--id", fmt.Sprint(d.ID)}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	t.Logf("%d stored verdicts, %d rounds:\n%s", len(d.Verdicts), len(d.Bisect.Rounds), text)
	if n := strings.Count(text, fmt.Sprintf("#%d canaries [", d.ID)); n != 1 {
		t.Errorf("%d canary checks replayed without a round, want 1 (the whole batch's)", n)
	}
	for _, r := range d.Bisect.Rounds {
		if n := strings.Count(text, fmt.Sprintf("#%d bisection round %d (canaries) [", d.ID, r.Round)); n != 1 {
			t.Errorf("round %d replayed %d times, want once", r.Round, n)
		}
	}
	if want := fmt.Sprintf("replayed %d verdict(s) of 1 deployment(s)", len(d.Verdicts)); !strings.Contains(text, want) {
		t.Errorf("want %q", want)
	}
}
