package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// `judge replay` after a bisection replays every round the canaries were
// judged in, the rounds that passed as well as those that failed, each
// labelled with its round and in the order they were judged; with the
// bot's own thresholds each is the same as stored.
func TestJudgeReplayReplaysEveryBisectionRound(t *testing.T) {
	w := newBatchWorld(t, worldOptions{})
	d, _, _ := bisectBatch(t, w, kindGood, kindGood, kindGood, kindBad)
	if d.State != deployer.StateDone || d.Bisect == nil || len(d.Bisect.Rounds) != 2 {
		t.Fatalf("#%d ended %s with bisection %+v; want done after 2 rounds", d.ID, d.State, d.Bisect)
	}
	passed := 0
	for _, r := range d.Bisect.Rounds {
		if r.Outcome == deployer.Pass {
			passed++
		}
	}
	if passed == 0 {
		t.Fatalf("no round passed: %+v", d.Bisect.Rounds)
	}
	w.stop()
	var out, errOut bytes.Buffer
	code := realMain([]string{"judge", "replay", "--config", w.cfg, "--id", fmt.Sprint(d.ID)}, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	last := -1
	for _, r := range d.Bisect.Rounds {
		head := fmt.Sprintf("#%d bisection round %d (canaries) [same]\n  stored:   %s at look", d.ID, r.Round, r.Outcome)
		at := strings.Index(text, head)
		if at < 0 {
			t.Fatalf("round %d (%s) is not replayed as the same:\n%s", r.Round, r.Outcome, text)
		}
		if at < last {
			t.Fatalf("round %d is printed before the round before it:\n%s", r.Round, text)
		}
		last = at
	}
	if !strings.HasPrefix(text[strings.Index(text, "\n")+1:], fmt.Sprintf("#%d canaries [same]", d.ID)) {
		t.Fatalf("the batch's own canary verdict is not the first replayed:\n%s", text)
	}
	// Every round's verdict is among d.Verdicts; one that passed is
	// also kept with its round, and replayed once.
	want := fmt.Sprintf("replayed %d verdict(s) of 1 deployment(s): 0 change", len(d.Verdicts))
	if !strings.Contains(text, want) {
		t.Fatalf("want %q:\n%s", want, text)
	}
}
