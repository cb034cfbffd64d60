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
type Config struct {
	// Window is how long a stage is watched. The runner keeps time and tells
	// the judge through deployer.Window.Complete; the value lives here because
	// Alpha is chosen for about one look per second over this window.
	// Default 60s.
	Window time.Duration

	// Alpha is the significance level of each look. The judge tests after
	// every sample, and repeated tests on accumulating data inflate false
	// failures: the chance that some look crosses is far more than one look's.
	// The looks are strongly correlated (each adds a second of traffic to what
	// came before), so the inflation is well under the Bonferroni bound of
	// 60 x Alpha. Measured with BenchmarkAlphaWorstCase (60 one-second looks,
	// 20 req/s, 0.5% baseline from 4 production hosts and the canaries' own
	// last minute), at 0.001 per look:
	//   - a host exactly at the threshold, the worst case a host may be in
	//     without having to fail, fails in 1.1% of windows (per host);
	//   - a host as good as the baseline, a genuinely false failure, in
	//     about 0.005% of two-canary windows (1 in 20,000).
	// At 0.01 per look these would be 6.4% and 0.26%. Smaller than 0.001
	// would only delay real failures: a canary at 5% already needs about 10 s
	// of traffic at 20 req/s to fail. Default 0.001.
	Alpha float64

	// Factor and AbsDiff are the effect-size floor: a host fails only on
	// evidence that its error rate exceeds max(baseline*Factor,
	// baseline+AbsDiff). Without a floor, a million requests would make a
	// harmless 0.50% -> 0.55% change "significant". Defaults 2.0 and 0.01
	// (twice the baseline, and at least one more error in a hundred).
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
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Window:           60 * time.Second,
		Alpha:            0.001,
		Factor:           2.0,
		AbsDiff:          0.01,
		MinRequests:      100,
		GrossRate:        0.5,
		GrossMinRequests: 10,
	}
}

