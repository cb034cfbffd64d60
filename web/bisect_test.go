package web

import (
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// The deployment page shows a bisection round by round, the changes taken
// out of the batch, and an emergency's reason.
func TestDeploymentPageBisection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	if _, err := f.st.Update(2, func(d *deployer.Deployment) {
		d.Batch, d.Emergency = true, "the login page is down"
		d.Bisect = &deployer.Bisection{Round: 2, Rounds: []deployer.BisectRound{
			{Round: 1, Changes: []string{"aaaa", "bbbb"}, Of: 4, Outcome: deployer.Pass, Reason: "every canary within its threshold"},
			{Round: 2, Changes: []string{"aaaa", "bbbb", "cccc"}, Of: 4, Outcome: deployer.Fail, Reason: "can1 error rate 60%"},
		}}
		d.Dropped = []deployer.DroppedChange{{Change: deployer.Change{ID: "cccc", Subject: "Break the login"}, Why: "it broke the canaries (found by bisection)", Guilty: true}}
	}); err != nil {
		t.Fatal(err)
	}
	a := do(t, f.srv, "GET", "/deployments/2")
	mustContain(t, "#2's page", a.body,
		`<h2 id="bisection">Bisection <span class="muted">(round 2)</span></h2>`,
		`<td class="mono">2 of 4: aaaa, bbbb</td><td><span class="badge pass">pass</span></td>`,
		`<td class="mono">3 of 4: aaaa, bbbb, cccc</td><td><span class="badge fail">fail</span></td><td>can1 error rate 60%</td>`,
		`<td>Break the login</td><td><b>guilty:</b> it broke the canaries (found by bisection)</td>`,
		`<b>emergency outside the windows:</b> the login page is down`)
}
