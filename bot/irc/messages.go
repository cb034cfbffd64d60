package irc

import (
	"strings"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/bot"
)

// identify returns who sent e as the server vouched for it. The mask
// (nick!user@host) is always a key. The services account is a key only
// when the server vouches for it: from the event's account tag when
// tagTrusted (the server enabled account-tag, so it sets and strips that
// tag itself), else from stateAccount (what account-notify or
// extended-join told the bot). With an account, the account comes first,
// so it is the identity recorded for the sender.
func identify(e *girc.Event, tagTrusted bool, stateAccount string) bot.Sender {
	s := bot.Sender{Adapter: "irc", Nick: e.Source.Name}
	account := ""
	if tagTrusted {
		if v, ok := e.Tags.Get("account"); ok {
			account = v
		}
	}
	if account == "" {
		account = stateAccount
	}
	if account != "" && account != "*" && account != "0" {
		s.Keys = append(s.Keys, "irc:account:"+account)
	}
	s.Keys = append(s.Keys, "irc:mask:"+e.Source.Name+"!"+e.Source.Ident+"@"+e.Source.Host)
	return s
}

// sender identifies the sender of e with what this connection's server
// offers.
func (a *Adapter) sender(c *girc.Client, e *girc.Event) bot.Sender {
	state := ""
	if a.caps("account-notify") || a.caps("extended-join") {
		if u := c.LookupUser(e.Source.Name); u != nil {
			state = u.Extras.Account
		}
	}
	return identify(e, a.caps("account-tag"), state)
}

// readdress rewrites "<nick>: command" to "<BotName>: command" when the
// bot's IRC nick is not its name (a nick collision gave it "deploybot_",
// or the network's nick differs), so addressing it by either works.
func (a *Adapter) readdress(text, nick string) string {
	if nick == "" || strings.EqualFold(nick, a.cfg.BotName) || len(text) <= len(nick) {
		return text
	}
	if strings.EqualFold(text[:len(nick)], nick) && strings.ContainsRune(":,", rune(text[len(nick)])) {
		return a.cfg.BotName + text[len(nick):]
	}
	return text
}

// onPrivmsg turns a PRIVMSG in the deployment channel, or to the bot
// itself, into a bot.Message. Other channels (the log channel) are not
// for commands; CTCP (actions included) is ignored.
func (a *Adapter) onPrivmsg(c *girc.Client, e girc.Event) {
	if e.Source == nil || len(e.Params) < 2 || e.Echo {
		return
	}
	nick := a.currentNick()
	if strings.EqualFold(e.Source.Name, nick) {
		return
	}
	if ok, ctcp := e.IsCTCP(); ok {
		if !ctcp.Reply {
			a.silenceCTCP(ctcp.Command) // before girc answers it
		}
		return
	}
	target := e.Params[0]
	private := !isChannel(target)
	if !private && !strings.EqualFold(target, a.cfg.Channel) {
		return
	}
	// Colours and bold could hide or split a command word.
	text := strings.TrimSpace(girc.StripRaw(e.Last()))
	if text == "" {
		return
	}
	text = a.readdress(text, nick)
	replyTo := a.cfg.Channel
	if private {
		replyTo = e.Source.Name
	}
	m := bot.Message{
		Sender:  a.sender(c, &e),
		Text:    text,
		Private: private,
		Reply:   func(lines ...string) { a.enqueue(replyTo, "", "", lines) },
	}
	select {
	case a.in <- m:
	case <-a.stopped:
	}
}

func isChannel(s string) bool {
	return s != "" && strings.ContainsRune("#&+!", rune(s[0]))
}
