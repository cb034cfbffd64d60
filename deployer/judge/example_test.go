package judge_test

import (
	"fmt"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
)

func ExampleTable() {
	v := deployer.Verdict{
		Stage:    deployer.Canaries,
		Outcome:  deployer.Fail,
		Reason:   "mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400: the canaries before the sync (2400 requests)), threshold 0.7%: evidence 1e+40:1 (fails at 100:1)",
		Baseline: deployer.Baseline{Requests: 2400, Errors: 12, Rate: 0.005},
		Hosts: []deployer.HostResult{
			{Host: "mw-canary1", Requests: 200, Errors: 62, Rate: 0.31, Threshold: 0.007, Outcome: deployer.Fail, Why: "above threshold 0.7%: evidence 1e+40:1 (fails at 100:1)"},
			{Host: "mw-canary2", Requests: 210, Errors: 1, Rate: 1.0 / 210, Threshold: 0.007, Outcome: deployer.Pending, Why: "no significant increase yet: not significant over 210 requests (evidence 0.13:1 (fails at 100:1))"},
		},
	}
	for _, line := range judge.Table(v) {
		fmt.Println(line)
	}
	// Output:
	// canaries FAIL: mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400: the canaries before the sync (2400 requests)), threshold 0.7%: evidence 1e+40:1 (fails at 100:1)
	// host        requests  errors   rate  baseline  threshold  decision
	// mw-canary1       200      62  31.0%      0.5%       0.7%  fail: above threshold 0.7%: evidence 1e+40:1 (fails at 100:1)
	// mw-canary2       210       1   0.5%      0.5%       0.7%  pending: no significant increase yet: not significant over 210 requests (evidence 0.13:1 (fails at 100:1))
}
