package main

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
)

// A regression only statistics can see: branch slow-regression makes every
// host serving it fail 2% of requests, four times the demo's 0.5%. The
// canary check must fail it on the demo's real hosts and /metrics, roll
// it back, and leave production untouched.
func TestSlowRegressionFailsTheCanaries(t *testing.T) {
	t.Parallel()
	tm := testTimings
	// Enough traffic for the statistics to decide within the window: at
	// 50 requests/s per host, the two canaries at 2% show about 20 errors
	// in 10 s where 0.5% would show 5.
	tm.RPS = 50
	tm.BaselineMin = 5 * time.Second
	tm.Window = 30 * time.Second
	tm.Interval = time.Second
	tm.MinRequests = 100
	e := newE2E(t, tm)
	base := e.head()
	e.say("alice", "!backport "+demo.SlowBranch+" --include-unexpected")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	synced := time.Now()
	vn := e.wait(1, time.Minute, deployer.NoticeVerdict)
	e.wait(1, time.Minute, finished...)
	d := e.get(1)
	if d.State != deployer.StateRolledBack {
		t.Fatalf("slow regression ended %s: %s", d.State, d.Reason)
	}
	v := d.Verdicts[len(d.Verdicts)-1]
	if v.Stage != deployer.Canaries || v.Outcome != deployer.Fail {
		t.Fatalf("last verdict: %s %s: %s", v.Stage, v.Outcome, v.Reason)
	}
	t.Logf("failed %s after verification: %s", time.Since(synced).Round(time.Second), v.Reason)
	// The chat line says what was compared: the baseline's hosts and
	// requests, and the evidence.
	for _, want := range []string{"baseline 0.", "production mw1001, mw1002, mw1003, mw1004 before and during the window (", "the canaries before the sync (", "(fails at 100:1)"} {
		if !strings.Contains(vn.Text, want) {
			t.Errorf("verdict line lacks %q:\n%s", want, vn.Text)
		}
	}
	for _, h := range d.Touched {
		if strings.HasPrefix(h, "mw1") {
			t.Errorf("production host %s was touched", h)
		}
	}
	e.expect(all(base))
}
