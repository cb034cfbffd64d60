package irc

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

func TestWrapKeepsEveryByteAndFits(t *testing.T) {
	words := strings.Repeat("deploy the frobnicator to mw1001.eqiad.wmnet ", 40)
	cases := []struct {
		name string
		text string
		max  int
	}{
		{"short", "all good", 100},
		{"exact", strings.Repeat("x", 100), 100},
		{"words", words, 120},
		{"no spaces", strings.Repeat("0123456789", 95), 100},
		{"multibyte", strings.Repeat("é☃𝄞", 200), 101},
		{"multibyte and spaces", strings.Repeat("Größe ändern ☃ ", 60), 77},
	}
	for _, c := range cases {
		pieces := wrap(c.text, c.max)
		if len(c.text) > c.max && len(pieces) < 2 {
			t.Errorf("%s: %d bytes in %d piece(s) of at most %d", c.name, len(c.text), len(pieces), c.max)
		}
		for i, p := range pieces {
			if len(p) > c.max {
				t.Errorf("%s: piece %d is %d bytes, max %d", c.name, i, len(p), c.max)
			}
			if !utf8.ValidString(p) {
				t.Errorf("%s: piece %d is not valid UTF-8: %q", c.name, i, p)
			}
			if p == "" {
				t.Errorf("%s: piece %d is empty", c.name, i)
			}
		}
		// Nothing lost: the text is the pieces joined at the spaces that
		// were cut (or directly, where a word was cut).
		if got := strings.Join(strings.Fields(strings.Join(pieces, " ")), ""); got != strings.Join(strings.Fields(c.text), "") {
			t.Errorf("%s: text changed by wrapping", c.name)
		}
		if c.name == "words" {
			for i, p := range pieces[:len(pieces)-1] {
				if strings.HasSuffix(p, " ") || !strings.HasSuffix(p, strings.Fields(p)[len(strings.Fields(p))-1]) || len(p) < c.max/2 {
					t.Errorf("words: piece %d was not cut at a space: %q", i, p)
				}
			}
		}
	}
}

func TestLayoutTagsEveryLine(t *testing.T) {
	long := strings.Repeat("host mw1001 requests 120 errors 0 rate 0.0% ", 20)
	lines := layout("bob: [#42] ", "[#42] ", []string{"first line", "", "  ", long, "with\rcarriage\x00return"}, 200)
	if lines[0] != "bob: [#42] first line" {
		t.Errorf("first line = %q", lines[0])
	}
	if len(lines) < 4 {
		t.Fatalf("got %d lines: %q", len(lines), lines)
	}
	for i, l := range lines {
		if len(l) > 200 {
			t.Errorf("line %d is %d bytes", i, len(l))
		}
		if i > 0 && !strings.HasPrefix(l, "[#42] ") {
			t.Errorf("line %d lacks the deployment tag: %q", i, l)
		}
		if i > 0 && strings.HasPrefix(l, "[#42]  ") {
			t.Errorf("line %d: blank lines must be left out, got %q", i, l)
		}
	}
	if last := lines[len(lines)-1]; last != "[#42] withcarriagereturn" {
		t.Errorf("control characters not removed: %q", last)
	}
}

func TestBodyBudgetFillsTheLineExactly(t *testing.T) {
	nick, user, host, target := "deploybot", "~deploybot", "127.0.0.1", "#deployments"
	b := bodyBudget(len(nick), len(user), len(host), target)
	line := ":" + nick + "!" + user + "@" + host + " PRIVMSG " + target + " :" + strings.Repeat("x", b)
	if len(line) != 510 {
		t.Errorf("a full line is %d bytes, want 510 (512 with CR LF)", len(line))
	}
}

// newTestAdapter is an adapter that never connects; caps says which
// capabilities the "server" enabled.
func newTestAdapter(t *testing.T, caps ...string) *Adapter {
	t.Helper()
	a, err := New(Config{Server: "irc.example.org", Port: 6697, Nick: "deploybot", Channel: "#deployments", BotName: "deploybot"})
	if err != nil {
		t.Fatal(err)
	}
	a.caps = func(name string) bool {
		for _, c := range caps {
			if c == name {
				return true
			}
		}
		return false
	}
	return a
}

