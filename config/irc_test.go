package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const ircBase = `source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: ["irc:account:alice"]}
`

func TestIRCAloneIsEnoughWithDefaults(t *testing.T) {
	c, err := Parse([]byte(ircBase + `chat:
  irc: {server: irc.libera.chat, tls: true, channel: "#deploy"}
`))
	if err != nil {
		t.Fatal(err)
	}
	irc := c.Chat.IRC
	got := map[string][2]any{
		"port":          {irc.Port, 6697},
		"nick":          {irc.Nick, "deploybot"},
		"user":          {irc.User, "deploybot"},
		"flood burst":   {irc.Flood.Burst, 5},
		"flood every":   {irc.Flood.Interval.D(), time.Second},
		"reconnect min": {irc.Reconnect.Min.D(), 2 * time.Second},
		"reconnect max": {irc.Reconnect.Max.D(), 5 * time.Minute},
	}
	for name, gw := range got {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
	c, err = Parse([]byte(ircBase + "chat:\n  irc: {server: localhost, channel: \"#deploy\", sasl: {user: bot, password_env: PW}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Chat.IRC.Port != 6667 || c.Chat.IRC.SASL.Mechanism != "PLAIN" {
		t.Errorf("without TLS: port %d, SASL mechanism %q", c.Chat.IRC.Port, c.Chat.IRC.SASL.Mechanism)
	}
}

func TestIRCProblemsNameTheirLines(t *testing.T) {
	src := ircBase + `chat:
  irc:
    server: ""
    tls_ca_file: ca.pem
    channel: deploy
    log_channel: "#Deploy-log"
    sasl:
      user: deploybot
      password: hunter2
  irc2: {}
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("no problems found")
	}
	got := err.Error()
	for _, w := range []string{
		`line 10: chat.irc.server is required`,
		`line 11: chat.irc.tls_ca_file is set but tls is false`,
		`line 12: chat.irc.channel "deploy" must start with #`,
		`line 14: chat.irc.sasl needs password_env (an environment variable) or password_file; passwords never go in this file`,
		`line 16: unknown key "password"`,
		`line 17: unknown key "irc2"`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing problem %q in:\n%s", w, got)
		}
	}
	if strings.Contains(got, "hunter2") {
		t.Errorf("a problem repeats the inline password:\n%s", got)
	}
	_, err = Parse([]byte(ircBase + `chat:
  irc: {server: h, channel: "#d", log_channel: "#D", sasl: {user: u, password_env: A, password_file: B}, reconnect: {min: 10s, max: 1s}}
`))
	got = ""
	if err != nil {
		got = err.Error()
	}
	for _, w := range []string{"log_channel must differ from channel", "not both", "reconnect.max (1s) is shorter than min (10s)"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing problem %q in:\n%s", w, got)
		}
	}
}

func TestSASLPasswordFromEnvOrFile(t *testing.T) {
	t.Setenv("DEPLOYBOT_TEST_IRC_PW", "s3cret\n")
	s := &SASL{PasswordEnv: "DEPLOYBOT_TEST_IRC_PW"}
	if pw, err := s.Password(); err != nil || pw != "s3cret" {
		t.Errorf("from env: %q, %v", pw, err)
	}
	s = &SASL{PasswordEnv: "DEPLOYBOT_TEST_IRC_UNSET"}
	if _, err := s.Password(); err == nil || !strings.Contains(err.Error(), "DEPLOYBOT_TEST_IRC_UNSET is not set") {
		t.Errorf("unset env: %v", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "irc.pw"), []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "deploybot.yaml")
	if err := os.WriteFile(path, []byte(ircBase+"chat:\n  irc: {server: h, channel: \"#d\", sasl: {user: u, password_file: irc.pw}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := c.Chat.IRC.SASL.Password(); err != nil || pw != "from-a-file" {
		t.Errorf("from a file relative to the configuration: %q, %v", pw, err)
	}
	s = &SASL{PasswordFile: filepath.Join(dir, "missing")}
	if _, err := s.Password(); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: %v", err)
	}
}
