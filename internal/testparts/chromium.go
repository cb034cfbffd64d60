package testparts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

// Eval loads url and evaluates a JavaScript expression in the page over
// the DevTools protocol, awaiting it when it is a promise, and returns its
// value (a string). It is how a test waits for what a page does after
// loading, such as receiving server-sent events, which --dump-dom does not.
func (c *Chromium) Eval(ctx context.Context, url, expression string) (string, error) {
	profile, err := os.MkdirTemp(c.dir, "profile-")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, append(c.flags(profile), "--remote-debugging-port=0", "about:blank")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// Chromium names its DevTools endpoint on standard error.
	found := make(chan string, 1)
	var log bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if len(log.String()) < 1<<16 {
				log.WriteString(line + "\n")
			}
			if _, ws, ok := strings.Cut(line, "DevTools listening on "); ok {
				found <- strings.TrimSpace(ws)
			}
		}
		close(found)
	}()
	var browserWS string
	select {
	case browserWS = <-found:
	case <-ctx.Done():
		return "", fmt.Errorf("chromium did not start: %v", ctx.Err())
	}
	if browserWS == "" {
		return "", fmt.Errorf("chromium exited without a DevTools endpoint:\n%s", lastLines(log.String(), 10))
	}
	u, err := neturl.Parse(browserWS)
	if err != nil {
		return "", err
	}
	page, err := c.pageTarget(ctx, u.Host, "about:blank")
	if err != nil {
		return "", err
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, page, nil)
	if err != nil {
		return "", fmt.Errorf("DevTools: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	d := &devtools{conn: conn}
	if _, err := d.call("Page.navigate", map[string]any{"url": url}); err != nil {
		return "", err
	}
	// Wait until the tab shows the page, loaded, before evaluating in it:
	// an expression sent earlier would run in about:blank, or in a context
	// the navigation destroys.
	for {
		v, err := d.eval(`location.href + " " + document.readyState`)
		if err == nil && strings.HasPrefix(v, url) && strings.HasSuffix(v, " complete") {
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not load in chromium: %v (%q)", url, err, v)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return d.eval(expression)
}

// devtools is one DevTools protocol connection to a tab.
type devtools struct {
	conn *websocket.Conn
	id   int
}

// call sends one command and returns its result.
func (d *devtools) call(method string, params map[string]any) (json.RawMessage, error) {
	d.id++
	if err := d.conn.WriteJSON(map[string]any{"id": d.id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := d.conn.ReadJSON(&msg); err != nil {
			return nil, fmt.Errorf("DevTools: %w", err)
		}
		if msg.ID != d.id {
			continue // an event, or a late answer
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("DevTools %s: %s", method, msg.Error.Message)
		}
		return msg.Result, nil
	}
}

// eval evaluates expression in the tab, awaiting a promise, and returns
// its value, which must be a string.
func (d *devtools) eval(expression string) (string, error) {
	raw, err := d.call("Runtime.evaluate", map[string]any{"expression": expression, "awaitPromise": true, "returnByValue": true})
	if err != nil {
		return "", err
	}
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", err
	}
	if e := r.ExceptionDetails; e != nil {
		return "", fmt.Errorf("the expression failed: %s %s", e.Text, e.Exception.Description)
	}
	var v string
	if err := json.Unmarshal(r.Result.Value, &v); err != nil {
		return "", fmt.Errorf("the expression returned %s %s, not a string", r.Result.Type, r.Result.Value)
	}
	return v, nil
}

// pageTarget finds the DevTools websocket of a tab showing url.
func (c *Chromium) pageTarget(ctx context.Context, hostport, url string) (string, error) {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+"/json/list", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var targets []struct {
				Type, URL, WebSocketDebuggerURL string
			}
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, t := range targets {
				if t.Type == "page" && t.URL == url && t.WebSocketDebuggerURL != "" {
					return t.WebSocketDebuggerURL, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("DevTools lists no tab showing %s: %v", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
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
