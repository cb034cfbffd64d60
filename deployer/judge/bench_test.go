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
// which each rule failed it, 0 when it did not; judge has one tick per
// judge configuration.
type benchRun struct {
	judge []int
	scap  int
}

// runWindow generates one window of traffic, the first canary's error
// rate changed to bad at the sync, and applies the rules to it: each judge
// after every one-second reading, as the runner asks it; scap's rule
// once, 20 s after the sync, on both canaries' errors since the sync
// (scap's check sums its canaries and looks once after canary_wait_time).
func runWindow(judges []*Judge, rng *rand.Rand, bad float64) benchRun {
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
	r := benchRun{judge: make([]int, len(judges))}
	for i := 1; i <= benchWindow; i++ {
		w.Samples = append(w.Samples, step(t0.Add(time.Duration(i)*time.Second)))
		w.Complete = i == benchWindow
		pending := false
		for k, j := range judges {
			if r.judge[k] == 0 && j.Judge(w).Outcome == deployer.Fail {
				r.judge[k] = i
			}
			pending = pending || r.judge[k] == 0
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
		if !pending && i >= benchScapWait {
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

// BenchmarkCanaryRules prints, for the judge and scap's rule side by side
// on the same traffic, the time to a failing verdict when one canary's
// error rate rises to 2%, 5%, 30% or 100% (median and 90th percentile over
// 200 seeded runs, and the share caught within the 60 s window), and the
// false failures over 500 windows of an unchanged tree. The judge runs
// twice on every window: with its defaults, and with abs_diff 0.005 (a
// threshold of 1% rather than 1.5% at a 0.5% baseline), the one setting
// that decides whether a 2% canary is caught. Run it with `make
// bench-judge`. The figures are simulated seconds, the same on every
// machine; ns/op is the cost of the whole simulation.
func BenchmarkCanaryRules(b *testing.B) {
	judges := []*Judge{New(Config{}), New(Config{AbsDiff: 0.005})}
	names := []string{"judge", "judge-absdiff0.005"}
	rates := []float64{0.02, 0.05, 0.30, 1.00}
	var table []string
	for b.Loop() {
		table = table[:0]
		table = append(table,
			fmt.Sprintf("one canary's error rate rises from 0.5%% (%d seeded runs each; %d req/s per host, 2 canaries + 4 production, readings every 1s, %ds window):", benchRuns, int(benchRPS), benchWindow),
			"             judge (defaults)                judge (abs_diff 0.005)          scap (>= 10 errors in 20 s)",
			"             median    p90  caught           median    p90  caught           median    p90  caught",
		)
		for k, rate := range rates {
			rng := rand.New(rand.NewPCG(uint64(1000+k), 0x6a75646765))
			jt := make([][]int, len(judges))
			var st []int
			for range benchRuns {
				r := runWindow(judges, rng, rate)
				for n := range judges {
					jt[n] = append(jt[n], r.judge[n])
				}
				st = append(st, r.scap)
			}
			row := fmt.Sprintf("  to %5.1f%% ", rate*100)
			for n := range judges {
				f := figures(jt[n])
				row += f.cells() + "         "
				b.ReportMetric(f.median, fmt.Sprintf("%s-median-s@%g%%", names[n], rate*100))
				b.ReportMetric(float64(f.caught)/float64(f.of), fmt.Sprintf("%s-caught@%g%%", names[n], rate*100))
			}
			sf := figures(st)
			table = append(table, row+sf.cells())
			b.ReportMetric(float64(sf.caught)/float64(sf.of), fmt.Sprintf("scap-caught@%g%%", rate*100))
		}
		rng := rand.New(rand.NewPCG(7, 0x6865616c746879))
		jf := make([]int, len(judges))
		sf := 0
		for range benchHealthy {
			r := runWindow(judges, rng, benchBase)
			for n, t := range r.judge {
				if t > 0 {
					jf[n]++
				}
			}
			if r.scap > 0 {
				sf++
			}
		}
		pc := func(n int) string { return fmt.Sprintf("%d (%.1f%%)", n, 100*float64(n)/benchHealthy) }
		table = append(table, fmt.Sprintf("unchanged tree, %d windows, false failures: judge (defaults) %s, judge (abs_diff 0.005) %s, scap %s",
			benchHealthy, pc(jf[0]), pc(jf[1]), pc(sf)))
		for n := range judges {
			b.ReportMetric(float64(jf[n])/benchHealthy, names[n]+"-false-fail")
		}
		b.ReportMetric(float64(sf)/benchHealthy, "scap-false-fail")
	}
	b.Log("\n" + strings.Join(table, "\n"))
}
