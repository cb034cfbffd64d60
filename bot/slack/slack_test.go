package slack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/deployer"
)

const (
	appToken = "xapp-1-test-app-token"
	botToken = "xoxb-test-bot-token"
	channel  = "CDEPLOYS"
	patience = 10 * time.Second
)

// inbox records the messages the adapter delivers to the bot core and
// answers them like the core would: handleWith decides.
type inbox struct {
	mu   sync.Mutex
	msgs []bot.Message
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 100)} }

func (in *inbox) handle(answer func(m bot.Message)) func(bot.Message) {
	return func(m bot.Message) {
		in.mu.Lock()
		in.msgs = append(in.msgs, m)
		in.mu.Unlock()
		if answer != nil {
			answer(m)
		}
		in.ch <- struct{}{}
	}
}

func (in *inbox) texts() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for _, m := range in.msgs {
		out = append(out, m.Sender.Keys[0]+" "+m.Text)
	}
	return out
}

func (in *inbox) waitN(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(patience)
	for len(in.texts()) < n {
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("got %d messages, want %d: %q", len(in.texts()), n, in.texts())
		}
	}
}

type harness struct {
	fake        *slackfake.Server
	a           *Adapter
	reconnected chan string
}

// start runs an adapter against a fresh fake Slack until the test ends.
func start(t *testing.T, handle func(bot.Message), configure ...func(*Options)) *harness {
	t.Helper()
	fake := slackfake.New(t, appToken, botToken)
	h := &harness{fake: fake, reconnected: make(chan string, 4)}
	opts := Options{AppToken: appToken, BotToken: botToken, Channel: channel, APIURL: fake.APIURL(),
		BotName: "deploybot", Prefix: "!",
		Stages:      map[deployer.Stage]int{deployer.Testservers: 1, deployer.Canaries: 2, deployer.Production: 4},
		Reconnected: func(name string) { h.reconnected <- name },
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:         func() time.Time { return time.Date(2026, 11, 22, 10, 47, 3, 0, time.UTC) },
	}
	for _, f := range configure {
		f(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if handle == nil {
		handle = func(bot.Message) {}
	}
	go func() { done <- a.Run(ctx, handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if err := fake.WaitConnections(1, patience); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) waitCall(t *testing.T, what string, match func(slackfake.Call) bool) slackfake.Call {
	t.Helper()
	c, err := h.fake.WaitCall(context.Background(), 0, patience, what, match)
	if err != nil {
		t.Fatalf("%v; calls so far:\n%s", err, dump(h.fake.Calls()))
	}
	return c
}

func dump(calls []slackfake.Call) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "  %d %s ts=%s thread=%s text=%q buttons=%d\n", c.Seq, c.Method, c.TS, c.Thread, c.Text, len(c.Buttons()))
	}
	return b.String()
}

func buttonValues(c slackfake.Call) []string {
	var out []string
	for _, b := range c.Buttons() {
		out = append(out, b.Text.Text+"="+b.Value)
	}
	return out
}

func verdict(o deployer.Outcome) *deployer.Verdict {
	return &deployer.Verdict{Stage: deployer.Canaries, Outcome: o, Reason: "canaries look like production"}
}

// TestThreadPerDeployment plays a deployment's notices and checks the
// messages: one root, updated in place; every notice in its thread; the
// prompt's buttons, replaced once answered; the outcome broadcast to the
// channel; Roll back on the latest finished root only.
func TestThreadPerDeployment(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	notices := []deployer.Notice{
		{Deployment: 7, Kind: deployer.NoticeStarted, State: deployer.StatePreparing, Text: "starting deployment of good-change, requested by Alice"},
		{Deployment: 7, Kind: deployer.NoticeProgress, State: deployer.StateSyncingTestservers, Text: "staged abc <script> & more"},
		{Deployment: 7, Kind: deployer.NoticeVerify, State: deployer.StateAwaitingVerification, Mention: []string{"Bob"},
			Choices: []string{"verified", "!abort 7"}, Text: "good-change is on test1, test it there and reply `verified`, or `!abort 7`"},
		{Deployment: 7, Kind: deployer.NoticeVerified, State: deployer.StateSyncingCanaries, Text: "verified by Bob; syncing canaries"},
		{Deployment: 7, Kind: deployer.NoticeVerdict, State: deployer.StateSyncingProduction, Verdict: verdict(deployer.Pass),
			Text: "canary check PASS: canaries look like production; syncing production (4 hosts)\nhost    requests errors\ncanary1      120      0"},
		{Deployment: 7, Kind: deployer.NoticeDone, State: deployer.StateDone, Text: "done: good-change is on all 7 hosts (took 9s)"},
	}
	for i, n := range notices {
		mentions := []string{}
		if len(n.Mention) > 0 {
			mentions = []string{"UBOB"}
		}
		h.a.Announce(n, mentions)
		if i == 2 {
			// Let the prompt be posted before it is answered.
			h.waitCall(t, "verify prompt", func(c slackfake.Call) bool { return len(c.Buttons()) == 2 })
		}
	}
	done := h.waitCall(t, "done notice", func(c slackfake.Call) bool { return strings.HasPrefix(c.Text, "[#7] done") })

	calls := h.fake.Calls()
	root := calls[0]
	if root.Method != "chat.postMessage" || root.Thread != "" || root.Channel != channel {
		t.Fatalf("first call is not a root message in the channel:\n%s", dump(calls))
	}
	if !strings.Contains(root.BlockText(), "*Deployment #7*") || !strings.Contains(root.BlockText(), "stage: *preparing*") {
		t.Errorf("root message = %q", root.BlockText())
	}
	var posts []slackfake.Call
	for _, c := range calls[1:] {
		if c.Method == "chat.postMessage" {
			posts = append(posts, c)
			if c.Thread != root.TS {
				t.Errorf("notice %q posted outside the root's thread (thread_ts %q, root %q)", c.Text, c.Thread, root.TS)
			}
		}
	}
	if len(posts) != len(notices) {
		t.Fatalf("%d thread posts for %d notices:\n%s", len(posts), len(notices), dump(calls))
	}
	if got := posts[1].BlockText(); !strings.Contains(got, "&lt;script&gt; &amp; more") {
		t.Errorf("notice text not escaped for Slack: %q", got)
	}
	prompt := posts[2]
	if got := strings.Join(buttonValues(prompt), ","); got != "Verified=verified 7,Abort=!abort 7" {
		t.Errorf("verify prompt buttons = %s", got)
	}
	if !strings.HasPrefix(prompt.Text, "[#7] <@UBOB>: ") {
		t.Errorf("verify prompt does not mention the submitter: %q", prompt.Text)
	}
	up, ok := h.fake.LastUpdate(prompt.TS)
	if !ok {
		t.Fatalf("the answered prompt was never updated:\n%s", dump(calls))
	}
	if len(up.Buttons()) != 0 || !strings.Contains(up.BlockText(), "answered: verified by Bob; syncing canaries at 10:47:03 UTC") {
		t.Errorf("answered prompt = %q with %d buttons", up.BlockText(), len(up.Buttons()))
	}
	if v := posts[4].BlockText(); !strings.Contains(v, "```host    requests errors\ncanary1      120      0```") {
		t.Errorf("verdict table not preformatted: %q", v)
	}
	for i, p := range posts {
		if got, want := p.Broadcast(), i == len(posts)-1; got != want {
			t.Errorf("post %d %q: broadcast to the channel = %v, want %v", i, p.Text, got, want)
		}
	}
	if done.Seq != posts[len(posts)-1].Seq {
		t.Errorf("the done notice is not the last post")
	}
	final := h.waitCall(t, "root marked done", func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.TS == root.TS && strings.Contains(c.BlockText(), "stage: *done*")
	})
	for _, want := range []string{"hosts synced: 7/7", "verdict: pass"} {
		if !strings.Contains(final.BlockText(), want) {
			t.Errorf("root status %q lacks %q", final.BlockText(), want)
		}
	}
	if got := strings.Join(buttonValues(final), ","); got != "Roll back=!rollback 7" {
		t.Errorf("finished root's buttons = %q, want Roll back", got)
	}
	// The root was updated at each stage, never re-posted.
	stages := map[string]bool{}
	for _, c := range h.fake.Calls() {
		if c.Method == "chat.update" && c.TS == root.TS {
			stages[c.BlockText()[strings.Index(c.BlockText(), "stage:"):]] = true
		}
	}
	if len(stages) < 4 {
		t.Errorf("root updated through %d distinct statuses, want at least 4: %v", len(stages), stages)
	}

	// A later deployment finishing takes the button off this one.
	n := len(h.fake.Calls())
	h.a.Announce(deployer.Notice{Deployment: 8, Kind: deployer.NoticeDone, State: deployer.StateDone, Text: "done: other"}, nil)
	c, err := h.fake.WaitCall(context.Background(), n, patience, "old root without Roll back", func(c slackfake.Call) bool {
		return c.Method == "chat.update" && c.TS == root.TS
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Buttons()) != 0 {
		t.Errorf("#7's root still offers %v after #8 finished", buttonValues(c))
	}
}

// TestPromotePrompt checks the buttons of an inconclusive verdict.
func TestPromotePrompt(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticePromote, State: deployer.StateAwaitingPromotion, Verdict: verdict(deployer.Inconclusive),
		Choices: []string{"!promote 3", "!rollback 3"}, Text: "canary check INCONCLUSIVE: too little traffic"}, nil)
	c := h.waitCall(t, "promote prompt", func(c slackfake.Call) bool { return len(c.Buttons()) > 0 && c.Thread != "" })
	if got := strings.Join(buttonValues(c), ","); got != "Promote=!promote 3,Roll back=!rollback 3" {
		t.Errorf("promote prompt buttons = %s", got)
	}
	if c.Buttons()[1].Confirm == nil {
		t.Errorf("Roll back has no confirmation dialog")
	}
	root := h.waitCall(t, "root", func(c slackfake.Call) bool { return c.Method == "chat.postMessage" && c.Thread == "" })
	if !strings.Contains(root.BlockText(), "hosts synced: 3/7") || !strings.Contains(root.BlockText(), "verdict: inconclusive") {
		t.Errorf("root status = %q", root.BlockText())
	}
}

