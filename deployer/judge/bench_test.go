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
	benchWindow    = 60   // seconds the canaries are watched, one reading a second
	benchPreSync   = 60   // seconds of the canaries' own traffic before the sync
	benchScapWait  = 20   // scap waits this long after the canary sync ...
	benchScapLimit = 10   // ... and fails on at least this many canary errors
	benchRuns      = 400  // seeded runs per row
	benchHealthy   = 1000 // windows of an unchanged tree per traffic level
)

var (
	benchCanaries   = []string{"mw-canary1", "mw-canary2"}
	benchProduction = []string{"mw1", "mw2", "mw3", "mw4"}
)

// benchCase is one row of the table: every host serves rps requests a
// second (Poisson) at error rate base; at the sync, the first bad
// canaries' rate becomes bad.
type benchCase struct {
	rps, base, bad float64
	badCanaries    int
}

// benchRun is one canary window: the tick (seconds after the sync) at
// which each rule failed it, 0 when it did not; judge has one tick per
// judge configuration.
type benchRun struct {
	judge []int
	scap  int
}

// runWindow generates one window of traffic for bc and applies the rules
// to it: each judge after every one-second reading, as the runner asks
// it; scap's rule once, 20 s after the sync, on both canaries' errors
// since the sync (scap's check sums its canaries and looks once after
// canary_wait_time).
func runWindow(judges []*Judge, rng *rand.Rand, bc benchCase) benchRun {
	f := &simFleet{rng: rng, counts: map[string]deployer.Counts{}}
	hosts := append(slices.Clone(benchCanaries), benchProduction...)
	rates := make([]float64, len(hosts))
	for i, h := range hosts {
		rates[i] = bc.base
		f.counts[h] = deployer.Counts{Requests: 1e6, Errors: 1e6 * bc.base}
	}
	// step advances every host by a second, in a fixed order so that a
	// seed always gives the same traffic (map order would not).
	step := func(at time.Time) deployer.Sample {
		s := deployer.Sample{Time: at, Hosts: make(map[string]deployer.Counts, len(hosts))}
		for i, h := range hosts {
			c := f.counts[h]
			n := f.poisson(bc.rps)
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
	for i := range bc.badCanaries {
		rates[i] = bc.bad // these canaries serve the change from now on
	}
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
	return fmt.Sprintf("%6s %5s %6.1f%%", secs(f.median), secs(f.p90), 100*float64(f.caught)/float64(f.of))
}

// atLeast reports whether a rule did at least as well as scap's on a row:
// it caught as large a share, with a median time no later.
func (f ruleFigures) atLeast(s ruleFigures) bool {
	return f.caught*s.of >= s.caught*f.of && f.median <= s.median
}

// benchTable runs every row and the unchanged trees for judges (named by
// names) and scap's rule, and returns the table's lines and, per judge,
// whether it was at least scap's on every row with a bad rate of 2% or
// more and its false failures per traffic level.
func benchTable(judges []*Judge, names []string) (lines []string, beats []bool, falseFail [][]int) {
	type group struct {
		title string
		cases []benchCase
	}
	var groups []group
	for _, g := range []struct {
		rps float64
		bad int
		who string
	}{{20, 2, "both canaries"}, {5, 2, "both canaries"}, {20, 1, "one canary only"}} {
		gr := group{title: fmt.Sprintf("%s, %g req/s per host, from 0.5%%", g.who, g.rps)}
		for _, bad := range []float64{0.015, 0.02, 0.03, 0.05, 0.30, 1.00} {
			gr.cases = append(gr.cases, benchCase{rps: g.rps, base: 0.005, bad: bad, badCanaries: g.bad})
		}
		if g.rps == 20 {
			gr.cases = append(gr.cases, benchCase{rps: g.rps, base: 0.02, bad: 0.06, badCanaries: g.bad})
		}
		groups = append(groups, gr)
	}
	head := "  error rate     "
	sub := "                 "
	for _, n := range names {
		head += fmt.Sprintf("%-24s", n)
		sub += "median   p90 caught     "
	}
	lines = append(lines, head+"scap (>= 10 errors in 20 s)", sub+"median   p90 caught")
	beats = make([]bool, len(judges))
	for i := range beats {
		beats[i] = true
	}
	seed := uint64(1000)
	for _, g := range groups {
		lines = append(lines, g.title+":")
		for _, bc := range g.cases {
			seed++
			jt := make([][]int, len(judges))
			var st []int
			for run := range benchRuns {
				// One seed per window, so every window is the same
				// whatever rules run on it and in whatever order.
				rng := rand.New(rand.NewPCG(seed, uint64(run)))
				r := runWindow(judges, rng, bc)
				for n := range judges {
					jt[n] = append(jt[n], r.judge[n])
				}
				st = append(st, r.scap)
			}
			sf := figures(st)
			row := fmt.Sprintf("  %4.1f%% -> %5.1f%% ", bc.base*100, bc.bad*100)
			late := false
			for n := range judges {
				f := figures(jt[n])
				mark := " "
				if bc.bad >= 0.02 && !f.atLeast(sf) {
					beats[n] = false
					mark = "*"
					late = late || f.median > sf.median
				}
				row += f.cells() + mark + "    "
			}
			lines = append(lines, row+sf.cells())
			if late && bc.badCanaries == 1 {
				lines = append(lines, oracleLine(bc, sf))
			}
		}
	}
	lines = append(lines, fmt.Sprintf("unchanged tree, %d windows each, false failures:", benchHealthy))
	falseFail = make([][]int, len(judges)+1)
	for k, bc := range []benchCase{{rps: 20, base: 0.005}, {rps: 5, base: 0.005}, {rps: 20, base: 0.02}, {rps: 10, base: 0.01}} {
		bc.bad = bc.base
		ff := make([]int, len(judges)+1)
		for run := range benchHealthy {
			rng := rand.New(rand.NewPCG(uint64(7+k), 0x6865616c746879+uint64(run)))
			r := runWindow(judges, rng, bc)
			for n, t := range r.judge {
				if t > 0 {
					ff[n]++
				}
			}
			if r.scap > 0 {
				ff[len(judges)]++
			}
		}
		row := fmt.Sprintf("  %4.1f%% at %2g req/s  ", bc.base*100, bc.rps)
		for n, c := range ff {
			falseFail[n] = append(falseFail[n], c)
			name := "scap"
			if n < len(names) {
				name = names[n]
			}
			row += fmt.Sprintf("%s %d (%.1f%%)   ", name, c, 100*float64(c)/benchHealthy)
		}
		lines = append(lines, strings.TrimRight(row, " "))
	}
	return lines, beats, falseFail
}

// BenchmarkCanaryRules prints, for the judge and scap's rule side by side
// on the same traffic, the time to a failing verdict (median and 90th
// percentile over 400 seeded runs per row, a run not failed counting as
// never) and the share caught within the 60 s window, when the canaries'
// error rate rises at the sync, and the false failures over 1,000 windows
// of an unchanged tree per traffic level. Rows marked * are rows of a
// fourfold rise or more where the judge did not catch at least scap's
// share with a median no later. Run it with `make bench-judge`. The
// figures are simulated seconds, the same on every machine; ns/op is the
// cost of the whole simulation.
func BenchmarkCanaryRules(b *testing.B) {
	judges := []*Judge{New(Config{})}
	names := []string{"judge (defaults)"}
	var lines []string
	var beats []bool
	var ff [][]int
	for b.Loop() {
		lines, beats, ff = benchTable(judges, names)
	}
	// Printed, not logged: the testing package cuts a benchmark's long
	// log short.
	fmt.Println(fmt.Sprintf("%d seeded runs per row; 2 canaries + 4 production hosts, Poisson traffic, readings every 1s, %ds window\n", benchRuns, benchWindow) +
		strings.Join(lines, "\n"))
	for n := range judges {
		b.ReportMetric(float64(slices.Max(ff[n]))/benchHealthy, "judge-false-fail-max")
		if beats[n] {
			b.ReportMetric(1, "judge-at-least-scap")
		} else {
			b.ReportMetric(0, "judge-at-least-scap")
		}
	}
}

// oracleLine says, for a row where one canary errs and the judge's median
// is later than scap's, what catching as many windows by scap's look would cost
// any test, even one that knew the baseline rate exactly and looked only
// once, at that moment: its false failures per healthy canary. The bad
// canary's errors by then are Poisson with mean rps x 20 s x bad rate (and
// a healthy one's with the baseline rate), so the best such test is the
// Neyman-Pearson one: fail on at least c errors, randomised at c to catch
// exactly scap's share.
func oracleLine(bc benchCase, scap ruleFigures) string {
	t := float64(benchScapWait)
	bad, healthy := bc.rps*t*bc.bad, bc.rps*t*bc.base
	target := float64(scap.caught) / float64(scap.of)
	// Largest c with P_bad(K >= c) >= target, then randomise at c - 1.
	c := 0
	for poissonTail(bad, c+1) >= target {
		c++
	}
	// P_bad(K >= c) >= target > P_bad(K >= c+1): fail at >= c+1 always and
	// at exactly c with probability g.
	above := poissonTail(bad, c+1)
	g := (target - above) / (poissonTail(bad, c) - above)
	size := poissonTail(healthy, c+1) + g*(poissonTail(healthy, c)-poissonTail(healthy, c+1))
	return fmt.Sprintf("      (to fail %.1f%% by %.0fs as scap's rule does, even a test that knew the baseline and looked once, then, fails %.2f%% of healthy canaries: %.2f%% of windows with %d)",
		100*target, t, 100*size, 100*(1-math.Pow(1-size, float64(len(benchCanaries)))), len(benchCanaries))
}

// poissonTail is P(K >= c) for K Poisson with mean m.
func poissonTail(m float64, c int) float64 {
	p, sum := math.Exp(-m), 0.0
	for k := range c {
		sum += p
		p *= m / float64(k+1)
	}
	return max(0, 1-sum)
}

// benchPolicies are the policies BenchmarkJudgePolicies compares: the
// default first.
var benchPolicies = []Config{
	{},
	{Alpha: 0.005},
	{Alpha: 0.02},
	{Factor: 1.5},
	{Factor: 1.15},
	{AbsDiff: 0.001},
	{FinalAlpha: -1},
	{FinalAlpha: 0.005},
}

// BenchmarkJudgePolicies prints the README's table of policy x effect:
// for each policy (alpha, factor, abs_diff, final_alpha), the median time to a failing
// verdict and the share caught within the window when both canaries rise
// from 0.5% at 20 requests/s, and the false failures over unchanged
// windows at two traffic levels, on the same seeded traffic for every
// policy. Run it with `make bench-judge`.
func BenchmarkJudgePolicies(b *testing.B) {
	judges := make([]*Judge, len(benchPolicies))
	for i, c := range benchPolicies {
		judges[i] = New(c)
	}
	effects := []float64{0.015, 0.02, 0.03}
	healthy := []benchCase{{rps: 20, base: 0.005, bad: 0.005}, {rps: 10, base: 0.01, bad: 0.01}}
	const healthyRuns = 2000
	var lines []string
	for b.Loop() {
		lines = lines[:0]
		ticks := make([][][]int, len(effects)) // effect, judge, run
		for e, bad := range effects {
			ticks[e] = make([][]int, len(judges))
			for run := range benchRuns {
				rng := rand.New(rand.NewPCG(uint64(2000+e), uint64(run)))
				r := runWindow(judges, rng, benchCase{rps: 20, base: 0.005, bad: bad, badCanaries: 2})
				for n, t := range r.judge {
					ticks[e][n] = append(ticks[e][n], t)
				}
			}
		}
		falses := make([][]int, len(healthy))
		for h, bc := range healthy {
			falses[h] = make([]int, len(judges))
			for run := range healthyRuns {
				rng := rand.New(rand.NewPCG(uint64(3000+h), uint64(run)))
				for n, t := range runWindow(judges, rng, bc).judge {
					if t > 0 {
						falses[h][n]++
					}
				}
			}
		}
		head := fmt.Sprintf("%-42s", "policy (alpha, factor, abs_diff, final)")
		for _, bad := range effects {
			head += fmt.Sprintf("  to %g%%: median caught", bad*100)
		}
		for _, bc := range healthy {
			head += fmt.Sprintf("  false, %g%% at %g req/s", bc.base*100, bc.rps)
		}
		lines = append(lines, head)
		for n, j := range judges {
			c := j.Config()
			final := fmt.Sprint(c.FinalAlpha)
			if c.FinalAlpha < 0 {
				final = "off"
			}
			name := fmt.Sprintf("%g, %g, %g, %s", c.Alpha, c.Factor, c.AbsDiff, final)
			if n == 0 {
				name += " (default)"
			}
			row := fmt.Sprintf("%-42s", name)
			for e, bad := range effects {
				f := figures(ticks[e][n])
				row += fmt.Sprintf("%*s %6.1f%%", len(fmt.Sprintf("  to %g%%: median", bad*100)), secs(f.median), 100*float64(f.caught)/float64(f.of))
			}
			for h, bc := range healthy {
				w := len(fmt.Sprintf("  false, %g%% at %g req/s", bc.base*100, bc.rps))
				row += fmt.Sprintf("%*s", w, fmt.Sprintf("%d (%.2f%%)", falses[h][n], 100*float64(falses[h][n])/healthyRuns))
			}
			lines = append(lines, row)
		}
	}
	fmt.Printf("both canaries from 0.5%% at 20 req/s, %d seeded runs per cell; false failures over %d unchanged windows per level; the same traffic for every policy\n%s\n",
		benchRuns, healthyRuns, strings.Join(lines, "\n"))
}
