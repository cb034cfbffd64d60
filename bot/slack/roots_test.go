package slack

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/store"
)

// TestRootMessageSurvivesARestart runs an adapter, stops it (a restart of
// the bot), and runs a new one on the same bbolt file: the resumed
// deployment's next notice goes into the thread of the root message posted
// before the restart, and that root is updated, not posted again.
func TestRootMessageSurvivesARestart(t *testing.T) {
	t.Parallel()
	st, err := store.Open(filepath.Join(t.TempDir(), "deploybot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fake := slackfake.New(t, appToken, botToken)
	run := func(conns int) (*Adapter, func()) {
		a, err := New(Options{AppToken: appToken, BotToken: botToken, Channel: channel, APIURL: fake.APIURL(),
			BotName: "deploybot", Prefix: "!", Roots: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, func(bot.Message) {}) }()
		if err := fake.WaitConnections(conns, patience); err != nil {
			t.Fatal(err)
		}
		return a, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	wait := func(what string, after int, match func(slackfake.Call) bool) slackfake.Call {
		t.Helper()
		c, err := fake.WaitCall(context.Background(), after, patience, what, match)
		if err != nil {
			t.Fatalf("%v; calls so far:\n%s", err, dump(fake.Calls()))
		}
		return c
	}

	a, stop := run(1)
	a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeStarted, State: deployer.StatePreparing, Text: "starting #5"}, nil)
	a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeVerify, State: deployer.StateAwaitingVerification, Text: "test it there"}, nil)
	wait("the verify prompt", 0, func(c slackfake.Call) bool { return strings.Contains(c.Text, "test it there") })
	root := fake.Calls()[0]
	if root.Method != "chat.postMessage" || root.Thread != "" {
		t.Fatalf("the first call is not a root message:\n%s", dump(fake.Calls()))
	}
	stop()
	before := len(fake.Calls())

	a, stop = run(2)
	defer stop()
	a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeVerified, State: deployer.StateSyncingCanaries, Text: "verified by bob"}, nil)
	post := wait("the resumed notice", 0, func(c slackfake.Call) bool { return strings.Contains(c.Text, "verified by bob") })
	if post.Thread != root.TS {
		t.Errorf("after the restart the notice went to thread %q, want the old root %q:\n%s", post.Thread, root.TS, dump(fake.Calls()))
	}
	// The first adapter's own update of the root (to awaiting-verification)
	// may reach the fake after it stopped: wait for the update to the
	// resumed state.
	wait("the old root's update to the resumed state", before, func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.TS == root.TS && strings.Contains(c.BlockText(), "syncing-canaries")
	})
	for _, c := range fake.Calls()[before:] {
		if c.Method == "chat.postMessage" && c.Thread == "" {
			t.Errorf("a new root was posted after the restart: %q", c.Text)
		}
	}
	// The store says where the root is.
	if h, err := st.ChatRoot("slack", 5); err != nil || h != channel+" "+root.TS {
		t.Errorf("stored root %q, %v; want %q", h, err, channel+" "+root.TS)
	}
}
