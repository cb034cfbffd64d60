package slack

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

// ActionPrefix starts the action_id of every button the bot posts, so that
// presses on other apps' buttons (or old, foreign ones) are ignored.
const ActionPrefix = "deploybot:"

// Slack refuses a section whose text is longer than 3000 characters and a
// message with more than 50 blocks.
const (
	maxSectionText = 2900
	maxBlocks      = 45
)

var userID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// escape makes plain text safe for Slack's mrkdwn: &, < and > are the three
// characters Slack gives a meaning (mentions, links), and each line is
// bot.Printable (no control characters, no reordering controls).
func escape(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = bot.Printable(l)
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(strings.Join(lines, "\n"))
}

// unescape undoes Slack's escaping of what a person typed.
func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// bareUserID finds Slack user ids in the bot core's replies, which name
// people by their nick (for Slack, the user id). Real ids always hold a
// digit, which keeps words like "UTC" out.
var bareUserID = regexp.MustCompile(`\b[UW][A-Z0-9]{5,}\b`)

// linkUsers turns the user ids in escaped text into mentions, so a reply
// addresses the person by name in Slack. Only ids known reports true
// for are people: a word of relayed text (a change's subject) that looks
// like an id ("UTF8MB4", or someone's id written in a commit) stays text.
func linkUsers(s string, known func(id string) bool) string {
	return bareUserID.ReplaceAllStringFunc(s, func(id string) string {
		if strings.ContainsAny(id, "0123456789") && known(id) {
			return "<@" + id + ">"
		}
		return id
	})
}

// mention renders who to ping: a Slack user id becomes a real mention; a
// name (a person without a Slack id in the configuration) stays text.
func mention(who string) string {
	if userID.MatchString(who) {
		return "<@" + who + ">"
	}
	return escape(who)
}

func section(text string) *slackgo.SectionBlock {
	return slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType, text, false, false), nil, nil)
}

func contextLine(text string) *slackgo.ContextBlock {
	return slackgo.NewContextBlock("", slackgo.NewTextBlockObject(slackgo.MarkdownType, text, false, false))
}

// sections splits mrkdwn text into sections under Slack's size limit, at
// line boundaries. code wraps each part in a preformatted block.
func sections(text string, code bool) []slackgo.Block {
	var out []slackgo.Block
	flush := func(part string) {
		if part == "" {
			return
		}
		if code {
			part = "```" + part + "```"
		}
		out = append(out, section(part))
	}
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if len(line) > maxSectionText {
			cut := maxSectionText
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut-- // not inside a character
			}
			line = line[:cut] + "…"
		}
		if cur.Len()+len(line)+1 > maxSectionText {
			flush(cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	flush(cur.String())
	return out
}

// choiceValue is the command a button sends: the notice's choice, with the
// deployment id added when the choice has none ("verified" -> "verified
// 42"), so a late press can never answer for another deployment.
func choiceValue(choice string, id int64) string {
	if len(strings.Fields(choice)) == 1 && id != 0 {
		return fmt.Sprintf("%s %d", choice, id)
	}
	return choice
}

// commandName is a choice's command word without its prefix.
func commandName(choice string) string {
	f := strings.Fields(choice)
	if len(f) == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimLeft(f[0], "!./"))
}

// buttonLabel names a button after the command it sends.
func buttonLabel(choice string) string {
	switch name := commandName(choice); name {
	case "verified", "verify":
		return "Verified"
	case "abort":
		return "Abort"
	case "promote":
		return "Promote"
	case "rollback":
		return "Roll back"
	case "":
		return "?"
	default:
		return strings.ToUpper(name[:1]) + name[1:]
	}
}

func button(choice string, id int64) *slackgo.ButtonBlockElement {
	value := choiceValue(choice, id)
	label := buttonLabel(choice)
	b := slackgo.NewButtonBlockElement(ActionPrefix+commandName(choice), value,
		slackgo.NewTextBlockObject(slackgo.PlainTextType, label, false, false))
	switch commandName(choice) {
	case "verified", "promote":
		b.WithStyle(slackgo.StylePrimary)
	case "abort", "rollback":
		b.WithStyle(slackgo.StyleDanger)
		b.WithConfirm(slackgo.NewConfirmationBlockObject(
			slackgo.NewTextBlockObject(slackgo.PlainTextType, label+"?", false, false),
			slackgo.NewTextBlockObject(slackgo.MarkdownType, fmt.Sprintf("This sends `%s`: every host that received deployment #%d is flipped back.", value, id), false, false),
			slackgo.NewTextBlockObject(slackgo.PlainTextType, label, false, false),
			slackgo.NewTextBlockObject(slackgo.PlainTextType, "Cancel", false, false)))
	}
	return b
}

func actions(id int64, blockID string, choices ...string) *slackgo.ActionBlock {
	var els []slackgo.BlockElement
	for _, c := range choices {
		els = append(els, button(c, id))
	}
	return slackgo.NewActionBlock(blockID, els...)
}

