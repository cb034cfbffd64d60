package irc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/deployer"
)

// Announce implements bot.Adapter: every notice goes to the deployment
// channel, its first line addressed to mentions ("bob: [#42] ..."), every
// line tagged with its deployment. A finished deployment also gets a
// `!log` line in the log channel, when there is one.
func (a *Adapter) Announce(n deployer.Notice, mentions []string) {
	tag := ""
	if n.Deployment != 0 {
		tag = fmt.Sprintf("[#%d] ", n.Deployment)
	}
	first := tag
	if len(mentions) > 0 {
		first = strings.Join(mentions, ", ") + ": " + tag
	}
	if a.cfg.Outdated != nil && a.cfg.Outdated(n) {
		a.log.Info("irc: notice no longer needed, not sent", "deployment", n.Deployment, "kind", n.Kind)
		return
	}
	var stale func() bool
	if a.cfg.Outdated != nil && n.Kind == deployer.NoticeReminder {
		stale = func() bool { return a.cfg.Outdated(n) }
	}
	a.enqueueAs(a.cfg.Channel, first, tag, strings.Split(n.Text, "\n"), true, stale)
	if a.cfg.LogChannel != "" && (n.Kind == deployer.NoticeDone || n.Kind == deployer.NoticeRolledBack) {
		line := truncate(a.logLine(n), a.budget(a.cfg.LogChannel))
		a.enqueueAs(a.cfg.LogChannel, "", "", []string{line}, true, nil)
	}
}

// logLine is a Server Admin Log entry for a finished deployment, in the
// form SAL bots read and scap writes:
//
//	!log alice@deploybot Synchronized 1a2b3c4d5e: Fix the frobnicator [#42] (duration 3m12s)
//	!log alice@deploybot Rolled back 1a2b3c4d5e: Fix the frobnicator [#43]: canary error rate 12% (duration 1m5s)
func (a *Adapter) logLine(n deployer.Notice) string {
	var d *deployer.Deployment
	if a.cfg.Deployment != nil {
		d, _ = a.cfg.Deployment(n.Deployment)
	}
	if d == nil {
		// Without the store, say what the notice says.
		return fmt.Sprintf("!log deploybot@deploybot [#%d] %s", n.Deployment, strings.SplitN(n.Text, "\n", 2)[0])
	}
	who := d.Requester
	if a.cfg.Nickname != nil {
		who = a.cfg.Nickname(who)
	}
	who = strings.Join(strings.Fields(who), "_")
	if who == "" {
		who = "deploybot"
	}
	dur := d.EndedAt.Sub(d.StartedAt).Round(time.Second)
	if d.EndedAt.IsZero() || d.StartedAt.IsZero() {
		dur = 0
	}
	if n.Kind == deployer.NoticeRolledBack {
		return fmt.Sprintf("!log %s@deploybot Rolled back %s [#%d]: %s (duration %s)", who, changeSummary(d), d.ID, d.Reason, dur)
	}
	return fmt.Sprintf("!log %s@deploybot Synchronized %s [#%d] (duration %s)", who, changeSummary(d), d.ID, dur)
}

// changeSummary is "<change>: <subject>" for one change, or the changes
// and their subjects for several.
func changeSummary(d *deployer.Deployment) string {
	if len(d.Changes) == 0 {
		return strings.Join(d.Refs, " ")
	}
	ids := make([]string, len(d.Changes))
	subjects := make([]string, len(d.Changes))
	for i, c := range d.Changes {
		ids[i] = c.ID
		if len(c.ID) == 40 {
			ids[i] = c.ID[:10]
		}
		subjects[i] = c.Subject
	}
	return strings.Join(ids, ", ") + ": " + strings.Join(subjects, "; ")
}

// budget is how many bytes of text one PRIVMSG to target may carry. It
// counts the prefix the server puts in front when relaying it (with the
// bot's host once known, else the longest usual host), and never exceeds
// what girc would send without splitting.
func (a *Adapter) budget(target string) int {
	nickLen := len(a.cfg.Nick) + 1 // room for a collision's "_"
	if n := len(a.currentNick()); n > nickLen {
		nickLen = n
	}
	hostLen := unknownHostLen
	if a.client.IsConnected() {
		if h := a.client.GetHost(); h != "" {
			hostLen = len(h)
		}
	}
	b := bodyBudget(nickLen, len(a.cfg.User)+1, hostLen, target)
	if g := a.client.MaxEventLength() - len("PRIVMSG "+target+" :") - 1; g < b {
		b = g
	}
	return max(b, minBudget)
}

// liveAnswer is how many lines an answer may have and still go out as
// live conversation, before longer output waiting for the same target.
const liveAnswer = 2

// enqueue queues an answer to a command for target: a short one is live,
// a longer one waits behind the notices.
func (a *Adapter) enqueue(target, first, rest string, lines []string) {
	a.enqueueAs(target, first, rest, lines, len(lines) <= liveAnswer, nil)
}

// enqueueAs lays lines out for target and queues them behind everything
// queued for it before (live lines: behind the live lines only).
func (a *Adapter) enqueueAs(target, first, rest string, lines []string, live bool, stale func() bool) {
	laid := layout(first, rest, lines, a.budget(target))
	if len(laid) == 0 {
		return
	}
	out := make([]qline, len(laid))
	for i, l := range laid {
		out[i] = qline{text: l, live: live, stale: stale}
	}
	a.mu.Lock()
	a.addTargetLocked(target)
	q := append(a.queues[target], out...)
	dropped := 0
	if len(q) > maxQueued {
		dropped = len(q) - maxQueued
		q = q[dropped:]
	}
	a.queues[target] = q
	a.kickLocked()
	a.mu.Unlock()
	if dropped > 0 {
		a.log.Error("irc queue full: dropped the oldest lines", "target", target, "dropped", dropped)
	}
}

