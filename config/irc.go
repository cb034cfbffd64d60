package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// IRC configures the IRC adapter (bot/irc): the server, who the bot is
// there, the deployment channel and an optional log channel.
type IRC struct {
	Server     string  `yaml:"server"`
	Port       int     `yaml:"port"` // default 6697 with TLS, 6667 without
	TLS        bool    `yaml:"tls"`
	TLSCAFile  string  `yaml:"tls_ca_file"` // PEM file of CAs to trust instead of the system's
	Nick       string  `yaml:"nick"`        // default: bot.name
	User       string  `yaml:"user"`        // default: the nick
	RealName   string  `yaml:"realname"`
	Channel    string  `yaml:"channel"`     // the deployment channel
	LogChannel string  `yaml:"log_channel"` // optional: one `!log` line per finished deployment
	SASL       *SASL   `yaml:"sasl"`
	Flood      Flood   `yaml:"flood"`
	Reconnect  Backoff `yaml:"reconnect"`
}

// SASL is SASL PLAIN authentication to the network's services. The
// password is never written in the configuration: it is read from an
// environment variable or a file when the bot starts.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN
	User         string `yaml:"user"`      // the services account
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// Flood paces what the bot sends, so that long output does not get it
// disconnected for flooding: Burst lines at once, then one line per
// Interval. Disable lifts it (only sensible on a server you run).
type Flood struct {
	Burst    int      `yaml:"burst"`
	Interval Duration `yaml:"interval"`
	Disable  bool     `yaml:"disable"`
}

// Backoff is how long to wait before reconnecting: Min after the first
// failure, doubling up to Max.
type Backoff struct {
	Min Duration `yaml:"min"`
	Max Duration `yaml:"max"`
}

// Password reads the SASL password from its environment variable or file.
// The error names the variable or file, never the secret.
func (s *SASL) Password() (string, error) {
	if s.PasswordEnv == "" && s.PasswordFile == "" {
		return "", fmt.Errorf("chat.irc.sasl: set password_env or password_file")
	}
	return readSecret("chat.irc.sasl.password", s.PasswordEnv, s.PasswordFile)
}

// defaults fills in what the IRC section leaves out. It is safe on nil.
func (c *IRC) defaults(botName string) {
	if c == nil {
		return
	}
	if c.Port == 0 {
		c.Port = 6667
		if c.TLS {
			c.Port = 6697
		}
	}
	setDefault(&c.Nick, botName)
	setDefault(&c.User, c.Nick)
	setDefault(&c.RealName, "deploybot, the deployment bot")
	if c.SASL != nil && c.SASL.Mechanism == "" {
		c.SASL.Mechanism = "PLAIN"
	}
	setDefault(&c.Flood.Burst, 5)
	c.Flood.Interval.orDefault(time.Second)
	c.Reconnect.Min.orDefault(2 * time.Second)
	c.Reconnect.Max.orDefault(5 * time.Minute)
}

// check lists what is wrong with the IRC section. It is safe on nil.
func (c *IRC) check(root *yaml.Node) Problems {
	if c == nil {
		return nil
	}
	var ps Problems
	add := func(key []string, format string, args ...any) {
		ps.add(lineOf(root, append([]string{"chat", "irc"}, key...)...), format, args...)
	}
	if c.Server == "" {
		add([]string{"server"}, "chat.irc.server is required: the IRC server's host name")
	}
	if c.Port < 1 || c.Port > 65535 {
		add([]string{"port"}, "chat.irc.port %d is not a TCP port", c.Port)
	}
	if c.TLSCAFile != "" && !c.TLS {
		add([]string{"tls_ca_file"}, "chat.irc.tls_ca_file is set but tls is false")
	}
	if strings.ContainsAny(c.Nick, " ,:!@#\r\n") || c.Nick == "" {
		add([]string{"nick"}, "chat.irc.nick %q is not a valid nick", c.Nick)
	}
	if strings.ContainsAny(c.User, " @\r\n") {
		add([]string{"user"}, "chat.irc.user %q is not a valid user name", c.User)
	}
	if c.Channel == "" {
		add([]string{"channel"}, "chat.irc.channel is required: the deployment channel, like \"#deployments\" (quoted: an unquoted # starts a YAML comment)")
	} else if !isChannel(c.Channel) {
		add([]string{"channel"}, "chat.irc.channel %q must start with # (or &): write \"#%s\", quoted, since YAML reads an unquoted # as a comment", c.Channel, strings.TrimLeft(c.Channel, "#&"))
	}
	if c.LogChannel != "" && !isChannel(c.LogChannel) {
		add([]string{"log_channel"}, "chat.irc.log_channel %q is not a channel name (like #operations)", c.LogChannel)
	}
	if c.LogChannel != "" && strings.EqualFold(c.LogChannel, c.Channel) {
		add([]string{"log_channel"}, "chat.irc.log_channel must differ from channel (leave it out to log nowhere)")
	}
	if s := c.SASL; s != nil {
		if !strings.EqualFold(s.Mechanism, "PLAIN") {
			add([]string{"sasl", "mechanism"}, "SASL mechanism %q is not supported (use PLAIN)", s.Mechanism)
		}
		if s.User == "" {
			add([]string{"sasl", "user"}, "chat.irc.sasl.user is required: the services account to log in as")
		}
		switch {
		case s.PasswordEnv == "" && s.PasswordFile == "":
			add([]string{"sasl"}, "chat.irc.sasl needs password_env (an environment variable) or password_file; passwords never go in this file")
		case s.PasswordEnv != "" && s.PasswordFile != "":
			add([]string{"sasl", "password_file"}, "chat.irc.sasl: give password_env or password_file, not both")
		}
	}
	if c.Flood.Burst < 1 {
		add([]string{"flood", "burst"}, "chat.irc.flood.burst must be at least 1")
	}
	if c.Reconnect.Max.D() < c.Reconnect.Min.D() {
		add([]string{"reconnect", "max"}, "chat.irc.reconnect.max (%s) is shorter than min (%s)", c.Reconnect.Max.D(), c.Reconnect.Min.D())
	}
	return ps
}

// isChannel reports whether s is a channel name (#name or &name).
func isChannel(s string) bool {
	return len(s) > 1 && strings.ContainsRune("#&", rune(s[0])) && !strings.ContainsAny(s, " ,\a\r\n")
}

// resolvePaths makes the IRC section's files relative to the
// configuration file's directory. It is safe on nil.
func (c *IRC) resolvePaths(dir string) {
	if c == nil {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.TLSCAFile)
	if c.SASL != nil {
		abs(&c.SASL.PasswordFile)
	}
}
