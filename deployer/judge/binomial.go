package judge

import "math"

// logBinomialTail returns ln P(X >= k) for X ~ Binomial(n, p), exactly (no
// normal or Poisson approximation), and stays accurate for n in the millions
// and for tails far below the smallest float64 (the judge reports "p<1e-N"
// from the logarithm).
//
// How: the sum starts at the term nearest the mode and walks away from it,
// where terms only shrink, so it stops once a term no longer changes the sum
// (after a few dozen standard deviations at most: O(sqrt(n p (1-p))) terms,
// a few thousand for n = 10^6). Each term is the previous one times a ratio,
// so only the first needs lgamma. When k is at or below the mode the upper
// tail is at least about one half, and 1 - P(X <= k-1) loses nothing that
// matters; above the mode the upper tail is summed directly, keeping its full
// relative precision however small it is.
func logBinomialTail(n, k int64, p float64) float64 {
	switch {
	case k <= 0:
		return 0
	case k > n || p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return 0
	}
	mode := int64(math.Floor(float64(n+1) * p))
	if k >= mode {
		// Upward from k: pmf(i+1)/pmf(i) = (n-i)/(i+1) * p/(1-p) < 1.
		odds := p / (1 - p)
		sum, term := 1.0, 1.0
		for i := k; i < n; i++ {
			term *= float64(n-i) / float64(i+1) * odds
			sum += term
			if term < sum*1e-17 {
				break
			}
		}
		return logBinomialPMF(n, k, p) + math.Log(sum)
	}
	// Downward from k-1: pmf(i-1)/pmf(i) = i/(n-i+1) * (1-p)/p < 1.
	odds := (1 - p) / p
	sum, term := 1.0, 1.0
	for i := k - 1; i > 0; i-- {
		term *= float64(i) / float64(n-i+1) * odds
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	lower := math.Exp(logBinomialPMF(n, k-1, p)) * sum
	return math.Log1p(-min(lower, 1-1e-16))
}

// logBinomialPMF returns ln P(X = k) for X ~ Binomial(n, p), 0 < p < 1.
func logBinomialPMF(n, k int64, p float64) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
}
