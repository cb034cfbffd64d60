package config

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer/judge"
)

const canaryBase = `source: {git: {url: /x}}
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1, metrics: "http://10.0.0.1:9100/metrics"}]
    canaries: [{name: c1, root: /c1, metrics: "https://10.0.0.2:9100/metrics", url: "http://c1.example.org:8080"}]
    production: [{name: p1, root: /p1, prometheus_instance: "p1.example.org:9100"}]
`

func TestCanaryExtDefaults(t *testing.T) {
	c, err := Parse([]byte(canaryBase + `canary:
  smoke:
    canaries: [{path: /}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Canary.ProductionWatch; w == nil || w.D() != 60*time.Second {
		t.Errorf("production_watch = %v, want 60s", w)
	}
	p := c.Canary.Metrics.Prometheus
	if p.RequestsQuery != judge.DefaultRequestsQuery || p.ErrorsQuery != judge.DefaultErrorsQuery || p.InstanceLabel != "instance" || p.Timeout.D() != 2*time.Second {
		t.Errorf("prometheus defaults %+v", p)
	}
	if ch := c.Canary.Smoke.Canaries[0]; ch.ExpectStatus != 200 || ch.Timeout.D() != 5*time.Second {
		t.Errorf("smoke check defaults %+v", ch)
	}
	hs := c.Hosts.Stages
	for _, tc := range []struct{ got, want string }{
		{hs["testservers"][0].HostURL(), "http://10.0.0.1:9100"},
		{hs["canaries"][0].HostURL(), "http://c1.example.org:8080"},
		{hs["production"][0].HostURL(), ""},
		{hs["testservers"][0].Instance(), "10.0.0.1:9100"},
		{hs["canaries"][0].Instance(), "10.0.0.2:9100"},
		{hs["production"][0].Instance(), "p1.example.org:9100"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}

	c, err = Parse([]byte(canaryBase + "canary: {production_watch: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Canary.ProductionWatch; w == nil || w.D() != 0 {
		t.Errorf("production_watch: 0s gave %v, want 0 (off)", w)
	}
}

func TestCanaryExtProblems(t *testing.T) {
	src := canaryBase + `canary:
  metrics:
    source: prometheus
    prometheus:
      requests_query: sum(http_requests_total)
      instance_label: "not a label"
  smoke:
    testservers:
      - {path: /ok}
      - {path: wiki, expect_status: 42}
    production:
      - {path: /, host_header: "a b"}
`
	_, err := Parse([]byte(src))
	if err == nil {
		t.Fatal("no problems found")
	}
	want := []string{
		"line 11: the prometheus source needs canary.metrics.prometheus.url",
		"line 13: requests_query must contain {{hosts}}",
		"line 14: instance_label \"not a label\" is not a Prometheus label name",
		"line 18: smoke check path \"wiki\" must start with /",
		"line 18: expect_status 42 is not an HTTP status",
		"line 20: host_header \"a b\" is not a host name",
		// p1 has a prometheus_instance but neither url nor metrics URL.
		"line 8: host \"p1\": stage production has smoke checks, so the host needs a url",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if n := len(err.(Problems)); n != len(want) {
		t.Errorf("%d problems, want %d:\n%s", n, len(want), got)
	}

	// A prometheus source needs every judged host's instance.
	_, err = Parse([]byte(`source: {git: {url: /x}}
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1, url: "ftp://c1"}]
    production: [{name: p1, root: /p1, metrics: "http://p1:9100/metrics"}]
canary:
  metrics: {source: prometheus, prometheus: {url: "http://prom:9090"}}
`))
	got = ""
	if err != nil {
		got = err.Error()
	}
	for _, w := range []string{
		`line 7: host "c1": url must be an http:// or https:// URL`,
		`line 7: host "c1": the prometheus source needs its prometheus_instance`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if strings.Contains(got, `"p1"`) || strings.Contains(got, `"t1"`) {
		t.Errorf("p1 (instance from its metrics URL) or t1 (not judged) blamed:\n%s", got)
	}

	if _, err := Parse([]byte(canaryBase + "canary: {metrics: {source: graphite}}\n")); err == nil || !strings.Contains(err.Error(), `metrics source "graphite" is not supported (use scrape or prometheus)`) {
		t.Errorf("unknown source: %v", err)
	}
}
