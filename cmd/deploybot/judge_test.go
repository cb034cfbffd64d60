package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/judge"
	"github.com/deploybot/deploybot/store"
)

// canaryVerdict plays a canary window as the runner does, one reading a
// second for 60 s: canary c1 at canaryRate errors, production p1..p4 at
// 0.5%, 20 requests/s each (errors spread evenly, so runs are exact). It
// returns the verdict the runner would store and the pre-sync reading.
func canaryVerdict(j *judge.Judge, canaryRate float64) (deployer.Verdict, *deployer.Sample) {
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	at := func(sec int, rates map[string]float64) deployer.Sample {
		s := deployer.Sample{Time: t0.Add(time.Duration(sec) * time.Second), Hosts: map[string]deployer.Counts{}}
		for h, r := range rates {
			req := 20 * float64(sec+100)
			s.Hosts[h] = deployer.Counts{Requests: 1e5 + req, Errors: 500 + float64(int(0.005*20*100+r*20*float64(sec)+1e-9))}
		}
		return s
	}
	before := at(-60, map[string]float64{"c1": 0.005})
	rates := map[string]float64{"c1": canaryRate, "p1": 0.005, "p2": 0.005, "p3": 0.005, "p4": 0.005}
	w := deployer.Window{Stage: deployer.Canaries, Judged: []string{"c1"}, Control: []string{"p1", "p2", "p3", "p4"}, Before: &before, Start: at(0, rates)}
	var v deployer.Verdict
	for i := 1; i <= 60; i++ {
		w.Samples = append(w.Samples, at(i, rates))
		w.Complete = i == 60
		v = j.Judge(w)
		if v.Outcome == deployer.Fail {
			break
		}
	}
	return v, &before
}

// replayFixture writes a configuration and a store holding three
// deployments: a 0.5% canary (passed), a 3% one (failed) and one that
// never reached the canaries.
func replayFixture(t *testing.T) (cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "deploybot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	j := judge.New(judge.Config{})
	for _, rate := range []float64{0.005, 0.03, -1} {
		id, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "console:alice", Refs: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if rate < 0 {
			continue
		}
		v, before := canaryVerdict(j, rate)
		if _, err := st.Update(id, func(d *deployer.Deployment) {
			d.Verdicts = append(d.Verdicts, v)
			d.Baseline = before
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "deploybot.yaml")
	cfg := `source: {git: {url: /nowhere}}
store: {path: deploybot.db}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

func TestJudgeReplayCommand(t *testing.T) {
	t.Parallel()
	cfg := replayFixture(t)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := realMain(append([]string{"judge", "replay", "--config", cfg}, args...), nil, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	// The configuration's thresholds (the defaults) reproduce every
	// stored outcome.
	code, out, errOut := run()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("want a header, 2 verdicts of 3 lines and a summary, got:\n%s", out)
	}
	if lines[0] != "judge: alpha 0.01, factor 1.3, abs_diff 0.002, min_requests 100, gross_rate 0.5, gross_min_requests 10, final_alpha 0.002" {
		t.Errorf("header %q", lines[0])
	}
	// Each verdict: the stored one and the replayed one side by side.
	if lines[1] != "#1 canaries [same]" || !strings.HasPrefix(lines[2], "  stored:   pass at look 60 (60s): no significant increase") ||
		!strings.HasPrefix(lines[3], "  replayed: pass at look 60 (60s): no significant increase") {
		t.Errorf("lines:\n%s", strings.Join(lines[1:4], "\n"))
	}
	if lines[4] != "#2 canaries [same]" || !strings.HasPrefix(lines[5], "  stored:   fail at look ") || !strings.Contains(lines[6], "replayed: fail at look ") ||
		!strings.Contains(lines[6], ": c1 error rate ") || lines[5][len("  stored:  "):] != lines[6][len("  replayed:"):] {
		t.Errorf("lines:\n%s", strings.Join(lines[4:7], "\n"))
	}
	if lines[7] != "replayed 2 verdict(s) of 2 deployment(s): 0 change" {
		t.Errorf("summary %q", lines[7])
	}

	// Looser thresholds: the 3% canary would not have failed by the
	// time the bot stopped reading.
	code, out, _ = run("--factor", "10", "--abs-diff", "0.05", "--id", "2", "--table")
	if code != 0 || !strings.Contains(out, "judge: alpha 0.01, factor 10, abs_diff 0.05,") ||
		!strings.Contains(out, "#2 canaries [CHANGED]\n  stored:   fail at look") || !strings.Contains(out, "\n  replayed: undecided at look") ||
		!strings.Contains(out, "replayed 1 verdict(s) of 1 deployment(s): 1 change (fail -> undecided 1)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "    host  requests  errors") || !strings.Contains(out, "    c1 ") {
		t.Errorf("--table printed no table:\n%s", out)
	}

	// Stricter ones catch the 0.5% canary too.
	code, out, _ = run("--alpha", "0.5", "--factor", "1", "--abs-diff", "0.0001", "--gross-rate", "0.004", "--gross-min-requests", "100")
	if code != 0 || !strings.Contains(out, "#1 canaries [CHANGED]\n  stored:   pass at look 60 (60s)") || !strings.Contains(out, "\n  replayed: fail at look") {
		t.Errorf("exit %d:\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--id", "3"}, 1, "deployment #3 has no stored verdicts (it is queued)"},
		{[]string{"--id", "9"}, 1, "no such deployment"},
		{[]string{"--alpha", "2"}, 2, "the judge's alpha must be between 0 and 1"},
		{[]string{"--store", filepath.Join(t.TempDir(), "nope.db")}, 1, "no store at "},
		{[]string{"extra"}, 2, `unexpected "extra"`},
	} {
		code, _, errOut := run(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 && tc.code == 1 {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}

	// A running bot holds the file: say so, and how to get around it.
	st, err := store.Open(filepath.Join(filepath.Dir(cfg), "deploybot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if code, _, errOut := run(); code != 1 || !strings.Contains(errOut, "is in use by a running bot; stop it, or copy the file and pass --store COPY") {
		t.Errorf("store in use: exit %d, %q", code, errOut)
	}

	var out2, errOut2 bytes.Buffer
	if code := realMain([]string{"judge"}, nil, &out2, &errOut2); code != 2 || !strings.Contains(errOut2.String(), "usage: deploybot judge replay") {
		t.Errorf("bare judge: exit %d, %s", code, errOut2.String())
	}
}
