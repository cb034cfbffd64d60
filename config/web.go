package config

import (
	"net"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/web"
)

// Web configures the dashboard and its JSON API, which `deploybot run` and
// `deploybot demo` serve. The dashboard is read-only; off the loopback
// interface it also needs an access token, read from an environment
// variable or a file so that it never sits in this file.
type Web struct {
	// Listen is the TCP address to serve on: 127.0.0.1:8080 by default,
	// 127.0.0.1:0 for any free port, "off" for no dashboard.
	Listen string `yaml:"listen"`
	// TokenEnv names an environment variable holding the access token.
	TokenEnv string `yaml:"token_env"`
	// TokenFile is a file holding the access token (surrounding whitespace
	// is ignored).
	TokenFile string `yaml:"token_file"`
	// BaseURL is how people reach the dashboard, used in the links the
	// bot posts in chat (e.g. https://deploy.example.org). Empty means
	// http:// and the address it listens on.
	BaseURL string `yaml:"base_url"`
	// ChangeURL links a change that carries no URL of its own (plain git
	// commits): {id} is replaced by the commit id, e.g.
	// https://gitlab.example.org/app/-/commit/{id}. Empty means no link.
	ChangeURL string `yaml:"change_url"`
}

// WebOff is the Listen value that turns the dashboard off.
const WebOff = "off"

// defaults fills in the listen address.
func (w *Web) defaults() {
	setDefault(&w.Listen, "127.0.0.1:8080")
}

// Enabled reports whether the dashboard is to be served.
func (w *Web) Enabled() bool { return w.Listen != WebOff }

// Token reads the access token from the environment variable or the file
// the configuration names; "" when it names neither. The error is a
// message a person can act on, without the token's value.
func (w *Web) Token() (string, error) {
	return readSecret("web.token", w.TokenEnv, w.TokenFile)
}

// check lists the web section's problems. It does not read the token
// (check-config may run on another machine than the bot); `run` does.
func (w *Web) check(root *yaml.Node) Problems {
	var ps Problems
	if !w.Enabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(w.Listen); err != nil {
		ps.add(lineOf(root, "web", "listen"), "web.listen %q is not host:port (e.g. 127.0.0.1:8080), or off", w.Listen)
	} else if !web.Loopback(w.Listen) && w.TokenEnv == "" && w.TokenFile == "" {
		ps.add(lineOf(root, "web", "listen"), "web.listen %s is reachable from other machines: set web.token_env or web.token_file so the dashboard asks for a token, or listen on 127.0.0.1", w.Listen)
	}
	if w.TokenEnv != "" && w.TokenFile != "" {
		ps.add(lineOf(root, "web", "token_file"), "set web.token_env or web.token_file, not both")
	}
	if w.BaseURL != "" {
		if u, err := url.Parse(w.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(lineOf(root, "web", "base_url"), "web.base_url %q is not an http:// or https:// URL", w.BaseURL)
		}
	}
	if w.ChangeURL != "" && !strings.HasPrefix(w.ChangeURL, "http://") && !strings.HasPrefix(w.ChangeURL, "https://") {
		ps.add(lineOf(root, "web", "change_url"), "web.change_url must be an http:// or https:// URL with {id} where the commit goes")
	}
	return ps
}
