package bot

import (
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// Command renders a choice as the command a person types here, with the
// configured prefix: "!rollback 3", or "verified 3" (answered bare).
func (b *Bot) Command(c deployer.Choice) string {
	cmd := string(c.Verb)
	if c.Verb != deployer.VerbVerified {
		cmd = b.Prefix + cmd
	}
	if len(c.Args) > 0 {
		cmd += " " + strings.Join(c.Args, " ")
	}
	return cmd
}

// RenderNext renders what a person may do next as one phrase:
// "Next: `!promote 3` (continue to production) or `!rollback 3` (roll back)."
// It returns "" for no choices.
func (b *Bot) RenderNext(next []deployer.Choice) string {
	if len(next) == 0 {
		return ""
	}
	parts := make([]string, len(next))
	for i, c := range next {
		parts[i] = "`" + b.Command(c) + "`"
		if c.Means != "" {
			parts[i] += " (" + c.Means + ")"
		}
	}
	if len(parts) == 1 {
		return "Next: " + parts[0] + "."
	}
	return "Next: " + strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1] + "."
}

// renderNotice adds the notice's choices to the end of its first line and
// fills Choices with the commands, for adapters that show buttons.
func (b *Bot) renderNotice(n deployer.Notice) deployer.Notice {
	if len(n.Next) == 0 {
		return n
	}
	n.Choices = make([]string, len(n.Next))
	for i, c := range n.Next {
		n.Choices[i] = b.Command(c)
	}
	first, rest, more := strings.Cut(n.Text, "\n")
	sep := ". "
	if strings.HasSuffix(first, ".") {
		sep = " "
	}
	n.Text = first + sep + b.RenderNext(n.Next)
	if more {
		n.Text += "\n" + rest
	}
	return n
}
