package gitrepo

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// history is the upstream most Prepare tests share:
//
//	main:  c0 - c1 - c2 - c3
//	side:         \- s1          (forks from c1)
//	fix:               \- f1     (on c2)
type history struct {
	u                  *upstream
	r                  *Repo
	c0, c1, c2, c3     plumbing.Hash
	s1, f1             plumbing.Hash
	ctx                context.Context
	c1Msg, c1Subject   string
	authorC2, authorC3 string
}

func newHistory(t *testing.T) *history {
	h := &history{u: newUpstream(t), ctx: context.Background()}
	u := h.u
	h.c1Subject = "Fix the login form"
	h.c1Msg = h.c1Subject + "\n\nLonger text.\nBug: T123\n\nBug: T456, T789\nbug: T123\nChange-Id: I0123\n"
	h.c0 = u.commit(tree{"index.php": reg("0")}, "Initial", "Alice")
	h.c1 = u.commit(tree{"index.php": reg("1")}, h.c1Msg, "Bob", h.c0)
	h.c2 = u.commit(tree{"index.php": reg("2")}, "Second\n\nBug: T2", "Carol", h.c1)
	h.c3 = u.commit(tree{"index.php": reg("3")}, "Third", "Dave", h.c2)
	h.s1 = u.commit(tree{"index.php": reg("1"), "side": reg("s")}, "Side work", "Eve", h.c1)
	h.f1 = u.commit(tree{"index.php": reg("2"), "fix": reg("f")}, "Hotfix", "Frank", h.c2)
	u.branch("main", h.c3)
	u.branch("side", h.s1)
	u.branch("fix", h.f1)
	h.r = u.open()
	return h
}

func (h *history) prepare(prev plumbing.Hash, include bool, refs ...string) (*deployer.Prepared, error) {
	p := ""
	if !prev.IsZero() {
		p = prev.String()
	}
	return h.r.Prepare(h.ctx, deployer.Request{Refs: refs, IncludeUnexpected: include, Requester: "tester"}, p, nil)
}

func ids(p *deployer.Prepared) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.ID)
	}
	return out
}

func hexes(hs ...plumbing.Hash) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.String())
	}
	return out
}

func TestPrepareResolves(t *testing.T) {
	h := newHistory(t)
	for _, ref := range []string{
		h.c1.String(),                      // full hash
		h.c1.String()[:7],                  // shortest prefix
		strings.ToUpper(h.c1.String()[:9]), // odd length, upper case
	} {
		p, err := h.prepare(h.c0, false, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if p.Upstream != h.c1.String() || !reflect.DeepEqual(ids(p), hexes(h.c1)) {
			t.Errorf("%s: Upstream %s, changes %v; want %s", ref, p.Upstream, ids(p), h.c1)
		}
	}

	// A hex-looking name that is no commit is tried as a branch.
	h.u.branch("cafe1234", h.c1)
	if p, err := h.prepare(h.c0, false, "cafe1234"); err != nil || p.Upstream != h.c1.String() {
		t.Errorf("branch cafe1234: %v, %v", p, err)
	}

	// By branch: fix is one commit on c2.
	p, err := h.prepare(h.c2, false, "fix")
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != h.f1.String() || !reflect.DeepEqual(ids(p), hexes(h.f1)) {
		t.Errorf("fix: Upstream %s, changes %v", p.Upstream, ids(p))
	}
}

func TestPrepareChangeFields(t *testing.T) {
	h := newHistory(t)
	p, err := h.prepare(h.c0, false, h.c1.String()[:8])
	if err != nil {
		t.Fatal(err)
	}
	want := deployer.Change{
		ID:          h.c1.String(),
		Commit:      h.c1.String(),
		Subject:     h.c1Subject,
		Author:      "Bob",
		AuthorEmail: "bob@example.org",
		Bugs:        []string{"T123", "T456", "T789"},
	}
	if !reflect.DeepEqual(p.Changes, []deployer.Change{want}) {
		t.Errorf("changes = %+v\nwant %+v", p.Changes, want)
	}
}

func TestPrepareRefusals(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		name  string
		prev  plumbing.Hash
		refs  []string
		code  string
		parts []string
	}{
		{"no refs", h.c0, nil, deployer.EInvalid, nil},
		{"nonexistent commit", h.c0, []string{"deadbeef00"}, deployer.ENotFound, []string{"no commit or branch named deadbeef00 upstream"}},
		{"nonexistent branch", h.c0, []string{"no-such-branch"}, deployer.ENotFound, []string{"no commit or branch named no-such-branch upstream"}},
		{"a tree is no commit", h.c0, []string{h.treeOf(t, h.c1)}, deployer.ENotFound, nil},
		{"not a descendant", h.c2, []string{"side"}, deployer.EConflict,
			[]string{"side does not descend from the deployed commit " + h.c2.String()[:10], "rebase it onto main"}},
		{"not a descendant, by hash", h.c2, []string{h.s1.String()[:7]}, deployer.EConflict,
			[]string{h.s1.String()[:7] + " does not descend"}},
		{"already deployed (ancestor)", h.c2, []string{h.c1.String()[:7]}, deployer.EConflict, []string{h.c1.String()[:7] + " is already deployed"}},
		{"already deployed (itself)", h.c2, []string{h.c2.String()}, deployer.EConflict, []string{"is already deployed"}},
		{"one ref already deployed", h.c1, []string{h.c1.String(), "main"}, deployer.EConflict, []string{"is already deployed"}},
		{"not one line", h.c0, []string{"side", "fix"}, deployer.EInvalid, []string{"side and fix are not one line of history"}},
		{"unexpected", h.c0, []string{"main"}, deployer.EConflict, []string{
			"deploying main would also ship 2 commits that were not asked for",
			h.c1.String()[:10] + " " + h.c1Subject + " (Bob)",
			h.c2.String()[:10] + " Second (Carol)",
			"--include-unexpected",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.prepare(tt.prev, false, tt.refs...)
			wantCode(t, err, tt.code, tt.parts...)
		})
	}
}

