package gitrepo

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// revertFixture is upstream main: c0 - c1 - c2, with c0 deployed before
// and c1, c2 deployed by deployment #7.
type revertFixture struct {
	u          *upstream
	s          *Reverter
	c0, c1, c2 plumbing.Hash
	d          *deployer.Deployment
}

func newRevertFixture(t *testing.T, push bool) *revertFixture {
	t.Helper()
	testparts.Need(t, "git", "git") // go-git fetches and pushes through git-upload-pack and git-receive-pack
	f := &revertFixture{u: newUpstream(t)}
	f.c0 = f.u.commit(tree{"index.php": reg("0"), "keep": reg("k")}, "Initial", "Alice")
	f.c1 = f.u.commit(tree{"index.php": reg("1"), "keep": reg("k")}, "First change", "Bob", f.c0)
	f.c2 = f.u.commit(tree{"index.php": reg("2"), "keep": reg("k"), "new": reg("n")}, "Second change", "Bob", f.c1)
	f.u.branch("main", f.c2)
	f.s = &Reverter{Repo: f.u.open(), Push: push}
	f.d = &deployer.Deployment{ID: 7, PrevUpstream: f.c0.String(), Upstream: f.c2.String(), Changes: []deployer.Change{
		{ID: f.c1.String(), Commit: f.c1.String(), Subject: "First change"},
		{ID: f.c2.String(), Commit: f.c2.String(), Subject: "Second change"},
	}}
	return f
}

func (f *revertFixture) tip(t *testing.T) plumbing.Hash {
	t.Helper()
	ref, err := f.u.repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hash()
}

func (f *revertFixture) stillShips(t *testing.T, upstream plumbing.Hash, c plumbing.Hash) bool {
	t.Helper()
	ok, err := f.s.StillShips(context.Background(), upstream.String(), deployer.Change{ID: c.String(), Commit: c.String()})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestRevertUpstreamPushesRevertsOfAStraightLine(t *testing.T) {
	t.Parallel()
	f := newRevertFixture(t, true)
	ctx := context.Background()
	if !f.stillShips(t, f.c2, f.c1) || !f.stillShips(t, f.c2, f.c2) {
		t.Fatal("before any revert, c1 and c2 must still ship")
	}
	if f.stillShips(t, f.c0, f.c1) {
		t.Fatal("c1 is not in c0's history, so deploying c0 cannot ship it")
	}

	lines, reverts, err := f.s.RevertUpstream(ctx, f.d, "canary check failed: mw-canary1001 at 40% errors")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "pushed") || !strings.Contains(lines[0], "Second change") {
		t.Fatalf("lines = %q, want one 'pushed' line per change, newest first", lines)
	}
	tip := f.tip(t)
	if reverts[f.c1.String()] != tip.String() {
		t.Errorf("the revert of c1 (%s) should be the new tip %s", reverts[f.c1.String()], tip)
	}
	// The upstream repository itself now ends in two reverts whose final
	// tree is c0's.
	top, err := object.GetCommit(f.u.repo.Storer, tip)
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := object.GetCommit(f.u.repo.Storer, f.c0)
	if top.TreeHash != c0.TreeHash {
		t.Errorf("after both reverts the tree is %s, want c0's %s", top.TreeHash, c0.TreeHash)
	}
	for _, want := range []string{`Revert "First change"`, "This reverts commit " + f.c1.String() + ".", "Reason: canary check failed: mw-canary1001 at 40% errors", "deployment #7"} {
		if !strings.Contains(top.Message, want) {
			t.Errorf("revert message %q lacks %q", top.Message, want)
		}
	}
	mid, _ := object.GetCommit(f.u.repo.Storer, top.ParentHashes[0])
	if reverts[f.c2.String()] != mid.Hash.String() || mid.ParentHashes[0] != f.c2 {
		t.Errorf("the revert of c2 should sit directly on c2: %s on %v", mid.Hash, mid.ParentHashes)
	}
	if f.stillShips(t, tip, f.c1) || f.stillShips(t, tip, f.c2) {
		t.Error("after the reverts, deploying upstream must not ship c1 or c2")
	}

	// A second call (a resumed rollback) finds the reverts, pushes nothing.
	lines2, reverts2, err := f.s.RevertUpstream(ctx, f.d, "again")
	if err != nil {
		t.Fatal(err)
	}
	if f.tip(t) != tip {
		t.Errorf("a second call moved upstream to %s", f.tip(t))
	}
	if reverts2[f.c1.String()] != reverts[f.c1.String()] || reverts2[f.c2.String()] != reverts[f.c2.String()] {
		t.Errorf("second call reverts = %v, want the first call's %v", reverts2, reverts)
	}
	if len(lines2) != 2 || !strings.Contains(lines2[0], "already reverted") {
		t.Errorf("second call lines = %q", lines2)
	}
}

func TestRevertOfARevertShipsAgain(t *testing.T) {
	t.Parallel()
	f := newRevertFixture(t, true)
	r1 := f.u.commit(tree{"index.php": reg("1"), "keep": reg("k")}, fmt.Sprintf("Revert \"Second change\"\n\nThis reverts commit %s.\n", f.c2), "Carol", f.c2)
	f.u.branch("main", r1)
	if err := f.s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.stillShips(t, r1, f.c2) {
		t.Error("c2 is reverted by r1: it must not ship")
	}
	if !f.stillShips(t, r1, f.c1) {
		t.Error("c1 is not reverted: it still ships")
	}
	r2 := f.u.commit(tree{"index.php": reg("2"), "keep": reg("k"), "new": reg("n")}, fmt.Sprintf("Reland \"Second change\"\n\nThis reverts commit %s.\n", r1), "Carol", r1)
	f.u.branch("main", r2)
	if err := f.s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.stillShips(t, r2, f.c2) {
		t.Error("the revert of c2 is itself reverted: c2 ships again")
	}
}

