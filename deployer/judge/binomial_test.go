package judge

import (
	"math"
	"testing"
)

// bruteTail sums the terms of the upper tail one by one from lgamma, the
// slow and obvious way, stopping only once past the mean and negligible.
func bruteTail(n, k int64, p float64) float64 {
	s := 0.0
	for i := max(k, 0); i <= n; i++ {
		term := math.Exp(logBinomialPMF(n, i, p))
		s += term
		if float64(i) > float64(n)*p && term < s*1e-25 {
			break
		}
	}
	return s
}

func TestBinomialTailKnownValues(t *testing.T) {
	for _, tc := range []struct {
		n, k int64
		p    float64
		want float64 // exact, from rational arithmetic
	}{
		{10, 0, 0.3, 1},
		{10, 11, 0.3, 0},
		{10, 1, 0, 0},
		{10, 10, 1, 1},
		{100, 5, 0.01, 0.003432321587754515},
		{20, 6, 0.015, 3.684617827769226e-07},
		{1200, 30, 0.015, 0.005589583981871319},
		{1000, 500, 0.5, 0.5126125090891804},
		{1000, 20, 0.01, 0.0032883597877274664},
		{200, 62, 0.02, 1.0762758169531737e-54},
		{10, 10, 0.5, 1.0 / 1024},
		{3, 1, 0.5, 7.0 / 8},
	} {
		got := math.Exp(logBinomialTail(tc.n, tc.k, tc.p))
		if math.Abs(got-tc.want) > 1e-12*math.Max(tc.want, 1e-300) && !(got == 0 && tc.want == 0) {
			t.Errorf("P(X >= %d | n=%d, p=%v) = %.16g, want %.16g", tc.k, tc.n, tc.p, got, tc.want)
		}
	}
}

func TestBinomialTailMatchesBruteForce(t *testing.T) {
	for _, n := range []int64{1, 2, 7, 50, 333, 2000} {
		for _, p := range []float64{1e-4, 0.005, 0.015, 0.2, 0.5, 0.93} {
			for k := int64(0); k <= n; k += max(1, n/37) {
				got, want := math.Exp(logBinomialTail(n, k, p)), bruteTail(n, k, p)
				if math.Abs(got-want) > 1e-10*want+1e-300 {
					t.Fatalf("n=%d k=%d p=%v: %.15g, brute force %.15g", n, k, p, got, want)
				}
			}
		}
	}
}

func TestBinomialTailLargeN(t *testing.T) {
	// A million requests, around a 1% threshold: the sum must stay exact
	// where a normal approximation would be off in the tail.
	const n = 1_000_000
	for _, k := range []int64{9000, 10000, 10300, 10500, 11000, 12000} {
		got, want := logBinomialTail(n, k, 0.01), math.Log(bruteTail(n, k, 0.01))
		if math.Abs(got-want) > 1e-8*math.Max(1, math.Abs(want)) {
			t.Errorf("k=%d: ln tail %.12g, brute force %.12g", k, got, want)
		}
	}
	// Far below the smallest float64 the logarithm still answers.
	l := logBinomialTail(n, 300000, 0.01)
	if !(l < -700*math.Ln10) || math.IsInf(l, -1) {
		t.Errorf("ln P(X >= 300000 | 1e6, 0.01) = %v, want a finite number below ln 1e-700", l)
	}
	// Monotone in k.
	prev := 0.0
	for k := int64(0); k <= 20000; k += 250 {
		l := logBinomialTail(n, k, 0.01)
		if l > prev+1e-12 {
			t.Fatalf("tail grows from k=%d to %d: %v > %v", k-250, k, l, prev)
		}
		prev = l
	}
}

func BenchmarkBinomialTailMillion(b *testing.B) {
	for b.Loop() {
		logBinomialTail(1_000_000, 10500, 0.01)
	}
}