// TestIncoming sends what the bot must ignore and what it must act on
// once, and checks that every envelope is acknowledged.
func TestIncoming(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(nil))
	f := h.fake
	var envs []slackfake.Envelope
	send := func(env slackfake.Envelope) {
		t.Helper()
		if err := f.Send(env); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	send(f.MessageEnvelope(slackfake.BotUserID, channel, "!status", f.NewTS(), nil))                               // its own
	send(f.MessageEnvelope("UOTHERBOT", channel, "!status", f.NewTS(), map[string]any{"bot_id": "BOTHER"}))        // a bot
	send(f.MessageEnvelope("UALICE", channel, "!status", f.NewTS(), map[string]any{"subtype": "message_changed"})) // an edit
	send(f.MessageEnvelope("UALICE", "COTHER", "!status", f.NewTS(), nil))                                         // elsewhere
	ts := f.NewTS()
	first := f.MessageEnvelope("UALICE", channel, "!backport good-change", ts, nil) // real
	send(first)
	send(first) // redelivered
	retry := f.MessageEnvelope("UALICE", channel, "!backport good-change", ts, nil)
	retry.Retry = 1
	send(retry)                                                                                              // retried, new envelope id
	send(f.MessageEnvelope("UBOB", channel, "<@"+slackfake.BotUserID+"> status &amp; more", f.NewTS(), nil)) // addressed
	send(f.MessageEnvelope("UBOB", "DBOB", "!status", f.NewTS(), map[string]any{"channel_type": "im"}))      // private
	in.waitN(t, 3)
	for _, env := range envs {
		if err := f.WaitAck(env.EnvelopeID, 1, patience); err != nil {
			t.Error(err)
		}
	}
	if err := f.WaitAck(first.EnvelopeID, 2, patience); err != nil {
		t.Errorf("the redelivered envelope was not acknowledged again: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // anything wrongly delivered would arrive by now
	want := []string{"slack:UALICE !backport good-change", "slack:UBOB deploybot: status & more", "slack:UBOB !status"}
	if got := in.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("delivered %q, want %q", got, want)
	}
	in.mu.Lock()
	private := in.msgs[2].Private
	in.mu.Unlock()
	if !private {
		t.Errorf("a direct message was not marked private")
	}
}

// TestPressGoesThroughTheCore checks that a press is the button's command
// from the presser, that a refusal goes only to the presser, and that an
// accepted press replaces the buttons with who answered and when.
func TestPressGoesThroughTheCore(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(func(m bot.Message) {
		if m.Sender.Keys[0] != "slack:UBOB" {
			m.Refused(m.Sender.Nick + ": only the submitter (UBOB) or a deployer may answer for #5")
		}
	}))
	h.a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeVerify, State: deployer.StateAwaitingVerification,
		Choices: []string{"verified", "!abort 5"}, Text: "test it"}, []string{"UBOB"})
	prompt := h.waitCall(t, "prompt", func(c slackfake.Call) bool { return len(c.Buttons()) == 2 })

	env, err := h.fake.Press("UEVE", prompt, "verified 5")
	if err != nil {
		t.Fatal(err)
	}
	eph := h.waitCall(t, "ephemeral refusal", func(c slackfake.Call) bool { return c.Method == "chat.postEphemeral" })
	if eph.User != "UEVE" || eph.Thread != prompt.Thread || !strings.Contains(eph.Text, "only the submitter") {
		t.Errorf("refusal went to %q in thread %q: %q", eph.User, eph.Thread, eph.Text)
	}
	if err := h.fake.WaitAck(env.EnvelopeID, 1, patience); err != nil {
		t.Error(err)
	}
	if _, ok := h.fake.LastUpdate(prompt.TS); ok {
		t.Errorf("a refused press changed the prompt")
	}

	if _, err := h.fake.Press("UBOB", prompt, "verified 5"); err != nil {
		t.Fatal(err)
	}
	up := h.waitCall(t, "prompt answered", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.TS == prompt.TS })
	if len(up.Buttons()) != 0 || !strings.Contains(up.BlockText(), "<@UBOB> pressed *Verified* at 10:47:03 UTC") {
		t.Errorf("answered prompt = %q, %d buttons", up.BlockText(), len(up.Buttons()))
	}
	if got, want := strings.Join(in.texts(), "|"), "slack:UEVE verified 5|slack:UBOB verified 5"; got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
	for _, c := range h.fake.Calls() {
		if c.Method == "chat.postEphemeral" && c.User == "UBOB" {
			t.Errorf("the accepted press got an ephemeral answer: %q", c.Text)
		}
	}
}

