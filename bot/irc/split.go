package irc

import (
	"strings"
	"unicode/utf8"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/bot"
)

// maxLine is the longest line IRC relays, prefix included, CR LF excluded
// (RFC 2812: 512 bytes with CR LF).
const maxLine = 510

// unknownHostLen is what a host name is assumed to take until the server
// tells the bot its own host: 63 bytes is HOSTLEN on common servers.
const unknownHostLen = 63

// bodyBudget is how many bytes of text fit in one PRIVMSG to target, as
// the server relays it to others: ":nick!~user@host PRIVMSG target :text".
// userLen should count the "~" a server adds to a user name without ident.
func bodyBudget(nickLen, userLen, hostLen int, target string) int {
	return maxLine - (1 + nickLen + 1 + userLen + 1 + hostLen + len(" PRIVMSG ") + len(target) + len(" :"))
}

// minBudget keeps output readable when a server reports absurd lengths.
const minBudget = 80

// clean makes one line of text safe to send: no CR, LF or NUL (which would
// end or corrupt the IRC line), valid UTF-8, and no control codes. The
// bot uses no formatting itself; what it relays (a change's subject, a
// host's error) could otherwise colour the rest of its line (hiding it),
// make the line a CTCP request (\x01) or carry terminal escapes. Colour
// codes go with their numbers; the rest is bot.Printable's.
func clean(s string) string {
	return bot.Printable(girc.StripRaw(strings.ToValidUTF8(s, "\uFFFD")))
}

// wrap cuts text into pieces of at most max bytes. It cuts at the last
// space that leaves a piece at least half full, else at max, never inside
// a UTF-8 sequence. The space at a cut is dropped (the line break stands
// for it); nothing else is: joining the pieces with the dropped spaces
// gives text back.
func wrap(text string, max int) []string {
	if max < 1 {
		max = 1
	}
	var out []string
	for len(text) > max {
		cut := strings.LastIndexByte(text[:max+1], ' ')
		if cut >= max/2 && cut > 0 {
			out = append(out, text[:cut])
			text = text[cut+1:]
			continue
		}
		cut = max
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		if cut == 0 { // max is smaller than one rune: send the rune whole
			_, cut = utf8.DecodeRuneInString(text)
		}
		out = append(out, text[:cut])
		text = text[cut:]
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}

// layout turns a message's lines into IRC lines of at most budget bytes.
// The very first IRC line starts with first (mentions and the deployment
// tag), every later one with rest (the deployment tag), so each line of a
// deployment still names it when other output comes in between. A piece
// that continues a line cut for length starts with rest and a "… ", so
// the tail of relayed text (a change's subject, whose author chooses
// where the cut falls) never reads as a line of the bot's own. Blank
// lines are left out: IRC refuses empty messages.
func layout(first, rest string, lines []string, budget int) []string {
	const more = "… "
	var out []string
	for _, l := range lines {
		l = strings.TrimRight(clean(l), " \t")
		if strings.TrimSpace(l) == "" {
			continue
		}
		prefix := rest
		if len(out) == 0 {
			prefix = first
		}
		pieces := wrap(l, budget-len(prefix))
		if len(pieces) > 1 {
			// The rest of the line, without the space at the cut, cut
			// again to leave room for the mark.
			tail := strings.TrimPrefix(l[len(pieces[0]):], " ")
			pieces = append(pieces[:1], wrap(tail, budget-len(rest+more))...)
		}
		for i, piece := range pieces {
			if i > 0 {
				piece = rest + more + piece
			} else {
				piece = prefix + piece
			}
			out = append(out, piece)
		}
	}
	return out
}

// truncate shortens s to at most max bytes on a rune boundary, marking the
// cut with an ellipsis. It is for lines that must stay one line (a `!log`
// entry split in two would log its tail as a separate, broken entry).
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut < 0 {
		cut = 0
	}
	return s[:cut] + ell
}
