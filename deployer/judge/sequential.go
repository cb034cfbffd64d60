package judge

import "math"

// The sequential test. For one host (or the stage's hosts pooled) that has
// served n requests with k errors since its sync, and a threshold p0, the
// evidence that its error rate is above p0 is the mixture likelihood ratio
//
//	E(n, k) = sum_i w_i (p_i/p0)^k ((1-p_i)/(1-p0))^(n-k),  p_i = r_i p0,
//
// a mixture sequential probability ratio test (mSPRT) whose alternatives
// are error rates r_i times the threshold. Under any error rate at or below
// p0, each term, and so E, is a nonnegative supermartingale with E = 1 at
// the start (every request multiplies a term by a factor whose expectation
// is at most 1), so by Ville's inequality
//
//	P(E ever reaches 1/alpha) <= alpha
//
// however often it is looked at: after every reading, every second or
// every minute, with the window stretched or cut. That is what makes
// checking after every reading safe, where a fixed-sample test repeated
// at each look inflates its false alarms with the number of looks.
var mixRatios, mixWeights = mixture()

// mixture returns the alternatives r_i (1.5, 2, 3, 4, 6, 8, ... times the
// threshold) and their weights: the moderate effects (up to 8x), where
// evidence is scarce and the weight decides how soon they are caught, weigh
// four times as much as each gross one, which piles up evidence so fast
// that a small weight costs it a reading at most.
func mixture() (r, w []float64) {
	for x := 1.5; x < 2000; x *= 2 {
		r = append(r, x, x*4/3)
	}
	r = r[:len(r)-1]
	total := 0.0
	for _, x := range r {
		wt := 1.0
		if x > mixKnee {
			wt = mixTail
		}
		w = append(w, wt)
		total += wt
	}
	for i := range w {
		w[i] /= total
	}
	return r, w
}

// Beyond mixKnee times the threshold, an alternative weighs mixTail times
// as much as one below it.
const mixKnee, mixTail = 8.0, 0.25

// logEvidence returns ln E(n, k) for threshold p0 (see above). Alternatives
// at or above an error rate of 1 are left out and the weights of the rest
// are not renormalised, so E stays a supermartingale.
func logEvidence(n, k, p0 float64) float64 {
	if n <= 0 || p0 <= 0 || p0 >= 1 {
		return 0
	}
	k = min(k, n)
	best := math.Inf(-1)
	terms := make([]float64, 0, len(mixRatios))
	for i, r := range mixRatios {
		p := r * p0
		if p >= 1 {
			break
		}
		t := math.Log(mixWeights[i]) + k*math.Log(p/p0) + (n-k)*(math.Log1p(-p)-math.Log1p(-p0))
		terms = append(terms, t)
		best = max(best, t)
	}
	if len(terms) == 0 {
		return 0
	}
	sum := 0.0
	for _, t := range terms {
		sum += math.Exp(t - best)
	}
	return best + math.Log(sum)
}
