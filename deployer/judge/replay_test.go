package judge

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// stored runs w through the judge as the runner does and returns the
// deployment as the store keeps it: the verdict the runner acted on, with
// its readings, after a JSON round trip (what bbolt holds).
func stored(t *testing.T, j *Judge, id int64, ws ...deployer.Window) *deployer.Deployment {
	t.Helper()
	d := &deployer.Deployment{ID: id}
	for _, w := range ws {
		_, v := replay(t, j, w)
		d.Verdicts = append(d.Verdicts, v)
		if w.Stage == deployer.Canaries {
			d.Baseline = w.Before
			start := w.Start
			d.WindowStart = &start
		}
	}
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back deployer.Deployment
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

func TestReplaySameConfigReproducesEveryVerdict(t *testing.T) {
	j := New(Config{})
	for _, tc := range []struct {
		name   string
		canary load
		want   deployer.Outcome
	}{
		{"healthy", load{20, 0.005, 0}, deployer.Pass},
		{"5% errors", load{20, 0.05, 0}, deployer.Fail},
		{"all errors", load{20, 1, 0}, deployer.Fail},
		{"too little traffic", load{1, 0, 0}, deployer.Inconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := makeWindow(map[string]load{"mw-canary1": tc.canary, "mw-canary2": {20, 0.005, 0}}, prod(), 60)
			d := stored(t, j, 7, w)
			rs := Replay(Config{}, d)
			if len(rs) != 1 {
				t.Fatalf("%d results, want 1", len(rs))
			}
			r, v := rs[0], d.Verdicts[0]
			if v.Outcome != tc.want {
				t.Fatalf("stored %s, want %s", v.Outcome, tc.want)
			}
			if r.Changed() || r.Replayed != v.Outcome || r.Look != r.StoredLook || r.Look != len(v.Samples)-1 {
				t.Errorf("replay %+v of a stored %s at look %d", r, v.Outcome, len(v.Samples)-1)
			}
			// The rebuilt window is the runner's: the verdict comes out
			// identical, numbers, reasons and stored readings included.
			if !reflect.DeepEqual(r.Verdict, v) {
				t.Errorf("replayed verdict differs:\n got %+v\nwant %+v", r.Verdict, v)
			}
			if r.Deployment != 7 || r.Stage != deployer.Canaries || r.At != time.Duration(r.Look)*time.Second {
				t.Errorf("result %+v", r)
			}
		})
	}
}

func TestReplayOtherThresholds(t *testing.T) {
	// A canary at 3% against 0.5% production fails under the defaults
	// (threshold 0.7%) ...
	w := makeWindow(map[string]load{"mw-canary1": {20, 0.03, 0}}, prod(), 60)
	d := stored(t, New(Config{}), 3, w)
	if v := d.Verdicts[0]; v.Outcome != deployer.Fail {
		t.Fatalf("stored %s: %s", v.Outcome, v.Reason)
	}
	// ... and with a threshold of 5.5% it does not, by the time the runner
	// stopped reading: the replay says it would have kept watching.
	loose := Config{Factor: 10, AbsDiff: 0.05}
	r := Replay(loose, d)[0]
	if r.Replayed != deployer.Pending || !r.Changed() || r.Look != r.StoredLook {
		t.Errorf("loose replay: %+v", r)
	}
	// Old and new side by side, each with its reason.
	if !strings.HasPrefix(r.String(), "#3 canaries [CHANGED]\n  stored:   fail at look ") || !strings.Contains(r.String(), "evidence") ||
		!strings.Contains(r.String(), "\n  replayed: undecided at look ") || !strings.Contains(r.String(), "no host failing after") {
		t.Errorf("line %q", r.String())
	}

	// A canary at 1.2% passes under the defaults; a team that wants
	// anything above 0.5% caught, on thin evidence, sees where it would
	// have tripped.
	w = makeWindow(map[string]load{"mw-canary1": {20, 0.012, 0}}, prod(), 60)
	d = stored(t, New(Config{}), 4, w)
	if v := d.Verdicts[0]; v.Outcome != deployer.Pass {
		t.Fatalf("stored %s: %s", v.Outcome, v.Reason)
	}
	strict := Config{Factor: 1.01, AbsDiff: 0.0001, Alpha: 0.5}
	r = Replay(strict, d)[0]
	if r.Replayed != deployer.Fail || r.Look < 5 || r.Look >= 60 || r.At != time.Duration(r.Look)*time.Second {
		t.Errorf("strict replay: %+v", r)
	}
	if !strings.Contains(r.Verdict.Reason, "mw-canary1 error rate") {
		t.Errorf("reason %q", r.Verdict.Reason)
	}
	// The same, look by look, as a judge configured that way would have
	// decided live.
	look, _ := replay(t, New(strict), w)
	if look != r.Look {
		t.Errorf("replay tripped at look %d, a live strict judge at %d", r.Look, look)
	}
}

