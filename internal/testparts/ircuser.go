package testparts

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lrstanley/girc"
)

// IRCUser is a person in IRC channels, played by a real girc client: it
// says lines and records every PRIVMSG it receives. Like a person's client,
// it reconnects and rejoins by itself when the server goes away.
type IRCUser struct {
	Nick string

	t        testing.TB
	c        *girc.Client
	channels []string

	mu      sync.Mutex
	joined  map[string]bool
	present map[string]map[string]bool // channel -> nicks in it (lower case)
	lines   []IRCLine
	changed chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// IRCLine is one PRIVMSG an IRCUser received.
type IRCLine struct {
	Nick   string // the sender's nick
	Source string // nick!user@host
	Target string // a channel, or the user's own nick for a private message
	Text   string
	// Len is the length in bytes of the line as the server relayed it,
	// prefix included, without the final CR LF. IRC allows 510.
	Len int
}

// String shows the line as a chat client would, for failure messages.
func (l IRCLine) String() string { return fmt.Sprintf("%s <%s> %s", l.Target, l.Nick, l.Text) }

// JoinIRC connects a person called nick (user name nick too) to the server
// and joins channels, waiting until it is in all of them. It disconnects
// when the test ends.
func JoinIRC(t testing.TB, n *Ngircd, nick string, channels ...string) *IRCUser {
	t.Helper()
	return JoinIRCAs(t, n, nick, nick, channels...)
}

// JoinIRCAs is JoinIRC with a user name of its own, so a test can play
// someone who took another person's nick (the mask then differs).
func JoinIRCAs(t testing.TB, n *Ngircd, nick, user string, channels ...string) *IRCUser {
	t.Helper()
	u := &IRCUser{Nick: nick, t: t, channels: channels, joined: map[string]bool{}, present: map[string]map[string]bool{},
		changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	u.c = girc.New(girc.Config{Server: "127.0.0.1", Port: n.Port, Nick: nick, User: user, Name: nick, AllowFlood: true})
	u.c.Handlers.Add(girc.RPL_WELCOME, func(c *girc.Client, e girc.Event) { c.Cmd.Join(u.channels...) })
	// Who is in which channel is tracked here rather than read from
	// girc's state, whose channel copies race with its MODE handler.
	u.c.Handlers.Add(girc.JOIN, func(c *girc.Client, e girc.Event) {
		if e.Source == nil || len(e.Params) == 0 {
			return
		}
		ch := strings.ToLower(e.Params[0])
		u.update(func() {
			if strings.EqualFold(e.Source.Name, c.GetNick()) {
				u.joined[ch] = true
			}
			u.setPresent(ch, e.Source.Name, true)
		})
	})
	u.c.Handlers.Add(girc.RPL_NAMREPLY, func(c *girc.Client, e girc.Event) {
		if len(e.Params) < 3 {
			return
		}
		ch := strings.ToLower(e.Params[len(e.Params)-2])
		u.update(func() {
			for _, n := range strings.Fields(e.Last()) {
				u.setPresent(ch, strings.TrimLeft(n, "@+%&~"), true)
			}
		})
	})
	u.c.Handlers.Add(girc.PART, func(c *girc.Client, e girc.Event) {
		if e.Source != nil && len(e.Params) > 0 {
			u.update(func() { u.setPresent(strings.ToLower(e.Params[0]), e.Source.Name, false) })
		}
	})
	u.c.Handlers.Add(girc.QUIT, func(c *girc.Client, e girc.Event) {
		if e.Source != nil {
			u.update(func() {
				for ch := range u.present {
					u.setPresent(ch, e.Source.Name, false)
				}
			})
		}
	})
	u.c.Handlers.Add(girc.NICK, func(c *girc.Client, e girc.Event) {
		if e.Source == nil || len(e.Params) == 0 {
			return
		}
		u.update(func() {
			for ch, nicks := range u.present {
				if nicks[strings.ToLower(e.Source.Name)] {
					u.setPresent(ch, e.Source.Name, false)
					u.setPresent(ch, e.Params[0], true)
				}
			}
		})
	})
	u.c.Handlers.Add(girc.DISCONNECTED, func(c *girc.Client, e girc.Event) {
		u.update(func() {
			u.joined = map[string]bool{}
			u.present = map[string]map[string]bool{}
		})
	})
	u.c.Handlers.Add(girc.PRIVMSG, func(c *girc.Client, e girc.Event) {
		if e.Source == nil || len(e.Params) < 2 {
			return
		}
		l := IRCLine{Nick: e.Source.Name, Source: e.Source.String(), Target: e.Params[0], Text: e.Last(), Len: e.Len()}
		u.update(func() { u.lines = append(u.lines, l) })
	})
	// A Close that races with a connection being set up closes it as
	// soon as it exists.
	u.c.Handlers.Add(girc.INITIALIZED, func(c *girc.Client, e girc.Event) {
		select {
		case <-u.stop:
			c.Close()
		default:
		}
	})
	go func() {
		defer close(u.done)
		for {
			select {
			case <-u.stop:
				return
			default:
			}
			_ = u.c.Connect()
			select {
			case <-u.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(u.Close)
	if err := u.WaitJoined(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	return u
}

// setPresent records whether nick is in channel ch; u.mu is held.
func (u *IRCUser) setPresent(ch, nick string, in bool) {
	if u.present[ch] == nil {
		u.present[ch] = map[string]bool{}
	}
	if in {
		u.present[ch][strings.ToLower(nick)] = true
	} else {
		delete(u.present[ch], strings.ToLower(nick))
	}
}

func (u *IRCUser) update(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f()
	close(u.changed)
	u.changed = make(chan struct{})
}

// wait blocks until cond (called with the lock held) is true or timeout.
func (u *IRCUser) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		u.mu.Lock()
		ok := cond()
		ch := u.changed
		u.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// WaitJoined waits until the user is (back) in all its channels.
func (u *IRCUser) WaitJoined(timeout time.Duration) error {
	ok := u.wait(timeout, func() bool {
		for _, ch := range u.channels {
			if !u.joined[strings.ToLower(ch)] {
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("%s did not join %s on 127.0.0.1:%d within %s", u.Nick, strings.Join(u.channels, ", "), u.c.Config.Port, timeout)
	}
	return nil
}

// AwaitPresent waits until the user is in channel on its current
// connection and sees nick there too (for example the bot, back after a
// reconnect), and fails the test otherwise.
func (u *IRCUser) AwaitPresent(timeout time.Duration, nick, channel string) {
	u.t.Helper()
	ch := strings.ToLower(channel)
	if u.wait(timeout, func() bool { return u.joined[ch] && u.present[ch][strings.ToLower(nick)] }) {
		return
	}
	u.t.Fatalf("%s: %s did not appear in %s within %s", u.Nick, nick, channel, timeout)
}

// AwaitGone waits until nick is no longer in channel as the user sees it
// (it left, quit or changed its nick), and fails the test otherwise.
func (u *IRCUser) AwaitGone(timeout time.Duration, nick, channel string) {
	u.t.Helper()
	ch := strings.ToLower(channel)
	if u.wait(timeout, func() bool { return u.joined[ch] && !u.present[ch][strings.ToLower(nick)] }) {
		return
	}
	u.t.Fatalf("%s: %s was still in %s after %s", u.Nick, nick, channel, timeout)
}

// Say sends text to target (a channel or a nick) once the user is in its
// channels.
func (u *IRCUser) Say(target, text string) {
	u.t.Helper()
	if err := u.WaitJoined(20 * time.Second); err != nil {
		u.t.Fatal(err)
	}
	u.c.Cmd.Message(target, text)
}

// Lines returns every PRIVMSG received so far.
func (u *IRCUser) Lines() []IRCLine {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]IRCLine(nil), u.lines...)
}

// Await waits until a received line satisfies match and returns the first
// such line. On timeout it fails the test, listing what was received.
func (u *IRCUser) Await(timeout time.Duration, what string, match func(IRCLine) bool) IRCLine {
	u.t.Helper()
	var found IRCLine
	ok := u.wait(timeout, func() bool {
		for _, l := range u.lines {
			if match(l) {
				found = l
				return true
			}
		}
		return false
	})
	if !ok {
		var b strings.Builder
		for _, l := range u.Lines() {
			b.WriteString("\n  " + l.String())
		}
		u.t.Fatalf("%s: no line %s within %s; received:%s", u.Nick, what, timeout, b.String())
	}
	return found
}

// AwaitText waits for a line from nick in target containing every one of
// parts.
func (u *IRCUser) AwaitText(timeout time.Duration, nick, target string, parts ...string) IRCLine {
	u.t.Helper()
	return u.Await(timeout, fmt.Sprintf("from %s in %s containing %q", nick, target, parts), func(l IRCLine) bool {
		if !strings.EqualFold(l.Nick, nick) || !strings.EqualFold(l.Target, target) {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(l.Text, p) {
				return false
			}
		}
		return true
	})
}

// Close disconnects the user and stops reconnecting.
func (u *IRCUser) Close() {
	select {
	case <-u.stop:
		return
	default:
	}
	close(u.stop)
	u.c.Close()
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
	}
}
