package gerrit_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
)

// deployedBad merges and "deploys" one change, returning the deployment
// that shipped it, as the runner records it, with a failing verdict.
func deployedBad(t *testing.T, e *env) (*deployer.Deployment, int) {
	t.Helper()
	prev, err := e.src.Baseline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := e.g.Upload("bob", "", map[string]string{"config.json": "{broken"}, "Enable the new search", "Bug: T42")
	p, err := e.prepare(prev, false, strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	d := &deployer.Deployment{ID: 12, PrevUpstream: prev, Upstream: p.Upstream, Changes: p.Changes,
		Verdicts: []deployer.Verdict{{Stage: deployer.Canaries, Outcome: deployer.Fail, Reason: "mw-canary1001 fails 48% of requests",
			Baseline: deployer.Baseline{Requests: 800, Errors: 4, Rate: 0.005, Source: "production hosts, same window"},
			Hosts: []deployer.HostResult{
				{Host: "mw-canary1001", Requests: 120, Errors: 58, Rate: 58.0 / 120, Threshold: 0.015, Outcome: deployer.Fail},
				{Host: "mw-canary1002", Requests: 118, Errors: 1, Rate: 1.0 / 118, Threshold: 0.015, Outcome: deployer.Pass},
			}}}}
	return d, n
}

func TestRevertUpstreamOpensOneRevertAndComments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	ctx := context.Background()
	d, n := deployedBad(t, e)
	bad := d.Upstream

	lines, reverts, err := e.src.RevertUpstream(ctx, d, "canary check failed: mw-canary1001 fails 48% of requests")
	if err != nil {
		t.Fatal(err)
	}
	rs := e.g.RevertsOf(n)
	if len(rs) != 1 {
		t.Fatalf("reverts of %d = %v, want one", n, rs)
	}
	r := rs[0]
	link := fmt.Sprintf("%s/c/app/+/%d", e.g.URL, r)
	if reverts[strconv.Itoa(n)] != link {
		t.Errorf("reverts = %v, want %s for change %d", reverts, link, n)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("opened revert change %d for change %d (Enable the new search): %s", r, n, link)) {
		t.Errorf("lines = %q", lines)
	}
	msg := e.g.CommitMessage(r)
	for _, want := range []string{`Revert "Enable the new search"`, "This reverts commit " + bad + ".",
		"Deployment #12 was rolled back: canary check failed", "mw-canary1001: 58 errors / 120 requests (48.3%), threshold 1.5%: fail",
		"baseline: 4 errors / 800 requests (0.5%)", "Bug: T42", "Change-Id: I"} {
		if !strings.Contains(msg, want) {
			t.Errorf("revert message lacks %q:\n%s", want, msg)
		}
	}
	comments := 0
	for _, m := range e.g.Messages(n) {
		if strings.Contains(m.Message, "deploybot rolled this change back in deployment #12") && strings.Contains(m.Message, link) {
			comments++
			if m.Tag == "" {
				t.Errorf("the rollback comment has no tag: %+v", m)
			}
		}
	}
	if comments != 1 {
		t.Errorf("%d rollback comments on change %d, want 1: %+v", comments, n, e.g.Messages(n))
	}

	// Again (a resumed rollback): the same revert, no second comment.
	lines2, reverts2, err := e.src.RevertUpstream(ctx, d, "canary check failed")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.g.RevertsOf(n); len(got) != 1 || reverts2[strconv.Itoa(n)] != link {
		t.Errorf("second call: reverts %v, map %v; want the first revert reused", got, reverts2)
	}
	if !strings.Contains(strings.Join(lines2, "\n"), "found revert change") {
		t.Errorf("second call lines = %q", lines2)
	}
	comments = 0
	for _, m := range e.g.Messages(n) {
		if strings.Contains(m.Message, "deployment #12") {
			comments++
		}
	}
	if comments != 1 {
		t.Errorf("%d rollback comments after a second call, want 1", comments)
	}
}

func TestStillShipsUntilTheRevertMerges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	ctx := context.Background()
	d, n := deployedBad(t, e)
	change := d.Changes[0]
	if _, _, err := e.src.RevertUpstream(ctx, d, "canary check failed"); err != nil {
		t.Fatal(err)
	}
	tip, err := e.src.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ships := func(upstream string) bool {
		t.Helper()
		ok, err := e.src.StillShips(ctx, upstream, change)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !ships(tip) {
		t.Fatal("the revert is not merged: the change still ships")
	}
	if ships(d.PrevUpstream) {
		t.Error("the commit before the change cannot ship it")
	}
	r := e.g.RevertsOf(n)[0]
	if err := e.g.Submit(r); err != nil {
		t.Fatal(err)
	}
	tip, _ = e.src.Baseline(ctx)
	if ships(tip) {
		t.Error("the revert merged: the change no longer ships")
	}
	// A later change on top still does not ship it.
	later := e.g.Upload("carol", "", map[string]string{"other": "1"}, "Later work")
	if err := e.g.Submit(later); err != nil {
		t.Fatal(err)
	}
	tip, _ = e.src.Baseline(ctx)
	if ships(tip) {
		t.Error("a later commit re-shipped the reverted change")
	}
}

// TestStillShipsSeesARewordedRevert: a person's revert whose message lost
// the "This reverts commit" line is found through Gerrit's revert_of.
func TestStillShipsSeesARewordedRevert(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	ctx := context.Background()
	d, n := deployedBad(t, e)
	r := e.g.Revert(n, "Turn the new search off again\n\nIt broke the config.")
	tip, _ := e.src.Baseline(ctx)
	if ok, err := e.src.StillShips(ctx, tip, d.Changes[0]); err != nil || !ok {
		t.Fatalf("before the revert merges: ships=%v err=%v, want true", ok, err)
	}
	if err := e.g.Submit(r); err != nil {
		t.Fatal(err)
	}
	tip, _ = e.src.Baseline(ctx)
	if ok, err := e.src.StillShips(ctx, tip, d.Changes[0]); err != nil || ok {
		t.Errorf("after the reworded revert merged: ships=%v err=%v, want false", ok, err)
	}
	// And RevertUpstream reuses that revert rather than opening another.
	_, reverts, err := e.src.RevertUpstream(ctx, d, "again")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.g.RevertsOf(n); len(got) != 1 || !strings.HasSuffix(reverts[strconv.Itoa(n)], "/"+strconv.Itoa(r)) {
		t.Errorf("reverts %v, map %v; want the person's revert %d reused", got, reverts, r)
	}
}

func TestRevertUpstreamNamesCommitsItCannotRevert(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	d, _ := deployedBad(t, e)
	stray := deployer.Change{ID: strings.Repeat("ab", 20), Commit: strings.Repeat("ab", 20), Subject: "Someone's direct push"}
	d.Changes = append([]deployer.Change{stray}, d.Changes...)
	lines, _, err := e.src.RevertUpstream(context.Background(), d, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "ababababab (Someone's direct push)") || !strings.Contains(last, "by hand") {
		t.Errorf("lines = %q", lines)
	}
}

var _ deployer.Reverter = (*gerrit.Source)(nil)
