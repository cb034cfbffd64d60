package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMaxFailed(t *testing.T) {
	for _, tc := range []struct {
		value string
		total int
		want  int
	}{
		{"0", 10, 0},
		{"2", 10, 2},
		{"2", 1, 1},
		{"10%", 40, 4},
		{"10%", 9, 0}, // rounded down: 10% of 9 hosts lets none fail
		{"25%", 10, 2},
		{"100%", 7, 7},
		{"150%", 7, 7},
		{"", 10, 0},
		{"many", 10, 0},
	} {
		if got := (Hosts{MaxFailedHosts: tc.value}).MaxFailed(tc.total); got != tc.want {
			t.Errorf("MaxFailed(%q, %d) = %d, want %d", tc.value, tc.total, got, tc.want)
		}
	}
}

const sshBase = `source: {git: {url: /x}}
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
hosts:
  transport: ssh
`

func TestSSHConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deploybot.yaml")
	src := sshBase + `  max_failed_hosts: 10%
  ssh:
    user: deploy
    key_file: keys/id_ed25519
    known_hosts: known_hosts
  stage_options:
    production:
      hook: [sudo, -n, systemctl, reload, php8.2-fpm]
      depool: [confctl, select, "name={host}", set/pooled=no]
      repool: [confctl, select, "name={host}", set/pooled=yes]
  stages:
    testservers: [{name: mwdebug1001, root: /srv/app}]
    canaries: [{name: mw-canary1001, address: "10.0.0.5:2222", root: /srv/app}]
    production: [{name: mw1001, root: /srv/app}]
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Hosts.SSH
	if s.KeyFile != filepath.Join(dir, "keys/id_ed25519") || s.KnownHosts != filepath.Join(dir, "known_hosts") {
		t.Errorf("key and known_hosts not resolved against the file: %q %q", s.KeyFile, s.KnownHosts)
	}
	if s.Port != 22 || s.ConnectTimeout.D().String() != "10s" || s.CommandTimeout.D().String() != "10m0s" || s.Keepalive.D().String() != "15s" {
		t.Errorf("defaults: %+v", s)
	}
	if root := c.Hosts.Stages["production"][0].Root; root != "/srv/app" {
		t.Errorf("an ssh host's root was changed to %q; it is a path on the host", root)
	}
	if got := c.Hosts.Options("production").Depool; strings.Join(got, " ") != "confctl select name={host} set/pooled=no" {
		t.Errorf("depool = %q", got)
	}
	if c.Hosts.MaxFailed(20) != 2 {
		t.Errorf("MaxFailed(20) = %d, want 2", c.Hosts.MaxFailed(20))
	}
}

func TestSSHConfigProblems(t *testing.T) {
	src := sshBase + `  max_failed_hosts: some
  ssh:
    port: 70000
  stage_options:
    staging:
      hook: [reload]
    production:
      hook: [sudo, ""]
      repool: [confctl]
  stages:
    testservers: [{name: t1, root: relative/dir}]
    canaries: [{name: c1, root: /srv/app, address: "deploy@c1"}]
    production: [{name: p1, root: /srv/app}]
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("no problems found")
	}
	got := err.Error()
	for _, w := range []string{
		`line 6: max_failed_hosts "some" is not a count or a percentage (write it like 2 or 10%)`,
		`line 7: hosts.ssh.user is required with transport ssh`,
		`line 7: hosts.ssh.known_hosts is required with transport ssh: host keys are always checked`,
		`line 7: hosts.ssh needs key_file or use_agent: nothing to log in with`,
		`line 8: hosts.ssh.port must be between 1 and 65535`,
		`line 10: unknown stage "staging" in hosts.stage_options`,
		`line 13: hosts.stage_options.production.hook has an empty argument`,
		`line 14: hosts.stage_options.production has repool but no depool`,
		`line 16: host "t1" needs root, an absolute directory on the host`,
		`line 17: host "c1": address "deploy@c1" is not host or host:port`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing problem %q in:\n%s", w, got)
		}
	}
	if _, err := Parse([]byte(strings.Replace(sshBase, "ssh", "rsync", 1) + "  stages: {}\n")); err == nil || !strings.Contains(err.Error(), `host transport "rsync" is not supported (use local or ssh)`) {
		t.Errorf("unknown transport: %v", err)
	}
}
