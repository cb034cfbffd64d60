// Package judge decides whether the hosts that just received a change are
// failing: it reads request and error counters (Scrape: each host's
// Prometheus-format metrics page; Prometheus: PromQL over a Prometheus
// server's API) and compares every synced host's error rate with a baseline,
// sample by sample, with an exact binomial test and an effect-size floor
// (Judge). Table renders a verdict for chat; Replay re-judges the readings
// stored with past verdicts under other thresholds; Smoke runs the HTTP
// smoke checks a freshly synced stage must pass.
//
// What it replaces: scap's canary gate counts errors (>= 10 in 20 s) with no
// baseline and no traffic normalisation, so a quiet canary at 89% errors can
// pass. Here every judged host is tested on its own, against a rate derived
// from a baseline, so one bad host cannot hide behind healthy ones; a stage
// passes only on enough evidence, and anything else at the end of the window
// is inconclusive, never a silent pass.
package judge

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// Config tunes the judge. A zero field takes its default (DefaultConfig).
// README "Canary judgement" explains the method and shows what each
// setting trades on simulated traffic (make bench-judge).
type Config struct {
	// Window is how long a stage is watched. The runner keeps time and tells
	// the judge through deployer.Window.Complete. The sequential test does
	// not depend on it (its guarantee holds at any look); it is here so the
	// verdict can say how far the window has come. Default 60s.
	Window time.Duration

	// Alpha bounds the false alarms of the sequential test: a host whose
	// error rate is at the threshold, or below it, is failed in at most
	// Alpha of its windows, however often it is looked at and however long
	// it is watched. Every judged host is tested, and the stage's hosts
	// pooled once more, so a stage of h hosts all at the threshold fails
	// in at most (h+1) x Alpha of windows; a stage as good as its baseline,
	// far below the threshold, much more rarely (0 of 1,000 simulated
	// windows at the default: README). Default 0.01.
	Alpha float64

	// Factor and AbsDiff are the effect-size floor: a host fails only on
	// evidence that its error rate is above max(baseline*Factor,
	// baseline+AbsDiff), the threshold (threshold says how the baseline
	// is counted). Factor is the relative tolerance: a host may err 1.3
	// times as often as the baseline without having to be failed. AbsDiff
	// keeps the threshold meaningful at a near-zero baseline, where any
	// multiple of 0 is 0: a host must err at least once in 500 requests
	// more than the baseline. Defaults 1.3 and 0.002.
	Factor  float64
	AbsDiff float64

	// MinRequests is the traffic a host (and the baseline) needs before a
	// pass can be decided: at 100 requests a rate of 1.5% cannot be told
	// from 0%, so less than that is inconclusive. Default 100.
	MinRequests int

	// GrossRate and GrossMinRequests fail a host at once, whatever the
	// baseline, when at least GrossMinRequests requests have been seen and
	// the share of errors is at least GrossRate. This is what catches a
	// broken canary in the first second, even with a broken baseline.
	// Defaults 0.5 and 10.
	GrossRate        float64
	GrossMinRequests int

	// FinalAlpha is the end-of-window test's level: when the window is
	// complete, a host (and the hosts pooled) not failed by the sequential
	// test is tested once more, on all its traffic, with an exact binomial
	// test against the threshold, and fails at a p-value of FinalAlpha or
	// less. A host at the threshold is then failed in at most Alpha +
	// FinalAlpha of windows. Default 0.002; a negative value turns it off.
	FinalAlpha float64
}

// DefaultConfig returns the defaults documented on Config. It is the one
// home of these numbers: the configuration file's canary.judge keys and
// `deploybot judge replay` start from it.
func DefaultConfig() Config {
	return Config{
		Window:           60 * time.Second,
		Alpha:            0.01,
		Factor:           1.3,
		AbsDiff:          0.002,
		MinRequests:      100,
		GrossRate:        0.5,
		GrossMinRequests: 10,
		FinalAlpha:       0.002,
	}
}