// readyLocked reports whether lines to target can go out now: the bot is
// registered and, for a channel, in it.
func (a *Adapter) readyLocked(target string) bool {
	if !a.registered {
		return false
	}
	return !isChannel(target) || a.joined[strings.ToLower(target)]
}

// popLocked takes the next line to send: a live line first, else the
// oldest line, going round the targets so one long output does not hold
// up another target's lines. A stale line (a reminder answered while it
// waited) is dropped instead of sent.
func (a *Adapter) popLocked() (sent, bool) {
	for {
		t, k := a.nextLocked()
		if k < 0 {
			return sent{}, false
		}
		line := a.queues[t][k]
		a.queues[t] = append(a.queues[t][:k:k], a.queues[t][k+1:]...)
		if line.stale != nil && line.stale() {
			a.log.Info("irc: dropped a queued line no longer needed", "target", t, "text", line.text)
			continue
		}
		a.seq++
		s := sent{target: t, qline: line, seq: a.seq}
		a.inflight = append(a.inflight, s)
		if len(a.inflight) > maxInflight {
			// The server does not answer our PINGs (something in
			// between answers them, or nothing does): stop keeping
			// lines that would all be sent again after a reconnect.
			a.inflight = a.inflight[len(a.inflight)-maxInflight:]
		}
		return s, true
	}
}

// nextLocked finds the line to send next: its target and its index in
// that target's queue (-1 when nothing can be sent now). Live lines go
// first; among lines of a kind the deployment channel's go before every
// other target's, which take turns: anyone can ask the bot things in
// private as fast as their server lets them, and that must not hold up
// the deployment's notices or answers in the channel.
func (a *Adapter) nextLocked() (string, int) {
	for _, live := range []bool{true, false} {
		if ch := a.cfg.Channel; a.readyLocked(ch) {
			for j, l := range a.queues[ch] {
				if l.live || !live {
					return ch, j
				}
			}
		}
		for i := 0; i < len(a.targets); i++ {
			t := a.targets[(a.next+i)%len(a.targets)]
			if !a.readyLocked(t) {
				continue
			}
			for j, l := range a.queues[t] {
				if l.live || !live {
					a.next = (a.next + i + 1) % len(a.targets)
					return t, j
				}
			}
		}
	}
	return "", -1
}

// maxInflight bounds the lines kept for sending again, in case a server
// never confirms them.
const maxInflight = 200

// sendLoop sends queued lines, paced, until ctx ends. When nothing more
// can be sent, or after ackEvery lines, it asks the server to confirm what
// was sent with a PING.
func (a *Adapter) sendLoop(ctx context.Context) {
	p := pacer{burst: a.cfg.FloodBurst, interval: a.cfg.FloodInterval}
	p.tokens = float64(p.burst)
	p.last = time.Now()
	for {
		a.mu.Lock()
		sendable := false
		for _, t := range a.targets {
			if len(a.queues[t]) > 0 && a.readyLocked(t) {
				sendable = true
				break
			}
		}
		unacked := a.seq - a.acked
		ack := a.registered && len(a.inflight) > 0 && unacked > 0 && (!sendable || unacked >= ackEvery)
		changed := a.changed
		a.mu.Unlock()

		if ack || sendable {
			if !p.wait(ctx) {
				return
			}
		}
		if ack {
			a.mu.Lock()
			seq := a.seq
			ok := a.registered
			if ok {
				a.acked = seq
			}
			a.mu.Unlock()
			if ok {
				a.client.Cmd.Ping(ackPrefix + strconv.FormatUint(seq, 10))
			}
			continue
		}
		if sendable {
			a.mu.Lock()
			s, ok := a.popLocked()
			a.mu.Unlock()
			if ok {
				a.client.Send(&girc.Event{Command: girc.PRIVMSG, Params: []string{s.target, s.text}})
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// onPong confirms every line sent before the PING it answers.
func (a *Adapter) onPong(c *girc.Client, e girc.Event) {
	tok, ok := strings.CutPrefix(e.Last(), ackPrefix)
	if !ok {
		return
	}
	seq, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	i := 0
	for i < len(a.inflight) && a.inflight[i].seq <= seq {
		i++
	}
	a.inflight = a.inflight[i:]
	a.kickLocked()
	a.mu.Unlock()
}

// pacer is a token bucket: burst lines at once, then one per interval.
type pacer struct {
	burst    int
	interval time.Duration
	tokens   float64
	last     time.Time
}

// wait takes one token, sleeping until there is one. It returns false
// when ctx ends first.
func (p *pacer) wait(ctx context.Context) bool {
	if p.interval <= 0 {
		return ctx.Err() == nil
	}
	now := time.Now()
	p.tokens = min(float64(p.burst), p.tokens+float64(now.Sub(p.last))/float64(p.interval))
	p.last = now
	if p.tokens >= 1 {
		p.tokens--
		return true
	}
	t := time.NewTimer(time.Duration((1 - p.tokens) * float64(p.interval)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	p.tokens = 0
	p.last = time.Now()
	return true
}
