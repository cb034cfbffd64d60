package bot

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// TestAudit3StatusDoesNotCallADepooledHostOffTheFleet: a host a rollback
// depooled that serves the fleet's commit is out of service, not "not on
// the fleet's commit"; !status says it is depooled and that !repool puts
// it back, and still names a depooled host that is off the commit.
func TestAudit3StatusDoesNotCallADepooledHostOffTheFleet(t *testing.T) {
	b, _ := newStoreBot(t)
	fleet := "0123456789abcdef0123456789abcdef01234567"
	v := deployer.FleetView{Commit: fleet, Hosts: []deployer.HostView{
		{Stage: deployer.Canaries, Record: deployer.HostRecord{Name: "can1", Commit: fleet, Depooled: true, DepooledBy: 3}, OffFleet: "depooled by #3"},
		{Stage: deployer.Production, Record: deployer.HostRecord{Name: "mw1", Commit: "ffff", Depooled: true, DepooledBy: 3}, OffFleet: "serves ffff, not the fleet's 0123456789; depooled by #3"},
	}}
	got := strings.Join(b.fleetLines(v, nil), "\n")
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "not on the fleet's commit") && strings.Contains(l, "can1") {
			t.Errorf("can1 serves the fleet's commit, but !status reads:\n%s", l)
		}
	}
	if !strings.Contains(got, "hosts not on the fleet's commit: mw1 (serves ffff") || !strings.Contains(got, "can1") || !strings.Contains(got, "repool") {
		t.Errorf("!status about a depooled host on the fleet's commit (can1) and one off it (mw1):\n%s", got)
	}
}
