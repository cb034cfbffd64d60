package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Slack configures the Slack adapter (Socket Mode, so the bot needs no
// public URL). Its two tokens are secrets: the file names where to read
// each one (an environment variable or a file), never the token itself.
type Slack struct {
	// AppTokenEnv or AppTokenFile holds the app-level token (xapp-…) with
	// the connections:write scope, which opens the Socket Mode connection.
	AppTokenEnv  string `yaml:"app_token_env"`
	AppTokenFile string `yaml:"app_token_file"`
	// BotTokenEnv or BotTokenFile holds the bot token (xoxb-…) the bot
	// posts, updates and reacts with.
	BotTokenEnv  string `yaml:"bot_token_env"`
	BotTokenFile string `yaml:"bot_token_file"`
	// Channel is the deployment channel's id (C…), not its name: names
	// change, ids do not.
	Channel string `yaml:"channel"`
	// APIURL is the Web API's base URL; tests point it at a fake server.
	APIURL string `yaml:"api_url"`
}

// DefaultSlackAPIURL is Slack's Web API, used when api_url is empty.
const DefaultSlackAPIURL = "https://slack.com/api/"

var (
	slackChannelID = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	slackEnvName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// check lists what is wrong with the slack section; root locates lines.
func (s *Slack) check(root *yaml.Node) Problems {
	if s == nil {
		return nil
	}
	var ps Problems
	add := func(key, format string, args ...any) {
		ps.add(lineOf(root, "chat", "slack", key), format, args...)
	}
	tokens := []struct{ what, env, file, envKey, fileKey string }{
		{"app-level token (xapp-…)", s.AppTokenEnv, s.AppTokenFile, "app_token_env", "app_token_file"},
		{"bot token (xoxb-…)", s.BotTokenEnv, s.BotTokenFile, "bot_token_env", "bot_token_file"},
	}
	for _, t := range tokens {
		switch {
		case t.env == "" && t.file == "":
			add(t.envKey, "chat.slack needs the %s: set %s (an environment variable) or %s (a file)", t.what, t.envKey, t.fileKey)
		case t.env != "" && t.file != "":
			add(t.envKey, "chat.slack: set only one of %s and %s", t.envKey, t.fileKey)
		case t.env != "" && !slackEnvName.MatchString(t.env):
			// A value like "xoxb-…" here is a token pasted inline; say so
			// without repeating it.
			if strings.HasPrefix(t.env, "xapp-") || strings.HasPrefix(t.env, "xoxb-") {
				add(t.envKey, "chat.slack.%s must name an environment variable, not hold the token: tokens never go in the configuration", t.envKey)
			} else {
				add(t.envKey, "chat.slack.%s %q is not an environment variable name", t.envKey, t.env)
			}
		}
	}
	switch {
	case s.Channel == "":
		add("channel", "chat.slack.channel is required: the deployment channel's id, like C012AB3CD")
	case !slackChannelID.MatchString(s.Channel):
		add("channel", "chat.slack.channel %q is not a channel id: use the id (like C012AB3CD, at the bottom of the channel's details), not its name", s.Channel)
	}
	if s.APIURL != "" {
		u, err := url.Parse(s.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("api_url", "chat.slack.api_url %q is not an http:// or https:// URL", s.APIURL)
		}
	}
	return ps
}

// defaults fills in the API URL and makes it end in a slash, as
// slack-go appends method names to it.
func (s *Slack) defaults() {
	if s == nil {
		return
	}
	setDefault(&s.APIURL, DefaultSlackAPIURL)
	if !strings.HasSuffix(s.APIURL, "/") {
		s.APIURL += "/"
	}
}

// resolve makes the token files relative to the configuration file.
func (s *Slack) resolve(abs func(*string)) {
	if s == nil {
		return
	}
	abs(&s.AppTokenFile)
	abs(&s.BotTokenFile)
}

// Tokens reads the app-level and bot tokens from where the configuration
// says. Its errors name the variable or file and what is wrong, never the
// token.
func (s *Slack) Tokens() (app, bot string, err error) {
	if app, err = s.token("app_token", s.AppTokenEnv, s.AppTokenFile); err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(app, "xapp-") {
		return "", "", fmt.Errorf("chat.slack: the app-level token does not start with xapp- (create one under Basic Information > App-Level Tokens, scope connections:write)")
	}
	if bot, err = s.token("bot_token", s.BotTokenEnv, s.BotTokenFile); err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(bot, "xoxb-") {
		return "", "", fmt.Errorf("chat.slack: the bot token does not start with xoxb- (it is under OAuth & Permissions > Bot User OAuth Token)")
	}
	return app, bot, nil
}

// token reads one of the two tokens, which are required.
func (s *Slack) token(key, env, file string) (string, error) {
	if env == "" && file == "" {
		return "", fmt.Errorf("chat.slack: set %s_env or %s_file", key, key)
	}
	return readSecret("chat.slack."+key, env, file)
}
