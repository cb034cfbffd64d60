// Package console is the chat adapter for a terminal: each line on standard
// input is a message from a configured user, and the bot's replies and
// announcements go to standard output. It is what `deploybot demo` talks
// through, and the simplest way to try the bot.
package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

// Console reads messages from In and writes to Out.
type Console struct {
	In  io.Reader
	Out io.Writer
	// User is who a line is from. A line "/as NAME TEXT" is from NAME
	// instead, so one terminal can play several people.
	User string
	// BotName labels the bot's lines.
	BotName string
	// Echo prints each input line as a chat line, for scripted input.
	Echo bool

	mu sync.Mutex // one line at a time on Out
}

// Name implements bot.Adapter.
func (c *Console) Name() string { return "console" }

// Run implements bot.Adapter. It returns nil at the end of the input.
func (c *Console) Run(ctx context.Context, handle func(bot.Message)) error {
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(c.In)
		sc.Buffer(make([]byte, 64*1024), 64*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case line := <-lines:
			c.Handle(line, handle)
		}
	}
}

// Handle delivers one input line as a message.
func (c *Console) Handle(line string, handle func(bot.Message)) {
	user, text := c.User, strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(text, "/as "); ok {
		u, t, _ := strings.Cut(strings.TrimSpace(rest), " ")
		user, text = u, strings.TrimSpace(t)
	}
	if text == "" || user == "" {
		return
	}
	if c.Echo {
		c.print("<"+user+"> ", []string{text})
	}
	handle(bot.Message{
		Sender: bot.Sender{Adapter: "console", Keys: []string{"console:" + user}, Nick: user},
		Text:   text,
		Reply:  func(lines ...string) { c.print(c.label(), lines) },
	})
}

func (c *Console) label() string {
	name := c.BotName
	if name == "" {
		name = "deploybot"
	}
	return "<" + name + "> "
}

// Announce implements bot.Adapter.
func (c *Console) Announce(n deployer.Notice, mentions []string) {
	lines := strings.Split(n.Text, "\n")
	prefix := ""
	if len(mentions) > 0 {
		prefix = strings.Join(mentions, ", ") + ": "
	}
	if n.Deployment != 0 {
		prefix += fmt.Sprintf("[#%d] ", n.Deployment)
	}
	lines[0] = prefix + lines[0]
	c.print(c.label(), lines)
}

func (c *Console) print(label string, lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pad := strings.Repeat(" ", len(label))
	for i, l := range lines {
		if i == 0 {
			fmt.Fprintln(c.Out, label+l)
		} else {
			fmt.Fprintln(c.Out, pad+l)
		}
	}
}
