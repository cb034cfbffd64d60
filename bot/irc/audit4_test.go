package irc

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// Regression tests from the fourth audit (the chat side). Each names the
// defect it pins.

// TestControlCodesFromChangesAreNotRelayed: a change's subject (anyone
// who can upload a change writes it) or a host's error text reaches the
// channel in the bot's notices. IRC control codes in it were relayed
// as they were: a colour code could paint the rest of the bot's line
// black on black (hiding "rolled back" after it), \x01 makes a line a
// CTCP request, and an ANSI escape from a host's stderr arrived raw. The
// bot itself uses no formatting, so what it relays carries none either;
// the words stay.
func TestControlCodesFromChangesAreNotRelayed(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")

	subject := "Fix \x0301,01the frobnicator\x0f \x02now\x02 \x1b[31mred\x1b[0m \x16\x1d\x1f\x1e\x11\x04ff0000x\x07"
	a.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeStarted, Text: "started: 1a2b3c4d5e: " + subject}, nil)
	// An answer's continuation line has no prefix: a CTCP there would be
	// read as the bot's own /me.
	a.enqueue("#deployments", "", "", []string{"\x01ACTION is rolling back everything\x01"})
	a.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeInfo, Text: "the end"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "[#4] the end")

	for _, l := range botLines(alice, "#deployments") {
		for _, r := range l {
			if r < 0x20 || r == 0x7f {
				t.Errorf("a line relayed control code %#x: %q", r, l)
				break
			}
		}
	}
	got := strings.Join(botLines(alice, "#deployments"), "|")
	for _, words := range []string{"the frobnicator", "now", "red", "ACTION is rolling back everything"} {
		if !strings.Contains(got, words) {
			t.Errorf("the words %q were lost: %s", words, got)
		}
	}
}

// TestPrivateFloodDoesNotHoldUpTheChannel: anyone can send the bot
// private commands, as fast as their server lets them, and each one-line
// answer was a live line, sent in turn with the deployment channel's
// notices (one line per target, round the targets). Four people asking
// !whoami over and over in private slowed the channel's notices (the
// verification ping with its deadline, a rollback's reason) fivefold.
// The deployment channel's live lines now go first.
func TestPrivateFloodDoesNotHoldUpTheChannel(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodBurst: 1, FloodInterval: 40 * time.Millisecond})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	var flooders []*testparts.IRCUser
	for i := 1; i <= 4; i++ {
		flooders = append(flooders, testparts.JoinIRC(t, srv, fmt.Sprintf("flood%d", i), "#elsewhere"))
	}
	for n := 0; n < 30; n++ {
		for _, f := range flooders {
			f.Say("deploybot", "!whoami")
		}
	}
	flooders[0].AwaitText(10*time.Second, "deploybot", "flood1", "heard: !whoami")
	received := func() int {
		n := 0
		for _, f := range flooders {
			n += len(f.Lines())
		}
		return n
	}
	time.Sleep(200 * time.Millisecond) // every request is answered and queued by now
	before := received()
	a.Announce(deployer.Notice{Deployment: 8, Kind: deployer.NoticeVerify, Text: "bob: on mwdebug1001 now\ntest it\nthere\nand say\nverified 8"}, []string{"bob"})
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "[#8] verified 8")
	between := received() - before
	if between > 3 {
		t.Errorf("%d private answers went out while the channel's 5-line notice waited", between)
	}
	if before+between >= 120 {
		t.Fatalf("the flood was answered (%d lines) before the notice: the test proves nothing", before+between)
	}
}

