package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// base is a valid configuration; each case below replaces one of its
// lines (or adds some) and checks what check-config says, with the line.
// UPSTREAM is replaced by a repository path that exists.
const base = `source:
  git: {url: UPSTREAM}
hosts:
  stages:
    testservers:
      - {name: t1, root: /srv/t1, metrics: "http://127.0.0.1:1/metrics"}
    canaries:
      - {name: c1, root: /srv/c1, metrics: "http://127.0.0.1:2/metrics"}
    production:
      - {name: p1, root: /srv/p1, metrics: "http://127.0.0.1:3/metrics"}
access:
  deployers: [Alice Deployer]
people:
  - name: Alice Deployer
    chat: ["console:alice", "irc:mask:*!~alice@shell.example.org"]
web: {listen: "off"}
chat:
  console: {user: alice}
`

// edit replaces line n (1-based) of base with repl (which may hold
// several lines), or appends repl when n is 0.
func edit(t *testing.T, n int, repl string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(base, "\n"), "\n")
	if n == 0 {
		return base + repl + "\n"
	}
	lines[n-1] = repl
	return strings.Join(lines, "\n") + "\n"
}

// load writes src to a file (UPSTREAM made an existing directory) and loads it.
func load(t *testing.T, src string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	up := filepath.Join(dir, "upstream")
	if err := os.Mkdir(up, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "deploybot.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(src, "UPSTREAM", up)), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func TestBaseHasNoProblemsAndNoWarnings(t *testing.T) {
	c, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if ws := c.Warnings(); len(ws) != 0 {
		t.Errorf("warnings for the base configuration:\n%s", ws.Error())
	}
}

func TestCheckConfigFailsWithTheLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want string // one of the problems, with its line
	}{
		{"deployer who is nobody", edit(t, 12, "  deployers: [Alice Deployer, Carol]"),
			`line 12: access.deployers: "Carol" is nobody in people (people has Alice Deployer)`},
		{"deployer misspelt, as a list item", edit(t, 12, "  deployers:\n    - Alice Deployer\n    - Alice Deploy"),
			`line 14: access.deployers: "Alice Deploy" is nobody in people`},
		{"identity without a kind", edit(t, 15, `    chat: ["console:alice", "irc:alice"]`),
			`line 15: people[Alice Deployer].chat: identity "irc:alice" has no kind: IRC identities are irc:account:ACCOUNT`},
		{"identity with an unknown scheme", edit(t, 15, "    chat:\n      - console:alice\n      - xmpp:alice@example.org"),
			`line 17: people[Alice Deployer].chat: identity "xmpp:alice@example.org" has an unknown scheme "xmpp"`},
		{"a mask that is no mask", edit(t, 12, `  deployers: ["irc:mask:alice"]`),
			`line 12: access.deployers: identity "irc:mask:alice" is not a mask`},
		{"channel without #", edit(t, 0, "  irc: {server: irc.example.org, channel: deployments}"),
			`line 19: chat.irc.channel "deployments" must start with #`},
		{"channel with an unquoted # (a comment)", edit(t, 0, "  irc:\n    server: irc.example.org\n    channel: #deployments"),
			`line 21: chat.irc.channel is required: the deployment channel, like "#deployments" (quoted: an unquoted # starts a YAML comment)`},
		{"misspelt key", edit(t, 0, "pipeline:\n  verfy_timeout: 10m"),
			`line 20: unknown key "verfy_timeout"; did you mean "verify_timeout"?`},
		{"swapped letters", edit(t, 0, "canary:\n  widnow: 10s"),
			`line 20: unknown key "widnow"; did you mean "window"?`},
		{"nothing close", edit(t, 0, "pipeline:\n  colour: blue"),
			`line 20: unknown key "colour"`},
		{"a key indented one space too little", edit(t, 0, "pipeline:\n  verify_timeout: 10m\n promote_timeout: 5m"),
			`line 21: this line is indented by 1, which lines up with no key above it`},
		{"a list item indented one space too little", edit(t, 12, "  deployers:\n    - Alice Deployer\n   - Bob"),
			`line 14: this line is indented by 3, which lines up with no key above it`},
		{"a host key indented one space too little", edit(t, 6, "      - name: t1\n        root: /srv/t1\n       metrics: http://127.0.0.1:1/metrics"),
			`line 8: this line is indented by 7, which lines up with no key above it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.src)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("no problems (err %v), want %q", err, tc.want)
			}
			for _, p := range ps {
				if strings.HasPrefix(p.String(), tc.want) {
					return
				}
			}
			t.Errorf("missing %q in:\n%s", tc.want, ps.Error())
		})
	}
}

func TestCheckConfigWarnsWithTheLine(t *testing.T) {
	t.Setenv("DEPLOYBOT_TEST_SET", "xapp-1-set")
	for _, tc := range []struct {
		name string
		src  string
		want string // "" means no warning
	}{
		{"mask with any host", edit(t, 15, `    chat: ["console:alice", "irc:mask:*!*@*"]`),
			`line 15: people[Alice Deployer].chat: "irc:mask:*!*@*" proves nothing`},
		{"mask with a nick only", edit(t, 12, `  deployers: [Alice Deployer, "irc:mask:bob!*@*"]`),
			`line 12: access.deployers: "irc:mask:bob!*@*" proves nothing`},
		{"unconfirmed ident on a host pattern", edit(t, 15, `    chat: ["irc:mask:*!~alice@*.example.org"]`),
			`line 15: people[Alice Deployer].chat: "irc:mask:*!~alice@*.example.org" proves little: ~alice is a user name no identd confirmed`},
		{"unconfirmed ident on an exact host", edit(t, 15, `    chat: ["irc:mask:*!~alice@shell.example.org"]`), ""},
		{"a cloak", edit(t, 15, `    chat: ["irc:mask:*!*@user/alice"]`), ""},
		{"canaries that cannot be judged", edit(t, 8, "      - {name: c1, root: /srv/c1}"),
			"line 7: no canary has a metrics URL and canary.smoke has no canaries checks: every canary verdict would be inconclusive"},
		{"canaries without metrics but with smoke checks", edit(t, 8, "      - {name: c1, root: /srv/c1, url: \"http://127.0.0.1:2/\"}") + "canary:\n  smoke:\n    canaries:\n      - {path: /}", ""},
		{"an unset secret", edit(t, 0, "  irc:\n    server: irc.example.org\n    channel: \"#d\"\n    sasl: {user: bot, password_env: DEPLOYBOT_TEST_UNSET}"),
			"line 22: chat.irc.sasl.password_env: the environment variable DEPLOYBOT_TEST_UNSET is not set or empty (the bot would not start here)"},
		{"a missing secret file", edit(t, 16, `web: {listen: "127.0.0.1:0", token_file: nothere}`),
			"line 16: web.token_file: cannot read "},
		{"slack tokens: the one that is missing", edit(t, 0, "  slack: {channel: C012AB3CD, app_token_env: DEPLOYBOT_TEST_SET, bot_token_env: DEPLOYBOT_TEST_UNSET}"),
			"line 19: chat.slack.bot_token_env: the environment variable DEPLOYBOT_TEST_UNSET is not set"},
		{"a local upstream that is not there", edit(t, 2, "  git: {url: /nonexistent/upstream.git}"),
			"line 2: source.git.url: the local repository /nonexistent/upstream.git does not exist here"},
		{"a remote upstream is not looked for", edit(t, 2, "  git: {url: https://git.example.org/app.git}"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.src)
			if err != nil {
				t.Fatalf("problems, want only warnings: %v", err)
			}
			ws := c.Warnings()
			if tc.want == "" {
				if len(ws) > 0 {
					t.Errorf("unexpected warnings:\n%s", ws.Error())
				}
				return
			}
			for _, w := range ws {
				if strings.HasPrefix(w.String(), tc.want) {
					return
				}
			}
			t.Errorf("missing %q in:\n%s", tc.want, ws.Error())
		})
	}
}

func TestTheExampleSaysWhatIsMissing(t *testing.T) {
	t.Setenv("DEPLOYBOT_IRC_PASSWORD", "")
	t.Setenv("SLACK_APP_TOKEN", "")
	c, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Warnings().Error()
	for _, want := range []string{
		": the local repository /srv/upstream/mediawiki/core.git does not exist here",
		"chat.slack.app_token_env: the environment variable SLACK_APP_TOKEN is not set",
		"chat.irc.sasl.password_env: the environment variable DEPLOYBOT_IRC_PASSWORD is not set or empty",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the example's warnings lack %q:\n%s", want, got)
		}
	}
}