// feed hands a raw server line to the adapter's PRIVMSG handler, the way
// girc does, and returns the message it produced, if any.
func feed(t *testing.T, a *Adapter, raw string) (bot.Message, bool) {
	t.Helper()
	e := girc.ParseEvent(raw)
	if e == nil {
		t.Fatalf("girc cannot parse %q", raw)
	}
	a.onPrivmsg(a.client, *e)
	select {
	case m := <-a.in:
		return m, true
	default:
		return bot.Message{}, false
	}
}

func TestIdentityFromTaggedLines(t *testing.T) {
	dir := &bot.Directory{
		People:    []bot.Person{{Name: "Dee Ployer", Chat: []string{"irc:account:deployer1"}, Nick: "deployer1"}},
		Deployers: []string{"Dee Ployer"},
	}
	cases := []struct {
		name     string
		caps     []string
		raw      string
		keys     string
		deployer bool
	}{
		{"account tag the server vouches for", []string{"account-tag"},
			"@account=deployer1 :deployer1!d@h PRIVMSG #deployments :!backport x",
			"irc:account:deployer1 irc:mask:deployer1!d@h", true},
		{"account tag on a server without account-tag is not trusted", nil,
			"@account=deployer1 :deployer1!d@h PRIVMSG #deployments :!backport x",
			"irc:mask:deployer1!d@h", false},
		{"no account: only the mask, and the nick alone grants nothing", []string{"account-tag"},
			":deployer1!d@h PRIVMSG #deployments :!backport x",
			"irc:mask:deployer1!d@h", false},
		{"logged-out marker", []string{"account-tag"},
			"@account=* :deployer1!d@h PRIVMSG #deployments :!backport x",
			"irc:mask:deployer1!d@h", false},
		{"someone else's account keeps its own identity", []string{"account-tag"},
			"@account=mallory :deployer1!d@h PRIVMSG #deployments :!backport x",
			"irc:account:mallory irc:mask:deployer1!d@h", false},
	}
	for _, c := range cases {
		a := newTestAdapter(t, c.caps...)
		m, ok := feed(t, a, c.raw)
		if !ok {
			t.Errorf("%s: no message", c.name)
			continue
		}
		if got := strings.Join(m.Sender.Keys, " "); got != c.keys {
			t.Errorf("%s: keys %q, want %q", c.name, got, c.keys)
		}
		if m.Sender.Adapter != "irc" || m.Sender.Nick != "deployer1" || m.Text != "!backport x" || m.Private {
			t.Errorf("%s: message %+v", c.name, m)
		}
		if got := dir.IsDeployer(m.Sender); got != c.deployer {
			t.Errorf("%s: IsDeployer = %v, want %v", c.name, got, c.deployer)
		}
	}
}

func TestWhichMessagesReachTheBot(t *testing.T) {
	a := newTestAdapter(t)
	a.nick = "deploybot_" // a nick collision renamed the bot
	if m, ok := feed(t, a, ":bob!b@h PRIVMSG deploybot_ :status"); !ok || !m.Private || m.Text != "status" {
		t.Errorf("private message: %+v, %v", m, ok)
	} else {
		m.Reply("one", "two")
		if got := strings.Join(texts(a.queues["bob"]), "|"); got != "one|two" {
			t.Errorf("a private message is answered in private: queued to bob %q", got)
		}
	}
	if m, ok := feed(t, a, ":bob!b@h PRIVMSG #Deployments :deploybot_: status"); !ok || m.Text != "deploybot: status" || m.Private {
		t.Errorf("addressing the bot by its nick: %+v, %v", m, ok)
	} else {
		m.Reply("answer")
		if got := strings.Join(texts(a.queues["#deployments"]), "|"); got != "answer" {
			t.Errorf("a channel message is answered in the channel: %q", got)
		}
	}
	if m, ok := feed(t, a, ":bob!b@h PRIVMSG #deployments :\x02!status\x02"); !ok || m.Text != "!status" {
		t.Errorf("formatting codes must be stripped: %+v, %v", m, ok)
	}
	for _, raw := range []string{
		":bob!b@h PRIVMSG #elsewhere :!backport x",                  // another channel
		":bob!b@h PRIVMSG #deployments :\x01ACTION !backport x\x01", // a CTCP action
		":deploybot_!d@h PRIVMSG #deployments :!backport x",         // the bot itself
		":bob!b@h PRIVMSG #deployments :   ",                        // nothing said
	} {
		if m, ok := feed(t, a, raw); ok {
			t.Errorf("%q reached the bot as %+v", raw, m)
		}
	}
}