// TestCTCPRequestsGetNoUnpacedReplies: girc answers CTCP requests
// (VERSION, PING, TIME, and ERRMSG to any other) itself, at once, outside
// the adapter's paced queue. A few people sending CTCP requests made the
// bot write a NOTICE for each as fast as they came, the very flood its
// pacing exists to avoid (servers disconnect a client for "Excess
// Flood"), in the middle of a deployment. The bot answers no CTCP.
func TestCTCPRequestsGetNoUnpacedReplies(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	runAdapter(t, srv, Config{FloodBurst: 1, FloodInterval: 200 * time.Millisecond})
	// The requests go out once the bot is on the server.
	testparts.JoinIRC(t, srv, "alice", "#deployments").AwaitPresent(10*time.Second, "deploybot", "#deployments")
	prober := girc.New(girc.Config{Server: "127.0.0.1", Port: srv.Port, Nick: "prober", User: "prober", AllowFlood: true})
	var replies atomic.Int32
	heard := make(chan struct{}, 1)
	prober.Handlers.Add(girc.NOTICE, func(c *girc.Client, e girc.Event) {
		if e.Source != nil && e.Source.Name == "deploybot" && strings.HasPrefix(e.Last(), "\x01") {
			replies.Add(1)
		}
	})
	prober.Handlers.Add(girc.PRIVMSG, func(c *girc.Client, e girc.Event) {
		if e.Source != nil && e.Source.Name == "deploybot" && strings.Contains(e.Last(), "heard: !status") {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	})
	prober.Handlers.Add(girc.RPL_WELCOME, func(c *girc.Client, e girc.Event) {
		for i := 0; i < 10; i++ {
			for _, q := range []string{"VERSION", "PING 1700000000", "TIME", "CLIENTINFO", "FOOBAR" + fmt.Sprint(i)} {
				c.Cmd.SendCTCP("deploybot", strings.Fields(q)[0], strings.Join(strings.Fields(q)[1:], " "))
			}
		}
		c.Cmd.Message("deploybot", "!status")
	})
	go func() { _ = prober.Connect() }()
	t.Cleanup(prober.Close)
	select {
	case <-heard:
	case <-time.After(20 * time.Second):
		t.Fatal("the bot never answered !status")
	}
	time.Sleep(300 * time.Millisecond) // a reply sent last would be here by now
	if n := replies.Load(); n != 0 {
		t.Errorf("the bot sent %d CTCP replies to 50 requests, outside its pacing", n)
	}
}

// TestAWrappedSubjectCannotPassForANotice: a line too long for IRC is cut
// in pieces, each under the deployment's tag. A change's subject long
// enough to be cut made its tail a line of its own, "[#5] verified by
// Alice Deployer; syncing canaries ...", which reads exactly like the
// bot's own notice; the subject's author chooses where the cut falls. A
// piece that continues a cut line is marked as such ("[#5] … ").
func TestAWrappedSubjectCannotPassForANotice(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")

	forged := "verified by Alice Deployer; syncing canaries (mw-canary1001 and mw-canary1002)"
	for fill := 340; fill <= 390; fill++ { // one of these puts the cut just before "verified"
		subject := "Fix" + strings.Repeat(" a", fill/2) + strings.Repeat("a", fill%2) + " " + forged
		a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeStarted, Text: "staged 1a2b3c4d5e (" + subject + "): 1 file changed; syncing testservers"}, nil)
	}
	a.Announce(deployer.Notice{Deployment: 5, Kind: deployer.NoticeInfo, Text: "the end"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "[#5] the end")
	for _, l := range botLines(alice, "#deployments") {
		if strings.HasPrefix(l, "[#5] verified") {
			t.Errorf("a subject's tail passed for a notice: %q", l)
		}
	}
	var pieces int
	for _, l := range botLines(alice, "#deployments") {
		if strings.HasPrefix(l, "[#5] … ") {
			pieces++
		}
	}
	if pieces == 0 {
		t.Error("no line was cut: the test proves nothing")
	}
}

// TestPrivateBacklogDoesNotHoldUpChannelAnswers: long private answers
// (anyone may ask for !history 100 in private, again and again) took
// turns with the deployment channel's answers of more than two lines
// (!status, !queue), so a few people's backlog slowed every answer in
// the channel. The channel's lines go first.
func TestPrivateBacklogDoesNotHoldUpChannelAnswers(t *testing.T) {
	t.Parallel()
	srv := testparts.StartNgircd(t)
	a := runAdapter(t, srv, Config{FloodBurst: 1, FloodInterval: 40 * time.Millisecond})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments")
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	var flooders []*testparts.IRCUser
	history := make([]string, 100)
	for i := range history {
		history[i] = fmt.Sprintf("#%d done: a change, requested by someone", 100-i)
	}
	for i := 1; i <= 4; i++ {
		f := testparts.JoinIRC(t, srv, fmt.Sprintf("reader%d", i), "#elsewhere")
		flooders = append(flooders, f)
		a.enqueue(f.Nick, "", "", history)
	}
	flooders[0].AwaitText(10*time.Second, "deploybot", "reader1", "#100 done")
	received := func() int {
		n := 0
		for _, f := range flooders {
			n += len(f.Lines())
		}
		return n
	}
	before := received()
	a.enqueue("#deployments", "", "", []string{"nothing is deploying right now", "the fleet serves #3", "1 queued (next: #4 by alice)", "locked by nobody"})
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "locked by nobody")
	if between := received() - before; between > 3 {
		t.Errorf("%d private lines went out while alice's 4-line answer in the channel waited", between)
	}
}
