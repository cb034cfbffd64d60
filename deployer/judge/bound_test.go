package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The bounds bench-judge prints under a late one-canary row.

func TestNeymanPearsonSize(t *testing.T) {
	// Poisson 2 against 8, failing half: always at 9 or more errors, at
	// exactly 8 with the probability that makes the power one half.
	pmf := func(m float64, k int) float64 { return math.Exp(poissonLogPMF(m, k)) }
	tail9 := func(m float64) float64 {
		s := 0.0
		for k := range 9 {
			s += pmf(m, k)
		}
		return 1 - s
	}
	g := (0.5 - tail9(8)) / pmf(8, 8)
	want := tail9(2) + g*pmf(2, 8)
	if got := neymanPearsonSize(2, 8, 0.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("neymanPearsonSize(2, 8, 0.5) = %g, want %g", got, want)
	}
}

// TestConditionalSize runs the conditional test whose size
// conditionalSize reports on generated counts: healthy canaries must fail
// at that rate, bad ones at the target power; and with a baseline so large
// that it is as good as known, the size must come down to the
// Neyman-Pearson one.
func TestConditionalSize(t *testing.T) {
	const c0, b, c1, target = 2.0, 44.0, 8.0, 0.5
	s := conditionalSize(c0, b, c1, target)
	np := neymanPearsonSize(c0, c1, target)
	if s <= np {
		t.Errorf("conditional size %g is not above the known-baseline size %g", s, np)
	}
	if big := conditionalSize(c0, 2000, c1, target); math.Abs(big-np)/np > 0.01 {
		t.Errorf("with a baseline of mean 2000 the conditional size is %g, want about %g", big, np)
	}
	// The test itself: given the total, fail above the level-s critical
	// value of Binomial(total, c0/(c0+b)), randomised at it.
	pi0 := c0 / (c0 + b)
	type critical struct {
		c int     // fail above c ...
		g float64 // ... and at c with probability g
	}
	crit := map[int]critical{}
	fails := func(rng *rand.Rand, k, total int) bool {
		cv, ok := crit[total]
		if !ok {
			p0 := binomialPMF(total, pi0)
			tail, c := 0.0, total
			for ; c >= 0 && tail+p0[c] <= s; c-- {
				tail += p0[c]
			}
			cv = critical{c: c, g: (s - tail) / p0[c]}
			crit[total] = cv
		}
		return k > cv.c || k == cv.c && rng.Float64() < cv.g
	}
	f := &simFleet{rng: rand.New(rand.NewPCG(1, 2))}
	const n = 400000
	healthy, bad := 0, 0
	for range n {
		k, kb := int(f.poisson(c0)), int(f.poisson(b))
		if fails(f.rng, k, k+kb) {
			healthy++
		}
		k = int(f.poisson(c1))
		if fails(f.rng, k, k+kb) {
			bad++
		}
	}
	// Binomial counts: allow four standard deviations.
	if want, sd := s*n, math.Sqrt(s*n); math.Abs(float64(healthy)-want) > 4*sd {
		t.Errorf("healthy canaries failed %d of %d times, want about %.0f", healthy, n, want)
	}
	if want, sd := target*n, math.Sqrt(n*target*(1-target)); math.Abs(float64(bad)-want) > 4*sd {
		t.Errorf("bad canaries failed %d of %d times, want about %.0f", bad, n, want)
	}
	t.Logf("size %.4f%% (known baseline %.4f%%); healthy failed %d, bad %d of %d", 100*s, 100*np, healthy, bad, n)
}
