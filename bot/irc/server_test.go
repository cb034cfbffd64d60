package irc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// runAdapter runs an adapter against a real ngircd until the test ends.
// Every message it receives is answered with "heard: <text>".
func runAdapter(t *testing.T, srv *testparts.Ngircd, cfg Config, prepare ...func(*Adapter)) *Adapter {
	t.Helper()
	cfg.Server = "127.0.0.1"
	if cfg.Port == 0 {
		cfg.Port = srv.Port
	}
	if cfg.Nick == "" {
		cfg.Nick = "deploybot"
	}
	if cfg.Channel == "" {
		cfg.Channel = "#deployments"
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 100*time.Millisecond, time.Second
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range prepare {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, func(m bot.Message) { m.Reply("heard: " + m.Text) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// botLines are the texts the bot said in channel, as user received them.
func botLines(u *testparts.IRCUser, channel string) []string {
	var out []string
	for _, l := range u.Lines() {
		if l.Nick == "deploybot" && strings.EqualFold(l.Target, channel) {
			out = append(out, l.Text)
		}
	}
	return out
}

func TestConversationOverNgircd(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	runAdapter(t, srv, Config{FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")

	alice.Say("#deployments", "!status")
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "heard: !status")
	alice.Say("deploybot", "!help")
	l := alice.AwaitText(10*time.Second, "deploybot", "alice", "heard: !help")
	if l.Target != "alice" {
		t.Errorf("a private message was answered in %s", l.Target)
	}
	// The mask is what ngircd shows without ident or DNS.
	if l := alice.Lines()[0]; !strings.HasPrefix(l.Source, "deploybot!~deploybot@127.0.0.1") {
		t.Errorf("bot's mask as relayed: %q", l.Source)
	}
}

func TestLongOutputIsSplitInOrderWithNothingLost(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")

	var text []string
	for i := 1; i <= 40; i++ {
		text = append(text, fmt.Sprintf("line %02d: %s", i, strings.Repeat(fmt.Sprintf("w%02d ", i), 3*i)))
	}
	a.Announce(deployer.Notice{Deployment: 7, Kind: deployer.NoticeVerdict, Text: strings.Join(text, "\n")}, []string{"alice"})
	a.Announce(deployer.Notice{Deployment: 7, Kind: deployer.NoticeInfo, Text: "the end"}, nil)
	alice.AwaitText(20*time.Second, "deploybot", "#deployments", "[#7] the end")

	var got []string
	for i, l := range alice.Lines() {
		if l.Len > 510 {
			t.Errorf("line %d is %d bytes as relayed (IRC allows 510 + CR LF)", i, l.Len)
		}
		if l.Nick != "deploybot" {
			continue
		}
		body, ok := strings.CutPrefix(l.Text, "[#7] ")
		if len(got) == 0 {
			body, ok = strings.CutPrefix(l.Text, "alice: [#7] ")
		}
		if !ok {
			t.Errorf("line %d lacks its prefix: %q", i, l.Text)
		}
		body = strings.TrimPrefix(body, "… ") // a piece of a line cut for length
		got = append(got, body)
	}
	want := append(text, "the end")
	if g, w := strings.Join(strings.Fields(strings.Join(got, " ")), " "), strings.Join(strings.Fields(strings.Join(want, " ")), " "); g != w {
		t.Errorf("text received differs from text sent:\n got %s\nwant %s", g, w)
	}
	if len(got) <= len(want) {
		t.Errorf("%d lines received for %d lines of text: long lines were not split", len(got), len(want))
	}
}

func TestLinesQueuedWhileDisconnectedArriveAfterReconnect(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	var reconnects atomic.Int32
	// The bot waits a second before reconnecting; alice retries every 50ms,
	// so she is back in the channel before the bot sends what it queued.
	a := runAdapter(t, srv, Config{FloodInterval: 0, ReconnectMin: time.Second, ReconnectMax: 2 * time.Second,
		OnReconnect: func() { reconnects.Add(1) }})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	a.Announce(deployer.Notice{Deployment: 1, Kind: deployer.NoticeStarted, Text: "before the outage"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "before the outage")
	// Once the server confirmed it, that line is never sent again.
	waitConfirmed(t, a)

	srv.Stop()
	for i := 1; i <= 5; i++ {
		a.Announce(deployer.Notice{Deployment: 1, Kind: deployer.NoticeProgress, Text: fmt.Sprintf("during the outage %d", i)}, nil)
	}
	time.Sleep(200 * time.Millisecond)
	srv.Start()
	alice.AwaitText(20*time.Second, "deploybot", "#deployments", "during the outage 5")
	alice.AwaitPresent(5*time.Second, "deploybot", "#deployments")

	want := "[#1] before the outage|[#1] during the outage 1|[#1] during the outage 2|[#1] during the outage 3|[#1] during the outage 4|[#1] during the outage 5"
	if got := strings.Join(botLines(alice, "#deployments"), "|"); got != want {
		t.Errorf("lines received:\n got %s\nwant %s", got, want)
	}
	if n := reconnects.Load(); n != 1 {
		t.Errorf("OnReconnect called %d times, want 1", n)
	}
	// The conversation carries on after the reconnect.
	alice.Say("#deployments", "verified")
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "heard: verified")
	// Every line is confirmed by the server soon after it arrived.
	waitConfirmed(t, a)
}

// waitConfirmed waits until the server confirmed every line sent.
func waitConfirmed(t *testing.T, a *Adapter) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.queued() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if q := a.queued(); q != 0 {
		t.Errorf("%d lines still queued or unconfirmed after 5s", q)
	}
}

func TestFloodControlPacesLines(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodBurst: 2, FloodInterval: 150 * time.Millisecond})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	time.Sleep(400 * time.Millisecond) // let the bucket refill after the join
	start := time.Now()
	a.Announce(deployer.Notice{Kind: deployer.NoticeInfo, Text: "1\n2\n3\n4\n5\n6"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "6")
	took := time.Since(start)
	// Two lines at once, then four more at 150ms each (PINGs that confirm
	// delivery take their turn too): at least 600ms.
	if took < 540*time.Millisecond {
		t.Errorf("6 lines with a burst of 2 and 150ms pacing arrived in %s", took)
	}
	if got := strings.Join(botLines(alice, "#deployments"), " "); got != "1 2 3 4 5 6" {
		t.Errorf("lines: %s", got)
	}
}

func TestLinesInFlightWhenTheServerDiesAreSentAgain(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodBurst: 1, FloodInterval: 25 * time.Millisecond,
		ReconnectMin: time.Second, ReconnectMax: 2 * time.Second})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	var text []string
	for i := 1; i <= 40; i++ {
		text = append(text, fmt.Sprintf("step %02d", i))
	}
	a.Announce(deployer.Notice{Deployment: 9, Kind: deployer.NoticeProgress, Text: strings.Join(text, "\n")}, nil)
	// In the middle of the output the server hangs, then dies: what the
	// bot wrote meanwhile was never read, let alone relayed.
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "step 10")
	srv.Freeze()
	time.Sleep(200 * time.Millisecond)
	srv.Stop()
	time.Sleep(100 * time.Millisecond)
	srv.Start()
	alice.AwaitText(30*time.Second, "deploybot", "#deployments", "step 40")

	// Every line arrived; lines the server may not have relayed were sent
	// again, so a line may come twice, but never out of order.
	seen := map[string]bool{}
	var order []string
	for _, l := range botLines(alice, "#deployments") {
		body := strings.TrimPrefix(l, "[#9] ")
		if !seen[body] {
			seen[body] = true
			order = append(order, body)
		}
	}
	if got, want := strings.Join(order, ","), strings.Join(text, ","); got != want {
		t.Errorf("lines in order of first arrival:\n got %s\nwant %s", got, want)
	}
	if n := len(botLines(alice, "#deployments")); n > 40 {
		t.Logf("%d lines were received twice (sent before the crash, unconfirmed)", n-40)
	}
}