// Validate reports settings that New would silently replace by defaults,
// for check-config. Zero fields are fine: they mean the default.
func (c Config) Validate() error {
	d := DefaultConfig()
	switch {
	case !finite(c.Alpha, c.Factor, c.AbsDiff, c.GrossRate, c.FinalAlpha):
		return deployer.Errorf(deployer.EInvalid, "the judge's alpha, factor, absolute difference, gross rate and final alpha must be numbers (not NaN or infinite)")
	case c.Window < 0:
		return deployer.Errorf(deployer.EInvalid, "the canary window must not be negative")
	case c.Alpha < 0 || c.Alpha >= 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's alpha must be between 0 and 1 (default %g)", d.Alpha)
	case c.Factor < 0 || c.Factor > 0 && c.Factor < 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's factor must be at least 1 (default %g)", d.Factor)
	case c.AbsDiff < 0 || c.AbsDiff >= 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's absolute difference must be between 0 and 1 (default %g)", d.AbsDiff)
	case c.MinRequests < 0 || c.GrossMinRequests < 0:
		return deployer.Errorf(deployer.EInvalid, "request minimums must not be negative")
	case c.GrossRate < 0 || c.GrossRate > 1:
		return deployer.Errorf(deployer.EInvalid, "the gross error rate must be between 0 and 1 (default %g)", d.GrossRate)
	case c.FinalAlpha >= 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's final alpha must be below 1, or negative to turn the end-of-window test off (default %g)", d.FinalAlpha)
	}
	return nil
}

// Judge is the sequential canary judge. It keeps no state between calls: a
// verdict depends only on the Window it is given, so a resumed deployment
// (or a replay from Verdict.Samples) is judged the same way.
type Judge struct {
	cfg Config
}

var _ deployer.Judge = (*Judge)(nil)

// New returns a judge with cfg, zero fields (and any that Validate rejects)
// replaced by their defaults.
func New(cfg Config) *Judge {
	d := DefaultConfig()
	// NaN passes every comparison below unchanged: a NaN alpha or an
	// infinite factor would never let the sequential test fail a canary.
	for _, f := range []struct{ v, def *float64 }{{&cfg.Alpha, &d.Alpha}, {&cfg.Factor, &d.Factor}, {&cfg.AbsDiff, &d.AbsDiff},
		{&cfg.GrossRate, &d.GrossRate}, {&cfg.FinalAlpha, &d.FinalAlpha}} {
		if !finite(*f.v) {
			*f.v = *f.def
		}
	}
	if cfg.Window <= 0 {
		cfg.Window = d.Window
	}
	if cfg.Alpha <= 0 || cfg.Alpha >= 1 {
		cfg.Alpha = d.Alpha
	}
	if cfg.Factor < 1 {
		cfg.Factor = d.Factor
	}
	if cfg.AbsDiff <= 0 || cfg.AbsDiff >= 1 {
		cfg.AbsDiff = d.AbsDiff
	}
	if cfg.MinRequests <= 0 {
		cfg.MinRequests = d.MinRequests
	}
	if cfg.GrossRate <= 0 || cfg.GrossRate > 1 {
		cfg.GrossRate = d.GrossRate
	}
	if cfg.GrossMinRequests <= 0 {
		cfg.GrossMinRequests = d.GrossMinRequests
	}
	if cfg.FinalAlpha == 0 || cfg.FinalAlpha >= 1 {
		cfg.FinalAlpha = d.FinalAlpha
	}
	return &Judge{cfg: cfg}
}

// Config returns the judge's configuration, defaults filled in.
func (j *Judge) Config() Config { return j.cfg }

// tally is one host's traffic over a span of samples.
type tally struct {
	requests, errors float64
	readings         int    // good readings seen, the first one included
	lastErr          string // why the latest reading failed; "" when it did not
}

// delta adds up a host's counter increases across readings, oldest first.
// Counters are cumulative, so the traffic between two readings is their
// difference; a counter that went down was reset (the process restarted) and
// counts from zero again, so the later reading is all new traffic, as
// Prometheus' increase() treats it. Every reading is visited, not just the
// first and last, so a reset in the middle loses nothing before it. A failed
// reading is skipped: the next good one covers its interval.
func delta(host string, readings ...[]deployer.Sample) tally {
	var t tally
	var prev deployer.Counts
	for _, list := range readings {
		for _, s := range list {
			c, ok := s.Hosts[host]
			switch {
			case !ok:
				t.lastErr = "not read"
				continue
			case c.Err != "":
				t.lastErr = c.Err
				continue
			}
			t.lastErr = ""
			if t.readings > 0 {
				if c.Requests < prev.Requests || c.Errors < prev.Errors {
					t.requests += c.Requests
					t.errors += c.Errors
				} else {
					t.requests += c.Requests - prev.Requests
					t.errors += c.Errors - prev.Errors
				}
			}
			prev = c
			t.readings++
		}
	}
	return t
}