// TestTypedCommandAnswers checks replies in place and the reactions that
// mark a typed command accepted or refused.
func TestTypedCommandAnswers(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(func(m bot.Message) {
		if strings.Contains(m.Text, "backport") {
			m.Refused("UEVE: only deployers may do that")
			return
		}
		m.Reply("nothing is deploying right now")
	}))
	threadTS := h.fake.NewTS()
	refused, err := h.fake.Say("UEVE", channel, "!backport x")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.fake.Send(h.fake.MessageEnvelope("UEVE", channel, "!status", h.fake.NewTS(), map[string]any{"thread_ts": threadTS})); err != nil {
		t.Fatal(err)
	}
	in.waitN(t, 2)
	h.waitCall(t, "refusal", func(c slackfake.Call) bool { return strings.Contains(c.Text, "only deployers") && c.Thread == "" })
	h.waitCall(t, "reply in thread", func(c slackfake.Call) bool {
		return strings.Contains(c.Text, "nothing is deploying") && c.Thread == threadTS
	})
	react := h.waitCall(t, "refusal reaction", func(c slackfake.Call) bool {
		return c.Method == "reactions.add" && c.Values.Get("name") == "no_entry_sign"
	})
	if !strings.Contains(string(refused.Payload), `"ts":"`+react.TS+`"`) {
		t.Errorf("the refusal reaction is on %s, not the refused message", react.TS)
	}
	h.waitCall(t, "accepted reaction", func(c slackfake.Call) bool {
		return c.Method == "reactions.add" && c.Values.Get("name") == "white_check_mark"
	})
}

