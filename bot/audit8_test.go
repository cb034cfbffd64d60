package bot

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// TestCommandLogNamesTheRunningDeployment: a command about the running
// deployment that names no id ("verified", "!abort", "!promote") is about
// that deployment, and its log line says which (README: every line about a
// deployment carries deployment=<id>). Only an id typed in the command was
// logged, so the demo's "command done ... command=verified" lines named none.
func TestCommandLogNamesTheRunningDeployment(t *testing.T) {
	b, st := newStoreBot(t)
	var buf bytes.Buffer
	b.Log = slog.New(slog.NewTextHandler(&buf, nil))
	b.Dir.Deployers = append(b.Dir.Deployers, "console:bob")
	id := finish(t, st, "Fix the frobnicator", deployer.StateAwaitingVerification, time.Now())
	for _, text := range []string{"verified", "!promote", "!abort now please", "!rollback"} {
		buf.Reset()
		out := ask(b, "alice", text, false)
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if strings.Contains(l, "command=") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			t.Errorf("%s (answered %q) logged no line about the command:\n%s", text, out, buf.String())
		}
		for _, l := range lines {
			if !strings.Contains(l, " deployment="+strconv.FormatInt(id, 10)+" ") && !strings.HasSuffix(l, " deployment="+strconv.FormatInt(id, 10)) {
				t.Errorf("%s while #%d awaits verification: log line without deployment=%d:\n%s", text, id, id, l)
			}
		}
	}
}