// baseline pools the control hosts' traffic, from their reading before the
// sync (when Before has one) through the window, with the judged hosts' own
// traffic before the sync. Its Source names the hosts of each part and
// their requests, so a verdict says what it compared with.
func (j *Judge) baseline(w deployer.Window) (b deployer.Baseline, prior bool) {
	var parts []string
	if len(w.Control) > 0 {
		var used []string
		req := 0.0
		since := "during the window"
		for _, h := range w.Control {
			from := []deployer.Sample{w.Start}
			if c, ok := beforeOf(w, h); ok && c.Err == "" {
				// A control host serves the old code before and during
				// the window alike: all of it is baseline.
				from = []deployer.Sample{*w.Before, w.Start}
				since = "before and during the window"
			}
			t := delta(h, from, w.Samples)
			if t.readings < 2 {
				continue
			}
			used = append(used, h)
			req += t.requests
			b.Requests += t.requests
			b.Errors += t.errors
		}
		name := "unsynced hosts"
		if w.Stage == deployer.Canaries {
			name = "production"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s (%.0f requests)", name, hostList(used, len(w.Control)), since, req))
	}
	// The judged hosts the pre-sync reading asked about: the runner leaves
	// out those that served other code than the old since (a bisection
	// round's canaries served the failed batch).
	var asked []string
	if w.Before != nil {
		for _, h := range w.Judged {
			if _, ok := w.Before.Hosts[h]; ok {
				asked = append(asked, h)
			}
		}
	}
	if len(asked) > 0 {
		var used []string
		req := 0.0
		for _, h := range asked {
			before, ok1 := w.Before.Hosts[h]
			start, ok2 := w.Start.Hosts[h]
			// A counter lower at the start than before means the sync
			// restarted the process: what it counted since is the new code's
			// traffic, not a baseline, so that host is left out.
			if !ok1 || !ok2 || before.Err != "" || start.Err != "" ||
				start.Requests < before.Requests || start.Errors < before.Errors {
				continue
			}
			used = append(used, h)
			req += start.Requests - before.Requests
			b.Requests += start.Requests - before.Requests
			b.Errors += start.Errors - before.Errors
		}
		// The judged hosts are in the verdict's table: name them here only
		// when some were left out.
		who := "the " + string(w.Stage)
		if w.Stage == deployer.Production {
			who = "the production hosts"
		}
		if len(used) < len(w.Judged) {
			who = string(w.Stage) + " " + hostList(used, len(asked))
		}
		parts = append(parts, fmt.Sprintf("%s before the sync (%.0f requests)", who, req))
	}
	if b.Requests > 0 {
		b.Rate = min(b.Errors/b.Requests, 1)
	}
	b.Source = strings.Join(parts, " + ")
	if b.Requests < float64(j.cfg.MinRequests) {
		// Too little traffic to estimate a rate: assume the best case, 0%,
		// which makes the threshold AbsDiff, the strictest the judge uses.
		prior = true
		b.Rate = 0
		if b.Source == "" {
			b.Source = "none"
		}
		b.Source += fmt.Sprintf(": %.0f requests, fewer than %d, so 0%% errors is assumed", b.Requests, j.cfg.MinRequests)
	}
	return b, prior
}

// beforeOf is host's pre-sync reading in w, if w has one.
func beforeOf(w deployer.Window, host string) (deployer.Counts, bool) {
	if w.Before == nil {
		return deployer.Counts{}, false
	}
	c, ok := w.Before.Hosts[host]
	return c, ok
}

// threshold is the error rate a judged host is tested against:
// max(r*Factor, r+AbsDiff), where r is the baseline's rate counted high,
// or 0 when the baseline is too small to use. Counted high means with one
// error more than it saw and half a standard deviation more again:
// (errors + 1 + sqrt(errors+1)/2) / requests. A baseline that was lucky (3
// errors in 600 requests could as well have been 5) would otherwise set a
// threshold that healthy canaries exceed, and the sequential test's
// guarantee holds only at or below its threshold. The margin shrinks, as
// a share of the rate, as the baseline grows. Measured (make
// bench-judge): it halves the false failures at 10 requests a second and
// 1% errors, and costs a fourfold rise at 20 requests a second about a
// second.
func (j *Judge) threshold(b deployer.Baseline, prior bool) float64 {
	r := 0.0
	if !prior && b.Requests > 0 {
		e := b.Errors + 1
		r = min(1, (e+math.Sqrt(e)/2)/b.Requests)
	}
	return min(1, max(r*j.cfg.Factor, r+j.cfg.AbsDiff))
}

// hostList names the hosts that made part of a baseline, at most five,
// and how many of the expected ones they are: "mw1, mw2 (2 of 4 hosts)",
// "no hosts (0 of 4 read)".
func hostList(used []string, of int) string {
	if len(used) == 0 {
		return fmt.Sprintf("(none of %d read)", of)
	}
	names := used
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" and %d more", len(used)-5)
	}
	s := strings.Join(names, ", ") + more
	if len(used) < of {
		s += fmt.Sprintf(" (%d of %d read)", len(used), of)
	}
	return s
}

