package web

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// Step is one interval of a host's traffic between two good readings: its
// error rate over [From, To].
type Step struct {
	From, To         time.Time
	Requests, Errors float64
	Rate             float64
}

// Series is one host's (or the pooled control hosts') error rate over a
// verdict's window, interval by interval.
type Series struct {
	Host    string
	Control bool // the pooled production hosts that were not synced
	Outcome deployer.Outcome
	Steps   []Step
	// Requests and Errors add up the steps.
	Requests, Errors float64
	// Before is the host's own rate before the sync (nil when unknown).
	Before *Step
}

// steps computes a host's per-interval error rates from cumulative
// counters, the way Prometheus' increase() reads a counter
// (deployer.Counts.Increase). A reading that failed or lacks the host is skipped; the next
// good one covers its interval. Intervals without requests have no rate
// and are left out.
func steps(samples []deployer.Sample, hosts ...string) []Step {
	var out []Step
	prev := map[string]deployer.Counts{}
	var prevT time.Time
	havePrev := false
	for _, s := range samples {
		var st Step
		ok := true
		cur := map[string]deployer.Counts{}
		for _, h := range hosts {
			c, found := s.Hosts[h]
			if !found || c.Err != "" {
				ok = false
				break
			}
			cur[h] = c
		}
		if !ok {
			continue
		}
		if havePrev {
			for _, h := range hosts {
				r, e := cur[h].Increase(prev[h])
				st.Requests += r
				st.Errors += e
			}
			if st.Requests > 0 {
				st.From, st.To = prevT, s.Time
				st.Rate = min(st.Errors/st.Requests, 1)
				out = append(out, st)
			}
		}
		prev, prevT, havePrev = cur, s.Time, true
	}
	return out
}

// Chart is a verdict drawn as an SVG line chart: each judged host's error
// rate per interval, the production hosts' rate for comparison, the
// baseline and the threshold as horizontal lines, and vertical markers at
// the sync and at the verdict.
type Chart struct {
	Verdict   deployer.Verdict
	Series    []Series
	Baseline  float64
	Threshold float64
	Sync      time.Time // when the judged hosts were synced (zero: unknown)
	// RolledBack is set when this verdict rolled the deployment back.
	RolledBack bool
}

// NewChart prepares the chart of v; sync is when its hosts were synced
// (zero when unknown) and before, when not nil, the judged hosts' counters
// read earlier (Deployment.Baseline), which give each its own error rate
// before the sync.
func NewChart(v deployer.Verdict, sync time.Time, before *deployer.Sample) *Chart {
	c := &Chart{Verdict: v, Baseline: v.Baseline.Rate, Sync: sync, RolledBack: v.Outcome == deployer.Fail}
	judged := map[string]bool{}
	for _, h := range v.Hosts {
		judged[h.Host] = true
		c.Threshold = max(c.Threshold, h.Threshold)
		s := Series{Host: h.Host, Outcome: h.Outcome, Steps: steps(v.Samples, h.Host)}
		if before != nil && len(v.Samples) > 0 && before.Time.Before(v.Samples[0].Time) {
			if b := steps([]deployer.Sample{*before, v.Samples[0]}, h.Host); len(b) == 1 {
				s.Before = &b[0]
			}
		}
		s.total()
		c.Series = append(c.Series, s)
	}
	// The hosts read alongside but not judged are the control group: the
	// production hosts still on the old code. They are pooled into one
	// grey line, so a glance tells a broken change from a bad minute for
	// everyone.
	var control []string
	seen := map[string]bool{}
	for _, s := range v.Samples {
		for h := range s.Hosts {
			if !judged[h] && !seen[h] {
				seen[h] = true
				control = append(control, h)
			}
		}
	}
	slices.Sort(control)
	if len(control) > 0 {
		// Pool only hosts read in every sample; a host missing now and
		// then would make the pooled counter jump.
		var always []string
		for _, h := range control {
			in := true
			for _, s := range v.Samples {
				if c, ok := s.Hosts[h]; !ok || c.Err != "" {
					in = false
					break
				}
			}
			if in {
				always = append(always, h)
			}
		}
		if len(always) > 0 {
			s := Series{Host: strings.Join(always, ", "), Control: true, Steps: steps(v.Samples, always...)}
			s.total()
			c.Series = append(c.Series, s)
		}
	}
	return c
}

