package main

import (
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
)

// canaryParts builds what the canary check needs from the configuration:
// the metrics source (canary.metrics.source: scrape reads targets, each
// host's metrics URL; prometheus asks a Prometheus server), the smoke
// checks of every stage, and how long production is watched after its
// sync (0: not at all).
func canaryParts(c *config.Config, targets map[string]string) (deployer.Metrics, *judge.Smoke, time.Duration) {
	mc := c.Canary.Metrics
	var metrics deployer.Metrics
	switch mc.Source {
	case "prometheus":
		pc := mc.Prometheus
		instances := map[string]string{}
		for _, hs := range c.Hosts.Stages {
			for _, h := range hs {
				if i := h.Instance(); i != "" {
					instances[h.Name] = i
				}
			}
		}
		metrics = judge.NewPrometheus(judge.PrometheusConfig{
			URL: pc.URL, RequestsQuery: pc.RequestsQuery, ErrorsQuery: pc.ErrorsQuery,
			InstanceLabel: pc.InstanceLabel, Instances: instances, Timeout: pc.Timeout.D(),
		})
	default:
		metrics = judge.NewScrape(judge.ScrapeConfig{Targets: targets, Metric: mc.Metric, CodeLabel: mc.CodeLabel, ErrorCodes: mc.ErrorCodes, Timeout: mc.Timeout.D()})
	}

	sc := judge.SmokeConfig{Checks: map[deployer.Stage][]judge.SmokeCheck{}, URLs: map[string]string{}}
	for _, stage := range deployer.Stages {
		for _, ch := range c.Canary.Smoke.Stage(string(stage)) {
			sc.Checks[stage] = append(sc.Checks[stage], judge.SmokeCheck{
				Path: ch.Path, ExpectStatus: ch.ExpectStatus, ExpectBody: ch.ExpectBody,
				HostHeader: ch.HostHeader, Timeout: ch.Timeout.D(),
			})
		}
		for _, h := range c.Hosts.Stages[string(stage)] {
			if u := h.HostURL(); u != "" {
				sc.URLs[h.Name] = u
			}
		}
	}

	var watch time.Duration
	if w := c.Canary.ProductionWatch; w != nil {
		watch = w.D()
	}
	return metrics, judge.NewSmoke(sc), watch
}

// judgeConfig is the judge's configuration from canary.window and
// canary.judge; a zero threshold keeps the judge's default. `run` and
// `judge replay` share it, so a replay with the current configuration
// judges exactly as the bot does.
func judgeConfig(c *config.Config) judge.Config {
	jc := judge.DefaultConfig()
	jc.Window = c.Canary.Window.D()
	j := c.Canary.Judge
	setIf := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	setIf(&jc.Alpha, j.Alpha)
	setIf(&jc.Factor, j.Factor)
	setIf(&jc.AbsDiff, j.AbsDiff)
	setIf(&jc.GrossRate, j.GrossRate)
	setIf(&jc.FinalAlpha, j.FinalAlpha)
	// int(): the configuration's request minimums are whole numbers.
	if j.MinRequests > 0 {
		jc.MinRequests = int(j.MinRequests)
	}
	if j.GrossMinRequests > 0 {
		jc.GrossMinRequests = int(j.GrossMinRequests)
	}
	return jc
}
