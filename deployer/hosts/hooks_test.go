package hosts

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

func TestHookRunsOnTheSSHHostAfterTheFlip(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")}, tree{"index.php": file("<?php // 2\n")})
	dir := t.TempDir()
	s := sshHost(t, d, "web1")
	// cp -P copies current itself: it exists only once the sync flipped.
	// The odd name shows the arguments reach the program untouched.
	seen := filepath.Join(dir, "seen by {host}; $(touch PWNED)")
	h := WithHook(s, Hook{Argv: []string{"cp", "-P", s.Root() + "/current", seen}})
	if err := h.Sync(context.Background(), commits[0], src); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "seen by web1; $(touch PWNED)")
	if target, err := os.Readlink(got); err != nil || target != "slots/a" {
		t.Fatalf("the hook saw current -> %q, %v; want slots/a", target, err)
	}
	os.Remove(got)
	if err := h.Sync(context.Background(), commits[1], src); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(got); err != nil || target != "slots/b" {
		t.Fatalf("after the second sync the hook saw current -> %q, %v; want slots/b", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
		t.Error("a shell expanded the hook's argument")
	}
	if h.Name() != "web1" || h.(*Hooked).Unwrap() != s {
		t.Error("the hooked host does not stand for the host it decorates")
	}
}

func TestFailingHookFailsTheSync(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")})
	s := sshHost(t, d, "web2")
	h := WithHook(s, Hook{Argv: []string{"sh", "-c", "echo php-fpm: pool www is busy >&2; exit 3"}})
	err := h.Sync(context.Background(), commits[0], src)
	if err == nil {
		t.Fatal("the sync succeeded although its hook failed")
	}
	want := "host web2: hook sh: exit status 3: php-fpm: pool www is busy"
	if err.Error() != want {
		t.Errorf("err = %q; want %q", err, want)
	}
	// The hook ran after the flip: the host serves the commit, and the
	// runner decides what a failed host means.
	if cur, err := h.Current(context.Background()); err != nil || cur != commits[0] {
		t.Errorf("Current = %q, %v", cur, err)
	}
}

func TestHookOnALocalHost(t *testing.T) {
	t.Parallel()
	src := newSource(map[string]tree{"c1": {"index.php": file("<?php\n")}})
	dir := t.TempDir()
	l := NewLocal("mwdebug1001", filepath.Join(dir, "root"))
	h := WithHook(l, Hook{Argv: []string{"touch", filepath.Join(dir, "reloaded-{host}")}})
	if err := h.Sync(context.Background(), "c1", src); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "reloaded-mwdebug1001")); err != nil {
		t.Errorf("the hook did not run: %v", err)
	}

	slow := WithHook(l, Hook{Argv: []string{"sleep", "10"}, Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := slow.Sync(context.Background(), "c1", src)
	if err == nil || err.Error() != "host mwdebug1001: hook sleep: did not finish within 200ms" {
		t.Errorf("err = %v; want a timeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the timeout took %s", took)
	}
	if WithHook(l, Hook{}) != deployer.Host(l) {
		t.Error("an empty hook should leave the host as it is")
	}
}

// The lines a sync and its hook log carry the deployment's id when the
// runner's logger comes with the context.
func TestSyncAndHookLogTheDeployment(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")})
	var buf testparts.Buffer
	ctx := deployer.WithLogger(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)).With("deployment", 42))
	h := WithHook(sshHost(t, d, "web1"), Hook{Argv: []string{"true"}})
	if err := h.Sync(ctx, commits[0], src); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var msgs []string
	for _, l := range lines {
		if !strings.Contains(l, "deployment=42") || !strings.Contains(l, "host=web1") {
			t.Errorf("line without deployment=42 and host=web1: %s", l)
		}
		if strings.Contains(l, `msg="synced by rebuilding the slot in full"`) || strings.Contains(l, `msg="hook ran"`) {
			msgs = append(msgs, l)
		}
	}
	if len(msgs) != 2 {
		t.Errorf("want a sync line and a hook line, got:\n%s", buf.String())
	}
}
