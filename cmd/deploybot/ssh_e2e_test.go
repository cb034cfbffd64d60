package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestBackportOverSSH runs the demo's good change through the real bot with
// every host reached over ssh (a real sshd on 127.0.0.1; each host's root
// is the demo directory its web server serves), hooks on the testservers
// and production, then rolls it back.
func TestBackportOverSSH(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	hookDir := t.TempDir()
	e := newE2E(t, testTimings, func(m *Main) {
		c := m.Config
		c.Hosts.Transport = "ssh"
		c.Hosts.SSH = config.SSH{User: d.User, Port: d.Port, KeyFile: d.KeyFile, KnownHosts: d.KnownHosts,
			ConnectTimeout: config.Dur(5 * time.Second), CommandTimeout: config.Dur(time.Minute), Keepalive: config.Dur(5 * time.Second)}
		for _, hs := range c.Hosts.Stages {
			for i := range hs {
				hs[i].Address = d.Addr
			}
		}
		hook := []string{"touch", filepath.Join(hookDir, "{host}")}
		c.Hosts.StageOptions = map[string]config.StageOptions{
			"testservers": {Hook: hook, HookTimeout: config.Dur(10 * time.Second)},
			"production":  {Hook: hook, HookTimeout: config.Dur(10 * time.Second), Depool: []string{"true"}, Repool: []string{"true"}},
		}
	})
	m := e.sb.Main
	if m.Pool == nil {
		t.Error("Main.Pool is nil although production has depool commands")
	}
	for _, h := range m.Fleet.Hosts() {
		inner := h
		if hk, ok := h.(*hosts.Hooked); ok {
			inner = hk.Unwrap()
		}
		if _, ok := inner.(*hosts.SSH); !ok {
			t.Fatalf("host %s is a %T, not an ssh host", h.Name(), inner)
		}
	}
	roots := map[string]string{}
	for _, hs := range m.Config.Hosts.Stages {
		for _, h := range hs {
			roots[h.Name] = h.Root
		}
	}
	expect := func(want string) {
		t.Helper()
		ctx := context.Background()
		for _, h := range m.Fleet.Hosts() {
			if cur, err := h.Current(ctx); err != nil || cur != want {
				t.Errorf("%s serves %.10s (%v), want %.10s", h.Name(), cur, err, want)
				continue
			}
			if err := hosts.VerifyTree(ctx, filepath.Join(roots[h.Name()], "current"), want, m.Staging); err != nil {
				t.Errorf("%s: %v", h.Name(), err)
			}
		}
	}
	base := e.head()
	expect(base)
	// Provisioning ran the hooks already; clear their marks.
	os.RemoveAll(hookDir)
	os.Mkdir(hookDir, 0o755)

	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.wait(1, 2*time.Minute, finished...)
	dep := e.get(1)
	if dep.State != deployer.StateDone {
		t.Fatalf("good change over ssh ended %s: %s", dep.State, dep.Reason)
	}
	expect(dep.Commit)
	ran, _ := os.ReadDir(hookDir)
	var names []string
	for _, f := range ran {
		names = append(names, f.Name())
	}
	want := append(hostNamesOf(m.Fleet[deployer.Testservers]), hostNamesOf(m.Fleet[deployer.Production])...)
	slices.Sort(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("hooks ran on %q; want the testservers and production: %q", names, want)
	}

	e.say("alice", "!rollback")
	e.wait(1, time.Minute, deployer.NoticeRolledBack)
	expect(base)
}

func hostNamesOf(hs []deployer.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name())
	}
	return out
}
