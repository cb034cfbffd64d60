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
	// RollbackTries bounds the attempts at one rollback before it ends
	// rollback-failed and locks deployments.
	RollbackTries int `yaml:"rollback_tries"`
	// RetryDelay is the first pause before a failed step is redone.
	RetryDelay Duration `yaml:"retry_delay"`
	// Batch holds the batch and bisection limits (windows.go).
	Batch Batch `yaml:"batch"`
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
	if p.RollbackTries == 0 {
		p.RollbackTries = d.RollbackTries
	}
	if p.RetryDelay.D() == 0 {
		p.RetryDelay = Dur(d.RetryDelay)
	}
}

func (p *Pipeline) check(root *yaml.Node) Problems {
	var ps Problems
	if *p.SyncRetries < 0 {
		ps.add(lineOf(root, "pipeline", "sync_retries"), "sync_retries must not be negative")
	}
	if p.RollbackTries < 0 {
		ps.add(lineOf(root, "pipeline", "rollback_tries"), "rollback_tries must be at least 1")
	}
	return ps
}
