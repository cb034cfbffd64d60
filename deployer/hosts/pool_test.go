package hosts

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

func TestCommandPool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fleet := deployer.Fleet{
		deployer.Canaries:   {NewLocal("mw-canary1001", filepath.Join(dir, "c"))},
		deployer.Production: {NewLocal("mw1001", filepath.Join(dir, "p1")), NewLocal("mw1002", filepath.Join(dir, "p2"))},
	}
	marker := filepath.Join(dir, "pooled=no name={host}")
	p := NewCommandPool(fleet, map[deployer.Stage]PoolCommands{
		deployer.Production: {
			Depool: []string{"touch", marker},
			Repool: []string{"rm", marker},
		},
		deployer.Canaries: {
			Depool: []string{"sh", "-c", "echo confctl: etcd unreachable >&2; exit 2"},
		},
	})
	ctx := context.Background()
	if err := p.Depool(ctx, "mw1002"); err != nil {
		t.Fatal(err)
	}
	depooled := filepath.Join(dir, "pooled=no name=mw1002")
	if _, err := os.Stat(depooled); err != nil {
		t.Fatalf("depool did not run with the host's name: %v", err)
	}
	if err := p.Repool(ctx, "mw1002"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(depooled); !os.IsNotExist(err) {
		t.Fatalf("repool did not run: %v", err)
	}
	if !p.Configured("mw1001") || !p.Configured("mw-canary1001") || p.Configured("nosuch") {
		t.Error("Configured is wrong")
	}

	for _, tc := range []struct {
		do   func() error
		code string
		msg  string
	}{
		{func() error { return p.Depool(ctx, "mw-canary1001") }, deployer.EConflict, "depool mw-canary1001 failed: sh: exit status 2: confctl: etcd unreachable"},
		{func() error { return p.Repool(ctx, "mw-canary1001") }, deployer.EInvalid, "no repool command is configured for canaries (hosts.stage_options.canaries.repool)"},
		{func() error { return p.Depool(ctx, "mw9999") }, deployer.ENotFound, `there is no host called "mw9999"`},
	} {
		err := tc.do()
		if deployer.ErrorCode(err) != tc.code || deployer.ErrorMessage(err) != tc.msg {
			t.Errorf("err = %v (%s); want %s %q", err, deployer.ErrorCode(err), tc.code, tc.msg)
		}
		if strings.Contains(deployer.ErrorMessage(err), "\n") {
			t.Errorf("message %q is not one line", err)
		}
	}
}
