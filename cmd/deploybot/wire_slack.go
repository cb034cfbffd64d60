package main

import (
	"strings"

	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/config"
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
		Users:       slackUsers(m.Config),
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

// slackUsers are the Slack user ids the configuration names: people's
// Slack ids and the slack: identities in people and access.deployers
// (globs excepted). Replies mention these; other words stay text.
func slackUsers(c *config.Config) []string {
	var ids []string
	add := func(id string) {
		if id != "" && !strings.ContainsAny(id, "*?[") {
			ids = append(ids, id)
		}
	}
	for _, p := range c.People {
		add(p.Slack)
		for _, k := range p.Chat {
			if id, ok := strings.CutPrefix(k, "slack:"); ok {
				add(id)
			}
		}
	}
	for _, d := range c.Access.Deployers {
		if id, ok := strings.CutPrefix(d, "slack:"); ok {
			add(id)
		}
	}
	return ids
}
