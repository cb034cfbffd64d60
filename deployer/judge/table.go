package judge

import (
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// Table renders a verdict as plain-text lines for chat: the outcome and its
// reason, then a header and one aligned row per host with its requests,
// errors, error rate, the baseline rate, the threshold it was tested against
// and the decision. No markdown: IRC shows it as is, and adapters that have
// a monospace block can wrap the lines in one.
//
//	canaries FAIL: mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400: the canaries before the sync (2400 requests)), threshold 0.7%: evidence 1e+40:1 (fails at 100:1)
//	host        requests  errors   rate  baseline  threshold  decision
//	mw-canary1       200      62  31.0%      0.5%       0.7%  fail: above threshold 0.7%: evidence 1e+40:1 (fails at 100:1)
//	mw-canary2       210       1   0.5%      0.5%       0.7%  pending: no significant increase yet: not significant over 210 requests (evidence 0.13:1 (fails at 100:1))
func Table(v deployer.Verdict) []string {
	rows := [][]string{{"host", "requests", "errors", "rate", "baseline", "threshold", "decision"}}
	for _, h := range v.Hosts {
		rate := "-"
		if h.Requests > 0 {
			rate = pct(h.Rate)
		}
		decision := string(h.Outcome)
		if h.Why != "" {
			decision += ": " + h.Why
		}
		rows = append(rows, []string{
			h.Host,
			fmt.Sprintf("%.0f", h.Requests),
			fmt.Sprintf("%.0f", h.Errors),
			rate,
			pct(v.Baseline.Rate),
			pct(h.Threshold),
			decision,
		})
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	lines := []string{fmt.Sprintf("%s %s: %s", v.Stage, strings.ToUpper(string(v.Outcome)), v.Reason)}
	last := len(width) - 1
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			case i == last:
				b.WriteString("  " + cell) // the last column is not padded
			default:
				b.WriteString("  " + pad + cell) // numbers align right
			}
		}
		lines = append(lines, b.String())
	}
	return lines
}
