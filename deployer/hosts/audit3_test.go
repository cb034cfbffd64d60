package hosts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// audit3: an operator flips current back by hand; the bot then syncs the
// host to the commit it last left it on (a `!sync` of a host the start-up
// check or a person found off the fleet's commit). The bot's memory of the
// host says it serves that commit already; the host does not. The sync
// must make the host serve it, not report success while it serves the
// other commit (every retry failing the same way until a restart).
func TestAudit3SSHSyncBackAfterAHandFlip(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(10)
	c2 := c1.with(tree{"dir00/file000.php": file("c2\n")})
	src, commits := gitCommits(t, c1, c2)
	h := sshHost(t, d, "web1")
	syncSSH(t, h, src, commits[0])
	syncSSH(t, h, src, commits[1])
	cur := filepath.Join(h.Root(), "current")
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("slots/a", cur); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Current(context.Background()); err != nil || got != commits[0] {
		t.Fatalf("after the hand flip: Current = %q, %v; want %s", got, err, commits[0])
	}
	r, err := h.SyncReport(context.Background(), commits[1], src)
	if err != nil {
		t.Fatalf("sync back to %s: %v", commits[1], err)
	}
	if r.Action == SyncNone {
		t.Errorf("sync back to %s after the hand flip: %+v; the host served %s", commits[1], r, commits[0])
	}
	checkServesSSH(t, h, src, commits[1])
}

// audit3: the channel reads a failed host through Plain, which drops the
// error chain; a local host's failing hook must still show the first line
// of the hook's output there (withOutput adds it for that), as an ssh
// host's does.
func TestAudit3LocalHookOutputReachesTheChannel(t *testing.T) {
	t.Parallel()
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")})
	h := WithHook(NewLocal("ts1", filepath.Join(t.TempDir(), "ts1")), Hook{Argv: []string{"sh", "-c", "echo php-fpm: pool www is busy; exit 3"}})
	err := h.Sync(context.Background(), commits[0], src)
	var pe deployer.PlainError
	if !errors.As(err, &pe) {
		t.Fatalf("the sync with a failing hook: %v", err)
	}
	if want := "could not hook sh: exit status 3: php-fpm: pool www is busy"; pe.Plain() != want {
		t.Errorf("the channel reads %q; want %q", pe.Plain(), want)
	}
}
