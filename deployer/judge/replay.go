package judge

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// ReplayResult compares one stored verdict with the verdict a judge with
// other (or the same) thresholds reaches on the very same readings.
type ReplayResult struct {
	Deployment int64
	Index      int // the verdict's index in Deployment.Verdicts
	Stage      deployer.Stage
	// Round is the bisection round the verdict judged (0: none).
	Round int

	// Stored is the outcome the runner acted on, decided at look
	// StoredLook (readings after the window's start, 1-based), StoredAt
	// after the start.
	Stored       deployer.Outcome
	StoredLook   int
	StoredAt     time.Duration
	StoredReason string

	// Replayed is the replaying judge's outcome; Look and At say at which
	// reading it was decided: where it tripped for a fail, else the last
	// stored reading. Pending means the stored readings end before the
	// window did (the stored verdict failed early) and the replaying judge
	// had not failed by then: it would have kept watching.
	Replayed deployer.Outcome
	Look     int
	At       time.Duration
	// Verdict is the replaying judge's verdict at Look.
	Verdict deployer.Verdict
	// Err says why the verdict could not be replayed (no readings stored).
	Err string
}

// Changed reports whether the replayed outcome differs from the stored one.
func (r ReplayResult) Changed() bool { return r.Err == "" && r.Replayed != r.Stored }

// String is the result as three lines, the stored verdict and the
// replayed one side by side, e.g.
//
//	#12 canaries [CHANGED]
//	  stored:   pass at look 60 (60s): no significant increase after 60s: ...
//	  replayed: fail at look 41 (41s): mw-canary1 error rate 2.1% (17/820) vs ...
func (r ReplayResult) String() string {
	head := fmt.Sprintf("#%d %s", r.Deployment, r.Stage)
	if r.Round > 0 {
		head = fmt.Sprintf("#%d bisection round %d (%s)", r.Deployment, r.Round, r.Stage)
	}
	if r.Err != "" {
		return fmt.Sprintf("%s: stored %s; cannot replay: %s", head, r.Stored, r.Err)
	}
	mark := "same"
	if r.Changed() {
		mark = "CHANGED"
	}
	at := fmt.Sprintf("at look %d (%s)", r.Look, seconds(r.At))
	if r.Replayed == deployer.Pending {
		at = fmt.Sprintf("at look %d (%s, where the stored readings end)", r.Look, seconds(r.At))
	}
	return fmt.Sprintf("%s [%s]\n  stored:   %s at look %d (%s): %s\n  replayed: %s %s: %s",
		head, mark, r.Stored, r.StoredLook, seconds(r.StoredAt), r.StoredReason, outcomeWord(r.Replayed), at, r.Verdict.Reason)
}

// outcomeWord names an outcome for a replay line: a replay that ran out of
// stored readings before deciding is "undecided", not "pending".
func outcomeWord(o deployer.Outcome) string {
	if o == deployer.Pending {
		return "undecided"
	}
	return string(o)
}

// Replay re-runs the judge, configured by cfg, over every verdict stored
// with d (and with each of its bisection rounds), look by look, exactly as the runner asked it: the same judged and
// control hosts, the same pre-sync readings (Before), the same start, the
// readings up to each look, and Complete only at the look the runner
// treated as the window's end.
//
// How the window is rebuilt: Verdict.Samples holds the window's start and
// every reading the runner took, and Verdict.Control, Before and Complete
// hold the rest of the Window. The runner stops at the first failing look,
// or at the first look after the window's end, so every stored look but
// the last was incomplete, and the last was complete when the stored
// outcome is pass or inconclusive (or Verdict.Complete says so). Canary
// verdicts stored before those fields existed fall back to d.Baseline as
// Before and to the hosts read but not judged as the control.
func Replay(cfg Config, d *deployer.Deployment) []ReplayResult {
	j := New(cfg)
	type timed struct {
		r     ReplayResult
		start time.Time
	}
	var all []timed
	var rounds []deployer.BisectRound
	if d.Bisect != nil {
		rounds = d.Bisect.Rounds
	}
	// Every round's verdict is among d.Verdicts (the runner stores each
	// verdict it reaches, passing, failing or inconclusive): the one whose
	// start is the round's is that round's.
	for i, v := range d.Verdicts {
		r := j.replay(d, i, v)
		for _, b := range rounds {
			if v.Stage == deployer.Canaries && b.Start.Equal(v.Start) {
				r.Round = b.Round
			}
		}
		all = append(all, timed{r, v.Start})
	}
	// In the order they were judged.
	sort.SliceStable(all, func(a, b int) bool { return all[a].start.Before(all[b].start) })
	out := make([]ReplayResult, 0, len(all))
	for _, t := range all {
		out = append(out, t.r)
	}
	return out
}