func TestReplayVerdictsStoredWithoutWindowFields(t *testing.T) {
	w := makeWindow(map[string]load{"mw-canary1": {20, 0.05, 0}, "mw-canary2": {20, 0.005, 0}}, prod(), 60)
	d := stored(t, New(Config{}), 9, w)
	want := d.Verdicts[0]
	// What verdicts looked like before Control, Before and Complete were
	// stored: the deployment's Baseline and the hosts read stand in.
	d.Verdicts[0].Control, d.Verdicts[0].Before, d.Verdicts[0].Complete = nil, nil, false
	r := Replay(Config{}, d)[0]
	if r.Changed() || r.Look != len(want.Samples)-1 {
		t.Fatalf("legacy replay: %+v", r)
	}
	if r.Verdict.Reason != want.Reason || !reflect.DeepEqual(r.Verdict.Baseline, want.Baseline) || !reflect.DeepEqual(r.Verdict.Hosts, want.Hosts) {
		t.Errorf("legacy replay differs:\n got %s %+v\nwant %s %+v", r.Verdict.Reason, r.Verdict.Baseline, want.Reason, want.Baseline)
	}
}

func TestReplayProductionAndSummary(t *testing.T) {
	j := New(Config{})
	canary := makeWindow(map[string]load{"mw-canary1": {20, 0.005, 0}}, prod(), 60)
	// The production watch: the production hosts judged against their own
	// traffic before the sync, with no control hosts left.
	watch := makeWindow(map[string]load{"mw1": {20, 0.005, 0}, "mw2": {20, 0.005, 0}, "mw3": {20, 0.005, 0}, "mw4": {20, 0.005, 0}}, nil, 60)
	watch.Stage = deployer.Production
	d := stored(t, j, 5, canary, watch)
	if len(d.Verdicts) != 2 || d.Verdicts[1].Outcome != deployer.Pass {
		t.Fatalf("verdicts %+v", d.Verdicts)
	}
	empty := &deployer.Deployment{ID: 6, Verdicts: []deployer.Verdict{{Stage: deployer.Canaries, Outcome: deployer.Fail},
		{Stage: deployer.Canaries, Outcome: deployer.Fail, Reason: "smoke checks failed: mw-canary1 GET / answered 500, want 200"}}}
	rs := append(Replay(Config{}, d), Replay(Config{}, empty)...)
	rs = append(rs, Replay(Config{GrossRate: 0.001, GrossMinRequests: 1}, d)...)
	if want := "#6 canaries: stored fail; cannot replay: a smoke-check verdict has no readings to re-judge"; rs[3].String() != want {
		t.Errorf("smoke verdict: %q, want %q", rs[3].String(), want)
	}
	if rs[1].Stage != deployer.Production || rs[1].Changed() || !reflect.DeepEqual(rs[1].Verdict, d.Verdicts[1]) {
		t.Errorf("production replay: %+v", rs[1])
	}
	if rs[2].Err == "" || !strings.Contains(rs[2].String(), "cannot replay: no readings were stored with it") {
		t.Errorf("empty verdict: %q", rs[2].String())
	}
	got := ReplaySummary(rs)
	want := "replayed 4 verdict(s) of 2 deployment(s): 2 change (pass -> fail 2); 2 had no stored readings"
	if got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestJudgeProductionWatch(t *testing.T) {
	j := New(Config{})
	hosts := map[string]load{"mw1": {20, 0.005, 0}, "mw2": {20, 0.005, 0}, "mw3": {20, 0.005, 0}, "mw4": {20, 0.005, 0}}
	w := makeWindow(hosts, nil, 60)
	w.Stage = deployer.Production
	look, v := replay(t, j, w)
	if look != 0 || v.Outcome != deployer.Pass {
		t.Fatalf("healthy production: %s at look %d: %s", v.Outcome, look, v.Reason)
	}
	if want := "the production hosts before the sync (4800 requests)"; v.Baseline.Source != want {
		t.Errorf("baseline source %q, want %q", v.Baseline.Source, want)
	}
	if len(v.Hosts) != 4 || v.Baseline.Requests != 4*60*20 {
		t.Errorf("%d hosts, baseline %+v", len(v.Hosts), v.Baseline)
	}

	// One production host at 5% after the sync, the others as before.
	hosts["mw3"] = load{20, 0.05, 0}
	w = makeWindow(hosts, nil, 60)
	w.Stage = deployer.Production
	look, v = replay(t, j, w)
	if v.Outcome != deployer.Fail || look == 0 || look > 30 || !strings.HasPrefix(v.Reason, "mw3 error rate 5.0%") {
		t.Errorf("one bad production host: %s at look %d: %s", v.Outcome, look, v.Reason)
	}
	if !strings.HasPrefix(Table(v)[0], "production FAIL: mw3") {
		t.Errorf("table %q", Table(v)[0])
	}

	// Without readings from before the sync there is no baseline but the
	// assumed 0%, and the stage still cannot pass on missing data.
	w.Before = nil
	hosts["mw3"] = load{20, 0.005, 0}
	if v := j.Judge(w); !strings.Contains(v.Baseline.Source, "0% errors is assumed") {
		t.Errorf("no Before: baseline %+v", v.Baseline)
	}
}
