package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// SSH is how the bot reaches its hosts when hosts.transport is ssh. The key
// is a file (or the agent at $SSH_AUTH_SOCK), never inline: secrets do not
// go in this file.
type SSH struct {
	User           string   `yaml:"user"`
	Port           int      `yaml:"port"`     // used when a host's address has none
	KeyFile        string   `yaml:"key_file"` // a private key without a passphrase
	UseAgent       bool     `yaml:"use_agent"`
	KnownHosts     string   `yaml:"known_hosts"` // required: host keys are always checked
	ConnectTimeout Duration `yaml:"connect_timeout"`
	CommandTimeout Duration `yaml:"command_timeout"`
	Keepalive      Duration `yaml:"keepalive"`
}

// StageOptions are a stage's host commands, each a program and its
// arguments (no shell; "{host}" is replaced by the host's name).
type StageOptions struct {
	// Hook runs on each host after its sync (on the host for ssh, on the
	// deploy host for local); a failing hook fails that host.
	Hook        []string `yaml:"hook"`
	HookTimeout Duration `yaml:"hook_timeout"`
	// Depool and Repool run on the deploy host to take a host out of
	// service (a rollback that failed on it) and to put it back.
	Depool      []string `yaml:"depool"`
	Repool      []string `yaml:"repool"`
	PoolTimeout Duration `yaml:"pool_timeout"`
}

// Options returns a stage's options (zero when none are configured).
func (h Hosts) Options(stage string) StageOptions { return h.StageOptions[stage] }

var maxFailedRE = regexp.MustCompile(`^(\d+)(%?)$`)

// MaxFailed is how many of total production hosts may fail to sync while
// the deployment continues (max_failed_hosts: a count, or a percentage of
// total rounded down). It is 0 when unset or invalid (check-config reports
// the latter).
func (h Hosts) MaxFailed(total int) int {
	m := maxFailedRE.FindStringSubmatch(strings.TrimSpace(h.MaxFailedHosts))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	if m[2] == "%" {
		if n > 100 {
			n = 100
		}
		return total * n / 100
	}
	return min(n, total)
}

// defaultsHosts fills in the ssh settings' defaults.
func (c *Config) defaultsHosts() {
	s := &c.Hosts.SSH
	if s.Port == 0 {
		s.Port = 22
	}
	if s.ConnectTimeout.D() == 0 {
		s.ConnectTimeout = Dur(10 * time.Second)
	}
	if s.CommandTimeout.D() == 0 {
		s.CommandTimeout = Dur(10 * time.Minute)
	}
	if s.Keepalive.D() == 0 {
		s.Keepalive = Dur(15 * time.Second)
	}
	if c.Hosts.MaxFailedHosts == "" {
		c.Hosts.MaxFailedHosts = "0"
	}
}

// checkHosts checks the transport, the ssh settings, max_failed_hosts and
// the stage options.
func (c *Config) checkHosts(root *yaml.Node) Problems {
	var ps Problems
	add := func(line int, format string, args ...any) {
		ps = append(ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	h := c.Hosts
	switch h.Transport {
	case "local":
	case "ssh":
		s := h.SSH
		if s.User == "" {
			add(lineOf(root, "hosts", "ssh", "user"), "hosts.ssh.user is required with transport ssh")
		}
		if s.KnownHosts == "" {
			add(lineOf(root, "hosts", "ssh", "known_hosts"), "hosts.ssh.known_hosts is required with transport ssh: host keys are always checked")
		}
		if s.KeyFile == "" && !s.UseAgent {
			add(lineOf(root, "hosts", "ssh"), "hosts.ssh needs key_file or use_agent: nothing to log in with")
		}
		if s.Port < 1 || s.Port > 65535 {
			add(lineOf(root, "hosts", "ssh", "port"), "hosts.ssh.port must be between 1 and 65535")
		}
		for _, stage := range stageNames {
			for _, hc := range h.Stages[stage] {
				if !strings.HasPrefix(hc.Root, "/") {
					add(hc.Line, "host %q needs root, an absolute directory on the host", hc.Name)
				}
				if strings.ContainsAny(hc.Address, " \t\n/@") {
					add(hc.Line, "host %q: address %q is not host or host:port", hc.Name, hc.Address)
				}
			}
		}
	default:
		add(lineOf(root, "hosts", "transport"), "host transport %q is not supported (use local or ssh)", h.Transport)
	}
	if maxFailedRE.FindStringSubmatch(strings.TrimSpace(h.MaxFailedHosts)) == nil {
		add(lineOf(root, "hosts", "max_failed_hosts"), "max_failed_hosts %q is not a count or a percentage (write it like 2 or 10%%)", h.MaxFailedHosts)
	}
	stages := make([]string, 0, len(h.StageOptions))
	for s := range h.StageOptions {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	for _, stage := range stages {
		o := h.StageOptions[stage]
		line := lineOf(root, "hosts", "stage_options", stage)
		known := false
		for _, s := range stageNames {
			known = known || s == stage
		}
		if !known {
			add(line, "unknown stage %q in hosts.stage_options (stages are testservers, canaries, production)", stage)
		}
		for key, argv := range map[string][]string{"hook": o.Hook, "depool": o.Depool, "repool": o.Repool} {
			for _, a := range argv {
				if a == "" {
					add(lineOf(root, "hosts", "stage_options", stage, key), "hosts.stage_options.%s.%s has an empty argument", stage, key)
					break
				}
			}
		}
		if len(o.Repool) > 0 && len(o.Depool) == 0 {
			add(lineOf(root, "hosts", "stage_options", stage, "repool"), "hosts.stage_options.%s has repool but no depool", stage)
		}
	}
	return ps
}

// resolveHostsPaths makes the ssh key and known_hosts paths relative to
// the configuration file. (Host roots are remote paths with ssh.)
func (c *Config) resolveHostsPaths(dir string) {
	for _, p := range []*string{&c.Hosts.SSH.KeyFile, &c.Hosts.SSH.KnownHosts} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