// hostCheck is one judged host's numbers (or the stage's pooled), kept
// while the verdict is built.
type hostCheck struct {
	deployer.HostResult
	n, k  float64 // whole requests and errors, as tested
	logE  float64 // ln of the sequential test's evidence (sequential.go)
	logP  float64 // ln of the end-of-window test's p-value, when it failed
	final bool    // failed by the end-of-window test
	gross bool
}

// Judge returns the stage's verdict on w. Every judged host is judged on
// its own traffic since w.Start, and, when there are several, all of them
// pooled (a change reaches every canary, and their traffic together is
// evidence sooner than each alone):
//   - a host fails when its error rate is at least GrossRate over at least
//     GrossMinRequests requests, or when the sequential test's evidence
//     that its rate is above the threshold, max(baseline*Factor,
//     baseline+AbsDiff), reaches 1/Alpha; the pooled hosts fail the same
//     way on the sequential test;
//   - otherwise, once the window is complete: a host passes with at least
//     MinRequests requests and a good latest reading, else is inconclusive.
//
// The stage fails when any host or the pool fails, at any look; it passes
// only when the window is complete and every host passes; it is pending
// while the window is open and nothing failed; and inconclusive otherwise.
func (j *Judge) Judge(w deployer.Window) deployer.Verdict {
	v := deployer.Verdict{
		Stage:   w.Stage,
		Start:   w.Start.Time,
		End:     w.Start.Time,
		Samples: append([]deployer.Sample{w.Start}, w.Samples...),
		// The rest of the window is kept too, so Replay can rebuild it.
		Control:  append([]string(nil), w.Control...),
		Before:   w.Before,
		Complete: w.Complete,
	}
	if len(w.Samples) > 0 {
		v.End = w.Samples[len(w.Samples)-1].Time
	}
	base, prior := j.baseline(w)
	v.Baseline = base
	thr := j.threshold(base, prior)
	baseText := fmt.Sprintf("baseline %s (%.0f/%.0f: %s)", pct(base.Rate), base.Errors, base.Requests, base.Source)
	if prior {
		baseText = fmt.Sprintf("an assumed baseline of 0%% (only %.0f baseline requests: %s)", base.Requests, base.Source)
	}

	checks := make([]hostCheck, 0, len(w.Judged))
	for _, h := range w.Judged {
		checks = append(checks, j.check(h, w, thr))
	}

	var failed, notPass []*hostCheck
	for i := range checks {
		c := &checks[i]
		v.Hosts = append(v.Hosts, c.HostResult)
		if c.Outcome == deployer.Fail {
			failed = append(failed, c)
		}
		if c.Outcome != deployer.Pass {
			notPass = append(notPass, c)
		}
	}
	pool, pooled := j.pool(w, checks, thr)
	elapsed := seconds(v.End.Sub(v.Start))

	switch {
	case len(w.Judged) == 0:
		v.Outcome = deployer.Inconclusive
		v.Reason = "there are no hosts to judge"
	case len(failed) > 0:
		v.Outcome = deployer.Fail
		worst := failed[0]
		for _, c := range failed[1:] {
			if c.gross && !worst.gross || c.gross == worst.gross && c.logE > worst.logE {
				worst = c
			}
		}
		v.Reason = fmt.Sprintf("%s error rate %s (%.0f/%.0f) vs %s", worst.Host, pct(worst.Rate), worst.k, worst.n, baseText)
		switch {
		case worst.gross:
			v.Reason += fmt.Sprintf(": at or above the %s%% gross-failure limit", trimFloat(j.cfg.GrossRate*100, 3))
		case worst.final:
			v.Reason += fmt.Sprintf(", threshold %s: %s", pct(thr), j.finalText(worst.logP))
		default:
			v.Reason += fmt.Sprintf(", threshold %s: %s", pct(thr), j.evidence(worst.logE))
		}
		if len(failed) > 1 {
			var others []string
			for _, c := range failed {
				if c != worst {
					others = append(others, c.Host)
				}
			}
			v.Reason += "; also failing: " + strings.Join(others, ", ")
		}
	case pooled && pool.Outcome == deployer.Fail:
		v.Outcome = deployer.Fail
		why := j.evidence(pool.logE)
		if pool.final {
			why = j.finalText(pool.logP)
		}
		v.Reason = fmt.Sprintf("%s error rate %s (%.0f/%.0f) vs %s, threshold %s: %s",
			pool.Host, pct(pool.Rate), pool.k, pool.n, baseText, pct(thr), why)
	case !w.Complete:
		v.Outcome = deployer.Pending
		v.Reason = fmt.Sprintf("no host failing after %s of %s; %s vs %s, threshold %s",
			elapsed, seconds(j.cfg.Window), highest(checks), baseText, pct(thr))
	case len(notPass) == 0:
		v.Outcome = deployer.Pass
		top := topHost(checks)
		v.Reason = fmt.Sprintf("no significant increase after %s: %s vs %s, threshold %s",
			elapsed, highest(checks), baseText, pct(thr))
		if top != nil && top.Rate > thr {
			// A rate above the threshold that still passes says why, so
			// nobody has to wonder whether the judge missed it.
			v.Reason += fmt.Sprintf("; %s is above the threshold but that is not significant over %.0f requests (%s)",
				top.Host, top.n, j.evidence(top.logE))
		}
	default:
		v.Outcome = deployer.Inconclusive
		var why []string
		for _, c := range notPass {
			why = append(why, c.Host+" "+c.Why)
		}
		v.Reason = fmt.Sprintf("not enough evidence to pass after %s: %s", elapsed, strings.Join(why, "; "))
	}
	return v
}

