package bot

import (
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// Channel manners: what the bot leaves unsaid in a shared channel.

// channelLines is the longest answer said in the deployment channel. A
// longer one (!help, !history 50) is cut there, with where to read the
// rest: in private, where the whole answer is given, or on the dashboard.
const channelLines = 6

// shorten cuts an answer to a command said in the channel to channelLines.
// adapter is the chat the command came from: how to ask in private
// differs between them.
func (b *Bot) shorten(adapter, name string, args []string, lines []string) []string {
	if len(lines) <= channelLines {
		return lines
	}
	if name == "help" {
		// The list of names fits one line; what each does is for private.
		var names []string
		for _, n := range helpOrder {
			names = append(names, strings.ReplaceAll(strings.Fields(commands[n].usage)[0], "!", b.Prefix))
		}
		return []string{fmt.Sprintf("I deploy backports. Commands: %s. What each does and who may use it: %s",
			strings.Join(names, ", "), b.inPrivate(adapter, b.Prefix+"help"))}
	}
	more := len(lines) - (channelLines - 1)
	cmd := b.Prefix + name
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	tail := fmt.Sprintf("... %d more line(s): ask me in private (%s)", more, b.inPrivate(adapter, cmd))
	if name == "history" && b.Dashboard != "" {
		tail += " or see " + strings.TrimSuffix(b.Dashboard, "/") + "/history"
	}
	return append(lines[:channelLines-1:channelLines-1], tail)
}

// inPrivate says how to send cmd to the bot in private on adapter: IRC's
// (and the console's) /msg, Slack's direct message.
func (b *Bot) inPrivate(adapter, cmd string) string {
	if adapter == "slack" {
		return fmt.Sprintf("send me `%s` in a direct message", cmd)
	}
	return fmt.Sprintf("/msg %s %s", b.Name, cmd)
}

// privateCommands lists the commands answered in private, for the line
// that refuses the others there.
func privateCommands(prefix string) string {
	var names []string
	for _, name := range helpOrder {
		if commands[name].private {
			names = append(names, prefix+name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Outdated reports whether a notice no longer needs saying: a reminder
// whose deployment has left the state it reminds about (the person
// answered, or it timed out). Adapters that queue lines (IRC, during an
// outage) ask again just before sending.
func (b *Bot) Outdated(n deployer.Notice) bool {
	if n.Kind != deployer.NoticeReminder || n.Deployment == 0 || n.State == "" || b.Store == nil {
		return false
	}
	d, err := b.Store.Get(n.Deployment)
	return err == nil && d.State != n.State
}
