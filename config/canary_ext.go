package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer/judge"
)

// PrometheusSource is canary.metrics.prometheus: read the counters with
// PromQL from a Prometheus server instead of scraping every host.
type PrometheusSource struct {
	URL string `yaml:"url"` // the server, e.g. http://prometheus.example.org:9090
	// RequestsQuery and ErrorsQuery return each host's cumulative request
	// and error counters, one series per host; {{hosts}} is replaced by a
	// regular expression matching the stage's hosts' instances.
	RequestsQuery string   `yaml:"requests_query"`
	ErrorsQuery   string   `yaml:"errors_query"`
	InstanceLabel string   `yaml:"instance_label"` // the label naming the host in the results
	Timeout       Duration `yaml:"timeout"`        // per reading (both queries)
}

// SmokeCheck is one HTTP check of canary.smoke.
type SmokeCheck struct {
	Path         string   `yaml:"path"`
	ExpectStatus int      `yaml:"expect_status"`
	ExpectBody   string   `yaml:"expect_body"`
	HostHeader   string   `yaml:"host_header"`
	Timeout      Duration `yaml:"timeout"`
}

// Smoke is canary.smoke: each stage's checks, run on its hosts right after
// their sync; a failed check rolls the deployment back.
type Smoke struct {
	Testservers []SmokeCheck `yaml:"testservers"`
	Canaries    []SmokeCheck `yaml:"canaries"`
	Production  []SmokeCheck `yaml:"production"`
}

// Stage returns the checks of a stage by its name.
func (s Smoke) Stage(name string) []SmokeCheck {
	switch name {
	case "testservers":
		return s.Testservers
	case "canaries":
		return s.Canaries
	case "production":
		return s.Production
	}
	return nil
}

// Defaults of the keys in this file that are the configuration's own, as
// config.example.yaml documents them. The Prometheus source's and the smoke
// checks' defaults live with the code that uses them, in deployer/judge,
// and are read from there.
const (
	DefaultProductionWatch   = 60 * time.Second
	DefaultSmokeExpectStatus = 200
)

// canaryDefaults fills in the defaults of the canary keys in this file.
func (c *Config) canaryDefaults() {
	if c.Canary.ProductionWatch == nil {
		d := Dur(DefaultProductionWatch)
		c.Canary.ProductionWatch = &d
	}
	p := &c.Canary.Metrics.Prometheus
	if p.RequestsQuery == "" {
		p.RequestsQuery = judge.DefaultRequestsQuery
	}
	if p.ErrorsQuery == "" {
		p.ErrorsQuery = judge.DefaultErrorsQuery
	}
	if p.InstanceLabel == "" {
		p.InstanceLabel = judge.DefaultInstanceLabel
	}
	if p.Timeout.D() == 0 {
		p.Timeout = c.Canary.Metrics.Timeout
	}
	for _, list := range []*[]SmokeCheck{&c.Canary.Smoke.Testservers, &c.Canary.Smoke.Canaries, &c.Canary.Smoke.Production} {
		for i := range *list {
			ch := &(*list)[i]
			if ch.ExpectStatus == 0 {
				ch.ExpectStatus = DefaultSmokeExpectStatus
			}
			if ch.Timeout.D() == 0 {
				ch.Timeout = Dur(judge.DefaultSmokeTimeout)
			}
		}
	}
}

// HostURL is where a host's web server answers smoke checks: its url, or
// else its metrics URL's scheme and host:port ("" when it has neither).
func (h HostCf) HostURL() string {
	if h.URL != "" {
		return h.URL
	}
	if u, err := url.Parse(h.Metrics); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return ""
}

// Instance is the value of the Prometheus instance label that names the
// host: its prometheus_instance, or else its metrics URL's host:port, which
// is what Prometheus sets when it scrapes that URL ("" when it has neither).
func (h HostCf) Instance() string {
	if h.PrometheusInstance != "" {
		return h.PrometheusInstance
	}
	if u, err := url.Parse(h.Metrics); err == nil && u.Host != "" {
		return u.Host
	}
	return ""
}

var promLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// checkCanary checks the keys in this file: the metrics source, the smoke
// checks and the per-host url and prometheus_instance.
func (c *Config) checkCanary(root *yaml.Node) Problems {
	var ps Problems
	add := func(line int, format string, args ...any) {
		ps = append(ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	isHTTP := func(s string) bool {
		u, err := url.Parse(s)
		return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	}
	for _, s := range stageNames {
		for _, h := range c.Hosts.Stages[s] {
			if h.URL != "" && !isHTTP(h.URL) {
				add(h.Line, "host %q: url must be an http:// or https:// URL with a host", h.Name)
			}
			if strings.ContainsAny(h.PrometheusInstance, "\n\r") {
				add(h.Line, "host %q: prometheus_instance must be one line", h.Name)
			}
		}
	}

	if c.Canary.Metrics.Source == "prometheus" {
		p := c.Canary.Metrics.Prometheus
		switch {
		case p.URL == "":
			add(lineOf(root, "canary", "metrics", "source"), "the prometheus source needs canary.metrics.prometheus.url")
		case !isHTTP(p.URL):
			add(lineOf(root, "canary", "metrics", "prometheus", "url"), "canary.metrics.prometheus.url must be an http:// or https:// URL")
		}
		for _, q := range []struct{ key, val string }{{"requests_query", p.RequestsQuery}, {"errors_query", p.ErrorsQuery}} {
			if !strings.Contains(q.val, "{{hosts}}") {
				add(lineOf(root, "canary", "metrics", "prometheus", q.key), "%s must contain {{hosts}}, where the stage's hosts go (as in instance=~\"{{hosts}}\")", q.key)
			}
		}
		if !promLabel.MatchString(p.InstanceLabel) {
			add(lineOf(root, "canary", "metrics", "prometheus", "instance_label"), "instance_label %q is not a Prometheus label name", p.InstanceLabel)
		}
		for _, s := range []string{"canaries", "production"} {
			for _, h := range c.Hosts.Stages[s] {
				if h.Instance() == "" {
					add(h.Line, "host %q: the prometheus source needs its prometheus_instance (or a metrics URL to derive it from)", h.Name)
				}
			}
		}
	}

	for _, s := range stageNames {
		checks := c.Canary.Smoke.Stage(s)
		for i, ch := range checks {
			line := lineOf(root, "canary", "smoke", s)
			if n := find(root, "canary", "smoke", s); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
				line = n.Content[i].Line
			}
			switch {
			case !strings.HasPrefix(ch.Path, "/"):
				add(line, "smoke check path %q must start with /", ch.Path)
			case strings.ContainsAny(ch.Path, " \t\r\n#"):
				add(line, "smoke check path %q has a blank or a #", ch.Path)
			}
			if ch.ExpectStatus < 100 || ch.ExpectStatus > 599 {
				add(line, "expect_status %d is not an HTTP status", ch.ExpectStatus)
			}
			if strings.ContainsAny(ch.HostHeader, " \t\r\n/") {
				add(line, "host_header %q is not a host name", ch.HostHeader)
			}
		}
		if len(checks) == 0 {
			continue
		}
		for _, h := range c.Hosts.Stages[s] {
			if h.HostURL() == "" {
				add(h.Line, "host %q: stage %s has smoke checks, so the host needs a url (or a metrics URL to derive it from)", h.Name, s)
			}
		}
	}
	return ps
}