func (h *history) treeOf(t *testing.T, c plumbing.Hash) string {
	co, err := h.r.repo.CommitObject(c)
	if err != nil {
		t.Fatal(err)
	}
	return co.TreeHash.String()
}

func TestPrepareInvalidText(t *testing.T) {
	h := newHistory(t)
	for _, ref := range []string{
		"; rm -rf /", "--upload-pack=x", "-x", "$(id)", "`id`", "a..b", "HEAD@{1}", "main~1", "main^",
		"", " ", "foo bar", "../x", "x/../y", "x.lock", "x/", "/x", ".hidden", "a//b", "x\ny",
		"deadbee\n", "refs/heads/../../config", "a:b", "*", "?", "[a]", "\\", strings.Repeat("a", 201),
	} {
		_, err := h.prepare(h.c0, false, ref)
		wantCode(t, err, deployer.EInvalid)
		// The text is quoted, so chat shows it as typed and it cannot
		// smuggle a second line.
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", ref)) {
			t.Errorf("%q: message %q does not quote the ref", ref, err)
		}
	}
}

func TestPrepareUnexpected(t *testing.T) {
	h := newHistory(t)
	// Refused without the flag (see TestPrepareRefusals), accepted with it.
	p, err := h.prepare(h.c0, true, "main")
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != h.c3.String() || !reflect.DeepEqual(ids(p), hexes(h.c1, h.c2, h.c3)) {
		t.Errorf("Upstream %s, changes %v; want c1, c2, c3 oldest first", p.Upstream, ids(p))
	}
	if !reflect.DeepEqual(p.Changes[1].Bugs, []string{"T2"}) || p.Changes[2].Bugs != nil {
		t.Errorf("bugs = %v, %v", p.Changes[1].Bugs, p.Changes[2].Bugs)
	}

	// Naming every commit leaves nothing unexpected.
	p, err = h.prepare(h.c0, false, h.c3.String()[:7], h.c1.String()[:7], h.c2.String()[:7])
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != h.c3.String() || !reflect.DeepEqual(ids(p), hexes(h.c1, h.c2, h.c3)) {
		t.Errorf("Upstream %s, changes %v", p.Upstream, ids(p))
	}
}

func TestPrepareTwoRefsOneLine(t *testing.T) {
	h := newHistory(t)
	for _, refs := range [][]string{
		{h.c1.String(), h.c2.String()},
		{h.c2.String()[:10], h.c1.String()[:10]},
		{"fix", h.c2.String()},
	} {
		p, err := h.prepare(h.c1, false, refs...)
		if refs[0] == "fix" {
			// c2 and f1 on c1: f1 contains c2.
			if err != nil {
				t.Fatalf("%v: %v", refs, err)
			}
			if p.Upstream != h.f1.String() || !reflect.DeepEqual(ids(p), hexes(h.c2, h.f1)) {
				t.Errorf("%v: Upstream %s, changes %v", refs, p.Upstream, ids(p))
			}
			continue
		}
		p, err = h.prepare(h.c0, false, refs...)
		if err != nil {
			t.Fatal(err)
		}
		if p.Upstream != h.c2.String() || !reflect.DeepEqual(ids(p), hexes(h.c1, h.c2)) {
			t.Errorf("%v: Upstream %s, changes %v", refs, p.Upstream, ids(p))
		}
	}
	// The same commit twice is one ref.
	p, err := h.prepare(h.c0, false, h.c1.String(), h.c1.String()[:7])
	if err != nil || len(p.Changes) != 1 {
		t.Errorf("duplicate refs: %v, %v", p, err)
	}
}

