package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer"
)

// Pipeline holds the pipeline's waits and retries.
type Pipeline struct {
	VerifyTimeout  Duration `yaml:"verify_timeout"`
	PromoteTimeout Duration `yaml:"promote_timeout"`
	SyncRetries    *int     `yaml:"sync_retries"`
}

// defaults fills in the pipeline's own defaults, deployer.DefaultConfig.
func (p *Pipeline) defaults() {
	d := deployer.DefaultConfig()
	if p.VerifyTimeout.D() == 0 {
		p.VerifyTimeout = Dur(d.VerifyTimeout)
	}
	if p.PromoteTimeout.D() == 0 {
		p.PromoteTimeout = Dur(d.PromoteTimeout)
	}
	if p.SyncRetries == nil {
		p.SyncRetries = &d.SyncRetries
	}
}

func (p *Pipeline) check(root *yaml.Node) Problems {
	var ps Problems
	if *p.SyncRetries < 0 {
		ps.add(lineOf(root, "pipeline", "sync_retries"), "sync_retries must not be negative")
	}
	return ps
}
