package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const slackBase = `source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [slack:U012AB3CD]}
chat:
`

// TestSlackAloneIsEnough checks that Slack without the console is a whole
// chat configuration, with Slack's API URL by default.
func TestSlackAloneIsEnough(t *testing.T) {
	c, err := Parse([]byte(slackBase + "  slack: {app_token_env: SLACK_APP_TOKEN, bot_token_file: bot.token, channel: C012AB3CD}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Chat.Slack.APIURL != DefaultSlackAPIURL {
		t.Errorf("api_url = %q, want %q", c.Chat.Slack.APIURL, DefaultSlackAPIURL)
	}
}

func TestSlackProblems(t *testing.T) {
	for _, tc := range []struct{ slack, want string }{
		{`{channel: C012AB3CD, bot_token_env: B}`, `line 9: chat.slack needs the app-level token (xapp-…): set app_token_env (an environment variable) or app_token_file (a file)`},
		{`{app_token_env: A, app_token_file: a, bot_token_env: B, channel: C012AB3CD}`, `line 9: chat.slack: set only one of app_token_env and app_token_file`},
		{`{app_token_env: A, bot_token_env: xoxb-1234-secret, channel: C012AB3CD}`, `chat.slack.bot_token_env must name an environment variable, not hold the token`},
		{`{app_token_env: A, bot_token_env: B}`, `chat.slack.channel is required`},
		{`{app_token_env: A, bot_token_env: B, channel: "#deploys"}`, `chat.slack.channel "#deploys" is not a channel id`},
		{`{app_token_env: A, bot_token_env: B, channel: C012AB3CD, api_url: "slack.com/api"}`, `chat.slack.api_url "slack.com/api/" is not an http:// or https:// URL`},
	} {
		_, err := Parse([]byte(slackBase + "  slack: " + tc.slack + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("slack %s: got %v, want %q", tc.slack, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "1234-secret") {
			t.Errorf("a problem repeats the inline token: %v", err)
		}
	}
	_, err := Parse([]byte(strings.TrimSuffix(slackBase, "chat:\n")))
	if err == nil || !strings.Contains(err.Error(), "no chat adapter is configured") {
		t.Errorf("no chat at all: %v", err)
	}
}

// TestSlackTokens reads tokens from a variable and from a file relative
// to the configuration, and refuses a token of the wrong kind without
// printing it.
func TestSlackTokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bot.token"), []byte("xoxb-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "deploybot.yaml")
	cfg := slackBase + "  slack: {app_token_env: DEPLOYBOT_TEST_SLACK_APP, bot_token_file: bot.token, channel: C012AB3CD}\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Chat.Slack.Tokens(); err == nil || !strings.Contains(err.Error(), "DEPLOYBOT_TEST_SLACK_APP is not set") {
		t.Errorf("unset variable: %v", err)
	}
	t.Setenv("DEPLOYBOT_TEST_SLACK_APP", "xoxb-wrong-kind-secret")
	if _, _, err := c.Chat.Slack.Tokens(); err == nil || !strings.Contains(err.Error(), "does not start with xapp-") || strings.Contains(err.Error(), "secret") {
		t.Errorf("wrong kind of token: %v", err)
	}
	t.Setenv("DEPLOYBOT_TEST_SLACK_APP", "xapp-1-good")
	app, bot, err := c.Chat.Slack.Tokens()
	if err != nil || app != "xapp-1-good" || bot != "xoxb-from-file" {
		t.Errorf("Tokens() = %q, %q, %v", app, bot, err)
	}
	c.Chat.Slack.BotTokenFile = filepath.Join(dir, "missing")
	if _, _, err := c.Chat.Slack.Tokens(); err == nil || !strings.Contains(err.Error(), "bot_token_file: cannot read "+filepath.Join(dir, "missing")+": no such file") {
		t.Errorf("missing file: %v", err)
	}
}
