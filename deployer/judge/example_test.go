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
		Reason:   "mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400), threshold 1.5%: p<1e-40",
		Baseline: deployer.Baseline{Requests: 2400, Errors: 12, Rate: 0.005},
		Hosts: []deployer.HostResult{
			{Host: "mw-canary1", Requests: 200, Errors: 62, Rate: 0.31, Threshold: 0.015, Outcome: deployer.Fail, Why: "above threshold 1.5%, p<1e-40"},
			{Host: "mw-canary2", Requests: 210, Errors: 1, Rate: 1.0 / 210, Threshold: 0.015, Outcome: deployer.Pending, Why: "no significant increase yet, p=0.96"},
		},
	}
	for _, line := range judge.Table(v) {
		fmt.Println(line)
	}
	// Output:
	// canaries FAIL: mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400), threshold 1.5%: p<1e-40
	// host        requests  errors   rate  baseline  threshold  decision
	// mw-canary1       200      62  31.0%      0.5%       1.5%  fail: above threshold 1.5%, p<1e-40
	// mw-canary2       210       1   0.5%      0.5%       1.5%  pending: no significant increase yet, p=0.96
}
