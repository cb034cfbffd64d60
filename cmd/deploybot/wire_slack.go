package main

import (
	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/deployer"
)

// openSlack adds the Slack adapter when the configuration has a chat.slack
// section. The tokens are read here, from their environment variables or
// files, so that a missing secret stops the bot at start with a message
// naming where it was looked for (never the secret).
func (m *Main) openSlack() error {
	c := m.Config.Chat.Slack
	if c == nil {
		return nil
	}
	app, botToken, err := c.Tokens()
	if err != nil {
		return err
	}
	stages := map[deployer.Stage]int{}
	for stage, hs := range m.Fleet {
		stages[stage] = len(hs)
	}
	a, err := slack.New(slack.Options{
		AppToken: app, BotToken: botToken,
		Channel: c.Channel, APIURL: c.APIURL,
		BotName: m.Config.Bot.Name, Prefix: m.Config.Bot.Prefix,
		Stages:      stages,
		Lookup:      m.Store.Get,
		Roots:       m.Store,
		Reconnected: m.Bot.Reconnected,
		Logger:      m.Logger,
	})
	if err != nil {
		return err
	}
	m.Bot.AddAdapter(a)
	return nil
}