func TestAnnounceMentionsTagsAndLogs(t *testing.T) {
	a := newTestAdapter(t)
	a.cfg.LogChannel = "#operations"
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := &deployer.Deployment{ID: 42, Requester: "Alice Deployer", Reason: "canary error rate 12.0% above threshold 2.0%",
		Changes:   []deployer.Change{{ID: "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", Subject: "Fix the frobnicator"}},
		StartedAt: start, EndedAt: start.Add(3*time.Minute + 12*time.Second)}
	a.cfg.Deployment = func(id int64) (*deployer.Deployment, error) {
		if id != 42 {
			return nil, fmt.Errorf("no #%d", id)
		}
		return d, nil
	}
	a.cfg.Nickname = func(who string) string { return map[string]string{"Alice Deployer": "alice"}[who] }

	a.Announce(deployer.Notice{Deployment: 42, Kind: deployer.NoticeVerify, Text: "test it\nthen reply `verified`"}, []string{"bob"})
	a.Announce(deployer.Notice{Deployment: 42, Kind: deployer.NoticeDone, Text: "done: it is on all 7 hosts"}, nil)
	d2 := *d
	d2.ID = 43
	a.cfg.Deployment = func(id int64) (*deployer.Deployment, error) { return &d2, nil }
	a.Announce(deployer.Notice{Deployment: 43, Kind: deployer.NoticeRolledBack, Text: "rolled back"}, nil)

	want := []string{"bob: [#42] test it", "[#42] then reply `verified`", "[#42] done: it is on all 7 hosts", "[#43] rolled back"}
	if got := texts(a.queues["#deployments"]); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("channel lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantLog := []string{
		"!log alice@deploybot Synchronized 1a2b3c4d5e: Fix the frobnicator [#42] (duration 3m12s)",
		"!log alice@deploybot Rolled back 1a2b3c4d5e: Fix the frobnicator [#43]: canary error rate 12.0% above threshold 2.0% (duration 3m12s)",
	}
	if got := texts(a.queues["#operations"]); strings.Join(got, "\n") != strings.Join(wantLog, "\n") {
		t.Errorf("log channel lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLog, "\n"))
	}
}

func TestDisconnectPutsUnconfirmedLinesBackInOrder(t *testing.T) {
	a := newTestAdapter(t)
	a.registered = true
	a.joined["#deployments"] = true
	a.enqueue("#deployments", "", "", []string{"1", "2", "3"})
	a.enqueue("alice", "", "", []string{"p1"})
	var sentLines []string
	for {
		s, ok := a.popLocked()
		if !ok {
			break
		}
		sentLines = append(sentLines, s.target+":"+s.text)
	}
	// The one-line answer is live: it goes before the three-line one.
	if got := strings.Join(sentLines, " "); got != "alice:p1 #deployments:1 #deployments:2 #deployments:3" {
		t.Errorf("order: %s", got)
	}
	// The server confirmed the first two lines sent, then the connection
	// dropped; a new line was queued meanwhile.
	a.onPong(a.client, *girc.ParseEvent(":irc.example.org PONG irc.example.org :" + ackPrefix + "2"))
	a.onDisconnected(a.client, girc.Event{Command: girc.DISCONNECTED})
	a.enqueue("#deployments", "", "", []string{"4"})
	if got := strings.Join(texts(a.queues["#deployments"]), " "); got != "2 3 4" {
		t.Errorf("channel queue after the drop: %q, want \"2 3 4\"", got)
	}
	if got := len(a.queues["alice"]); got != 0 {
		t.Errorf("a confirmed private line was queued again")
	}
	if _, ok := a.popLocked(); ok {
		t.Error("a line was sent while disconnected")
	}
}

func TestPacerPacesAfterTheBurst(t *testing.T) {
	p := pacer{burst: 3, interval: 100 * time.Millisecond, tokens: 3, last: time.Now()}
	start := time.Now()
	for i := 0; i < 3; i++ {
		p.wait(t.Context())
	}
	// Paced from the first line, the burst would take 200ms.
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("the burst took %s", d)
	}
	for i := 0; i < 5; i++ {
		p.wait(t.Context())
	}
	if d := time.Since(start); d < 5*100*time.Millisecond*9/10 {
		t.Errorf("8 lines with a burst of 3 at 100ms took %s, want at least 450ms", d)
	}
}