func (s *Series) total() {
	for _, st := range s.Steps {
		s.Requests += st.Requests
		s.Errors += st.Errors
	}
}

// Rate is the series' error rate over its whole window.
func (s *Series) Rate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return s.Errors / s.Requests
}

// Geometry of the drawing, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH = 900, 360
	padL, padR     = 58, 200
	padT, padB     = 34, 44
	plotH          = chartH - padT - padB
	beforeW        = 84 // the panel showing each canary before the sync
	beforeGap      = 12
	topInset       = 12
)

// hostColors are told apart by people with the common colour blindnesses
// (Okabe-Ito); the control group is grey, the threshold red.
var hostColors = []string{"#D55E00", "#0072B2", "#CC79A7", "#E69F00", "#009E73", "#56B4E9"}

// hasBefore reports whether any judged host has a pre-sync rate.
func (c *Chart) hasBefore() bool {
	for _, s := range c.Series {
		if s.Before != nil {
			return true
		}
	}
	return false
}

// SVG renders the chart. Each judged host is one thick line, its error
// rate since the sync (what the judge tests), over a faint step line of
// its rate in each interval between two readings. Every element a reader
// (or the browser test) looks for carries a class: series and steps (with
// data-host), control, before, baseline, threshold, marker sync, and
// marker verdict plus rollback, pass or inconclusive.
func (c *Chart) SVG() template.HTML {
	d := &drawing{c: c, layout: c.layout()}
	d.frame()
	if d.before {
		d.beforePanel()
	}
	d.timeAxis()
	d.levels()
	d.series()
	d.markers()
	d.b.WriteString(`</svg>`)
	return template.HTML(d.b.String())
}

// layout is where a chart's parts go: the time span drawn and the scale of
// both axes.
type layout struct {
	t0, t1 time.Time     // the time span drawn
	span   time.Duration // t1 - t0, never 0
	ref    time.Time     // what the time axis counts from: the sync, or t0
	// before: a panel left of the plot shows the hosts' rates before the
	// sync, and the plot starts further right.
	before       bool
	plotL, plotW int
	top          float64 // the rate at the top of the scale
	judgedN      int     // how many series are judged hosts (not control)
}

// layout fits the plot to everything it has to show: the window, the
// sync, every step, and the rates up to the threshold and the baseline.
func (c *Chart) layout() layout {
	l := layout{t0: c.Verdict.Start, t1: c.Verdict.End, before: c.hasBefore()}
	if !c.Sync.IsZero() && c.Sync.Before(l.t0) {
		l.t0 = c.Sync
	}
	for _, s := range c.Series {
		for _, st := range s.Steps {
			if st.From.Before(l.t0) {
				l.t0 = st.From
			}
			if st.To.After(l.t1) {
				l.t1 = st.To
			}
		}
	}
	l.span = l.t1.Sub(l.t0)
	if l.span <= 0 {
		l.span = time.Second
		l.t1 = l.t0.Add(l.span)
	}
	l.ref = l.t0 // the axis counts seconds from the sync, or from the window start
	if !c.Sync.IsZero() {
		l.ref = c.Sync
	}
	for _, s := range c.Series {
		if !s.Control {
			l.judgedN++
		}
	}
	l.plotL = padL
	if l.before {
		l.plotL += beforeW + beforeGap
	}
	l.plotW = chartW - padR - l.plotL
	top := c.Threshold
	for _, s := range c.Series {
		for _, st := range s.Steps {
			top = max(top, st.Rate)
		}
		if s.Before != nil {
			top = max(top, s.Before.Rate)
		}
	}
	l.top = niceCeil(max(top*1.15, c.Baseline*1.15, 0.01))
	return l
}

// x is where moment t is drawn.
func (l layout) x(t time.Time) float64 {
	return float64(l.plotL) + float64(t.Sub(l.t0))/float64(l.span)*float64(l.plotW)
}

