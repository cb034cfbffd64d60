package hosts

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// PoolCommands are the commands that take a host out of service and put
// it back, for example conftool's
// ["confctl", "select", "name={host}", "set/pooled=no"]. They run on the
// deploy host (where the load balancer's tools are), without a shell, with
// {host} replaced by the host's name. They come from the configuration
// only.
type PoolCommands struct {
	Depool  []string
	Repool  []string
	Timeout time.Duration // per run; default 30s
}

// CommandPool implements deployer.Pool with configured commands, chosen by
// the stage each host belongs to.
type CommandPool struct {
	// Logger receives a line per command; nil discards. A logger the
	// context carries (deployer.WithLogger) is used instead.
	Logger *slog.Logger

	stage    map[string]deployer.Stage
	commands map[deployer.Stage]PoolCommands
}

var _ deployer.Pool = (*CommandPool)(nil)

// NewCommandPool returns a pool for the hosts of fleet, running the
// commands of each host's stage.
func NewCommandPool(fleet deployer.Fleet, byStage map[deployer.Stage]PoolCommands) *CommandPool {
	p := &CommandPool{stage: map[string]deployer.Stage{}, commands: map[deployer.Stage]PoolCommands{}}
	for stage, hs := range fleet {
		for _, h := range hs {
			p.stage[h.Name()] = stage
		}
	}
	for stage, c := range byStage {
		if c.Timeout <= 0 {
			c.Timeout = 30 * time.Second
		}
		p.commands[stage] = c
	}
	return p
}

// Configured reports whether host's stage has a depool command, so the
// runner can say "cannot depool" instead of trying.
func (p *CommandPool) Configured(host string) bool {
	stage, ok := p.stage[host]
	return ok && len(p.commands[stage].Depool) > 0
}

// Depool takes host out of service.
func (p *CommandPool) Depool(ctx context.Context, host string) error {
	return p.run(ctx, host, "depool")
}

// Repool puts host back into service.
func (p *CommandPool) Repool(ctx context.Context, host string) error {
	return p.run(ctx, host, "repool")
}

// run runs the depool or repool command of host's stage. Its errors are
// *deployer.Error values with a message for chat; the command's output
// goes to the log.
func (p *CommandPool) run(ctx context.Context, host, what string) error {
	stage, ok := p.stage[host]
	if !ok {
		return deployer.Errorf(deployer.ENotFound, "there is no host called %q", host)
	}
	c := p.commands[stage]
	argv := c.Depool
	if what == "repool" {
		argv = c.Repool
	}
	if len(argv) == 0 {
		return deployer.Errorf(deployer.EInvalid, "no %s command is configured for %s (hosts.stage_options.%s.%s)", what, stage, stage, what)
	}
	argv = expandHost(argv, host)
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = deployer.LoggerFrom(ctx, log)
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	out, err := runLocal(ctx, argv)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %s", c.Timeout)
	}
	if err != nil {
		log.Error(what+" failed", "host", host, "argv", argv, "took", time.Since(start), "err", err, "output", string(out))
		return deployer.Errorf(deployer.EConflict, "%s %s failed: %s: %v", what, host, argv[0], withOutput(err, out))
	}
	log.Info(what+" done", "host", host, "argv", argv, "took", time.Since(start))
	return nil
}
