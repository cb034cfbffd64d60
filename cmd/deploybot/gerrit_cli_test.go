package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
)

func TestCheckConfigNamesTheGerritSource(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "deploybot.yaml")
	src := `source:
  type: gerrit
  gerrit: {url: "https://gerrit.example.org/r", project: mediawiki/core, branch: wmf/1.45, username: deploybot, password_env: GERRIT_HTTP_PASSWORD}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := realMain([]string{"check-config", "--config", path}, nil, &out, &errOut); code != 0 {
		t.Fatalf("check-config exited %d: %s", code, errOut.String())
	}
	if want := "source gerrit https://gerrit.example.org/r/mediawiki/core (wmf/1.45)"; !strings.Contains(out.String(), want) {
		t.Errorf("check-config said %q, want it to contain %q", out.String(), want)
	}
}

// TestGerritPasswordMissingStopsOpen: a gerrit source whose password
// variable is unset stops the bot at start with a sentence naming the
// variable, before anything runs.
func TestGerritPasswordMissingStopsOpen(t *testing.T) {
	t.Parallel()
	_, err := startSandbox(context.Background(), t.TempDir(), testTimings, "error", strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}, func(m *Main) {
		m.Config.Source.Type = "gerrit"
		up := m.Config.Source.Components[0].URL
		m.Config.Source.Components = nil
		m.Config.Source.Gerrit = config.GerritSource{URL: "http://127.0.0.1:9", Project: "app", Branch: "main", GitURL: up,
			Username: "deploybot", PasswordEnv: "DEPLOYBOT_TEST_SURELY_UNSET_PASSWORD", MergeTimeout: config.Dur(time.Minute), PollInterval: config.Dur(time.Second)}
	})
	if err == nil || err.Error() != "the Gerrit password variable DEPLOYBOT_TEST_SURELY_UNSET_PASSWORD is not set" {
		t.Errorf("Open: %v; want the unset variable named", err)
	}
}
