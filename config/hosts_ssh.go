package config

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer/hosts"
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

// defaults fills in the port and the timeouts: deployer/hosts's defaults.
func (s *SSH) defaults() {
	setDefault(&s.Port, hosts.DefaultSSHPort)
	s.ConnectTimeout.orDefault(hosts.DefaultConnectTimeout)
	s.CommandTimeout.orDefault(hosts.DefaultCommandTimeout)
	s.Keepalive.orDefault(hosts.DefaultKeepalive)
}

// checkSSH checks what transport ssh needs: a user, host keys, something
// to log in with, a port, and every host's remote root and address.
func (h *Hosts) checkSSH(root *yaml.Node) Problems {
	var ps Problems
	s := h.SSH
	if s.User == "" {
		ps.add(lineOf(root, "hosts", "ssh", "user"), "hosts.ssh.user is required with transport ssh")
	}
	if s.KnownHosts == "" {
		ps.add(lineOf(root, "hosts", "ssh", "known_hosts"), "hosts.ssh.known_hosts is required with transport ssh: host keys are always checked")
	}
	if s.KeyFile == "" && !s.UseAgent {
		ps.add(lineOf(root, "hosts", "ssh"), "hosts.ssh needs key_file or use_agent: nothing to log in with")
	}
	if s.Port < 1 || s.Port > 65535 {
		ps.add(lineOf(root, "hosts", "ssh", "port"), "hosts.ssh.port must be between 1 and 65535")
	}
	for _, stage := range stageNames {
		for _, hc := range h.Stages[stage] {
			if !strings.HasPrefix(hc.Root, "/") {
				ps.add(hc.Line, "host %q needs root, an absolute directory on the host", hc.Name)
			}
			if strings.ContainsAny(hc.Address, " \t\n/@") {
				ps.add(hc.Line, "host %q: address %q is not host or host:port", hc.Name, hc.Address)
			}
		}
	}
	return ps
}