// pool tests the judged hosts' traffic together, when there are at least
// two hosts with data; ok is false otherwise. It can fail the stage but
// never pass it: each host still has to pass on its own.
func (j *Judge) pool(w deployer.Window, checks []hostCheck, thr float64) (c hostCheck, ok bool) {
	var names []string
	for _, h := range checks {
		if h.n > 0 {
			names = append(names, h.Host)
			c.n += h.n
			c.k += h.k
		}
	}
	if len(names) < 2 {
		return c, false
	}
	c.Host = fmt.Sprintf("the %s together (%s)", w.Stage, strings.Join(names, ", "))
	if len(names) > 5 {
		c.Host = fmt.Sprintf("the %s together (%d hosts)", w.Stage, len(names))
	}
	c.Rate = c.k / c.n
	c.logE = logEvidence(c.n, c.k, thr)
	c.Outcome = deployer.Pending
	if c.logE >= -math.Log(j.cfg.Alpha) || w.Complete && j.finalFail(&c, thr) {
		c.Outcome = deployer.Fail
	}
	return c, true
}

// finalFail applies the end-of-window test to c: one exact binomial test
// of its whole window's traffic against the threshold, failing at a
// p-value of FinalAlpha or less. It is asked once, when the window is
// complete, so unlike a test repeated at every look it needs no
// correction; it catches a host whose rate stayed above the threshold
// all window without the sequential evidence reaching 1/Alpha. It records
// the p-value in c when it fails.
func (j *Judge) finalFail(c *hostCheck, thr float64) bool {
	if j.cfg.FinalAlpha <= 0 || c.n <= 0 || c.k <= c.n*thr {
		return false
	}
	lp := logBinomialTail(int64(c.n), int64(c.k), thr)
	if lp > math.Log(j.cfg.FinalAlpha) {
		return false
	}
	c.logP, c.final = lp, true
	return true
}

// finalText says how the end-of-window test decided: "p = 0.003 over the
// whole window by an exact binomial test (fails at 0.005 or less)".
func (j *Judge) finalText(logP float64) string {
	return fmt.Sprintf("p = %s over the whole window by an exact binomial test (fails at %g or less)", pValue(logP), j.cfg.FinalAlpha)
}

// pValue writes a p-value from its logarithm: "0.003", "2e-05".
func pValue(logP float64) string {
	p := math.Exp(logP)
	if p >= 0.001 {
		return trimFloat(p, 2)
	}
	return fmt.Sprintf("%.0e", p)
}

// evidence says how strong the case is that a host is above the
// threshold, next to what failing takes: "evidence 340:1 (fails at 100:1)".
func (j *Judge) evidence(logE float64) string {
	return fmt.Sprintf("evidence %s (fails at %s)", odds(logE), odds(-math.Log(j.cfg.Alpha)))
}

