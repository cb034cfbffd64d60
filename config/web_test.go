package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimal is a valid configuration that the web tests add a web section to.
const minimal = `source: {git: {url: /srv/up.git}}
hosts:
  stages:
    testservers: [{name: t1, root: /r/t1}]
    canaries: [{name: c1, root: /r/c1}]
    production: [{name: p1, root: /r/p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`

func TestWebDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.Listen != "127.0.0.1:8080" || !c.Web.Enabled() {
		t.Errorf("default listen = %q (enabled %v), want 127.0.0.1:8080", c.Web.Listen, c.Web.Enabled())
	}
}

func TestWebProblems(t *testing.T) {
	for _, tc := range []struct {
		name, web, want string // want "" means valid
	}{
		{"loopback without token", "web: {listen: 127.0.0.1:9000}", ""},
		{"ipv6 loopback", `web: {listen: "[::1]:9000"}`, ""},
		{"localhost", "web: {listen: localhost:9000}", ""},
		{"off", "web: {listen: \"off\"}", ""},
		{"all interfaces without token", `web: {listen: ":8080"}`, "line 9: web.listen :8080 is reachable from other machines"},
		{"public address without token", "web: {listen: 10.1.2.3:8080}", "line 9: web.listen 10.1.2.3:8080 is reachable from other machines: set web.token_env or web.token_file"},
		{"public with token env", "web: {listen: 0.0.0.0:8080, token_env: DASH_TOKEN}", ""},
		{"public with token file", "web: {listen: 0.0.0.0:8080, token_file: /etc/deploybot/token}", ""},
		{"both token sources", "web: {listen: 0.0.0.0:8080, token_env: A, token_file: /b}", "set web.token_env or web.token_file, not both"},
		{"not host:port", "web: {listen: 8080}", `web.listen "8080" is not host:port`},
		{"bad base url", "web: {base_url: deploy.example.org}", `web.base_url "deploy.example.org" is not an http:// or https:// URL`},
		{"bad change url", "web: {change_url: \"javascript:alert(1)//{id}\"}", "web.change_url must be an http:// or https:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tc.web + "\n"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a problem containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestWebToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEPLOYBOT_TEST_WEB_TOKEN", "s3cret-from-env")

	if tok, err := (&Web{TokenEnv: "DEPLOYBOT_TEST_WEB_TOKEN"}).Token(); err != nil || tok != "s3cret-from-env" {
		t.Errorf("from env: %q, %v", tok, err)
	}
	if tok, err := (&Web{TokenFile: file}).Token(); err != nil || tok != "s3cret-from-file" {
		t.Errorf("from file: %q, %v", tok, err)
	}
	if tok, err := (&Web{}).Token(); err != nil || tok != "" {
		t.Errorf("no token configured: %q, %v", tok, err)
	}
	_, err := (&Web{TokenEnv: "DEPLOYBOT_TEST_UNSET_VARIABLE"}).Token()
	if err == nil || !strings.Contains(err.Error(), "web.token_env: the environment variable DEPLOYBOT_TEST_UNSET_VARIABLE is not set or empty") {
		t.Errorf("unset variable: %v", err)
	}
	_, err = (&Web{TokenFile: filepath.Join(dir, "missing")}).Token()
	if err == nil || strings.Contains(err.Error(), "open ") || !strings.Contains(err.Error(), "web.token_file: cannot read "+filepath.Join(dir, "missing")+": no such file or directory") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWebTokenFileIsResolved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploybot.yaml")
	if err := os.WriteFile(path, []byte(minimal+"web: {listen: 0.0.0.0:8080, token_file: secrets/web-token}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "secrets", "web-token"); c.Web.TokenFile != want {
		t.Errorf("token_file = %q, want %q", c.Web.TokenFile, want)
	}
}