func TestPrepareNothingDeployed(t *testing.T) {
	h := newHistory(t)
	p, err := h.prepare(plumbing.ZeroHash, false, "main")
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != h.c3.String() || !reflect.DeepEqual(ids(p), hexes(h.c3)) {
		t.Errorf("Upstream %s, changes %v; want the target alone", p.Upstream, ids(p))
	}
	p, err = h.prepare(plumbing.ZeroHash, false, h.c1.String()[:7], "main")
	if err != nil || p.Upstream != h.c3.String() {
		t.Errorf("two refs: %v, %v", p, err)
	}
	_, err = h.prepare(plumbing.ZeroHash, false, "side", "fix")
	wantCode(t, err, deployer.EInvalid, "not one line")
	_, err = h.prepare(plumbing.ZeroHash, false, "nope")
	wantCode(t, err, deployer.ENotFound)
}

func TestPrepareManyUnexpected(t *testing.T) {
	h := newHistory(t)
	cs := h.u.chain(h.c3, 15, "many")
	h.u.branch("main", cs[len(cs)-1])
	_, err := h.prepare(h.c3, false, cs[len(cs)-1].String())
	wantCode(t, err, deployer.EConflict, "14 commits", cs[0].String()[:10]+" many A (Authormany)", "and 4 more", "--include-unexpected")
	if strings.Contains(err.Error(), cs[10].String()[:10]) {
		t.Errorf("message lists more than 10 commits: %s", err)
	}
	p, err := h.prepare(h.c3, true, cs[len(cs)-1].String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids(p), hexes(cs...)) {
		t.Errorf("changes = %v", ids(p))
	}
}

// TestPrepareMerges: a merge brings a side branch along; every commit of
// it ships, each after its parents, whatever the dates say.
func TestPrepareMerges(t *testing.T) {
	h := newHistory(t)
	u := h.u
	// a2's clock is wrong: it claims to be older than its parent a1.
	a1 := u.commit(tree{"a": reg("1")}, "a1", "Ann", h.c3)
	a2 := u.commitAt(u.clock.Add(-48*time.Hour), tree{"a": reg("2")}, "a2", "Ann", a1)
	b1 := u.commit(tree{"b": reg("1")}, "b1", "Ben", h.c3)
	m := u.commit(tree{"a": reg("2"), "b": reg("1")}, "Merge", "Ann", b1, a2)
	u.branch("main", m)
	p, err := h.prepare(h.c3, true, "main")
	if err != nil {
		t.Fatal(err)
	}
	got := ids(p)
	pos := map[string]int{}
	for i, id := range got {
		pos[id] = i
	}
	if len(got) != 4 {
		t.Fatalf("changes = %v, want a1, a2, b1 and the merge", got)
	}
	for _, edge := range [][2]plumbing.Hash{{a1, a2}, {a2, m}, {b1, m}} {
		if pos[edge[0].String()] > pos[edge[1].String()] {
			t.Errorf("%s listed after its child %s: %v", edge[0], edge[1], got)
		}
	}
	_, err = h.prepare(h.c3, false, "main")
	wantCode(t, err, deployer.EConflict, "3 commits")
}

func TestPrepareAmbiguousPrefix(t *testing.T) {
	h := newHistory(t)
	x, y := collidingCommits(t, h.u, h.c3)
	h.u.branch("x", x)
	h.u.branch("y", y)
	prefix := x.String()[:7]
	_, err := h.prepare(h.c3, false, prefix)
	wantCode(t, err, deployer.EInvalid, prefix+" is ambiguous", x.String()[:10], y.String()[:10])
	// A longer prefix settles it.
	if _, err := h.prepare(h.c3, false, x.String()[:12]); err != nil {
		t.Errorf("longer prefix: %v", err)
	}
	// Once upstream drops one of them, the prefix is unique again: only
	// commits on upstream branches count.
	h.u.deleteBranch("y")
	p, err := h.prepare(h.c3, false, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != x.String() {
		t.Errorf("Upstream = %s, want %s", p.Upstream, x)
	}
}

// collidingCommits finds two commits on parent whose ids share their
// first 7 hex digits (a birthday search over ~2^14 messages), and writes
// them to u.
func collidingCommits(t *testing.T, u *upstream, parent plumbing.Hash) (plumbing.Hash, plumbing.Hash) {
	t.Helper()
	treeHash := writeTree(t, u.repo.Storer, tree{"collide": reg("c")})
	sig := object.Signature{Name: "Col", Email: "col@example.org", When: u.clock.Add(time.Hour)}
	make := func(i int) *object.Commit {
		return &object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("Collide %d\n", i), TreeHash: treeHash, ParentHashes: []plumbing.Hash{parent}}
	}
	seen := map[string]int{}
	for i := 0; i < 1<<22; i++ {
		obj := &plumbing.MemoryObject{}
		if err := make(i).Encode(obj); err != nil {
			t.Fatal(err)
		}
		p := obj.Hash().String()[:7]
		if j, ok := seen[p]; ok {
			return writeObject(t, u.repo.Storer, make(j)), writeObject(t, u.repo.Storer, make(i))
		}
		seen[p] = i
	}
	t.Fatal("no collision found")
	return plumbing.ZeroHash, plumbing.ZeroHash
}