// Validate reports settings that New would silently replace by defaults,
// for check-config. Zero fields are fine: they mean the default.
func (c Config) Validate() error {
	switch {
	case c.Window < 0:
		return deployer.Errorf(deployer.EInvalid, "the canary window must not be negative")
	case c.Alpha < 0 || c.Alpha >= 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's alpha must be between 0 and 1 (default 0.001)")
	case c.Factor < 0 || c.Factor > 0 && c.Factor < 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's factor must be at least 1 (default 2)")
	case c.AbsDiff < 0 || c.AbsDiff >= 1:
		return deployer.Errorf(deployer.EInvalid, "the judge's absolute difference must be between 0 and 1 (default 0.01)")
	case c.MinRequests < 0 || c.GrossMinRequests < 0:
		return deployer.Errorf(deployer.EInvalid, "request minimums must not be negative")
	case c.GrossRate < 0 || c.GrossRate > 1:
		return deployer.Errorf(deployer.EInvalid, "the gross error rate must be between 0 and 1 (default 0.5)")
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

// baseline pools the control hosts' traffic during the window with the
// judged hosts' own traffic before the sync.
func (j *Judge) baseline(w deployer.Window) (b deployer.Baseline, prior bool) {
	var parts []string
	ctl := 0
	for _, h := range w.Control {
		t := delta(h, []deployer.Sample{w.Start}, w.Samples)
		if t.readings < 2 {
			continue
		}
		ctl++
		b.Requests += t.requests
		b.Errors += t.errors
	}
	if len(w.Control) > 0 {
		name := "unsynced hosts"
		if w.Stage == deployer.Canaries {
			name = "production"
		}
		parts = append(parts, fmt.Sprintf("%s (%s) during the window", name, ofHosts(ctl, len(w.Control))))
	}
	if w.Before != nil && len(w.Judged) > 0 {
		own := 0
		for _, h := range w.Judged {
			before, ok1 := w.Before.Hosts[h]
			start, ok2 := w.Start.Hosts[h]
			// A counter lower at the start than before means the sync
			// restarted the process: what it counted since is the new code's
			// traffic, not a baseline, so that host is left out.
			if !ok1 || !ok2 || before.Err != "" || start.Err != "" ||
				start.Requests < before.Requests || start.Errors < before.Errors {
				continue
			}
			own++
			b.Requests += start.Requests - before.Requests
			b.Errors += start.Errors - before.Errors
		}
		parts = append(parts, fmt.Sprintf("%s before the sync (%s)", w.Stage, ofHosts(own, len(w.Judged))))
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

func ofHosts(n, of int) string {
	switch {
	case n == of && n == 1:
		return "1 host"
	case n == of:
		return fmt.Sprintf("%d hosts", n)
	}
	return fmt.Sprintf("%d of %d hosts", n, of)
}

// hostCheck is one judged host's numbers, kept while the verdict is built.
type hostCheck struct {
	deployer.HostResult
	n, k  float64 // whole requests and errors, as tested
	logP  float64 // ln P(X >= k | n, threshold)
	gross bool
}

// Judge returns the stage's verdict on w. Every judged host is judged on
// its own traffic since w.Start:
//   - fail when its error rate is at least GrossRate over at least
//     GrossMinRequests requests, or when P(X >= errors | requests, threshold)
//     < Alpha, threshold being max(baseline*Factor, baseline+AbsDiff);
//   - otherwise, once the window is complete: pass with at least MinRequests
//     requests and a good latest reading, else inconclusive.
//
// The stage fails when any host fails, at any look; it passes only when the
// window is complete and every host passes; it is pending while the window
// is open and nothing failed; and inconclusive otherwise.
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
	thr := min(1, max(base.Rate*j.cfg.Factor, base.Rate+j.cfg.AbsDiff))
	baseText := fmt.Sprintf("baseline %s (%.0f/%.0f)", pct(base.Rate), base.Errors, base.Requests)
	if prior {
		baseText = fmt.Sprintf("an assumed baseline of 0%% (only %.0f baseline requests)", base.Requests)
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
	elapsed := seconds(v.End.Sub(v.Start))

	switch {
	case len(w.Judged) == 0:
		v.Outcome = deployer.Inconclusive
		v.Reason = "there are no hosts to judge"
	case len(failed) > 0:
		v.Outcome = deployer.Fail
		worst := failed[0]
		for _, c := range failed[1:] {
			if c.logP < worst.logP {
				worst = c
			}
		}
		v.Reason = fmt.Sprintf("%s error rate %s (%.0f/%.0f) vs %s", worst.Host, pct(worst.Rate), worst.k, worst.n, baseText)
		if worst.gross {
			v.Reason += fmt.Sprintf(": at or above the %s%% gross-failure limit", trimFloat(j.cfg.GrossRate*100, 3))
		} else {
			v.Reason += fmt.Sprintf(", threshold %s: %s", pct(thr), pValue(worst.logP))
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
	case !w.Complete:
		v.Outcome = deployer.Pending
		v.Reason = fmt.Sprintf("no host failing after %s of %s; %s vs %s, threshold %s",
			elapsed, seconds(j.cfg.Window), highest(checks), baseText, pct(thr))
	case len(notPass) == 0:
		v.Outcome = deployer.Pass
		v.Reason = fmt.Sprintf("no significant increase after %s: %s vs %s, threshold %s",
			elapsed, highest(checks), baseText, pct(thr))
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

// seconds writes a duration as whole seconds, "60s", the way a window is
// spoken of in chat.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.0fs", d.Seconds())
}

// highest describes the host with the highest error rate among those with
// traffic, e.g. "highest mw-canary2 0.6% (7/1200)".
func highest(checks []hostCheck) string {
	var top *hostCheck
	for i := range checks {
		c := &checks[i]
		if c.n > 0 && (top == nil || c.Rate > top.Rate) {
			top = c
		}
	}
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
	c.logP = logBinomialTail(int64(n), int64(k), thr)
	c.gross = n >= float64(j.cfg.GrossMinRequests) && c.Rate >= j.cfg.GrossRate

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
	case c.logP < math.Log(j.cfg.Alpha):
		c.Outcome = deployer.Fail
		c.Why = fmt.Sprintf("above threshold %s, %s", pct(thr), pValue(c.logP))
	case !w.Complete:
		c.Outcome = deployer.Pending
		c.Why = "no significant increase yet, " + pValue(c.logP)
		if t.lastErr != "" {
			c.Why += "; latest read failed (" + t.lastErr + ")"
		}
	case t.lastErr != "":
		// A host whose metrics stopped answering may have crashed: its
		// last good reading can fail it, never pass it.
		c.Outcome = deployer.Inconclusive
		c.Why = "latest read failed (" + t.lastErr + ")"
	case n < float64(j.cfg.MinRequests):
		c.Outcome = deployer.Inconclusive
		c.Why = fmt.Sprintf("had only %.0f requests (a pass needs %d)", n, j.cfg.MinRequests)
	default:
		c.Outcome = deployer.Pass
		c.Why = "no significant increase, " + pValue(c.logP)
	}
	return c
}

// pValue writes a p-value for chat from its logarithm: "p=0.031", or
// "p<1e-40" below 1e-4, where digits say nothing more.
func pValue(logP float64) string {
	if math.IsInf(logP, -1) {
		return "p=0"
	}
	p := math.Exp(logP)
	if p >= 1e-4 {
		return "p=" + trimFloat(p, 2)
	}
	return fmt.Sprintf("p<1e-%d", int(math.Floor(-logP/math.Ln10)))
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