// TestReconnect drops the socket: the adapter opens a new one, tells the
// bot, and the deployment's thread carries on.
func TestReconnect(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(nil))
	h.a.Announce(deployer.Notice{Deployment: 9, Kind: deployer.NoticeStarted, State: deployer.StatePreparing, Text: "starting"}, nil)
	root := h.waitCall(t, "root", func(c slackfake.Call) bool { return c.Thread == "" && c.Method == "chat.postMessage" })

	h.fake.Drop()
	if err := h.fake.WaitConnections(2, patience); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-h.reconnected:
		if name != "slack" {
			t.Errorf("Reconnected(%q)", name)
		}
	case <-time.After(patience):
		t.Fatal("Reconnected was not called")
	}
	if _, err := h.fake.Say("UBOB", channel, "verified 9"); err != nil {
		t.Fatal(err)
	}
	in.waitN(t, 1)
	h.a.Announce(deployer.Notice{Deployment: 9, Kind: deployer.NoticeVerified, State: deployer.StateSyncingCanaries, Text: "verified by Bob"}, nil)
	c := h.waitCall(t, "notice after reconnect", func(c slackfake.Call) bool { return strings.Contains(c.Text, "verified by Bob") })
	if c.Thread != root.TS {
		t.Errorf("after the reconnect the notice went to thread %q, not the root %q", c.Thread, root.TS)
	}
}

