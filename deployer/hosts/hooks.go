package hosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// Hook is a command run on a host after each successful sync (a new
// commit, a rollback flip, or a sync that found nothing to do, so a retry
// runs it again), for example reloading PHP-FPM so it drops its opcache.
// It comes from the configuration only, never from chat.
type Hook struct {
	// Argv is the program and its arguments; "{host}" in any of them is
	// replaced by the host's name. No shell parses it, locally or remotely.
	Argv []string
	// Timeout bounds one run (default 30s).
	Timeout time.Duration
	// Logger receives a line per run; nil discards. A logger the context
	// carries (deployer.WithLogger) is used instead.
	Logger *slog.Logger
}

// CommandRunner is a host that can run a command on itself; SSH does, over
// its kept connection. A host that cannot is on this machine, and its hook
// runs here.
type CommandRunner interface {
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// Hooked is a host whose syncs are followed by a hook. A failing hook is a
// failed Sync, so the host counts as failed like one that did not sync.
type Hooked struct {
	deployer.Host
	hook Hook
}

// WithHook returns h with hook run after every successful Sync. With an
// empty Argv it returns h itself.
func WithHook(h deployer.Host, hook Hook) deployer.Host {
	if len(hook.Argv) == 0 {
		return h
	}
	if hook.Timeout <= 0 {
		hook.Timeout = 30 * time.Second
	}
	return &Hooked{Host: h, hook: hook}
}

// Unwrap returns the host the hook decorates.
func (h *Hooked) Unwrap() deployer.Host { return h.Host }

// Sync syncs the host, then runs the hook.
func (h *Hooked) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	if err := h.Host.Sync(ctx, commit, src); err != nil {
		return err
	}
	return h.RunHook(ctx)
}

// RunHook runs the hook once, on the host when it is a CommandRunner and
// here otherwise.
func (h *Hooked) RunHook(ctx context.Context) error {
	argv := expandHost(h.hook.Argv, h.Name())
	ctx, cancel := context.WithTimeout(ctx, h.hook.Timeout)
	defer cancel()
	start := time.Now()
	var out []byte
	var err error
	if r, ok := h.Host.(CommandRunner); ok {
		out, err = r.Run(ctx, argv)
	} else {
		out, err = runLocal(ctx, argv)
	}
	log := h.hook.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = deployer.LoggerFrom(ctx, log)
	var oe *OpError
	switch {
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("did not finish within %s", h.hook.Timeout)
	case errors.As(err, &oe):
		// The host's name is said once, below.
		err = fmt.Errorf("%s: %w", oe.Op, oe.Err)
	}
	if err != nil {
		log.Error("hook failed", "host", h.Name(), "argv", argv, "took", time.Since(start), "err", err, "output", string(out))
		return &OpError{Host: h.Name(), Op: "hook " + argv[0], Err: withOutput(err, out)}
	}
	log.Info("hook ran", "host", h.Name(), "argv", argv, "took", time.Since(start))
	return nil
}

// expandHost replaces {host} in each argument: the only substitution.
func expandHost(argv []string, host string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, "{host}", host)
	}
	return out
}

// runLocal runs argv on this machine without a shell and returns its
// combined output (at most 64 KiB).
func runLocal(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	w := &limitedBuffer{buf: &out, max: 64 << 10}
	cmd.Stdout, cmd.Stderr = w, w
	// A child that keeps the output open must not hold Wait past the
	// timeout.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// withOutput adds the first line of a failed command's output to its
// error, shortened: enough for a person to know where to look, while the
// log has all of it.
func withOutput(err error, out []byte) error {
	line := strings.TrimSpace(string(out))
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	var ee *exitError
	if line == "" || errors.As(err, &ee) && strings.Contains(err.Error(), line) {
		return err
	}
	// Not wrapped: the channel reads the innermost error of a chain
	// (OpError.Plain), and the output is what says where to look.
	return fmt.Errorf("%v: %s", err, line)
}