// noticeMessage renders a notice as the text Slack notifies with and the
// blocks it shows. The buttons, if any, are the last block.
func noticeMessage(n deployer.Notice, mentions []string) (string, []slackgo.Block) {
	text := escape(n.Text)
	if len(mentions) > 0 {
		ms := make([]string, len(mentions))
		for i, m := range mentions {
			ms[i] = mention(m)
		}
		text = strings.Join(ms, ", ") + ": " + text
	}
	first, rest, _ := strings.Cut(text, "\n")
	var blocks []slackgo.Block
	if n.Verdict != nil && rest != "" {
		// The verdict table lines up in columns only in a fixed-width font.
		blocks = append(sections(first, false), sections(rest, true)...)
	} else {
		blocks = sections(text, false)
	}
	if len(blocks) > maxBlocks {
		blocks = append(blocks[:maxBlocks], section("… (cut; `!status "+fmt.Sprint(n.Deployment)+"` has the rest)"))
	}
	if len(n.Choices) > 0 {
		blocks = append(blocks, actions(n.Deployment, fmt.Sprintf("deploybot-prompt-%d", n.Deployment), n.Choices...))
	}
	fallback := first
	if n.Deployment != 0 {
		fallback = fmt.Sprintf("[#%d] %s", n.Deployment, first)
	}
	return fallback, blocks
}

// withoutActions returns the blocks minus their buttons.
func withoutActions(blocks []slackgo.Block) []slackgo.Block {
	var out []slackgo.Block
	for _, b := range blocks {
		if b.BlockType() != slackgo.MBTAction {
			out = append(out, b)
		}
	}
	return out
}

// answered is the line that replaces a prompt's buttons.
func answered(what string, at time.Time) string {
	return fmt.Sprintf(":white_check_mark: %s at %s", what, at.UTC().Format("15:04:05 MST"))
}

// hostsSynced is how many hosts serve the deployment's commit in a state,
// counted from the stages the pipeline has finished; ok is false when the
// state does not say (rolling back).
func hostsSynced(s deployer.State, stages map[deployer.Stage]int) (n int, ok bool) {
	t, c, p := stages[deployer.Testservers], stages[deployer.Canaries], stages[deployer.Production]
	switch s {
	case deployer.StateQueued, deployer.StatePreparing, deployer.StateSyncingTestservers,
		deployer.StateFailed, deployer.StateCancelled, deployer.StateRolledBack:
		return 0, true
	case deployer.StateAwaitingVerification, deployer.StateSyncingCanaries:
		return t, true
	case deployer.StateCheckingCanaries, deployer.StateAwaitingPromotion, deployer.StateSyncingProduction:
		return t + c, true
	case deployer.StateCheckingProduction, deployer.StateDone:
		return t + c + p, true
	}
	return 0, false
}

var stateMark = map[deployer.State]string{
	deployer.StateDone:       ":white_check_mark: ",
	deployer.StateRolledBack: ":leftwards_arrow_with_hook: ",
	deployer.StateFailed:     ":x: ",
	deployer.StateCancelled:  ":heavy_minus_sign: ",
}

// statusLine is the root message's one-line summary: stage, hosts synced,
// verdict.
func statusLine(st *depState, stages map[deployer.Stage]int) string {
	total := 0
	for _, n := range stages {
		total += n
	}
	parts := []string{fmt.Sprintf("%sstage: *%s*", stateMark[st.state], st.state)}
	if total > 0 {
		if n, ok := hostsSynced(st.state, stages); ok {
			parts = append(parts, fmt.Sprintf("hosts synced: %d/%d", n, total))
		} else if st.touched > 0 {
			parts = append(parts, fmt.Sprintf("hosts to restore: %d", st.touched))
		}
	}
	v := "—"
	if st.verdict != "" {
		v = string(st.verdict)
	}
	parts = append(parts, "verdict: "+v)
	if len(st.failedHosts) > 0 {
		parts = append(parts, fmt.Sprintf("*could not restore: %s*", escape(strings.Join(st.failedHosts, ", "))))
	}
	return strings.Join(parts, " · ")
}

// rootMessage renders a deployment's root message: what it deploys, its
// status line and, for the latest finished one, a Roll back button.
func rootMessage(id int64, st *depState, stages map[deployer.Stage]int, rollbackButton bool) (string, []slackgo.Block) {
	head := fmt.Sprintf("*Deployment #%d*", id)
	if st.title != "" {
		head += ": " + escape(st.title)
	}
	if st.requester != "" {
		head += ", requested by " + escape(st.requester)
	}
	status := statusLine(st, stages)
	blocks := []slackgo.Block{section(head), contextLine(status)}
	if st.rollbackBy != "" {
		blocks = append(blocks, contextLine(st.rollbackBy))
	}
	if rollbackButton {
		blocks = append(blocks, actions(id, fmt.Sprintf("deploybot-root-%d", id), fmt.Sprintf("!rollback %d", id)))
	}
	return fmt.Sprintf("#%d %s: %s", id, st.title, st.state), blocks
}
