package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
	"github.com/deploybot/deploybot/internal/testparts"
)

// gerritSandbox is the demo sandbox with its upstream repository served
// by a fake Gerrit, good-change and bad-change uploaded as changes by bob,
// and the bot configured with source.type gerrit (approving, with its
// password in a file).
type gerritSandbox struct {
	*e2e
	g         *gerrittest.Server
	good, bad int
}

func newGerritSandbox(t *testing.T) *gerritSandbox {
	t.Helper()
	testparts.Need(t, "git", "git")
	gs := &gerritSandbox{}
	gs.e2e = newE2E(t, testTimings, func(m *Main) {
		up := m.Config.Source.Components[0].URL // the demo's root repository
		repo, err := git.PlainOpen(up)
		if err != nil {
			t.Fatal(err)
		}
		branch := func(name string) string {
			ref, err := repo.Reference(plumbing.NewBranchReferenceName(name), true)
			if err != nil {
				t.Fatal(err)
			}
			return ref.Hash().String()
		}
		gs.g = gerrittest.New(t, gerrittest.Options{Dir: up, Branch: demo.MainBranch, AutoSubmit: true})
		gs.good = gs.g.Import("bob", branch(demo.GoodBranch))
		gs.bad = gs.g.Import("bob", branch(demo.BadBranch))
		pw := filepath.Join(t.TempDir(), "gerrit-password")
		if err := os.WriteFile(pw, []byte(gs.g.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.Config.Source.Type = "gerrit"
		m.Config.Source.Components = nil // one Gerrit project: the demo's root repository
		m.Config.Source.Gerrit = config.GerritSource{
			URL: gs.g.URL, Project: gs.g.Project, Branch: demo.MainBranch, GitURL: up,
			Username: gs.g.Username, PasswordFile: pw, Approve: true,
			MergeTimeout: config.Dur(30 * time.Second), PollInterval: config.Dur(50 * time.Millisecond),
		}
	})
	if _, ok := gs.sb.Main.Runner.Source.(*gerrit.Source); !ok {
		t.Fatalf("the runner's source is %T, want *gerrit.Source", gs.sb.Main.Runner.Source)
	}
	return gs
}

// noticeText joins every notice about deployment id.
func (gs *gerritSandbox) noticeText(id int64) string {
	var out []string
	for _, n := range gs.sb.Tap.Notices() {
		if n.Deployment == id {
			out = append(out, n.Text)
		}
	}
	return strings.Join(out, "\n")
}

// TestGerritBackportRollbackAndRevert runs the whole Gerrit flow through
// the real bot on the demo sandbox: a change by number is approved,
// merged, fetched and deployed; a change by URL is caught on the canaries,
// rolled back and reverted upstream; asking for it again is refused with
// the revert's link; once the revert merged, a fix on top ships (with the
// merged-but-undeployed bad change and its revert listed and accepted).
func TestGerritBackportRollbackAndRevert(t *testing.T) {
	t.Parallel()
	gs := newGerritSandbox(t)
	g := gs.g

	// 1. A good change by number.
	gs.say("alice", "!backport "+strconv.Itoa(gs.good))
	gs.wait(1, time.Minute, deployer.NoticeVerify)
	gs.say("bob", "verified")
	gs.wait(1, 2*time.Minute, finished...)
	d1 := gs.get(1)
	if d1.State != deployer.StateDone {
		t.Fatalf("the good change ended %s: %s\n%s", d1.State, d1.Reason, gs.noticeText(1))
	}
	if g.Status(gs.good) != gerrit.StatusMerged || g.VoteOf(gs.good, g.Username, gerrit.CodeReview) != 2 {
		t.Errorf("change %d: %s, bot's vote %d; want merged after the bot's +2", gs.good, g.Status(gs.good), g.VoteOf(gs.good, g.Username, gerrit.CodeReview))
	}
	if len(d1.Changes) != 1 || d1.Changes[0].ID != strconv.Itoa(gs.good) || d1.Changes[0].Owner != "bob" ||
		d1.Changes[0].URL != fmt.Sprintf("%s/c/app/+/%d", g.URL, gs.good) || d1.Upstream != g.Tip() {
		t.Errorf("deployment #1 changes %+v upstream %.10s (Gerrit's tip %.10s)", d1.Changes, d1.Upstream, g.Tip())
	}
	if d1.Submitter != "Bob Submitter" {
		t.Errorf("submitter = %q, want the change owner's person", d1.Submitter)
	}
	if text := gs.noticeText(1); !strings.Contains(text, fmt.Sprintf("voted Code-Review +2 on change %d", gs.good)) ||
		!strings.Contains(text, fmt.Sprintf("change %d (%s) merged", gs.good, demo.GoodSubject)) {
		t.Errorf("the channel was not told about the vote and the merge:\n%s", text)
	}
	gs.expect(all(d1.Commit))

	// 2. The bad change, pasted as a URL: the canaries catch it.
	gs.say("alice", fmt.Sprintf("!backport %s/c/app/+/%d/1", g.URL, gs.bad))
	gs.wait(2, time.Minute, append(finished, deployer.NoticeVerify)...)
	gs.say("bob", "verified")
	gs.wait(2, 2*time.Minute, finished...)
	d2 := gs.get(2)
	if d2.State != deployer.StateRolledBack {
		t.Fatalf("the bad change ended %s: %s\n%s", d2.State, d2.Reason, gs.noticeText(2))
	}
	gs.expect(all(d1.Commit))
	reverts := g.RevertsOf(gs.bad)
	if len(reverts) != 1 {
		t.Fatalf("reverts of change %d: %v, want one", gs.bad, reverts)
	}
	revert := reverts[0]
	revertLink := fmt.Sprintf("%s/c/app/+/%d", g.URL, revert)
	if msg := g.CommitMessage(revert); !strings.Contains(msg, "This reverts commit "+d2.Upstream) || !strings.Contains(msg, "Deployment #2 was rolled back") ||
		!strings.Contains(msg, "mw-canary1001:") {
		t.Errorf("revert message lacks the commit, the reason or the verdict's numbers:\n%s", msg)
	}
	commented := false
	for _, m := range g.Messages(gs.bad) {
		commented = commented || (strings.Contains(m.Message, "rolled this change back in deployment #2") && strings.Contains(m.Message, revertLink))
	}
	if !commented {
		t.Errorf("no rollback comment on change %d: %+v", gs.bad, g.Messages(gs.bad))
	}
	if text := gs.noticeText(2); !strings.Contains(text, revertLink) {
		t.Errorf("the channel was not given the revert's link %s:\n%s", revertLink, text)
	}

	// 3. Asking for it again is refused while the revert is not merged.
	posts := len(g.Requests())
	gs.say("alice", "!backport "+strconv.Itoa(gs.bad))
	n3 := gs.wait(3, time.Minute, finished...)
	d3 := gs.get(3)
	if d3.State != deployer.StateFailed || !strings.Contains(d3.Reason, revertLink) || !strings.Contains(n3.Text, "`!unblock 102`") {
		t.Errorf("re-shipping the bad change: %s, %q, said %q; want failed naming the revert and !unblock", d3.State, d3.Reason, n3.Text)
	}
	for _, r := range g.Requests()[posts:] {
		if strings.HasPrefix(r, "POST") {
			t.Errorf("the refused request posted to Gerrit: %s", r)
		}
	}
	gs.expect(all(d1.Commit))

	// 4. The revert merges; a fix goes on top. Upstream now holds the bad
	// change and its revert, undeployed: listed, and shipped on request.
	if err := g.Submit(revert); err != nil {
		t.Fatal(err)
	}
	fix := g.Upload("bob", "", map[string]string{"README.md": "# Example Wiki front end\n\nSearch is coming back soon.\n"}, "Announce the search feature")
	gs.say("alice", "!backport "+strconv.Itoa(fix))
	gs.wait(4, time.Minute, finished...)
	if d4 := gs.get(4); d4.State != deployer.StateFailed || !strings.Contains(d4.Reason, "--include-unexpected") || !strings.Contains(d4.Reason, demo.BadSubject) {
		t.Errorf("without --include-unexpected: %s %q; want a refusal listing the bad change", d4.State, d4.Reason)
	}
	if g.Status(fix) != gerrit.StatusNew {
		t.Errorf("the refused request merged change %d anyway", fix)
	}
	gs.say("alice", "!backport "+strconv.Itoa(fix)+" --include-unexpected")
	gs.wait(5, time.Minute, append(finished, deployer.NoticeVerify)...)
	gs.say("bob", "verified")
	gs.wait(5, 2*time.Minute, finished...)
	d5 := gs.get(5)
	if d5.State != deployer.StateDone {
		t.Fatalf("the fix ended %s: %s\n%s", d5.State, d5.Reason, gs.noticeText(5))
	}
	if d5.Upstream != g.Tip() || len(d5.Changes) != 3 {
		t.Errorf("deployment #5 shipped %.10s with %d changes, want Gerrit's tip %.10s with bad, revert and fix", d5.Upstream, len(d5.Changes), g.Tip())
	}
	blocks, err := gs.sb.Main.Store.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 0 {
		t.Errorf("blocks left after the revert merged: %+v", blocks)
	}
	gs.expect(all(d5.Commit))
}

// TestGerritBackportOfTwoDependentChanges ships a relation chain of two
// new changes in one deployment through the real bot: asked for child
// first, approved and merged parent first, staged as one commit, on every
// host with both changes' files.
func TestGerritBackportOfTwoDependentChanges(t *testing.T) {
	t.Parallel()
	gs := newGerritSandbox(t)
	g := gs.g
	parent := g.Upload("bob", "", map[string]string{"docs/search.md": "# Search\n\nComing soon.\n"}, "Document search", "Bug: T1001")
	child := g.Upload("bob", g.Revision(parent), map[string]string{"docs/index.md": "- [Search](search.md)\n"}, "Link the search docs", "Bug: T1002")

	gs.say("alice", fmt.Sprintf("!backport %d %s/c/app/+/%d", child, g.URL, parent))
	gs.wait(1, time.Minute, append(finished, deployer.NoticeVerify)...)
	gs.say("bob", "verified")
	gs.wait(1, 2*time.Minute, finished...)
	d := gs.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("ended %s: %s\n%s", d.State, d.Reason, gs.noticeText(1))
	}
	if len(d.Changes) != 2 || d.Changes[0].ID != strconv.Itoa(parent) || d.Changes[1].ID != strconv.Itoa(child) {
		t.Fatalf("changes %+v, want parent then child", d.Changes)
	}
	if d.Upstream != g.Tip() || d.Upstream != g.Revision(child) {
		t.Errorf("shipped %.10s, want the child's merged commit %.10s", d.Upstream, g.Revision(child))
	}
	text := gs.noticeText(1)
	for _, want := range []string{
		fmt.Sprintf("voted Code-Review +2 on change %d", parent),
		fmt.Sprintf("voted Code-Review +2 on change %d", child),
		fmt.Sprintf("change %d (Document search) %s/c/app/+/%d [T1001]", parent, g.URL, parent),
		fmt.Sprintf("change %d (Link the search docs) %s/c/app/+/%d [T1002]", child, g.URL, child),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the channel did not see %q:\n%s", want, text)
		}
	}
	if strings.Index(text, fmt.Sprintf("on change %d", parent)) > strings.Index(text, fmt.Sprintf("on change %d", child)) {
		t.Errorf("the child was approved before its parent:\n%s", text)
	}
	if len(d.Files) != 2 || d.Files[0] != "docs/index.md" || d.Files[1] != "docs/search.md" {
		t.Errorf("files %v, want both changes' files", d.Files)
	}
	gs.expect(all(d.Commit))
}
