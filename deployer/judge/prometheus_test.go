package judge

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

func TestHostsRegexpAndQueries(t *testing.T) {
	p := NewPrometheus(PrometheusConfig{
		URL:       "http://127.0.0.1:9090",
		Instances: map[string]string{"mw1": "10.0.0.1:9100", "odd": `a"b\c`},
	})
	rq, eq := p.Queries([]string{"mw1", "mw2", "odd"})
	// mw2 has no mapping: its own name is its instance. Dots are escaped for
	// the regexp, and the escapes once more for the PromQL string.
	wantRe := `10\\.0\\.0\\.1:9100|mw2|a\"b\\\\c`
	if want := `sum by (instance) (http_requests_total{instance=~"` + wantRe + `"})`; rq != want {
		t.Errorf("requests query\n got %s\nwant %s", rq, want)
	}
	if want := `sum by (instance) (http_requests_total{instance=~"` + wantRe + `",code=~"5.."})`; eq != want {
		t.Errorf("errors query\n got %s\nwant %s", eq, want)
	}
}

func TestPrometheusConfigValidate(t *testing.T) {
	if err := (PrometheusConfig{URL: "http://p:9090"}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	for _, c := range []PrometheusConfig{
		{},
		{URL: "p:9090"},
		{URL: "http://p:9090", RequestsQuery: "sum(http_requests_total)"},
		{URL: "http://p:9090", ErrorsQuery: "sum(http_requests_total)"},
		{URL: "http://p:9090", InstanceLabel: "not a label"},
		{URL: "http://p:9090", Timeout: -time.Second},
	} {
		err := c.Validate()
		if err == nil || deployer.ErrorCode(err) != deployer.EInvalid {
			t.Errorf("%+v: Validate() = %v, want an invalid-config error", c, err)
			continue
		}
		// The same problem reaches whoever reads through it.
		s, rerr := NewPrometheus(c).Read(context.Background(), []string{"h"})
		if rerr == nil || s.Hosts["h"].Err != err.Error() {
			t.Errorf("%+v: Read = %+v, %v; want the Validate error on the host", c, s.Hosts["h"], rerr)
		}
	}
}

// writeTree writes a tree of files under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// point makes root/current point at slot with an atomic rename, the way a
// host's sync flips it.
func point(t *testing.T, root, slot string) {
	t.Helper()
	tmp := filepath.Join(root, ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("slots", slot), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
}

// TestPrometheusJudgesDemoHosts is the judge end to end against a real
// Prometheus scraping the demo's host servers (2 canaries, 4 production
// hosts, 20 requests/s each, 0.5% errors): a healthy canary window passes;
// after one canary's current link is flipped to a tree whose
// config/app.json is broken (every page answers 500), the next window
// fails, naming that canary.
func TestPrometheusJudgesDemoHosts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := demo.New(ctx, demo.Options{Dir: t.TempDir(), Testservers: -1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	good := map[string]string{
		"index.html":       "<!doctype html><title>Example Wiki</title><h1>Welcome</h1>\n",
		"static/style.css": "body { font-family: sans-serif }\n",
		"config/app.json":  `{"site": "example", "version": 1, "features": {}}` + "\n",
	}
	bad := map[string]string{
		"index.html":       good["index.html"],
		"static/style.css": good["static/style.css"],
		"config/app.json":  `{"site": "example", "version": 2, "features": {"search": true,}}` + "\n",
	}
	var canaries, production, targets []string
	instances := map[string]string{}
	roots := map[string]string{}
	for _, h := range env.Hosts {
		writeTree(t, filepath.Join(h.Root, "slots", "a"), good)
		writeTree(t, filepath.Join(h.Root, "slots", "b"), bad)
		point(t, h.Root, "a")
		u, err := url.Parse(h.MetricsURL)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, u.Host)
		instances[h.Name] = u.Host
		roots[h.Name] = h.Root
		switch h.Stage {
		case string(deployer.Canaries):
			canaries = append(canaries, h.Name)
		case string(deployer.Production):
			production = append(production, h.Name)
		}
	}
	if len(canaries) != 2 || len(production) != 4 {
		t.Fatalf("demo gave %d canaries and %d production hosts, want 2 and 4", len(canaries), len(production))
	}
	env.StartTraffic(ctx)

	started := time.Now()
	prom := testparts.StartPrometheus(t, targets)
	src := NewPrometheus(PrometheusConfig{URL: prom.URL, Instances: instances, Timeout: 2 * time.Second})
	all := append(append([]string{}, canaries...), production...)

	// Prometheus answers before it has scraped anything: wait until every
	// host has a requests series, which is what the runner's first reading
	// needs, rather than for a fixed time.
	var first deployer.Sample
	for {
		s, err := src.Read(ctx, all)
		ready := err == nil
		for _, h := range all {
			if s.Hosts[h].Err != "" {
				ready = false
			}
		}
		if ready {
			first = s
			break
		}
		if time.Since(started) > 60*time.Second {
			t.Fatalf("after 60s Prometheus still lacks hosts: %+v (err %v)", s.Hosts, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("every host had a series in Prometheus %.1fs after it was started", time.Since(started).Seconds())

	t.Run("source errors", func(t *testing.T) {
		// A host Prometheus does not scrape is reported, not zero.
		s, err := src.Read(ctx, []string{canaries[0], "mw-unscraped"})
		if err != nil {
			t.Fatal(err)
		}
		if c := s.Hosts[canaries[0]]; c.Err != "" || c.Requests == 0 {
			t.Errorf("%s: %+v, want counters", canaries[0], c)
		}
		if got, want := s.Hosts["mw-unscraped"].Err, `no requests series for instance="mw-unscraped" in Prometheus`; got != want {
			t.Errorf("unscraped host: %q, want %q", got, want)
		}
		// A query Prometheus rejects is one sentence, on every host.
		broken := NewPrometheus(PrometheusConfig{URL: prom.URL, RequestsQuery: `sum by (instance) (http_requests_total{instance=~"{{hosts}}"}`})
		s, err = broken.Read(ctx, []string{canaries[0]})
		if err == nil || !strings.HasPrefix(err.Error(), "Prometheus rejected the requests query: ") || s.Hosts[canaries[0]].Err != err.Error() {
			t.Errorf("broken query: %v, host %+v", err, s.Hosts[canaries[0]])
		}
		// A range vector is not one number per host.
		ranged := NewPrometheus(PrometheusConfig{URL: prom.URL, Instances: instances, RequestsQuery: `http_requests_total{instance=~"{{hosts}}"}[5s]`})
		if _, err := ranged.Read(ctx, []string{canaries[0]}); err == nil || !strings.Contains(err.Error(), "not an instant vector") {
			t.Errorf("range query: %v", err)
		}
		// Series without the label are refused with the fix.
		unlabelled := NewPrometheus(PrometheusConfig{URL: prom.URL, Instances: instances, RequestsQuery: `sum(http_requests_total{instance=~"{{hosts}}"})`})
		if _, err := unlabelled.Read(ctx, []string{canaries[0]}); err == nil || !strings.Contains(err.Error(), "sum by (instance)") {
			t.Errorf("unlabelled query: %v", err)
		}
		// Another label can name the hosts.
		byHost := NewPrometheus(PrometheusConfig{URL: prom.URL, InstanceLabel: "host",
			RequestsQuery: `sum by (host) (label_replace(http_requests_total{instance=~"{{hosts}}"}, "host", "$1", "instance", "(.*)"))`,
			ErrorsQuery:   `sum by (host) (label_replace(http_requests_total{instance=~"{{hosts}}",code=~"5.."}, "host", "$1", "instance", "(.*)"))`,
			Instances:     instances})
		s, err = byHost.Read(ctx, []string{canaries[0]})
		if err != nil || s.Hosts[canaries[0]].Err != "" || s.Hosts[canaries[0]].Requests == 0 {
			t.Errorf("instance_label host: %+v, %v", s.Hosts[canaries[0]], err)
		}
		// A server that is not there.
		down := NewPrometheus(PrometheusConfig{URL: "http://" + testparts.Addr(testparts.FreePort(t)), Instances: instances})
		if _, err := down.Read(ctx, []string{canaries[0]}); err == nil || !strings.HasSuffix(err.Error(), "refused the connection") {
			t.Errorf("down server: %v", err)
		}
	})

	const window = 10 * time.Second
	j := New(Config{Window: window})
	// watch plays the runner's canary check: Start read, then (after
	// change, which stands for the sync) one reading a second until the
	// judge fails or the window is complete.
	watch := func(before *deployer.Sample, change func()) (deployer.Verdict, int, time.Duration) {
		t.Helper()
		start, err := src.Read(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		change()
		t0 := time.Now()
		end := t0.Add(window)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var samples []deployer.Sample
		for {
			<-tick.C
			s, err := src.Read(ctx, all)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, s)
			complete := !time.Now().Before(end)
			v := j.Judge(deployer.Window{Stage: deployer.Canaries, Judged: canaries, Control: production,
				Before: before, Start: start, Samples: samples, Complete: complete})
			if v.Outcome == deployer.Fail || complete {
				return v, len(samples), time.Since(t0)
			}
		}
	}

	v, looks, took := watch(&first, func() {})
	t.Logf("healthy window: %s after %d looks (%.1fs)\n%s", v.Outcome, looks, took.Seconds(), strings.Join(Table(v), "\n"))
	if v.Outcome != deployer.Pass {
		t.Fatalf("healthy canaries: %s, want pass: %s", v.Outcome, v.Reason)
	}
	for _, h := range v.Hosts {
		if h.Requests < 100 {
			t.Errorf("%s: %v requests in a %s window at 20/s", h.Host, h.Requests, window)
		}
	}

	v, looks, took = watch(nil, func() { point(t, roots[canaries[0]], "b") })
	t.Logf("broken canary: %s after %d looks (%.1fs)\n%s", v.Outcome, looks, took.Seconds(), strings.Join(Table(v), "\n"))
	if v.Outcome != deployer.Fail {
		t.Fatalf("a canary answering 500 to everything: %s, want fail: %s", v.Outcome, v.Reason)
	}
	if !strings.HasPrefix(v.Reason, canaries[0]+" error rate") {
		t.Errorf("reason %q does not blame %s", v.Reason, canaries[0])
	}
	if took > 8*time.Second {
		t.Errorf("failing took %s; a canary at 100%% errors should fail within a few scrapes", took)
	}
	if h := v.Hosts[1]; h.Outcome == deployer.Fail {
		t.Errorf("the healthy canary %s failed too: %+v", h.Host, h)
	}
}
