package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// The comparison behind the README's "Canary judgement" table: the judge
// and scap's canary rule on the same generated traffic, shaped like the
// demo fleet.
const (
	benchRPS       = 20.0  // requests per second per host (Poisson)
	benchBase      = 0.005 // every host's error rate before the change
	benchWindow    = 60    // seconds the canaries are watched, one reading a second
	benchPreSync   = 60    // seconds of the canaries' own traffic before the sync
	benchScapWait  = 20    // scap waits this long after the canary sync ...
	benchScapLimit = 10    // ... and fails on at least this many canary errors
	benchRuns      = 200   // seeded runs per bad-change rate
	benchHealthy   = 500   // windows of an unchanged tree
)

var (
	benchCanaries   = []string{"mw-canary1", "mw-canary2"}
	benchProduction = []string{"mw1", "mw2", "mw3", "mw4"}
)

// benchRun is one canary window: the tick (seconds after the sync) at
// which each rule failed it, 0 when it did not.
type benchRun struct{ judge, scap int }

// runWindow generates one window of traffic, the first canary's error
// rate changed to bad at the sync, and applies both rules to it: the
// judge after every one-second reading, as the runner asks it; scap's rule
// once, 20 s after the sync, on both canaries' errors since the sync
// (scap's check sums its canaries and looks once after canary_wait_time).
func runWindow(j *Judge, rng *rand.Rand, bad float64) benchRun {
	f := &simFleet{rng: rng, counts: map[string]deployer.Counts{}}
	hosts := append(slices.Clone(benchCanaries), benchProduction...)
	rates := make([]float64, len(hosts))
	for i, h := range hosts {
		rates[i] = benchBase
		f.counts[h] = deployer.Counts{Requests: 1e6, Errors: 5e3}
	}
	// step advances every host by a second, in a fixed order so that a
	// seed always gives the same traffic (map order would not).
	step := func(at time.Time) deployer.Sample {
		s := deployer.Sample{Time: at, Hosts: make(map[string]deployer.Counts, len(hosts))}
		for i, h := range hosts {
			c := f.counts[h]
			n := f.poisson(benchRPS)
			c.Requests += n
			for range int(n) {
				if rng.Float64() < rates[i] {
					c.Errors++
				}
			}
			f.counts[h] = c
			s.Hosts[h] = c
		}
		return s
	}
	before := step(t0.Add(-benchPreSync * time.Second))
	for range benchPreSync - 1 {
		step(t0)
	}
	w := deployer.Window{Stage: deployer.Canaries, Judged: benchCanaries, Control: benchProduction, Before: &before}
	w.Start = step(t0)
	rates[0] = bad // the first canary serves the change from now on
	var r benchRun
	for i := 1; i <= benchWindow; i++ {
		w.Samples = append(w.Samples, step(t0.Add(time.Duration(i)*time.Second)))
		w.Complete = i == benchWindow
		if r.judge == 0 && j.Judge(w).Outcome == deployer.Fail {
			r.judge = i
		}
		if i == benchScapWait {
			errs := 0.0
			for _, h := range benchCanaries {
				errs += w.Samples[i-1].Hosts[h].Errors - w.Start.Hosts[h].Errors
			}
			if errs >= benchScapLimit {
				r.scap = i
			}
		}
		if r.judge != 0 && i >= benchScapWait {
			break
		}
	}
	return r
}

// ruleFigures summarises one rule over runs: the median and 90th
// percentile time to a failing verdict (a run not failed counts as never),
// and how many runs failed within the window.
type ruleFigures struct {
	median, p90 float64 // seconds; +Inf when not failed by then
	caught, of  int
}

func figures(ticks []int) ruleFigures {
	ts := make([]float64, len(ticks))
	f := ruleFigures{of: len(ticks)}
	for i, t := range ticks {
		ts[i] = math.Inf(1)
		if t > 0 {
			ts[i] = float64(t)
			f.caught++
		}
	}
	slices.Sort(ts)
	f.median = quantile(ts, 0.5)
	f.p90 = quantile(ts, 0.9)
	return f
}

// quantile is the nearest-rank quantile of sorted xs.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return xs[max(0, int(math.Ceil(q*float64(len(xs))))-1)]
}

func secs(x float64) string {
	if math.IsInf(x, 1) {
		return fmt.Sprintf(">%ds", benchWindow)
	}
	return fmt.Sprintf("%.0fs", x)
}

func (f ruleFigures) cells() string {
	return fmt.Sprintf("%7s %6s %6.1f%%", secs(f.median), secs(f.p90), 100*float64(f.caught)/float64(f.of))
}

// BenchmarkCanaryRules prints, for the judge (default configuration) and
// scap's rule side by side on the same traffic, the time to a failing
// verdict when one canary's error rate rises to 2%, 5%, 30% or 100%
// (median and 90th percentile over 200 seeded runs, and the share caught
// within the 60 s window), and the false failures over 500 windows of an
// unchanged tree. Run it with `make bench-judge`. The figures are
// simulated seconds, the same on every machine; ns/op is the cost of the
// whole simulation.
func BenchmarkCanaryRules(b *testing.B) {
	j := New(Config{})
	rates := []float64{0.02, 0.05, 0.30, 1.00}
	var table []string
	for b.Loop() {
		table = table[:0]
		table = append(table,
			fmt.Sprintf("one canary's error rate rises from 0.5%% (%d seeded runs each; %d req/s per host, 2 canaries + 4 production, readings every 1s, %ds window):", benchRuns, int(benchRPS), benchWindow),
			"                    judge: median    p90  caught   scap: median    p90  caught",
		)
		for k, rate := range rates {
			rng := rand.New(rand.NewPCG(uint64(1000+k), 0x6a75646765))
			var jt, st []int
			for range benchRuns {
				r := runWindow(j, rng, rate)
				jt, st = append(jt, r.judge), append(st, r.scap)
			}
			jf, sf := figures(jt), figures(st)
			table = append(table, fmt.Sprintf("  to %5.1f%%        %s          %s", rate*100, jf.cells(), sf.cells()))
			b.ReportMetric(jf.median, fmt.Sprintf("judge-median-s@%g%%", rate*100))
			b.ReportMetric(float64(jf.caught)/float64(jf.of), fmt.Sprintf("judge-caught@%g%%", rate*100))
			b.ReportMetric(float64(sf.caught)/float64(sf.of), fmt.Sprintf("scap-caught@%g%%", rate*100))
		}
		rng := rand.New(rand.NewPCG(7, 0x6865616c746879))
		jf, sf := 0, 0
		for range benchHealthy {
			r := runWindow(j, rng, benchBase)
			if r.judge > 0 {
				jf++
			}
			if r.scap > 0 {
				sf++
			}
		}
		table = append(table, fmt.Sprintf("unchanged tree, %d windows: false failures judge %d (%.1f%%), scap %d (%.1f%%)",
			benchHealthy, jf, 100*float64(jf)/benchHealthy, sf, 100*float64(sf)/benchHealthy))
		b.ReportMetric(float64(jf)/benchHealthy, "judge-false-fail")
		b.ReportMetric(float64(sf)/benchHealthy, "scap-false-fail")
	}
	b.Log("\n" + strings.Join(table, "\n"))
}