// y is where rate r is drawn. The top of the scale sits a little below the
// frame, so that a host at 100% is not drawn over the frame's edge.
func (l layout) y(r float64) float64 { return padT + plotH - r/l.top*(plotH-topInset) }

// drawing writes a chart's SVG, part by part, as its layout says.
type drawing struct {
	layout
	c *Chart
	b strings.Builder
}

func (d *drawing) printf(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

// frame opens the SVG and draws the plot's frame, the horizontal grid and
// the rate axis.
func (d *drawing) frame() {
	c := d.c
	title := fmt.Sprintf("%s check: %s", c.Verdict.Stage, c.Verdict.Outcome)
	d.printf(`<svg class="canary-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" data-outcome="%s" font-family="system-ui, sans-serif">`,
		chartW, chartH, esc(title+": error rate per host over time, against the baseline and the threshold"), esc(string(c.Verdict.Outcome)))
	d.printf(`<rect class="plot" x="%d" y="%d" width="%d" height="%d" fill="#fff" stroke="#bbb"/>`, d.plotL, padT, d.plotW, plotH)
	for _, tick := range rateTicks(d.top) {
		yy := d.y(tick)
		d.printf(`<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e6e6e6"/>`, padL, d.plotL+d.plotW, yy, yy)
		d.printf(`<text class="tick" x="%d" y="%.1f" text-anchor="end" font-size="12" fill="#555">%s</text>`, padL-6, yy+4, pct(tick))
	}
	d.printf(`<text x="14" y="%d" font-size="12" fill="#333" transform="rotate(-90 14 %d)" text-anchor="middle">error rate</text>`, padT+plotH/2, padT+plotH/2)
}

// beforePanel draws each canary's own rate before the sync, over the time
// it was measured, in a panel of its own (that time may be minutes long).
func (d *drawing) beforePanel() {
	d.printf(`<rect class="before-panel" x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#bbb"/>`, padL, padT, beforeW, plotH)
	var dur time.Duration
	ci := 0
	for _, s := range d.c.Series {
		if s.Control {
			continue
		}
		color := hostColors[ci%len(hostColors)]
		ci++
		if s.Before == nil {
			continue
		}
		dur = max(dur, s.Before.To.Sub(s.Before.From))
		yy := d.y(s.Before.Rate)
		d.printf(`<line class="before" data-host="%s" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%d"><title>%s</title></line>`,
			esc(s.Host), padL+6, padL+beforeW-6, yy, yy, color, 3+2*(d.judgedN-ci),
			esc(fmt.Sprintf("%s before the sync: %s (%.0f of %.0f requests)", s.Host, pct(s.Before.Rate), s.Before.Errors, s.Before.Requests)))
	}
	d.printf(`<text class="tick" x="%d" y="%d" text-anchor="middle" font-size="12" fill="#555">before</text>`, padL+beforeW/2, padT+plotH+16)
	d.printf(`<text class="tick" x="%d" y="%d" text-anchor="middle" font-size="11" fill="#777">%s</text>`, padL+beforeW/2, padT+plotH+30, dur.Round(time.Second))
}

// timeAxis draws the time grid and axis: seconds since the sync (or since
// the window opened, when the sync's time is unknown).
func (d *drawing) timeAxis() {
	step := timeStep(d.span)
	first := d.ref.Add(time.Duration(math.Ceil(float64(d.t0.Sub(d.ref))/float64(step))) * step)
	for t := first; !t.After(d.t1); t = t.Add(step) {
		xx := d.x(t)
		d.printf(`<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#f0f0f0"/>`, xx, xx, padT, padT+plotH)
		d.printf(`<text class="tick" x="%.1f" y="%d" text-anchor="middle" font-size="12" fill="#555">%s</text>`, xx, padT+plotH+16, relSeconds(t.Sub(d.ref)))
	}
	axis := "seconds since the window opened"
	if !d.c.Sync.IsZero() {
		axis = "seconds since the sync"
	}
	d.printf(`<text x="%d" y="%d" font-size="12" fill="#333" text-anchor="middle">%s</text>`, d.plotL+d.plotW/2, chartH-6, axis)
}

// levels draws the baseline and the threshold across the plot, labelled at
// its right end; labels are kept apart when the two lines nearly coincide.
func (d *drawing) levels() {
	c := d.c
	yb, yt := d.y(c.Baseline), d.y(c.Threshold)
	lb, lt := yb+4, yt+4
	if lb-lt < 14 {
		mid := (lb + lt) / 2
		lt, lb = mid-7, mid+7
	}
	right := d.plotL + d.plotW
	d.printf(`<line class="baseline" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#2b7a3d" stroke-width="2"><title>%s</title></line>`,
		d.plotL, right, yb, yb, esc("baseline "+pct(c.Baseline)+": "+c.Verdict.Baseline.Source))
	d.printf(`<text class="baseline-label" x="%d" y="%.1f" font-size="12" fill="#2b7a3d">baseline %s</text>`, right+6, lb, pct(c.Baseline))
	d.printf(`<line class="threshold" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c0392b" stroke-width="2" stroke-dasharray="8 4"><title>%s</title></line>`,
		d.plotL, right, yt, yt, esc("threshold "+pct(c.Threshold)+": a host significantly above it fails"))
	d.printf(`<text class="threshold-label" x="%d" y="%.1f" font-size="12" fill="#c0392b">threshold %s</text>`, right+6, lt, pct(c.Threshold))
}

// series draws every series and its legend entry, right of the plot.
// Wider lines are drawn first, so that hosts on the same rate stay visible
// one inside the other.
func (d *drawing) series() {
	legendY := padT + 44
	ci := 0
	for _, s := range d.c.Series {
		color, label, note := "#888", "production", "not synced, "
		width := 2.0
		if !s.Control {
			color, label, note = hostColors[ci%len(hostColors)], s.Host, ""
			width = 3 + 2*float64(d.judgedN-1-ci)
			ci++
		}
		dash := d.line(s, label, color, width)
		// Legend, right of the plot.
		lx := d.plotL + d.plotW + 6
		d.printf(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="%.0f"%s/>`, lx, lx+20, legendY, legendY, color, min(width, 4), dash)
		d.printf(`<text class="legend" x="%d" y="%d" font-size="12" fill="#222">%s</text>`, lx+24, legendY+4, esc(label))
		d.printf(`<text class="legend" x="%d" y="%d" font-size="11" fill="#555">%s%s of %.0f%s</text>`, lx+24, legendY+18, note, pct(s.Rate()), s.Requests, outcomeNote(s))
		legendY += 38
	}
	d.printf(`<text class="legend-note" x="%d" y="%d" font-size="10.5" fill="#777">thick: since the sync</text>`, d.plotL+d.plotW+6, legendY)
	d.printf(`<text class="legend-note" x="%d" y="%d" font-size="10.5" fill="#777">faint: each reading</text>`, d.plotL+d.plotW+6, legendY+14)
}

// line draws one series: a judged host's faint per-interval steps and its
// thick cumulative rate, or the control group's dashed cumulative rate. It
// returns the dash attribute the legend repeats.
func (d *drawing) line(s Series, label, color string, width float64) (dash string) {
	var steps, cum []string
	var n, k float64
	for i, st := range s.Steps {
		steps = append(steps, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", d.x(st.From), d.y(st.Rate), d.x(st.To), d.y(st.Rate)))
		n, k = n+st.Requests, k+st.Errors
		if i == 0 {
			cum = append(cum, fmt.Sprintf("%.1f,%.1f", d.x(st.From), d.y(k/n)))
		}
		cum = append(cum, fmt.Sprintf("%.1f,%.1f", d.x(st.To), d.y(k/n)))
	}
	summary := fmt.Sprintf("%s: %s errors (%.0f of %.0f requests) since the sync", label, pct(s.Rate()), s.Errors, s.Requests)
	if s.Control {
		summary = fmt.Sprintf("production hosts not synced (%s): %s errors (%.0f of %.0f requests)", s.Host, pct(s.Rate()), s.Errors, s.Requests)
	} else if s.Outcome != "" {
		summary += ", " + string(s.Outcome)
	}
	class := "series"
	if s.Control {
		class, dash = "control", ` stroke-dasharray="5 4"`
	} else {
		d.printf(`<polyline class="steps" data-host="%s" points="%s" fill="none" stroke="%s" stroke-opacity="0.35" stroke-width="1.5"/>`,
			esc(s.Host), strings.Join(steps, " "), color)
	}
	d.printf(`<polyline class="%s" data-host="%s" data-rate="%.4f" points="%s" fill="none" stroke="%s" stroke-width="%.0f" stroke-linejoin="round"%s><title>%s</title></polyline>`,
		class, esc(s.Host), s.Rate(), strings.Join(cum, " "), color, width, dash, esc(summary))
	return dash
}

// markers draws the sync (when its time is known) and the verdict.
func (d *drawing) markers() {
	c := d.c
	if !c.Sync.IsZero() {
		xs := d.x(c.Sync)
		d.printf(`<line class="marker sync" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#333" stroke-width="1.5" stroke-dasharray="4 3"><title>%s</title></line>`,
			xs, xs, padT-6, padT+plotH, esc(fmt.Sprintf("%s synced at %s", c.Verdict.Stage, c.Sync.UTC().Format("15:04:05.0"))))
		d.printf(`<text class="marker-label" x="%.1f" y="%d" font-size="12" fill="#333" text-anchor="start">%s synced</text>`, xs+3, padT-10, esc(string(c.Verdict.Stage)))
	}
	vclass, vlabel, vcolor := "inconclusive", "inconclusive", "#b8860b"
	switch c.Verdict.Outcome {
	case deployer.Fail:
		vclass, vlabel, vcolor = "rollback", "failed: rolled back", "#c0392b"
	case deployer.Pass:
		vclass, vlabel, vcolor = "pass", "passed", "#2b7a3d"
	}
	xv := d.x(c.Verdict.End)
	d.printf(`<line class="marker verdict %s" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s" stroke-width="3"><title>%s</title></line>`,
		vclass, xv, xv, padT-6, padT+plotH, vcolor, esc(fmt.Sprintf("%s at %s: %s", vlabel, c.Verdict.End.UTC().Format("15:04:05.0"), c.Verdict.Reason)))
	d.printf(`<text class="marker-label verdict-label" x="%.1f" y="%d" font-size="13" font-weight="bold" fill="%s" text-anchor="end">%s</text>`, xv-4, padT-10, vcolor, vlabel)
}

func outcomeNote(s Series) string {
	if s.Control || s.Outcome == "" {
		return ""
	}
	return ", " + string(s.Outcome)
}

// esc escapes text for SVG content and attributes.
func esc(s string) string { return template.HTMLEscapeString(s) }

// niceCeil rounds a rate up to 1, 2, 2.5 or 5 times a power of ten, at
// most 100%.
func niceCeil(v float64) float64 {
	if v >= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return min(m*p, 1)
		}
	}
	return 1
}

