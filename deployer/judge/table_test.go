package judge

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

func TestTable(t *testing.T) {
	v := deployer.Verdict{
		Stage:    deployer.Canaries,
		Outcome:  deployer.Fail,
		Reason:   "mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400), threshold 2.0%: p<1e-40",
		Baseline: deployer.Baseline{Requests: 2400, Errors: 12, Rate: 0.005, Source: "production (4 hosts) during the window"},
		Hosts: []deployer.HostResult{
			{Host: "mw-canary1", Requests: 200, Errors: 62, Rate: 0.31, Threshold: 0.02, Outcome: deployer.Fail, Why: "above threshold 2.0%, p<1e-40"},
			{Host: "mw-canary10", Requests: 12345, Errors: 3, Rate: 3.0 / 12345, Threshold: 0.02, Outcome: deployer.Pending, Why: "no significant increase yet, p=1"},
			{Host: "mw-c3", Outcome: deployer.Pending, Threshold: 0.02, Why: "has no data (connection refused)"},
		},
	}
	got := Table(v)
	want := []string{
		"canaries FAIL: mw-canary1 error rate 31.0% (62/200) vs baseline 0.5% (12/2400), threshold 2.0%: p<1e-40",
		"host         requests  errors    rate  baseline  threshold  decision",
		"mw-canary1        200      62   31.0%      0.5%       2.0%  fail: above threshold 2.0%, p<1e-40",
		"mw-canary10     12345       3  0.024%      0.5%       2.0%  pending: no significant increase yet, p=1",
		"mw-c3               0       0       -      0.5%       2.0%  pending: has no data (connection refused)",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\ngot  %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestTableAlignsColumns(t *testing.T) {
	w := makeWindow(map[string]load{"mw-canary1": {20, 0.3, 0}, "a": {2000, 0.005, 0}}, prod(), 5)
	lines := Table(New(Config{}).Judge(w))
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want reason, header and 2 hosts", len(lines))
	}
	// Right-aligned columns end where the header's names end.
	header := lines[1]
	for _, col := range []string{"requests", "errors", "rate", "baseline", "threshold"} {
		end := strings.Index(header, col) + len(col)
		for _, l := range lines[2:] {
			if l[end-1] == ' ' || l[end] != ' ' {
				t.Errorf("column %s does not end at %d in %q", col, end, l)
			}
		}
	}
	for _, l := range lines {
		if strings.ContainsAny(l, "|`*") || strings.HasSuffix(l, " ") {
			t.Errorf("line %q has markdown or trailing spaces", l)
		}
	}
}
