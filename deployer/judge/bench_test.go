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
	// first is the first canary's errors and requests since the sync at
	// the last reading generated: over the whole window when some judge
	// did not fail it.
	first deployer.Counts
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
	last := w.Samples[len(w.Samples)-1].Hosts[benchCanaries[0]]
	r.first = deployer.Counts{Requests: last.Requests - w.Start.Hosts[benchCanaries[0]].Requests, Errors: last.Errors - w.Start.Hosts[benchCanaries[0]].Errors}
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
			missed := make([][]deployer.Counts, len(judges)) // the first canary's counts in the runs each judge did not fail
			var st []int
			for run := range benchRuns {
				// One seed per window, so every window is the same
				// whatever rules run on it and in whatever order.
				rng := rand.New(rand.NewPCG(seed, uint64(run)))
				r := runWindow(judges, rng, bc)
				for n := range judges {
					jt[n] = append(jt[n], r.judge[n])
					if r.judge[n] == 0 {
						missed[n] = append(missed[n], r.first)
					}
				}
				st = append(st, r.scap)
			}
			sf := figures(st)
			row := fmt.Sprintf("  %4.1f%% -> %5.1f%% ", bc.base*100, bc.bad*100)
			late, fewer := false, -1
			for n := range judges {
				f := figures(jt[n])
				mark := " "
				if bc.bad >= 0.02 && !f.atLeast(sf) {
					beats[n] = false
					mark = "*"
					late = late || f.median > sf.median
					if f.caught*sf.of < sf.caught*f.of && fewer < 0 {
						fewer = n
					}
				}
				row += f.cells() + mark + "    "
			}
			lines = append(lines, row+sf.cells())
			if late && bc.badCanaries == 1 {
				lines = append(lines, boundLine(bc, benchRuns))
			}
			if fewer >= 0 && bc.badCanaries == 1 {
				lines = append(lines, missedLine(bc, names[fewer], missed[fewer]))
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

// boundLine says, for a row where one canary errs and the judge's median
// is later than scap's, what a median no later than scap's look would cost
// any test. That median needs half the runs (by the nearest rank) failed
// by then, from the traffic seen by then. Two bounds, as false failures
// per healthy canary and per window of both canaries:
//   - a test that knew the baseline rate exactly and looked only then: the
//     Neyman-Pearson test on the bad canary's errors (Poisson with mean
//     rps x 20 s x bad rate, a healthy one's with the baseline rate),
//     randomised to fail exactly half;
//   - a test that holds whatever the common rate is, with the baseline the
//     judge has by then (the production hosts since the reading 60 s
//     before the sync, and the canaries over those 60 s): the conditional
//     binomial test of the canary's errors given its and the baseline's
//     together, the uniformly most powerful unbiased test of two Poisson
//     rates, randomised the same way.
func boundLine(bc benchCase, runs int) string {
	t := float64(benchScapWait)
	target := math.Ceil(0.5*float64(runs)) / float64(runs)
	nc := bc.rps * t
	nb := bc.rps * (float64(len(benchProduction))*(benchPreSync+t) + float64(len(benchCanaries))*benchPreSync)
	oracle := neymanPearsonSize(nc*bc.base, nc*bc.bad, target)
	unbiased := conditionalSize(nc*bc.base, nb*bc.base, nc*bc.bad, target)
	both := func(s float64) float64 { return 100 * (1 - math.Pow(1-s, float64(len(benchCanaries)))) }
	return fmt.Sprintf("      (a median of %.0fs is half the windows failed by %.0fs; a test that knew the baseline and looked once, then, fails %.3f%% of healthy canaries (%.2f%% of windows with %d); with the baseline measured as the judge has it by then (%.0f requests), the most powerful unbiased test fails %.3f%% (%.2f%% of windows) in that one look)",
		t, t, 100*oracle, both(oracle), len(benchCanaries), nb, 100*unbiased, both(unbiased))
}

// missedLine says, for a row where one canary errs and a judge caught a
// smaller share than scap's rule, what the bad canary served in the
// windows that judge did not fail (over the whole window, the highest
// error rate among them), and how often scap's rule fails an unchanged
// window at this baseline: its errors by its look are Poisson with mean
// canaries x rps x 20 s x base rate.
func missedLine(bc benchCase, name string, missed []deployer.Counts) string {
	worst := deployer.Counts{}
	for _, c := range missed {
		if c.Requests > 0 && (worst.Requests == 0 || c.Errors/c.Requests > worst.Errors/worst.Requests) {
			worst = c
		}
	}
	scapFalse := poissonTail(float64(len(benchCanaries))*bc.rps*benchScapWait*bc.base, benchScapLimit)
	return fmt.Sprintf("      (%s did not fail %d window(s): in them the canary changed to %.1f%% served at most %.1f%% (%.0f/%.0f) over the whole window, against %.1f%% before; at this baseline scap's rule fails %.1f%% of unchanged windows)",
		name, len(missed), 100*bc.bad, 100*worst.Errors/worst.Requests, worst.Errors, worst.Requests, 100*bc.base, 100*scapFalse)
}

// neymanPearsonSize is the size of the most powerful test of Poisson mean
// m0 against m1 > m0 whose power is target: fail on c errors or more,
// randomised at c.
func neymanPearsonSize(m0, m1, target float64) float64 {
	c := 0
	for poissonTail(m1, c+1) >= target {
		c++
	}
	// P1(K >= c) >= target > P1(K >= c+1): fail at >= c+1 always and at
	// exactly c with probability g.
	above := poissonTail(m1, c+1)
	g := (target - above) / (poissonTail(m1, c) - above)
	return poissonTail(m0, c+1) + g*(poissonTail(m0, c)-poissonTail(m0, c+1))
}

// conditionalSize is the size s of the conditional binomial test whose
// power is target: a canary's errors K (Poisson, mean c0 when healthy, c1
// when bad) against a baseline's B (Poisson, mean b), failing, given the
// total T = K + B, on K above the level-s critical value of
// Binomial(T, c0/(c0+b)) (randomised there, so every T has size exactly
// s). Its size is s whatever the common rate; its power grows with s,
// which bisection finds.
func conditionalSize(c0, b, c1, target float64) float64 {
	pi0, pi1 := c0/(c0+b), c1/(c1+b)
	mean := c1 + b
	lo, hi := max(0, int(mean-12*math.Sqrt(mean))), int(mean+12*math.Sqrt(mean))+1
	p0s, p1s := make([][]float64, hi+1), make([][]float64, hi+1)
	for total := lo; total <= hi; total++ {
		p0s[total], p1s[total] = binomialPMF(total, pi0), binomialPMF(total, pi1)
	}
	power := func(s float64) float64 {
		pw := 0.0
		for total := lo; total <= hi; total++ {
			p0, p1 := p0s[total], p1s[total]
			// Fail on K > c, and on K = c with probability g.
			tail, c := 0.0, total
			for ; c >= 0 && tail+p0[c] <= s; c-- {
				tail += p0[c]
			}
			r := 0.0
			for k := c + 1; k <= total; k++ {
				r += p1[k]
			}
			if c >= 0 {
				r += (s - tail) / p0[c] * p1[c]
			}
			pw += math.Exp(poissonLogPMF(mean, total)) * r
		}
		return pw
	}
	slo, shi := 1e-9, 0.5
	for range 60 {
		mid := math.Sqrt(slo * shi)
		if power(mid) >= target {
			shi = mid
		} else {
			slo = mid
		}
	}
	return shi
}

// binomialPMF returns P(K = k) for k = 0..n, K Binomial(n, p).
func binomialPMF(n int, p float64) []float64 {
	out := make([]float64, n+1)
	ln, _ := math.Lgamma(float64(n + 1))
	for k := range out {
		lk, _ := math.Lgamma(float64(k + 1))
		lnk, _ := math.Lgamma(float64(n - k + 1))
		out[k] = math.Exp(ln - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	return out
}

func poissonLogPMF(m float64, k int) float64 {
	lk, _ := math.Lgamma(float64(k + 1))
	return float64(k)*math.Log(m) - m - lk
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
