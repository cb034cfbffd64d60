package main

import (
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// openHosts builds the fleet from hosts.stages for the configured
// transport (local directories, or machines over ssh with one kept
// connection each), wraps the hosts of stages that have a hook, and builds
// m.Pool from the stages' depool and repool commands (nil when no stage
// has one). Connections are closed by Close.
func (m *Main) openHosts() error {
	c := m.Config
	m.Fleet = deployer.Fleet{}
	pools := map[deployer.Stage]hosts.PoolCommands{}
	for _, stage := range deployer.Stages {
		o := c.Hosts.Options(string(stage))
		for _, hc := range c.Hosts.Stages[string(stage)] {
			var h deployer.Host
			switch c.Hosts.Transport {
			case "ssh":
				s := c.Hosts.SSH
				addr := hc.Address
				if addr == "" {
					addr = hc.Name
				}
				sh, err := hosts.NewSSH(hc.Name, hosts.SSHConfig{
					Address: addr, Port: s.Port, User: s.User, Root: hc.Root,
					KeyFile: s.KeyFile, UseAgent: s.UseAgent, KnownHosts: s.KnownHosts,
					ConnectTimeout: s.ConnectTimeout.D(), CommandTimeout: s.CommandTimeout.D(), Keepalive: s.Keepalive.D(),
					Logger: m.Logger,
					// A slot that did not hold what it claimed was rebuilt
					// in full: the channel is told, not only the log.
					Rebuilt: func(host, reason string) {
						if m.Bot != nil {
							m.Bot.Announce(deployer.Notice{Kind: deployer.NoticeInfo,
								Text: host + ": its inactive slot did not hold what it claimed (" + reason + "), so it was rebuilt in full"})
						}
					},
				})
				if err != nil {
					return err
				}
				m.closers = append(m.closers, sh.Close)
				h = sh
			default:
				h = hosts.NewLocal(hc.Name, hc.Root)
			}
			m.Fleet[stage] = append(m.Fleet[stage], hosts.WithHook(h, hosts.Hook{Argv: o.Hook, Timeout: o.HookTimeout.D(), Logger: m.Logger}))
		}
		if len(o.Depool) > 0 {
			pools[stage] = hosts.PoolCommands{Depool: o.Depool, Repool: o.Repool, Timeout: o.PoolTimeout.D()}
		}
	}
	if len(pools) > 0 {
		p := hosts.NewCommandPool(m.Fleet, pools)
		p.Logger = m.Logger
		m.Pool = p
	}
	return nil
}