func TestIdentityFromExtendedJoinAndAccountNotify(t *testing.T) {
	msg := ":deployer1!d@h PRIVMSG #deployments :!status"
	join := girc.ParseEvent(":deployer1!d@h JOIN #deployments deployer1 :Dee Ployer")
	// The server told the bot the account when deployer1 joined.
	a := newTestAdapter(t, "extended-join", "account-notify")
	a.client.RunHandlers(join)
	if m, ok := feed(t, a, msg); !ok || strings.Join(m.Sender.Keys, " ") != "irc:account:deployer1 irc:mask:deployer1!d@h" {
		t.Errorf("after an extended join: %+v", m.Sender)
	}
	// deployer1 logs out: account-notify says so.
	a.client.RunHandlers(girc.ParseEvent(":deployer1!d@h ACCOUNT *"))
	if m, ok := feed(t, a, msg); !ok || strings.Join(m.Sender.Keys, " ") != "irc:mask:deployer1!d@h" {
		t.Errorf("after logging out: %+v", m.Sender)
	}
	// A server that offers neither capability is not believed.
	b := newTestAdapter(t)
	b.client.RunHandlers(join)
	if m, ok := feed(t, b, msg); !ok || strings.Join(m.Sender.Keys, " ") != "irc:mask:deployer1!d@h" {
		t.Errorf("without extended-join or account-notify: %+v", m.Sender)
	}
}

// texts are the queued lines' texts.
func texts(q []qline) []string {
	var out []string
	for _, l := range q {
		out = append(out, l.text)
	}
	return out
}

func TestLiveLinesGoBeforeBacklogAndAnsweredRemindersAreDropped(t *testing.T) {
	a := newTestAdapter(t)
	answered := false
	a.cfg.Outdated = func(n deployer.Notice) bool { return n.Kind == deployer.NoticeReminder && answered }
	a.registered = true
	a.joined["#deployments"] = true
	// A long answer (a history) is being sent when the connection drops.
	a.enqueue("#deployments", "", "", []string{"h1", "h2", "h3", "h4"})
	s, _ := a.popLocked()
	if s.text != "h1" {
		t.Fatalf("first line sent: %q", s.text)
	}
	a.onDisconnected(a.client, girc.Event{Command: girc.DISCONNECTED})
	// While disconnected: a reminder, then the answer to it and its notice.
	a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeReminder, State: deployer.StateAwaitingVerification, Text: "reminder: test it"}, []string{"bob"})
	answered = true
	a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeVerified, Text: "verified by bob"}, nil)
	a.registered = true
	a.joined["#deployments"] = true
	var got []string
	for {
		s, ok := a.popLocked()
		if !ok {
			break
		}
		got = append(got, s.text)
	}
	want := "[#3] verified by bob|h1|h2|h3|h4"
	if strings.Join(got, "|") != want {
		t.Errorf("lines sent after the reconnect:\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
	// An already answered reminder is not even queued.
	a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeReminder, Text: "reminder again"}, nil)
	if q := a.queued(); q != len(got) {
		t.Errorf("%d lines queued or in flight, want the %d sent", q, len(got))
	}
}