// TestPrepareOnlyUpstreamCommits: staging commits and commits upstream has
// deleted are in the object database, but are not deployable.
func TestPrepareOnlyUpstreamCommits(t *testing.T) {
	h := newHistory(t)
	s, err := h.r.Commit(h.ctx, &deployer.Deployment{ID: 1}, h.c0.String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.prepare(h.c0, false, s[:10])
	wantCode(t, err, deployer.ENotFound, "no commit or branch named "+s[:10])

	h.u.deleteBranch("side")
	_, err = h.prepare(h.c0, false, "side")
	wantCode(t, err, deployer.ENotFound)
	_, err = h.prepare(h.c1, false, h.s1.String())
	wantCode(t, err, deployer.ENotFound)
}

func TestPrepareWalkBound(t *testing.T) {
	h := newHistory(t)
	cs := h.u.chain(h.c3, 40, "long")
	h.u.branch("main", cs[len(cs)-1])
	root := h.u.commit(tree{"o": reg("o")}, "Unrelated root", "Olga")
	top := h.u.commit(tree{"o": reg("p")}, "Unrelated top", "Olga", root)
	h.u.branch("orphan", top)

	// Within the bound: fine.
	if _, err := h.prepare(h.c3, true, "main"); err != nil {
		t.Fatal(err)
	}
	// An unrelated history does not descend from the deployed commit.
	_, err := h.prepare(h.c3, true, "orphan")
	wantCode(t, err, deployer.EConflict, "orphan does not descend")

	old := maxWalk
	maxWalk = 20
	defer func() { maxWalk = old }()
	_, err = h.prepare(h.c3, true, "main")
	wantCode(t, err, deployer.EInvalid, "main is too far from the deployed commit", "more than 20 commits")
}

func TestBaseline(t *testing.T) {
	h := newHistory(t)
	got, err := h.r.Baseline(h.ctx)
	if err != nil || got != h.c3.String() {
		t.Fatalf("Baseline = %s, %v; want %s", got, err, h.c3)
	}
	c4 := h.u.commit(tree{"index.php": reg("4")}, "Fourth", "Gina", h.c3)
	h.u.branch("main", c4)
	if got, err := h.r.Baseline(h.ctx); err != nil || got != c4.String() {
		t.Errorf("Baseline after a push = %s, %v; want %s", got, err, c4)
	}

	r, err := Open(t.TempDir(), Upstream{URL: h.u.dir, Branch: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Baseline(h.ctx)
	wantCode(t, err, deployer.ENotFound, "nope")
}

// TestPrepareThenCommit: what Prepare returns can be staged at once, and
// the staging commit holds exactly the upstream tree.
func TestPrepareThenCommit(t *testing.T) {
	h := newHistory(t)
	base, err := h.r.Baseline(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	s0, err := h.r.Commit(h.ctx, &deployer.Deployment{ID: 1, Requester: "deploybot"}, base)
	if err != nil {
		t.Fatal(err)
	}
	c4 := h.u.commit(tree{"index.php": reg("4"), "new.php": reg("n")}, "Add new.php\n\nBug: T4", "Gina", h.c3)
	h.u.branch("main", c4)
	_, up, _ := h.r.Head(h.ctx)
	p, err := h.prepare(plumbing.NewHash(up), false, c4.String()[:7])
	if err != nil {
		t.Fatal(err)
	}
	d := &deployer.Deployment{ID: 2, Requester: "gina", Changes: p.Changes}
	s1, err := h.r.Commit(h.ctx, d, p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.r.Diff(h.ctx, s0, s1)
	if err != nil {
		t.Fatal(err)
	}
	checkChanges(t, got, []fc{{"index.php", deployer.ModeRegular, "4"}, {"new.php", deployer.ModeRegular, "n"}})
	msg := stagingCommit(t, h.r, s1).Message
	if !strings.Contains(msg, "Change: "+c4.String()+" Add new.php\n") {
		t.Errorf("message = %q", msg)
	}
}
