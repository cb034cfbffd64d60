package testparts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Chromium is Debian's headless chromium, run once per page with a fresh
// profile directory, so that tests look at pages in a real browser (with
// its HTML parser, CSS and JavaScript) rather than at the server's bytes.
type Chromium struct {
	Path string
	dir  string
}

// NeedChromium returns the installed chromium, failing the test (never
// skipping it) when there is none.
func NeedChromium(t testing.TB) *Chromium {
	t.Helper()
	return &Chromium{Path: Need(t, "chromium", "chromium"), dir: t.TempDir()}
}

// flags are the ones CI machines and containers need: no sandbox (no user
// namespaces there), no GPU, and nothing that phones home or slows start.
func (c *Chromium) flags(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + profile}
}

func (c *Chromium) run(ctx context.Context, args ...string) ([]byte, error) {
	profile, err := os.MkdirTemp(c.dir, "profile-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, append(c.flags(profile), args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chromium %s: %v\n%s", strings.Join(args, " "), err, lastLines(errb.String(), 10))
	}
	return out.Bytes(), nil
}

// DumpDOM loads url and returns the document as the browser has it after
// loading: parsed, with scripts run.
func (c *Chromium) DumpDOM(ctx context.Context, url string) (string, error) {
	out, err := c.run(ctx, "--dump-dom", url)
	return string(out), err
}

// Screenshot loads url in a window of width x height and saves what it
// shows as a PNG at path.
func (c *Chromium) Screenshot(ctx context.Context, url, path string, width, height int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, "--screenshot="+abs, fmt.Sprintf("--window-size=%d,%d", width, height), url); err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
