package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
)

func TestCanaryParts(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wiki/Main_Page" && r.Host == "en.example.org" {
			hits.Add(1)
			w.Write([]byte("Main Page"))
			return
		}
		http.NotFound(w, r)
	}))
	defer web.Close()
	src := `source: {git: {url: /x}}
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1, metrics: "http://10.0.0.1:9100/metrics"}]
    canaries: [{name: c1, root: /c1, url: "` + web.URL + `", prometheus_instance: "c1.example.org:9100"}]
    production: [{name: p1, root: /p1, metrics: "http://10.0.0.3:9100/metrics"}]
canary:
  metrics: {source: prometheus, prometheus: {url: "http://127.0.0.1:1"}}
  production_watch: 90s
  judge: {abs_diff: 0.005, min_requests: 50}
  smoke:
    canaries:
      - {path: /wiki/Main_Page, host_header: en.example.org, expect_body: Main Page}
`
	c, err := config.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	metrics, smoker, watch := canaryParts(c, nil)
	p, ok := metrics.(*judge.Prometheus)
	if !ok {
		t.Fatalf("source prometheus built a %T", metrics)
	}
	// Instances come from prometheus_instance, else the metrics URL.
	rq, _ := p.Queries([]string{"c1", "p1"})
	if !strings.Contains(rq, `instance=~"c1\\.example\\.org:9100|10\\.0\\.0\\.3:9100"`) {
		t.Errorf("requests query %s", rq)
	}
	if watch != 90*time.Second {
		t.Errorf("production watch %s, want 90s", watch)
	}
	if fails := smoker.Smoke(context.Background(), deployer.Canaries, []string{"c1"}); len(fails) != 0 || hits.Load() != 1 {
		t.Errorf("smoke check on c1: %q, %d requests reached its url", fails, hits.Load())
	}
	// A stage without checks passes without a request.
	if fails := smoker.Smoke(context.Background(), deployer.Testservers, []string{"t1"}); len(fails) != 0 {
		t.Errorf("testservers: %q", fails)
	}
	jc := judgeConfig(c)
	if jc.AbsDiff != 0.005 || jc.MinRequests != 50 || jc.Factor != judge.DefaultConfig().Factor || jc.Window != time.Minute {
		t.Errorf("judge config %+v", jc)
	}

	// The default source is scrape, reading the metrics URLs given.
	c, err = config.Parse([]byte(strings.Replace(src, "source: prometheus,", "source: scrape,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _, _ = canaryParts(c, map[string]string{"p1": "http://10.0.0.3:9100/metrics"})
	if _, ok := metrics.(*judge.Scrape); !ok {
		t.Errorf("source scrape built a %T", metrics)
	}
}
