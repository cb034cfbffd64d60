package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// The start-up summary: what a person starting the bot needs to know at
// once, printed on the terminal whatever log.file says, and said briefly in
// the chats on join. The hosts' commits are read from the hosts, not from
// the store, so the summary says what they really serve.

// summaryReadTimeout bounds reading the hosts' commits at start: a host
// that does not answer is listed as such, it does not hold up the bot.
const summaryReadTimeout = 10 * time.Second

// summaryHostsListed is how many host names a stage lists before it gives
// only counts.
const summaryHostsListed = 8

// served is what one host serves, read back at start.
type served struct {
	host, commit string
	err          error
}

// fleetServes reads every host's current commit, in parallel.
func (m *Main) fleetServes(ctx context.Context) map[deployer.Stage][]served {
	ctx, cancel := context.WithTimeout(ctx, summaryReadTimeout)
	defer cancel()
	out := map[deployer.Stage][]served{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, stage := range deployer.Stages {
		hs := m.Fleet[stage]
		out[stage] = make([]served, len(hs))
		for i, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := h.Current(ctx)
				mu.Lock()
				out[stage][i] = served{host: h.Name(), commit: c, err: err}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return out
}

// commitNames names the commits people know: "83dd19a323 (#12)" when a
// recent deployment shipped it.
func (m *Main) commitNames() func(commit string) string {
	byCommit := map[string]int64{}
	if ds, err := m.Store.List(0, 100); err == nil {
		// Newest first: keep the newest deployment of each commit.
		for _, d := range ds {
			if d.Commit != "" && d.State == deployer.StateDone {
				if _, ok := byCommit[d.Commit]; !ok {
					byCommit[d.Commit] = d.ID
				}
			}
		}
	}
	return func(c string) string {
		if c == "" {
			return "nothing yet"
		}
		s := c
		if len(s) > 10 {
			s = s[:10]
		}
		if id, ok := byCommit[c]; ok {
			s += " (#" + strconv.FormatInt(id, 10) + ")"
		}
		return s
	}
}

// stageLine says which commit a stage's hosts serve: "ts1 on 83dd19a323
// (#12)", or, for a stage split over commits or longer than
// summaryHostsListed, the hosts grouped by commit.
func stageLine(hs []served, name func(string) string) string {
	if len(hs) == 0 {
		return "no hosts"
	}
	var order []string
	groups := map[string][]string{}
	for _, s := range hs {
		key := "on " + name(s.commit)
		if s.err != nil {
			key = "not readable (the log says why)"
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], s.host)
	}
	var parts []string
	for _, key := range order {
		g := groups[key]
		if len(hs) > summaryHostsListed {
			parts = append(parts, fmt.Sprintf("%d %s", len(g), key))
			continue
		}
		parts = append(parts, strings.Join(g, ", ")+" "+key)
	}
	return strings.Join(parts, "; ")
}

// chatLines says where the bot talks.
func (m *Main) chatLines() []string {
	c := m.Config.Chat
	var lines []string
	if c.IRC != nil {
		l := fmt.Sprintf("irc: %s:%d", c.IRC.Server, c.IRC.Port)
		if c.IRC.TLS {
			l += " (TLS)"
		}
		l += fmt.Sprintf(" as %s, channel %s", c.IRC.Nick, c.IRC.Channel)
		if c.IRC.LogChannel != "" {
			l += ", log channel " + c.IRC.LogChannel
		}
		lines = append(lines, l+"; connecting")
	}
	if c.Slack != nil {
		lines = append(lines, fmt.Sprintf("slack: channel %s; connecting", c.Slack.Channel))
	}
	if c.Console != nil {
		lines = append(lines, fmt.Sprintf("console: each line you type here is from %s", c.Console.User))
	}
	if len(lines) == 0 {
		lines = append(lines, "chat: none configured (nobody can talk to the bot)")
	}
	return lines
}

// printSummary writes the start-up summary to w and returns the stages'
// lines, which the chat greeting repeats.
func (m *Main) printSummary(ctx context.Context, w io.Writer) []string {
	name := m.commitNames()
	serves := m.fleetServes(ctx)
	for _, stage := range deployer.Stages {
		for _, s := range serves[stage] {
			if s.err != nil {
				m.Logger.Warn("reading a host's commit at start failed", "host", s.host, "err", s.err)
			}
		}
	}
	var stages []string
	for _, stage := range deployer.Stages {
		stages = append(stages, fmt.Sprintf("%s (%d): %s", stage, len(serves[stage]), stageLine(serves[stage], name)))
	}
	fmt.Fprintf(w, "deploybot %s started with %s\n", version, m.ConfigPath)
	for _, l := range m.chatLines() {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if u := m.dashboardURL(); u != "" {
		fmt.Fprintf(w, "  dashboard: %s\n", u)
	} else {
		fmt.Fprintf(w, "  dashboard: off (web.listen)\n")
	}
	for _, l := range stages {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if f := m.Config.Log.File; f != "" {
		fmt.Fprintf(w, "  log: %s\n", f)
	}
	// What check-config warns about (weak masks, blind canaries) is said
	// at every start too.
	for _, p := range m.Config.Warnings() {
		fmt.Fprintf(w, "  warning: %s\n", p)
	}
	return stages
}

// greeting is the start-up summary for the channels: one short line.
func (m *Main) greeting(stages []string) string {
	s := fmt.Sprintf("deploybot %s is here. %s", version, strings.Join(stages, ". "))
	if u := m.dashboardURL(); u != "" {
		s += ". Dashboard: " + u
	}
	return s + ". " + m.Config.Bot.Prefix + "help lists the commands."
}

// announceStart prints the summary on the terminal and greets the chats
// (the console is the terminal: it has just seen the summary).
func (m *Main) announceStart(ctx context.Context) {
	if m.NoSummary {
		return
	}
	stages := m.printSummary(ctx, m.Stdout)
	m.Bot.Greet(m.greeting(stages), "console")
}

// chatJoined tells the terminal that an adapter reached its channel.
func (m *Main) chatJoined(adapter, where string) {
	if m.NoSummary {
		return
	}
	fmt.Fprintf(m.Stdout, "%s: %s\n", adapter, where)
}