func TestTakenNickIsRegained(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	squatter := testparts.JoinIRC(t, srv, "deploybot", "#deployments")
	runAdapter(t, srv, Config{FloodInterval: 0}, func(a *Adapter) { a.regainEvery = 100 * time.Millisecond })
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot_", "#deployments")
	// Addressed by the nick it has, the bot reads it as addressed by name.
	alice.Say("#deployments", "deploybot_: status")
	alice.AwaitText(10*time.Second, "deploybot_", "#deployments", "heard: deploybot: status")
	// Attempts to regain the nick while it is taken change nothing...
	time.Sleep(300 * time.Millisecond)
	alice.AwaitPresent(time.Second, "deploybot_", "#deployments")
	// ...and once it is free, the bot takes it back.
	squatter.Close()
	alice.AwaitGone(10*time.Second, "deploybot_", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	alice.Say("#deployments", "deploybot: status")
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "heard: deploybot: status")
}

func TestNoticesGoBeforeABacklogAfterAReconnect(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodBurst: 1, FloodInterval: 50 * time.Millisecond,
		ReconnectMin: 500 * time.Millisecond, ReconnectMax: time.Second})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	var history []string
	for i := 1; i <= 60; i++ {
		history = append(history, fmt.Sprintf("history %02d", i))
	}
	// A long answer scrolls by, paced; the server goes away in its middle.
	a.enqueue("#deployments", "", "", history)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "history 05")
	srv.Stop()
	a.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeVerified, Text: "verified by bob"}, nil)
	time.Sleep(100 * time.Millisecond)
	srv.Start()
	alice.AwaitText(30*time.Second, "deploybot", "#deployments", "history 60")

	lines := botLines(alice, "#deployments")
	at := -1
	last := 0
	for i, l := range lines {
		if l == "[#4] verified by bob" {
			at = i
			break
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(l, "history ")); err == nil {
			last = n
		}
	}
	if at < 0 {
		t.Fatalf("the notice never arrived: %q", lines)
	}
	// Before the outage alice saw about 5 history lines; after it the
	// notice must come before the rest of the backlog, not after 55 more.
	if last > 15 {
		t.Errorf("the notice came after history %02d: the backlog delayed it (%q)", last, lines)
	}
}
