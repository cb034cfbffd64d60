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
	// instead, so one terminal can play several people. A line
	// "/msg BOTNAME TEXT" is TEXT said to the bot in private.
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
		r := bufio.NewReaderSize(c.In, 4096)
		for {
			line, long, err := readLine(r, MaxLine)
			if long > 0 {
				// Refuse the line, not the console: the next line is read
				// as usual.
				c.print(c.label(), []string{fmt.Sprintf("that line has %d bytes; I read lines of up to %d KiB, so I ignored it", long, MaxLine/1024)})
			} else if err == nil || (err == io.EOF && line != "") {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err == io.EOF {
				errc <- nil
				return
			}
			if err != nil {
				errc <- err
				return
			}
		}
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

// MaxLine is the longest input line the console takes, in bytes. A longer
// line is refused with a message, and the console goes on.
const MaxLine = 64 * 1024

// readLine reads one line without its end (\n or \r\n). When the line is
// longer than max, it is read to its end and dropped, and long is its
// length. err is io.EOF at the end of the input (line holds any last
// line without a newline).
func readLine(r *bufio.Reader, max int) (line string, long int, err error) {
	var buf []byte
	n := 0
	for {
		chunk, isPrefix, err := r.ReadLine()
		n += len(chunk)
		if n <= max {
			buf = append(buf, chunk...)
		}
		if err != nil {
			if n > max {
				return "", n, err
			}
			return string(buf), 0, err
		}
		if !isPrefix {
			if n > max {
				return "", n, nil
			}
			return string(buf), 0, nil
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
	// "/msg deploybot !help" is a private message, as the bot advises
	// when it cuts a long answer short in the channel.
	private := false
	if rest, ok := strings.CutPrefix(text, "/msg "); ok {
		to, t, _ := strings.Cut(strings.TrimSpace(rest), " ")
		if strings.EqualFold(to, c.name()) && strings.TrimSpace(t) != "" {
			text, private = strings.TrimSpace(t), true
		}
	}
	handle(bot.Message{
		Sender:  bot.Sender{Adapter: "console", Keys: []string{"console:" + user}, Nick: user},
		Text:    text,
		Private: private,
		Reply:   func(lines ...string) { c.print(c.label(), lines) },
	})
}

func (c *Console) label() string { return "<" + c.name() + "> " }

// name is the bot's name on the console.
func (c *Console) name() string {
	if c.BotName == "" {
		return "deploybot"
	}
	return c.BotName
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
		l = bot.Printable(l)
		if i == 0 {
			fmt.Fprintln(c.Out, label+l)
		} else {
			fmt.Fprintln(c.Out, pad+l)
		}
	}
}
