package config

import (
	"math"
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
)

// Canary configures the canary check. canary_ext.go holds the Prometheus
// source, the smoke checks and the production watch.
type Canary struct {
	Metrics     Metrics  `yaml:"metrics"`
	BaselineMin Duration `yaml:"baseline_min"`
	Window      Duration `yaml:"window"`
	Interval    Duration `yaml:"interval"`
	Judge       Judge    `yaml:"judge"`
	// Smoke and ProductionWatch are described in canary_ext.go; a nil
	// ProductionWatch takes the default, 0s turns the watch off.
	Smoke           Smoke     `yaml:"smoke"`
	ProductionWatch *Duration `yaml:"production_watch"`
}

// Metrics configures how request and error counters are read.
type Metrics struct {
	Source     string   `yaml:"source"` // "scrape"
	Metric     string   `yaml:"metric"`
	CodeLabel  string   `yaml:"code_label"`
	ErrorCodes string   `yaml:"error_codes"`
	Timeout    Duration `yaml:"timeout"`
	// Prometheus is used when Source is "prometheus" (canary_ext.go).
	Prometheus PrometheusSource `yaml:"prometheus"`
}

// Judge holds the canary judge's thresholds.
type Judge struct {
	Alpha            float64 `yaml:"alpha"`
	Factor           float64 `yaml:"factor"`
	AbsDiff          float64 `yaml:"abs_diff"`
	MinRequests      int     `yaml:"min_requests"`
	GrossRate        float64 `yaml:"gross_rate"`
	GrossMinRequests int     `yaml:"gross_min_requests"`
	FinalAlpha       float64 `yaml:"final_alpha"`
}

// defaults fills in the metrics source (the scrape source's defaults,
// deployer/judge) and the windows (the pipeline's, deployer.DefaultConfig).
func (c *Canary) defaults() {
	m := &c.Metrics
	setDefault(&m.Source, "scrape")
	setDefault(&m.Metric, judge.DefaultMetric)
	setDefault(&m.CodeLabel, judge.DefaultCodeLabel)
	setDefault(&m.ErrorCodes, judge.DefaultErrorCodes)
	m.Timeout.orDefault(judge.DefaultTimeout)
	d := deployer.DefaultConfig()
	c.BaselineMin.orDefault(d.BaselineMin)
	c.Window.orDefault(d.CanaryWindow)
	c.Interval.orDefault(d.SampleInterval)
}

// check checks the metrics source and its error codes, the windows and the
// judge's thresholds.
func (c *Canary) check(root *yaml.Node) Problems {
	var ps Problems
	if c.Metrics.Source != "scrape" && c.Metrics.Source != "prometheus" {
		ps.add(lineOf(root, "canary", "metrics", "source"), "metrics source %q is not supported (use scrape or prometheus)", c.Metrics.Source)
	}
	if _, err := regexp.Compile(c.Metrics.ErrorCodes); err != nil {
		ps.add(lineOf(root, "canary", "metrics", "error_codes"), "error_codes is not a valid regular expression")
	}
	if c.Interval.D() > c.Window.D() {
		ps.add(lineOf(root, "canary", "interval"), "canary.interval (%s) is longer than canary.window (%s)", c.Interval.D(), c.Window.D())
	}
	j := c.Judge
	for _, f := range []struct {
		key string
		v   float64
	}{{"alpha", j.Alpha}, {"factor", j.Factor}, {"abs_diff", j.AbsDiff}, {"gross_rate", j.GrossRate}, {"final_alpha", j.FinalAlpha}} {
		// NaN passes every range check below.
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			ps.add(lineOf(root, "canary", "judge", f.key), "canary.judge.%s must be a number, not %v", f.key, f.v)
		}
	}
	if j.Alpha < 0 || j.Alpha >= 1 {
		ps.add(lineOf(root, "canary", "judge", "alpha"), "alpha must be between 0 and 1")
	}
	if j.Factor < 0 || j.AbsDiff < 0 || j.MinRequests < 0 || j.GrossMinRequests < 0 {
		ps.add(lineOf(root, "canary", "judge"), "judge thresholds must not be negative")
	}
	if j.GrossRate < 0 || j.GrossRate > 1 {
		ps.add(lineOf(root, "canary", "judge", "gross_rate"), "gross_rate must be between 0 and 1")
	}
	if j.FinalAlpha >= 1 {
		ps.add(lineOf(root, "canary", "judge", "final_alpha"), "final_alpha must be below 1 (or negative to turn the end-of-window test off)")
	}
	return ps
}
