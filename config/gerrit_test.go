package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const gerritBase = `hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`

func TestGerritSourceDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploybot.yaml")
	src := gerritBase + `source:
  type: gerrit
  gerrit:
    url: https://gerrit.example.org/r/
    project: mediawiki/core
    username: deploybot
    password_file: secrets/gerrit
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Source.Gerrit
	checks := map[string][2]any{
		"branch":        {g.Branch, "main"},
		"git_url":       {g.GitURL, "https://gerrit.example.org/r/mediawiki/core"},
		"merge_timeout": {g.MergeTimeout.D().String(), "30m0s"},
		"poll_interval": {g.PollInterval.D().String(), "10s"},
		"password_file": {g.PasswordFile, filepath.Join(dir, "secrets/gerrit")},
		"approve":       {g.Approve, false},
	}
	for name, gw := range checks {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
}

func TestGerritSourceProblems(t *testing.T) {
	for _, tc := range []struct {
		name, source string
		want         []string
	}{
		{"unknown type", "source: {type: svn}\n", []string{`source type "svn" is not supported (use git or gerrit)`}},
		{"git needs a url", "source: {type: git}\n", []string{"source.git.url is required"}},
		{"empty gerrit", "source:\n  type: gerrit\n  gerrit: {}\n", []string{
			"source.gerrit.url must be the Gerrit site's http(s) URL", "source.gerrit.project is required", "source.gerrit.username is required"}},
		{"no password", "source:\n  type: gerrit\n  gerrit: {url: https://g.example.org, project: p, username: bot}\n", []string{
			"needs password_env (an environment variable) or password_file"}},
		{"both passwords", "source:\n  type: gerrit\n  gerrit: {url: https://g.example.org, project: p, username: bot, password_env: X, password_file: /f}\n", []string{
			"not both"}},
		{"inline password", "source:\n  type: gerrit\n  gerrit: {url: https://g.example.org, project: p, username: bot, password_env: \"hunter2!\"}\n", []string{
			"must name an environment variable"}},
		{"ftp", "source:\n  type: gerrit\n  gerrit: {url: ftp://g.example.org, project: p, username: bot, password_env: X}\n", []string{
			"http(s) URL"}},
		{"poll longer than timeout", "source:\n  type: gerrit\n  gerrit: {url: https://g.example.org, project: p, username: bot, password_env: X, merge_timeout: 1m, poll_interval: 2m}\n", []string{
			"poll_interval (2m0s) is longer than merge_timeout (1m0s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(gerritBase + tc.source))
			ps, ok := err.(Problems)
			if !ok {
				t.Fatalf("got %v, want Problems", err)
			}
			if len(ps) != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(ps), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
			for _, p := range ps {
				if p.Line == 0 {
					t.Errorf("problem without a line: %s", p.Msg)
				}
			}
		})
	}
}

func TestGerritPassword(t *testing.T) {
	c := &Config{}
	c.Source.Gerrit.PasswordEnv = "DEPLOYBOT_TEST_GERRIT_PW"
	t.Setenv("DEPLOYBOT_TEST_GERRIT_PW", "from-env")
	if p, err := c.GerritPassword(); err != nil || p != "from-env" {
		t.Errorf("from env: %q, %v", p, err)
	}
	t.Setenv("DEPLOYBOT_TEST_GERRIT_PW", "")
	if _, err := c.GerritPassword(); err == nil || !strings.Contains(err.Error(), "DEPLOYBOT_TEST_GERRIT_PW is not set") {
		t.Errorf("unset variable: %v", err)
	}

	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = &Config{}
	c.Source.Gerrit.PasswordFile = file
	if p, err := c.GerritPassword(); err != nil || p != "from-file" {
		t.Errorf("from file: %q, %v (the trailing newline must go)", p, err)
	}
	c.Source.Gerrit.PasswordFile = file + ".missing"
	if _, err := c.GerritPassword(); err == nil || !strings.Contains(err.Error(), "no such file") || strings.Count(err.Error(), file) != 1 {
		t.Errorf("missing file: %v", err)
	}
}
