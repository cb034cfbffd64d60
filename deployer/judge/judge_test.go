package judge

import (
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

var t0 = time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)

// load is one host's synthetic traffic: rps requests a second, a share rate
// of them errors. Counters start from history (a long-running process) so
// that deltas, not raw values, are what the judge must use.
type load struct {
	rps, rate float64
	before    float64 // error rate before the sync (judged hosts); default 0.5%
}

// counts returns a host's cumulative counters after sec seconds: errors are
// spread evenly (floor of the running expectation), so tests are exact.
func (l load) counts(sec float64) deployer.Counts {
	const histReq, histErr = 1e6, 5e3
	req := l.rps * sec
	return deployer.Counts{Requests: histReq + req, Errors: histErr + math.Floor(l.rate*req+1e-9)}
}

// makeWindow builds a stage window: judged and control hosts, one sample a
// second for looks seconds, and pre-sync readings of the judged hosts taken
// 60 s before the start, at their own "before" error rate.
func makeWindow(judged, control map[string]load, looks int) deployer.Window {
	w := deployer.Window{Stage: deployer.Canaries}
	all := map[string]load{}
	for h, l := range judged {
		w.Judged = append(w.Judged, h)
		all[h] = l
	}
	for h, l := range control {
		w.Control = append(w.Control, h)
		all[h] = l
	}
	sortStrings(w.Judged)
	sortStrings(w.Control)
	before := deployer.Sample{Time: t0.Add(-60 * time.Second), Hosts: map[string]deployer.Counts{}}
	for h, l := range judged {
		pre := l.before
		if pre == 0 {
			pre = 0.005
		}
		c := l.counts(0)
		req := 60 * l.rps
		before.Hosts[h] = deployer.Counts{Requests: c.Requests - req, Errors: c.Errors - math.Floor(pre*req+1e-9)}
	}
	w.Before = &before
	for i := 0; i <= looks; i++ {
		s := deployer.Sample{Time: t0.Add(time.Duration(i) * time.Second), Hosts: map[string]deployer.Counts{}}
		for h, l := range all {
			s.Hosts[h] = l.counts(float64(i))
		}
		if i == 0 {
			w.Start = s
		} else {
			w.Samples = append(w.Samples, s)
		}
	}
	w.Complete = true
	return w
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// prod is four healthy production hosts at 20 req/s and 0.5% errors.
func prod() map[string]load {
	return map[string]load{
		"mw1": {20, 0.005, 0}, "mw2": {20, 0.005, 0}, "mw3": {20, 0.005, 0}, "mw4": {20, 0.005, 0},
	}
}

// replay judges w as the runner would: after every sample, the window
// complete only at the last one. It returns the look (1-based) at which the
// verdict first failed (0 if never) and the last verdict.
func replay(t *testing.T, j *Judge, w deployer.Window) (int, deployer.Verdict) {
	t.Helper()
	all := w.Samples
	var v deployer.Verdict
	for i := 1; i <= len(all); i++ {
		w.Samples = all[:i]
		w.Complete = i == len(all)
		v = j.Judge(w)
		if w.Complete && v.Outcome == deployer.Pending {
			t.Fatalf("look %d: Pending on a complete window", i)
		}
		if !w.Complete && v.Outcome == deployer.Pass {
			t.Fatalf("look %d: Pass before the window is complete", i)
		}
		if v.Outcome == deployer.Fail {
			return i, v
		}
	}
	return 0, v
}

func TestJudgeScenarios(t *testing.T) {
	tests := []struct {
		name    string
		judged  map[string]load
		control map[string]load
		looks   int
		want    deployer.Outcome
		// the fail must come at or before this look (fail cases), or the
		// verdict must never fail (others)
		failBy    int
		failAfter int // and after this look (0: any)
		reason    []string
	}{
		{
			name:   "healthy canaries pass at the end of the window",
			judged: map[string]load{"mw-canary1": {20, 0.005, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Pass,
			reason: []string{"no significant increase after 60s", "baseline 0.5% (36/7200: production mw1, mw2, mw3, mw4 during the window (4800 requests) + the canaries before the sync (2400 requests))", "threshold 0.8%"},
		},
		{
			name:   "every request failing fails at the first look",
			judged: map[string]load{"mw-canary1": {20, 1, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Fail, failBy: 1,
			reason: []string{"mw-canary1 error rate 100.0% (20/20)", "gross-failure limit"},
		},
		{
			name:   "30% errors fail within a few looks",
			judged: map[string]load{"mw-canary1": {20, 0.3, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Fail, failBy: 3,
			reason: []string{"mw-canary1 error rate 30.0% (6/20)", "threshold 0.8%: evidence 1e+06:1 (fails at 100:1)"},
		},
		{
			name:   "5% errors at 20 req/s fail well before the window ends",
			judged: map[string]load{"mw-canary1": {20, 0.05, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Fail, failBy: 30, failAfter: 3,
			reason: []string{"mw-canary1 error rate 5.0%", "threshold 0.7%"},
		},
		{
			name:   "89% errors on one quiet canary cannot hide behind a busy one",
			judged: map[string]load{"mw-canary1": {2, 0.89, 0}, "mw-canary2": {200, 0.005, 0}},
			looks:  60, want: deployer.Fail, failBy: 6,
			reason: []string{"mw-canary1 error rate"},
		},
		{
			name:   "a slight increase under the floor passes",
			judged: map[string]load{"mw-canary1": {20, 0.01, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Pass,
		},
		{
			name:   "too few requests is inconclusive",
			judged: map[string]load{"mw-canary1": {1, 0, 0}, "mw-canary2": {20, 0.005, 0}},
			looks:  60, want: deployer.Inconclusive,
			reason: []string{"mw-canary1 had only 60 requests (a pass needs 100)"},
		},
		{
			name:   "one bad canary among two fails the stage",
			judged: map[string]load{"mw-canary1": {20, 0.005, 0}, "mw-canary2": {20, 0.2, 0}},
			looks:  60, want: deployer.Fail, failBy: 5,
			reason: []string{"mw-canary2 error rate 20.0%"},
		},
		{
			name:   "both canaries bad: the stronger evidence is the reason, the other named",
			judged: map[string]load{"mw-canary1": {20, 0.6, 0}, "mw-canary2": {20, 0.9, 0}},
			looks:  60, want: deployer.Fail, failBy: 1,
			reason: []string{"mw-canary2 error rate 90.0%", "also failing: mw-canary1"},
		},
		{
			name:    "a 3% canary against a 3% production passes",
			judged:  map[string]load{"mw-canary1": {20, 0.03, 0.03}},
			control: map[string]load{"mw1": {20, 0.03, 0}, "mw2": {20, 0.03, 0}},
			looks:   60, want: deployer.Pass,
			reason: []string{"baseline 3.0%", "threshold 4.1%"},
		},
		{
			name:    "a 3% canary against a 0% production fails",
			judged:  map[string]load{"mw-canary1": {20, 0.03, 0.0000001}},
			control: map[string]load{"mw1": {20, 0, 0}, "mw2": {20, 0, 0}},
			looks:   60, want: deployer.Fail, failBy: 60,
			reason: []string{"baseline 0%", "threshold 0.3%"},
		},
	}
	j := New(Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			control := tc.control
			if control == nil {
				control = prod()
			}
			w := makeWindow(tc.judged, control, tc.looks)
			look, v := replay(t, j, w)
			if v.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s: %s", v.Outcome, tc.want, v.Reason)
			}
			if tc.want == deployer.Fail {
				if look > tc.failBy || look <= tc.failAfter {
					t.Errorf("failed at look %d, want in (%d, %d]", look, tc.failAfter, tc.failBy)
				}
			}
			for _, want := range tc.reason {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q lacks %q", v.Reason, want)
				}
			}
			if len(v.Hosts) != len(tc.judged) {
				t.Errorf("%d host results, want %d", len(v.Hosts), len(tc.judged))
			}
			t.Logf("look %d: %s", look, strings.Join(Table(v), "\n"))
		})
	}
}

func TestJudgeMissingDataIsNeverAPass(t *testing.T) {
	j := New(Config{})
	base := makeWindow(map[string]load{"mw-canary1": {20, 0.005, 0}, "mw-canary2": {20, 0.005, 0}}, prod(), 60)

	// mw-canary2 never answers: pending while the window is open,
	// inconclusive at its end, whatever the other host does.
	w := cloneWindow(base)
	for _, s := range append([]deployer.Sample{w.Start}, w.Samples...) {
		s.Hosts["mw-canary2"] = deployer.Counts{Err: "connection refused"}
	}
	look, v := replay(t, j, w)
	if look != 0 || v.Outcome != deployer.Inconclusive {
		t.Fatalf("got %s at look %d, want inconclusive: %s", v.Outcome, look, v.Reason)
	}
	if want := "mw-canary2 has no data (connection refused)"; !strings.Contains(v.Reason, want) {
		t.Errorf("reason %q lacks %q", v.Reason, want)
	}
	if h := v.Hosts[0]; h.Host != "mw-canary1" || h.Outcome != deployer.Pass {
		t.Errorf("mw-canary1: %+v, want pass", h)
	}

	// mw-canary2 is missing from every sample (not even an error).
	w = cloneWindow(base)
	for _, s := range append([]deployer.Sample{w.Start}, w.Samples...) {
		delete(s.Hosts, "mw-canary2")
	}
	if v := j.Judge(w); v.Outcome != deployer.Inconclusive || !strings.Contains(v.Reason, "mw-canary2 has no data (not read)") {
		t.Errorf("got %s: %s", v.Outcome, v.Reason)
	}

	// The source is down for everything: inconclusive, naming both hosts.
	w = cloneWindow(base)
	for _, s := range append([]deployer.Sample{w.Start}, w.Samples...) {
		for h := range s.Hosts {
			s.Hosts[h] = deployer.Counts{Err: "timed out after 2s"}
		}
	}
	w.Before = nil
	v = j.Judge(w)
	if v.Outcome != deployer.Inconclusive || !strings.Contains(v.Reason, "mw-canary1 has no data (timed out after 2s); mw-canary2 has no data") {
		t.Errorf("got %s: %s", v.Outcome, v.Reason)
	}

	// A host that answered at first and then stopped (it may have crashed)
	// cannot pass on its last good reading...
	w = cloneWindow(base)
	for _, s := range w.Samples[30:] {
		s.Hosts["mw-canary1"] = deployer.Counts{Err: "connection refused"}
	}
	v = j.Judge(w)
	if v.Outcome != deployer.Inconclusive || !strings.Contains(v.Reason, "mw-canary1 latest read failed (connection refused)") {
		t.Errorf("got %s: %s", v.Outcome, v.Reason)
	}
	if h := v.Hosts[0]; h.Requests != 600 {
		t.Errorf("mw-canary1 counted %v requests, want 600 (its last good reading)", h.Requests)
	}
	// ... but a failing read in between good ones costs nothing.
	w = cloneWindow(base)
	for _, s := range w.Samples[10:20] {
		s.Hosts["mw-canary1"] = deployer.Counts{Err: "timed out after 2s"}
	}
	if v := j.Judge(w); v.Outcome != deployer.Pass || v.Hosts[0].Requests != 1200 {
		t.Errorf("got %s with %v requests: %s", v.Outcome, v.Hosts[0].Requests, v.Reason)
	}

	// ... and its last good reading can still fail it.
	bad := makeWindow(map[string]load{"mw-canary1": {20, 0.3, 0}}, prod(), 60)
	for _, s := range bad.Samples[5:] {
		s.Hosts["mw-canary1"] = deployer.Counts{Err: "connection refused"}
	}
	if v := j.Judge(bad); v.Outcome != deployer.Fail {
		t.Errorf("got %s, want fail: %s", v.Outcome, v.Reason)
	}
}

func TestJudgeNoHosts(t *testing.T) {
	v := New(Config{}).Judge(deployer.Window{Stage: deployer.Canaries, Complete: false})
	if v.Outcome != deployer.Inconclusive {
		t.Errorf("got %s, want inconclusive", v.Outcome)
	}
}

func cloneWindow(w deployer.Window) deployer.Window {
	cp := func(s deployer.Sample) deployer.Sample {
		h := make(map[string]deployer.Counts, len(s.Hosts))
		for k, v := range s.Hosts {
			h[k] = v
		}
		return deployer.Sample{Time: s.Time, Hosts: h}
	}
	out := w
	out.Start = cp(w.Start)
	out.Samples = nil
	for _, s := range w.Samples {
		out.Samples = append(out.Samples, cp(s))
	}
	if w.Before != nil {
		b := cp(*w.Before)
		out.Before = &b
	}
	return out
}

// sample builds a sample at t0+sec from host -> {requests, errors}.
func sample(sec int, hosts map[string][2]float64) deployer.Sample {
	s := deployer.Sample{Time: t0.Add(time.Duration(sec) * time.Second), Hosts: map[string]deployer.Counts{}}
	for h, c := range hosts {
		s.Hosts[h] = deployer.Counts{Requests: c[0], Errors: c[1]}
	}
	return s
}

func TestDeltaCounterReset(t *testing.T) {
	// 100 -> 110 (+10), reset to 5 (+5: counted from zero), 15 (+10),
	// reset to 0 (+0), 7 (+7).
	reqs := []float64{100, 110, 5, 15, 0, 7}
	errs := []float64{10, 11, 1, 2, 0, 3}
	var ss []deployer.Sample
	for i := range reqs {
		ss = append(ss, sample(i, map[string][2]float64{"h": {reqs[i], errs[i]}}))
	}
	got := delta("h", ss[:1], ss[1:])
	if got.requests != 32 || got.errors != 1+1+1+0+3 || got.readings != 6 {
		t.Errorf("delta = %+v, want 32 requests, 6 errors, 6 readings", got)
	}
}

func TestJudgeCounterResetMidWindow(t *testing.T) {
	j := New(Config{})
	for _, tc := range []struct {
		name string
		rate float64
		want deployer.Outcome
	}{
		{"healthy", 0.005, deployer.Pass},
		{"bad", 0.1, deployer.Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := makeWindow(map[string]load{"mw-canary1": {20, tc.rate, 0}}, prod(), 60)
			// The process restarts after 30 s: from then on its counters
			// hold only what it served since.
			for i, s := range w.Samples {
				if sec := float64(i + 1); sec > 30 {
					req := 20 * (sec - 30)
					s.Hosts["mw-canary1"] = deployer.Counts{Requests: req, Errors: math.Floor(tc.rate*req + 1e-9)}
				}
			}
			v := j.Judge(w)
			if v.Outcome != tc.want {
				t.Fatalf("got %s, want %s: %s", v.Outcome, tc.want, v.Reason)
			}
			if h := v.Hosts[0]; h.Requests != 1200 {
				t.Errorf("counted %v requests, want 1200 across the reset", h.Requests)
			}
			if tc.want == deployer.Pass {
				if h := v.Hosts[0]; h.Errors != math.Floor(0.005*600+1e-9)*2 {
					t.Errorf("counted %v errors, want 6", h.Errors)
				}
			}
		})
	}
}

func TestBaselineFromControlAndBefore(t *testing.T) {
	j := New(Config{})
	w := deployer.Window{
		Stage:   deployer.Canaries,
		Judged:  []string{"c1", "c2"},
		Control: []string{"p1", "p2", "p3"},
		Before:  &deployer.Sample{Time: t0.Add(-time.Minute), Hosts: map[string]deployer.Counts{"c1": {Requests: 1000, Errors: 10}, "c2": {Requests: 500, Errors: 0}}},
		Start: sample(0, map[string][2]float64{
			"c1": {1600, 13}, "c2": {900, 2}, // +600/3 and +400/2 before the sync
			"p1": {5000, 50}, "p2": {7000, 70},
		}),
		Samples: []deployer.Sample{
			sample(30, map[string][2]float64{"c1": {1700, 13}, "c2": {1000, 2}, "p1": {6000, 52}, "p2": {7500, 71}}),
			sample(60, map[string][2]float64{"c1": {1800, 13}, "c2": {1100, 2}, "p1": {7000, 55}, "p2": {8000, 72}}),
		},
		Complete: true,
	}
	// p3 is never read, so it is left out and the source says so.
	v := j.Judge(w)
	b := v.Baseline
	// production: p1 +2000/5, p2 +1000/2; canaries before: +600/3, +400/2.
	if b.Requests != 4000 || b.Errors != 12 || math.Abs(b.Rate-0.003) > 1e-12 {
		t.Errorf("baseline %+v, want 12/4000 = 0.3%%", b)
	}
	if want := "production p1, p2 (2 of 3 read) during the window (3000 requests) + the canaries before the sync (1000 requests)"; b.Source != want {
		t.Errorf("source %q, want %q", b.Source, want)
	}
	// The threshold counts the baseline high, one error and half a
	// standard deviation more: (13 + sqrt(13)/2)/4000 + 0.2% (more than
	// 1.3 times that rate).
	if want := (13+math.Sqrt(13)/2)/4000 + 0.002; math.Abs(v.Hosts[0].Threshold-want) > 1e-12 {
		t.Errorf("threshold %v, want %v", v.Hosts[0].Threshold, want)
	}
	if v.Outcome != deployer.Pass {
		t.Errorf("got %s: %s", v.Outcome, v.Reason)
	}
	if !v.Start.Equal(t0) || !v.End.Equal(t0.Add(time.Minute)) || len(v.Samples) != 3 {
		t.Errorf("start %v end %v, %d samples stored; want the window's 3", v.Start, v.End, len(v.Samples))
	}

	// Control hosts read before the sync count from that reading: they
	// served the old code all along.
	wb := w
	wb.Before = &deployer.Sample{Time: w.Before.Time, Hosts: maps.Clone(w.Before.Hosts)}
	wb.Before.Hosts["p1"] = deployer.Counts{Requests: 4000, Errors: 40}
	if b := j.Judge(wb).Baseline; b.Requests != 5000 || b.Errors != 22 ||
		!strings.HasPrefix(b.Source, "production p1, p2 (2 of 3 read) before and during the window (4000 requests)") {
		t.Errorf("baseline %+v, want 22/5000 with p1 from its reading before the sync", b)
	}

	// A counter that went down across the sync (the sync restarted the
	// process) says nothing about the old code: that host is left out.
	w.Before.Hosts["c2"] = deployer.Counts{Requests: 5000, Errors: 0}
	b = j.Judge(w).Baseline
	if b.Requests != 3600 || b.Errors != 10 || !strings.Contains(b.Source, "canaries c1 (1 of 2 read) before the sync (600 requests)") {
		t.Errorf("baseline %+v, want 10/3600 from p1, p2 and c1", b)
	}

	// Without a baseline worth the name, 0% is assumed: the threshold is
	// AbsDiff, the strictest.
	w.Control, w.Before = nil, nil
	v = j.Judge(w)
	if v.Baseline.Rate != 0 || v.Hosts[0].Threshold != 0.002 ||
		!strings.Contains(v.Baseline.Source, "none: 0 requests, fewer than 100, so 0% errors is assumed") ||
		!strings.Contains(v.Reason, "an assumed baseline of 0%") {
		t.Errorf("baseline %+v, threshold %v, reason %q", v.Baseline, v.Hosts[0].Threshold, v.Reason)
	}
}

func TestConfigDefaults(t *testing.T) {
	if got, want := New(Config{}).Config(), DefaultConfig(); got != want {
		t.Errorf("New(Config{}).Config() = %+v, want %+v", got, want)
	}
	c := Config{Alpha: 0.001, Factor: 3, AbsDiff: 0.02, MinRequests: 50, GrossRate: 0.9, GrossMinRequests: 5, Window: time.Minute, FinalAlpha: 0.01}
	if got := New(c).Config(); got != c {
		t.Errorf("New(c).Config() = %+v, want %+v", got, c)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	for _, c := range []Config{{Alpha: 1}, {Alpha: -0.1}, {Factor: 0.5}, {AbsDiff: -1}, {GrossRate: 2}, {MinRequests: -1}, {Window: -time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestOddsAndPct(t *testing.T) {
	for _, tc := range []struct {
		logE float64
		want string
	}{
		{0, "1:1"},
		{math.Log(0.031), "0.031:1"},
		{math.Log(12.4), "12:1"},
		{math.Log(340), "340:1"},
		{math.Log(3e12), "3e+12:1"},
		{-20, "under 0.01:1"},
	} {
		if got := odds(tc.logE); got != tc.want {
			t.Errorf("odds(%v) = %q, want %q", tc.logE, got, tc.want)
		}
	}
	for _, tc := range []struct {
		r    float64
		want string
	}{{0, "0%"}, {0.005, "0.5%"}, {0.31, "31.0%"}, {1, "100.0%"}, {0.00042, "0.042%"}, {0.0005, "0.05%"}} {
		if got := pct(tc.r); got != tc.want {
			t.Errorf("pct(%v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// TestEndOfWindowTest: a canary above the threshold all window, whose
// sequential evidence never reaches 1/Alpha, is failed by the end-of-window
// test when the window completes, and says so; with that test turned off
// it passes, saying why.
func TestEndOfWindowTest(t *testing.T) {
	const looks, k = 60, 20 // c1: 20 errors in 1200 requests, 1.7%
	window := func(complete bool, upTo int) deployer.Window {
		w := deployer.Window{Stage: deployer.Canaries, Judged: []string{"c1"}, Control: []string{"p1", "p2"},
			Start: sample(0, map[string][2]float64{"c1": {0, 0}, "p1": {0, 0}, "p2": {0, 0}})}
		for i := 1; i <= upTo; i++ {
			// Errors spread evenly: c1 one every third second, p1 and p2
			// one every two seconds each over 100 requests a second.
			w.Samples = append(w.Samples, sample(i, map[string][2]float64{
				"c1": {float64(20 * i), float64(i * k / looks)},
				"p1": {float64(100 * i), float64(i / 2)}, "p2": {float64(100 * i), float64(i / 2)},
			}))
		}
		w.Complete = complete
		return w
	}
	j := New(Config{})
	for i := 1; i < looks; i++ {
		if v := j.Judge(window(false, i)); v.Outcome != deployer.Pending {
			t.Fatalf("look %d: %s: %s; want pending until the window completes", i, v.Outcome, v.Reason)
		}
	}
	v := j.Judge(window(true, looks))
	if v.Outcome != deployer.Fail || !strings.Contains(v.Reason, "c1 error rate 1.7% (20/1200)") ||
		!strings.Contains(v.Reason, "over the whole window by an exact binomial test (fails at 0.002 or less)") ||
		!strings.Contains(v.Hosts[0].Why, "at the end of the window") {
		t.Errorf("complete: %s: %s (%s); want a fail by the end-of-window test", v.Outcome, v.Reason, v.Hosts[0].Why)
	}
	if lp := logBinomialTail(1200, 20, v.Hosts[0].Threshold); lp > math.Log(0.002) {
		t.Errorf("p = %g over the window, yet it failed at 0.002", math.Exp(lp))
	}
	off := New(Config{FinalAlpha: -1})
	v = off.Judge(window(true, looks))
	if v.Outcome != deployer.Pass || !strings.Contains(v.Reason, "c1 is above the threshold but that is not significant over 1200 requests") {
		t.Errorf("end-of-window test off: %s: %s; want a pass that says why", v.Outcome, v.Reason)
	}
}
