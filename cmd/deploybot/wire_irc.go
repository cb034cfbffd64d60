package main

import (
	"fmt"

	"github.com/deploybot/deploybot/bot/irc"
)

// openIRC adds the IRC adapter when the configuration has a chat.irc
// section. The SASL password is read here, from its environment variable
// or file, so that a missing secret stops the bot at start with a message
// naming where it was looked for (never the secret).
func (m *Main) openIRC() error {
	c := m.Config.Chat.IRC
	if c == nil {
		return nil
	}
	cfg := irc.Config{
		Server: c.Server, Port: c.Port, TLS: c.TLS, TLSCAFile: c.TLSCAFile,
		Nick: c.Nick, User: c.User, RealName: c.RealName,
		Channel: c.Channel, LogChannel: c.LogChannel,
		FloodBurst: c.Flood.Burst, FloodInterval: c.Flood.Interval.D(),
		ReconnectMin: c.Reconnect.Min.D(), ReconnectMax: c.Reconnect.Max.D(),
		BotName:     m.Config.Bot.Name,
		Logger:      m.Logger,
		OnReconnect: func() { m.Bot.Reconnected("irc") },
		OnJoined: func(ch, nick string) {
			m.chatJoined("irc", fmt.Sprintf("connected to %s:%d as %s, joined %s", c.Server, c.Port, nick, ch))
		},
		Deployment: m.Store.Get,
		Nickname:   func(who string) string { return m.Bot.Dir.Mention("irc", who) },
	}
	if c.Flood.Disable {
		cfg.FloodInterval = 0
	}
	if c.SASL != nil {
		pw, err := c.SASL.Password()
		if err != nil {
			return err
		}
		cfg.SASLUser, cfg.SASLPassword = c.SASL.User, pw
	}
	a, err := irc.New(cfg)
	if err != nil {
		return err
	}
	m.Bot.AddAdapter(a)
	return nil
}
