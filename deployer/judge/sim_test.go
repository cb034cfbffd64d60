package judge

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// simFleet generates cumulative counters for hosts with random traffic:
// Poisson requests at rps per second, each an error with probability rate.
type simFleet struct {
	rng    *rand.Rand
	counts map[string]deployer.Counts
}

func (f *simFleet) poisson(mean float64) float64 {
	// Knuth's method: fine for the small means a one-second step has.
	l, k, p := math.Exp(-mean), 0.0, 1.0
	for {
		p *= f.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// step advances every host by one second and returns the reading.
func (f *simFleet) step(at time.Time, rates map[string]float64, rps float64) deployer.Sample {
	s := deployer.Sample{Time: at, Hosts: make(map[string]deployer.Counts, len(rates))}
	for h, rate := range rates {
		c := f.counts[h]
		n := f.poisson(rps)
		c.Requests += n
		for range int(n) {
			if f.rng.Float64() < rate {
				c.Errors++
			}
		}
		f.counts[h] = c
		s.Hosts[h] = c
	}
	return s
}

// simulate runs windows of looks one-second samples: the canaries at
// canaryRate, 4 production hosts at 0.5%, 20 req/s each, 60 s of pre-sync
// traffic, and the judge asked after every sample. It returns how many
// windows failed, passed and were inconclusive.
func simulate(j *Judge, seed uint64, windows, looks, canaries int, canaryRate float64) (fail, pass, inconclusive int) {
	const rps, base = 20.0, 0.005
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	judged := []string{"mw-canary1", "mw-canary2", "mw-canary3"}[:canaries]
	control := []string{"mw1", "mw2", "mw3", "mw4"}
	for range windows {
		f := &simFleet{rng: rng, counts: map[string]deployer.Counts{}}
		old := map[string]float64{}
		for _, h := range append(judged, control...) {
			old[h] = base
			// A long-running process: counters do not start at zero.
			f.counts[h] = deployer.Counts{Requests: 1e6, Errors: 5e3}
		}
		// 60 s of traffic before the sync.
		for range 59 {
			f.step(t0, old, rps)
		}
		before := f.step(t0.Add(-time.Second), old, rps)
		w := deployer.Window{Stage: deployer.Canaries, Judged: judged, Control: control, Before: &before}
		w.Start = f.step(t0, old, rps)
		now := map[string]float64{}
		for h := range old {
			now[h] = base
		}
		for _, h := range judged {
			now[h] = canaryRate
		}
		var v deployer.Verdict
		for i := 1; i <= looks; i++ {
			w.Samples = append(w.Samples, f.step(t0.Add(time.Duration(i)*time.Second), now, rps))
			w.Complete = i == looks
			v = j.Judge(w)
			if v.Outcome == deployer.Fail {
				break
			}
		}
		switch v.Outcome {
		case deployer.Fail:
			fail++
		case deployer.Pass:
			pass++
		default:
			inconclusive++
		}
	}
	return fail, pass, inconclusive
}

// TestSequentialFalseFailures checks the false-failure rate of the judge as
// used: 60 looks a window, every one a test at Alpha.
func TestSequentialFalseFailures(t *testing.T) {
	j := New(Config{})
	start := time.Now()
	fail, pass, inc := simulate(j, 1, 500, 60, 2, 0.005)
	t.Logf("healthy canaries: %d failed, %d passed, %d inconclusive of 500 windows in %s", fail, pass, inc, time.Since(start))
	if fail > 5 {
		t.Errorf("%d of 500 healthy windows failed, want at most 1%%", fail)
	}
	if pass < 495 {
		t.Errorf("only %d of 500 healthy windows passed", pass)
	}
}

// TestSequentialPower checks that clearly bad canaries are caught in (nearly)
// every window, not just on average.
func TestSequentialPower(t *testing.T) {
	j := New(Config{})
	fail, pass, inc := simulate(j, 2, 200, 60, 2, 0.05)
	t.Logf("5%% canaries: %d failed, %d passed, %d inconclusive of 200 windows", fail, pass, inc)
	if fail < 198 {
		t.Errorf("only %d of 200 windows at 5%% errors failed", fail)
	}
}

// BenchmarkAlphaWorstCase checks Config.Alpha's guarantee: canaries at
// about the threshold (0.7% against a 0.5% baseline), which is the most a
// host may err without having to be failed, and healthy ones. It reports
// the share of windows failed for each, which must stay under Alpha per
// host (plus one Alpha for the pooled test):
//
//	JUDGE_WINDOWS=20000 [JUDGE_ALPHA=0.01] go test -run '^$' -bench AlphaWorstCase -benchtime 1x ./deployer/judge
func BenchmarkAlphaWorstCase(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("JUDGE_WINDOWS"))
	if n <= 0 {
		n = 2000
	}
	alpha, _ := strconv.ParseFloat(os.Getenv("JUDGE_ALPHA"), 64)
	for range b.N {
		for _, c := range []struct {
			canaries int
			rate     float64
			metric   string
		}{{1, 0.007, "%fail-1-at-threshold"}, {2, 0.007, "%fail-2-at-threshold"}, {2, 0.005, "%fail-2-healthy"}} {
			fail, pass, inc := simulate(New(Config{Alpha: alpha}), 3, n, 60, c.canaries, c.rate)
			b.ReportMetric(100*float64(fail)/float64(n), c.metric)
			b.Logf("%d canaries at %.1f%%: %d failed (%.2f%%), %d passed, %d inconclusive of %d windows",
				c.canaries, c.rate*100, fail, 100*float64(fail)/float64(n), pass, inc, n)
		}
	}
}
