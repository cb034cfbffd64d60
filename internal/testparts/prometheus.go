package testparts

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server started for one test.
type Prometheus struct {
	// URL is its base URL, e.g. http://127.0.0.1:39123, what the API
	// client and deploybot's prometheus source are given.
	URL string
	// Dir holds prometheus.yml, the TSDB and the server's output log.
	Dir string
}

// StartPrometheus starts the Debian prometheus binary on 127.0.0.1 with a
// fresh TSDB in t.TempDir(), scraping targets (host:port, path /metrics)
// every second under job "deploybot-test", and returns once /-/ready
// answers. The server is killed when the test ends; its output is kept in
// Dir/prometheus.log and shown when the test fails.
//
// Prometheus' first answers take several seconds (it replays an empty WAL,
// loads the config, then starts the scrape loops, each at a random offset
// in its interval), so callers wait for the data they need rather than
// for the server: ready means it answers queries, not that it has scraped.
func StartPrometheus(t testing.TB, targets []string) *Prometheus {
	t.Helper()
	bin := Need(t, "prometheus", "prometheus")
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	cfg.WriteString("scrape_configs:\n  - job_name: deploybot-test\n    metrics_path: /metrics\n    static_configs:\n      - targets:\n")
	for _, tg := range targets {
		fmt.Fprintf(&cfg, "          - %q\n", tg)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := Addr(FreePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting prometheus: %v", err)
	}
	// exited is closed when the process has ended; waitErr says how.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil && len(bytes.TrimSpace(out)) > 0 {
				t.Logf("prometheus log:\n%s", out)
			}
		}
	})

	p := &Prometheus{URL: "http://" + addr, Dir: dir}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited before it was ready (%v):\n%s", waitErr, out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready after 60s", p.URL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