// odds writes an evidence ratio from its logarithm: "340:1", "0.02:1",
// "1e+12:1".
func odds(logE float64) string {
	e := math.Exp(logE)
	switch {
	case e >= 1e5:
		return fmt.Sprintf("%.0e:1", e)
	case e >= 10:
		return fmt.Sprintf("%.0f:1", e)
	case e >= 0.01:
		return trimFloat(e, 2) + ":1"
	}
	return "under 0.01:1"
}

// seconds writes a duration as whole seconds, "60s", the way a window is
// spoken of in chat.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.0fs", d.Seconds())
}

// topHost is the host with the highest error rate among those with
// traffic, nil when none has any.
func topHost(checks []hostCheck) *hostCheck {
	var top *hostCheck
	for i := range checks {
		c := &checks[i]
		if c.n > 0 && (top == nil || c.Rate > top.Rate) {
			top = c
		}
	}
	return top
}

// highest describes the host with the highest error rate among those with
// traffic, e.g. "highest mw-canary2 0.6% (7/1200)".
func highest(checks []hostCheck) string {
	top := topHost(checks)
	if top == nil {
		return "no traffic yet"
	}
	return fmt.Sprintf("highest %s %s (%.0f/%.0f)", top.Host, pct(top.Rate), top.k, top.n)
}

// check judges one host.
func (j *Judge) check(host string, w deployer.Window, thr float64) hostCheck {
	t := delta(host, []deployer.Sample{w.Start}, w.Samples)
	n := math.Round(t.requests)
	k := min(math.Round(t.errors), n)
	c := hostCheck{n: n, k: k}
	c.Host = host
	c.Requests = t.requests
	c.Errors = t.errors
	c.Threshold = thr
	if n > 0 {
		c.Rate = k / n
	}
	c.logE = logEvidence(n, k, thr)
	c.gross = n >= float64(j.cfg.GrossMinRequests) && c.Rate >= j.cfg.GrossRate
	notYet := fmt.Sprintf("not significant over %.0f requests (%s)", n, j.evidence(c.logE))

	undecided := deployer.Pending
	if w.Complete {
		undecided = deployer.Inconclusive
	}
	switch {
	case t.readings < 2:
		// Not even two good readings: no traffic can be measured.
		c.Outcome = undecided
		c.Why = "has no data"
		if t.lastErr != "" {
			c.Why += " (" + t.lastErr + ")"
		}
	case c.gross:
		c.Outcome = deployer.Fail
		c.Why = fmt.Sprintf("%s errors over %.0f requests: at or above the %s%% gross-failure limit", pct(c.Rate), n, trimFloat(j.cfg.GrossRate*100, 3))
	case c.logE >= -math.Log(j.cfg.Alpha):
		c.Outcome = deployer.Fail
		c.Why = fmt.Sprintf("above threshold %s: %s", pct(thr), j.evidence(c.logE))
	case !w.Complete:
		c.Outcome = deployer.Pending
		c.Why = "no significant increase yet: " + notYet
		if t.lastErr != "" {
			c.Why += "; latest read failed (" + t.lastErr + ")"
		}
	case j.finalFail(&c, thr):
		c.Outcome = deployer.Fail
		c.Why = fmt.Sprintf("above threshold %s at the end of the window: %s", pct(thr), j.finalText(c.logP))
	case t.lastErr != "":
		// A host whose metrics stopped answering may have crashed: its
		// last good reading can fail it, never pass it.
		c.Outcome = deployer.Inconclusive
		c.Why = "latest read failed (" + t.lastErr + ")"
	case n < float64(j.cfg.MinRequests):
		c.Outcome = deployer.Inconclusive
		c.Why = fmt.Sprintf("had only %.0f requests (a pass needs %d)", n, j.cfg.MinRequests)
	case c.Rate > thr:
		c.Outcome = deployer.Pass
		c.Why = "above the threshold, but " + notYet
	default:
		c.Outcome = deployer.Pass
		c.Why = "no significant increase: " + notYet
	}
	return c
}

func trimFloat(x float64, digits int) string {
	return strings.TrimSuffix(fmt.Sprintf("%.*g", digits, x), ".")
}

// pct writes a rate as a percentage: one decimal ("31.0%", "0.5%"), two
// significant digits below 0.1% so a small baseline is not shown as 0.0%.
func pct(r float64) string {
	switch {
	case r == 0:
		return "0%"
	case r < 0.001:
		return trimFloat(r*100, 2) + "%"
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

// finite reports whether every value is a number other than ±Inf.
func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}