// rateTicks returns evenly spaced rates from 0 to top (a niceCeil value):
// 4 intervals for a top of 2×10^k, 5 for 1, 2.5 and 5×10^k.
func rateTicks(top float64) []float64 {
	m := top / math.Pow(10, math.Floor(math.Log10(top)+1e-9))
	n := 5
	if math.Abs(m-2) < 1e-6 {
		n = 4
	}
	out := make([]float64, 0, n+1)
	for i := 0; i <= n; i++ {
		out = append(out, top*float64(i)/float64(n))
	}
	return out
}

// timeStep picks a tick spacing that gives at most about 8 ticks.
func timeStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
		15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute} {
		if span/s <= 8 {
			return s
		}
	}
	return 30 * time.Minute
}

func relSeconds(d time.Duration) string {
	s := d.Seconds()
	if math.Abs(s) < 1e-9 {
		return "0s"
	}
	v := fmt.Sprintf("%.1f", s)
	v = strings.TrimSuffix(v, ".0")
	if s > 0 {
		return "+" + v + "s"
	}
	return v + "s"
}

// pct writes a rate as a percentage with as many decimals as small rates
// need.
func pct(r float64) string {
	p := r * 100
	switch {
	case p == 0:
		return "0%"
	case p >= 10:
		return fmt.Sprintf("%.0f%%", p)
	case p >= 1:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", p), ".0") + "%"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", p), "0"), ".") + "%"
}