func TestRefusedToken(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, appToken, botToken)
	a, err := New(Options{AppToken: appToken, BotToken: "xoxb-wrong-secret", Channel: channel, APIURL: fake.APIURL(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	err = a.Run(ctx, func(bot.Message) {})
	if err == nil || !strings.Contains(err.Error(), "bot token was refused") || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("Run with a refused token: %v", err)
	}
	for _, o := range []Options{{AppToken: "xoxb-x", BotToken: botToken, Channel: channel}, {AppToken: appToken, BotToken: "xapp-x", Channel: channel}, {AppToken: appToken, BotToken: botToken}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestSeenForgetsOldest(t *testing.T) {
	s := newSeen(3)
	for _, k := range []string{"a", "b", "c"} {
		if !s.add(k) {
			t.Fatalf("%s seen before it was added", k)
		}
	}
	if s.add("a") {
		t.Errorf("a not remembered")
	}
	s.add("d") // forgets b, the least recently seen
	if !s.add("b") {
		t.Errorf("b still remembered beyond the bound")
	}
	if s.add("a") || s.add("d") {
		t.Errorf("recent keys forgotten")
	}
}

func TestHostsSynced(t *testing.T) {
	stages := map[deployer.Stage]int{deployer.Testservers: 1, deployer.Canaries: 2, deployer.Production: 4}
	for s, want := range map[deployer.State]int{
		deployer.StatePreparing: 0, deployer.StateAwaitingVerification: 1, deployer.StateSyncingCanaries: 1,
		deployer.StateCheckingCanaries: 3, deployer.StateAwaitingPromotion: 3, deployer.StateDone: 7, deployer.StateRolledBack: 0,
	} {
		if n, ok := hostsSynced(s, stages); !ok || n != want {
			t.Errorf("%s: %d hosts synced (%v), want %d", s, n, ok, want)
		}
	}
	if _, ok := hostsSynced(deployer.StateRollingBack, stages); ok {
		t.Errorf("rolling-back claims a host count")
	}
}

// TestPressOnUnknownMessage is a press on buttons this process did not
// post (they were posted before a restart): it is still delivered, and the
// buttons are replaced from the message Slack sent along.
func TestPressOnUnknownMessage(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(nil))
	text, blocks := noticeMessage(deployer.Notice{Deployment: 4, Kind: deployer.NoticeVerify, Choices: []string{"verified", "!abort 4"}, Text: "test it"}, nil)
	old := slackfake.Call{Method: "chat.postMessage", Channel: channel, TS: h.fake.NewTS(), Thread: h.fake.NewTS(), Text: text, Blocks: blocks}
	if _, err := h.fake.Press("UBOB", old, "!abort 4"); err != nil {
		t.Fatal(err)
	}
	in.waitN(t, 1)
	up := h.waitCall(t, "old prompt answered", func(c slackfake.Call) bool { return c.Method == "chat.update" && c.TS == old.TS })
	if len(up.Buttons()) != 0 || !strings.Contains(up.BlockText(), "test it") || !strings.Contains(up.BlockText(), "<@UBOB> pressed *Abort*") {
		t.Errorf("old prompt after the press: %q, %d buttons", up.BlockText(), len(up.Buttons()))
	}
	if got := in.texts(); len(got) != 1 || got[0] != "slack:UBOB !abort 4" {
		t.Errorf("delivered %q", got)
	}
}
