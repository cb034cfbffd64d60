package deployer

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// WithLogger returns ctx carrying log. The runner passes its logger for a
// deployment (which has deployment=<id>) this way to the hosts, hooks and
// pools it calls, so their lines about that deployment carry its id too.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

// LoggerFrom returns the logger ctx carries (see WithLogger), or fallback
// when it carries none.
func LoggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if log, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && log != nil {
		return log
	}
	return fallback
}