func TestRevertUpstreamExplainsWhenItMayNotPush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("push off", func(t *testing.T) {
		t.Parallel()
		f := newRevertFixture(t, false)
		lines, reverts, err := f.s.RevertUpstream(ctx, f.d, "bad")
		if err != nil {
			t.Fatal(err)
		}
		if f.tip(t) != f.c2 {
			t.Errorf("upstream moved to %s with pushing off", f.tip(t))
		}
		if len(reverts) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "push_reverts") ||
			!strings.Contains(lines[0], f.c2.String()[:10]+" (Second change), "+f.c1.String()[:10]+" (First change)") {
			t.Errorf("lines = %q reverts = %v; want one line naming both commits, newest first", lines, reverts)
		}
	})
	t.Run("upstream moved on", func(t *testing.T) {
		t.Parallel()
		f := newRevertFixture(t, true)
		c3 := f.u.commit(tree{"index.php": reg("3"), "keep": reg("k"), "new": reg("n")}, "Someone else's", "Dave", f.c2)
		f.u.branch("main", c3)
		lines, _, err := f.s.RevertUpstream(ctx, f.d, "bad")
		if err != nil {
			t.Fatal(err)
		}
		if f.tip(t) != c3 {
			t.Errorf("upstream moved to %s", f.tip(t))
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "moved on to "+c3.String()[:10]) || !strings.Contains(lines[0], "by hand") {
			t.Errorf("lines = %q", lines)
		}
	})
	t.Run("not a fast-forward", func(t *testing.T) {
		t.Parallel()
		f := newRevertFixture(t, true)
		// Upstream moves after the staging repo last fetched: the push
		// must be refused rather than overwrite c3.
		c3 := f.u.commit(tree{"index.php": reg("3"), "keep": reg("k"), "new": reg("n")}, "Someone else's", "Dave", f.c2)
		f.u.branch("main", c3)
		_, err := f.s.pushReverts(ctx, f.d, []deployer.Change{f.d.Changes[1], f.d.Changes[0]}, f.c2.String(), "bad")
		if deployer.ErrorCode(err) != deployer.EConflict || !strings.Contains(deployer.ErrorMessage(err), "moved on") {
			t.Fatalf("err = %v (%q), want a conflict saying main moved on", err, deployer.ErrorMessage(err))
		}
		if f.tip(t) != c3 {
			t.Errorf("upstream moved to %s", f.tip(t))
		}
	})
}

// TestRevertUpstreamToACheckedOutBranch pushes to a non-bare upstream with
// main checked out, as the demo's is: git refuses, and the bot says so.
func TestRevertUpstreamToACheckedOutBranch(t *testing.T) {
	t.Parallel()
	testparts.Need(t, "git", "git")
	dir := filepath.Join(t.TempDir(), "work")
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{t: t, dir: dir, repo: repo, clock: newUpstream(t).clock}
	c0 := u.commit(tree{"a": reg("0")}, "Initial", "Alice")
	c1 := u.commit(tree{"a": reg("1")}, "Change", "Bob", c0)
	u.branch("main", c1)
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		t.Fatal(err)
	}
	s := &Reverter{Repo: u.open(), Push: true}
	d := &deployer.Deployment{ID: 3, PrevUpstream: c0.String(), Upstream: c1.String(), Changes: []deployer.Change{{ID: c1.String(), Commit: c1.String(), Subject: "Change"}}}
	lines, reverts, err := s.RevertUpstream(context.Background(), d, "bad")
	if err != nil {
		t.Fatal(err)
	}
	if len(reverts) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "checked out") || !strings.Contains(lines[0], "by hand") {
		t.Errorf("lines = %q reverts = %v, want an explanation that main is checked out", lines, reverts)
	}
	ref, _ := repo.Reference(plumbing.NewBranchReferenceName("main"), true)
	if ref.Hash() != c1 {
		t.Errorf("upstream main moved to %s", ref.Hash())
	}
}

// TestRevertLinesAreReadOneWay: the reverted commits the source marks
// (RevertsCommit) and the ones RevertedIn looks for (RevertsOf) are read by
// the same rule, so a revert counts as one both when it ships and when a
// rollback asks whether the change is already reverted upstream.
func TestRevertLinesAreReadOneWay(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"Revert \"x\"\n\nThis reverts commit " + a + ".\n", []string{a}},
		{"Revert \"x\"\n\n  This reverts commit " + a + ".\n", []string{a}},
		{"Revert two\n\nThis reverts commit " + a + ".\nThis reverts commit " + b + ".\n", []string{a, b}},
		{"Mention: This reverts commit " + a + ".\n", nil},
		{"This reverts commit " + a[:39] + ".\n", nil},
	} {
		got := RevertsOf(tc.msg)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("RevertsOf(%q) = %v, want %v", tc.msg, got, tc.want)
		}
		first := ""
		if len(tc.want) > 0 {
			first = tc.want[0]
		}
		if got := RevertsCommit(tc.msg); got != first {
			t.Errorf("RevertsCommit(%q) = %q, want %q", tc.msg, got, first)
		}
	}
}