func (j *Judge) replay(d *deployer.Deployment, index int, v deployer.Verdict) ReplayResult {
	r := ReplayResult{Deployment: d.ID, Index: index, Stage: v.Stage, Stored: v.Outcome, StoredReason: v.Reason}
	if len(v.Samples) < 2 {
		r.Err = "no readings were stored with it"
		if strings.HasPrefix(v.Reason, "smoke checks failed") {
			r.Err = "a smoke-check verdict has no readings to re-judge"
		}
		return r
	}
	start, looks := v.Samples[0], v.Samples[1:]
	r.StoredLook = len(looks)
	r.StoredAt = looks[len(looks)-1].Time.Sub(start.Time)
	w := deployer.Window{Stage: v.Stage, Start: start, Control: v.Control, Before: v.Before}
	for _, h := range v.Hosts {
		w.Judged = append(w.Judged, h.Host)
	}
	if v.Stage == deployer.Canaries && w.Before == nil && w.Control == nil {
		// A verdict stored before Control and Before were: the runner
		// judged the canaries against every other host it read, with the
		// deployment's Baseline as their pre-sync reading. (The production
		// watch has no control hosts, and came with those fields.)
		w.Before = d.Baseline
		w.Control = unjudged(w.Judged, v.Samples)
	}
	lastComplete := v.Complete || v.Outcome == deployer.Pass || v.Outcome == deployer.Inconclusive
	for i := 1; i <= len(looks); i++ {
		w.Samples = looks[:i]
		w.Complete = i == len(looks) && lastComplete
		got := j.Judge(w)
		if got.Outcome == deployer.Fail || i == len(looks) {
			r.Replayed, r.Look, r.Verdict = got.Outcome, i, got
			r.At = looks[i-1].Time.Sub(start.Time)
			break
		}
	}
	return r
}

// unjudged lists, sorted, the hosts read in samples that are not judged:
// the control hosts of a verdict stored without its Control list (the
// runner reads judged and control hosts together).
func unjudged(judged []string, samples []deployer.Sample) []string {
	var out []string
	for _, s := range samples {
		for h := range s.Hosts {
			if !slices.Contains(judged, h) && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ReplaySummary is the closing line of a replay: how many verdicts were
// replayed and how many outcomes change, by kind, e.g. "replayed 12
// verdicts of 9 deployments: 2 change (fail -> pass 1, pass -> fail 1)".
func ReplaySummary(results []ReplayResult) string {
	deployments := map[int64]bool{}
	changes := map[string]int{}
	n, changed, skipped := 0, 0, 0
	for _, r := range results {
		deployments[r.Deployment] = true
		if r.Err != "" {
			skipped++
			continue
		}
		n++
		if r.Changed() {
			changed++
			changes[fmt.Sprintf("%s -> %s", r.Stored, outcomeWord(r.Replayed))]++
		}
	}
	s := fmt.Sprintf("replayed %d verdict(s) of %d deployment(s): %d change", n, len(deployments), changed)
	if changed > 0 {
		kinds := make([]string, 0, len(changes))
		for k := range changes {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for i, k := range kinds {
			kinds[i] = fmt.Sprintf("%s %d", k, changes[k])
		}
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	if skipped > 0 {
		s += fmt.Sprintf("; %d had no stored readings", skipped)
	}
	return s
}
