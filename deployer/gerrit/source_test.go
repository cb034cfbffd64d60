package gerrit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/internal/testparts"
)

// env is a fake Gerrit, a staging repository fetching from its git
// repository, and the source under test.
type env struct {
	t    *testing.T
	g    *gerrittest.Server
	repo *gitrepo.Repo
	src  *gerrit.Source
	cfg  gerrit.Config

	mu       sync.Mutex
	progress []string
}

func newEnv(t *testing.T, o gerrittest.Options, configure ...func(*gerrit.Config)) *env {
	t.Helper()
	// go-git fetches from a local path by running git-upload-pack.
	testparts.Need(t, "git", "git")
	e := &env{t: t, g: gerrittest.New(t, o)}
	repo, err := gitrepo.Open(filepath.Join(t.TempDir(), "staging.git"), gitrepo.Upstream{URL: e.g.Dir, Branch: e.g.Branch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	e.repo = repo
	e.cfg = gerrit.Config{
		URL: e.g.URL, Project: e.g.Project, Branch: e.g.Branch,
		Username: e.g.Username, Password: e.g.Password,
		Approve: true, MergeTimeout: 10 * time.Second, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range configure {
		f(&e.cfg)
	}
	if e.src, err = gerrit.New(e.cfg, repo); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) prepare(prev string, include bool, refs ...string) (*deployer.Prepared, error) {
	return e.src.Prepare(context.Background(), deployer.Request{Refs: refs, IncludeUnexpected: include, Requester: "Alice Deployer"}, prev, func(s string) {
		e.mu.Lock()
		e.progress = append(e.progress, s)
		e.mu.Unlock()
	})
}

func (e *env) progressText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.progress, "\n")
}

func (e *env) posts() []string {
	var out []string
	for _, r := range e.g.Requests() {
		if strings.HasPrefix(r, "POST ") {
			out = append(out, r)
		}
	}
	return out
}

// wantError fails unless err is a one-line application error with code
// whose message holds every part.
func wantError(t *testing.T, err error, code string, parts ...string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %s containing %q", code, parts)
	}
	msg := deployer.ErrorMessage(err)
	if got := deployer.ErrorCode(err); got != code {
		t.Errorf("code = %s, want %s (%v)", got, code, err)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not contain %q", msg, p)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	return msg
}

func TestValidationReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	g := e.g
	abandoned := g.Upload("bob", "", map[string]string{"a": "1"}, "Abandoned idea")
	g.Abandon(abandoned)
	wip := g.Upload("bob", "", map[string]string{"b": "1"}, "Half done")
	g.SetWIP(wip, true)
	elsewhere := g.Upload("bob", "", map[string]string{"c": "1"}, "For another branch")
	g.Move(elsewhere, "app", "wmf/1.45")
	// A real conflict: two changes edit index.php from the same tip and
	// the first one merges.
	first := g.Upload("carol", "", map[string]string{"index.php": "<?php echo 'carol';\n"}, "Carol's edit")
	conflicting := g.Upload("bob", "", map[string]string{"index.php": "<?php echo 'bob';\n"}, "Bob's edit")
	if err := g.Submit(first); err != nil {
		t.Fatal(err)
	}
	parent := g.Upload("bob", "", map[string]string{"d": "1"}, "Parent in a chain")
	child := g.Upload("bob", g.Revision(parent), map[string]string{"e": "1"}, "Child in a chain")
	other := g.Upload("carol", "", map[string]string{"f": "1"}, "Needed elsewhere")
	otherID := strings.TrimSpace(strings.TrimPrefix(lastLine(g.CommitMessage(other)), "Change-Id:"))
	dependent := g.Upload("bob", "", map[string]string{"g": "1"}, "Needs the other one", "Depends-On: "+otherID)
	topicA := g.Upload("bob", "", map[string]string{"h": "1"}, "Topic part A")
	topicB := g.Upload("bob", "", map[string]string{"i": "1"}, "Topic part B")
	g.SetTopic(topicA, "feature")
	g.SetTopic(topicB, "feature")

	refs := []string{"999", strconv.Itoa(abandoned), strconv.Itoa(wip), strconv.Itoa(elsewhere), strconv.Itoa(conflicting),
		strconv.Itoa(child), strconv.Itoa(dependent), strconv.Itoa(topicA), "I0123456789abcdef0123456789abcdef01234567"}
	_, err := e.prepare("", false, refs...)
	msg := wantError(t, err, deployer.EInvalid,
		"I0123456789a… is a Change-Id",
		"change 999 was not found",
		fmt.Sprintf("change %d (Abandoned idea) is abandoned; restore it first", abandoned),
		fmt.Sprintf("change %d (Half done) is a work in progress; mark it ready first", wip),
		fmt.Sprintf("change %d (For another branch) is for app branch wmf/1.45; I deploy app branch main", elsewhere),
		fmt.Sprintf("change %d (Bob's edit) has a merge conflict with main", conflicting),
		fmt.Sprintf("change %d is based on change %d (Parent in a chain), which is not merged; add it to the request (!backport %d %d)", child, parent, parent, child),
		fmt.Sprintf("change %d depends on change %d (Needed elsewhere), which is not merged", dependent, other),
		fmt.Sprintf("submitting change %d would also submit change %d (Topic part B)", topicA, topicB),
	)
	if n := strings.Count(msg, "; "); n < 8 {
		t.Errorf("want 9 problems separated by '; ', got %d separators: %q", n, msg)
	}
	if p := e.posts(); len(p) != 0 {
		t.Errorf("validation touched Gerrit: %q", p)
	}
	if got := g.Status(child); got != gerrit.StatusNew {
		t.Errorf("change %d is %s after a refused request", child, got)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestCredentialsAreCheckedAndNeverShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{}, func(c *gerrit.Config) { c.Password = "wrong-password" })
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	_, err := e.prepare("", false, strconv.Itoa(n))
	msg := wantError(t, err, deployer.EForbidden, "Gerrit refused the bot's credentials", "source.gerrit.username")
	if strings.Contains(msg, "wrong-password") || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("the password leaked into %q", err)
	}
	if e.g.Status(n) != gerrit.StatusNew || e.g.VoteOf(n, e.g.Username, gerrit.CodeReview) != 0 {
		t.Error("a refused login changed the change")
	}
}

// TestWaitStopsAndExplains plays each way a wait for a merge must end
// without deploying: the bot votes, then "someone" acts.
func TestWaitStopsAndExplains(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		after func(g *gerrittest.Server, n int) // runs right after the bot's vote
		want  []string
	}{
		{"code-review -2", func(g *gerrittest.Server, n int) { g.Vote(n, "carol", gerrit.CodeReview, -2) },
			[]string{"Carol Reviewer voted Code-Review -2 on change", "nothing was deployed"}},
		{"verified -1 after the vote", func(g *gerrittest.Server, n int) { g.Vote(n, "jenkins-bot", gerrit.Verified, -1) },
			[]string{"jenkins-bot voted Verified -1", "after it was approved (CI failed)"}},
		{"unmergeable", func(g *gerrittest.Server, n int) { f := false; g.SetMergeable(n, &f) },
			[]string{"can no longer merge", "Rebase it"}},
		{"new patch set", func(g *gerrittest.Server, n int) { g.NewPatchSet(n, map[string]string{"a": "2"}) },
			[]string{"got a new patch set (2)", "If patch set 2 is what should go out, backport it again"}},
		{"abandoned", func(g *gerrittest.Server, n int) { g.Abandon(n) },
			[]string{"was abandoned while I waited"}},
		{"timeout", func(g *gerrittest.Server, n int) {},
			[]string{"did not merge within 300ms", "nothing was deployed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Only the timeout case may wait out the timeout; the others
			// must stop long before theirs.
			timeout := 10 * time.Second
			if tc.name == "timeout" {
				timeout = 300 * time.Millisecond
			}
			e := newEnv(t, gerrittest.Options{}, func(c *gerrit.Config) { c.MergeTimeout = timeout })
			n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
			e.g.OnReview = func(num int, in gerrit.ReviewInput) {
				if in.Labels[gerrit.CodeReview] == 2 {
					tc.after(e.g, num)
				}
			}
			before, _ := e.src.Baseline(context.Background())
			start := time.Now()
			_, err := e.prepare(before, false, strconv.Itoa(n))
			wantError(t, err, deployer.EConflict, append(tc.want, "change "+strconv.Itoa(n))...)
			if took := time.Since(start); tc.name != "timeout" && took > timeout/2 {
				t.Errorf("stopping took %s; it should stop at the first poll that sees the problem, not wait out %s", took, timeout)
			}
			if got := e.g.VoteOf(n, e.g.Username, gerrit.CodeReview); got != 2 {
				t.Errorf("the bot's vote = %d, want +2 (it approves before waiting)", got)
			}
			if !strings.Contains(e.progressText(), "voted Code-Review +2 on change "+strconv.Itoa(n)) {
				t.Errorf("progress did not announce the vote: %q", e.progressText())
			}
			if e.g.Tip() != before {
				t.Error("the branch moved")
			}
		})
	}
}

// TestOldCIFailureDoesNotStopTheWait: a Verified -1 from before the bot's
// approval is history, not a reason to stop.
func TestOldCIFailureDoesNotStopTheWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	e.g.Vote(n, "jenkins-bot", gerrit.Verified, -1)
	e.g.OnReview = func(num int, in gerrit.ReviewInput) {
		go func() {
			time.Sleep(60 * time.Millisecond)
			e.g.Vote(num, "jenkins-bot", gerrit.Verified, 2)
			if err := e.g.Submit(num); err != nil {
				t.Error(err)
			}
		}()
	}
	before, _ := e.src.Baseline(context.Background())
	p, err := e.prepare(before, false, strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() {
		t.Errorf("upstream = %s, want the merged tip %s", p.Upstream, e.g.Tip())
	}
}

func TestBackportOfTwoDependentChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	g := e.g
	prev, err := e.src.Baseline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := g.Upload("bob", "", map[string]string{"lib.php": "v1"}, "Add the helper", "Bug: T100")
	b := g.Upload("carol", g.Revision(a), map[string]string{"index.php": "uses lib"}, "Use the helper", "Bug: T101", "Bug: T100")
	// Asked for child first, as a URL: the order comes from the chain.
	p, err := e.prepare(prev, false, fmt.Sprintf("%s/c/app/+/%d/1", g.URL, b), strconv.Itoa(a))
	if err != nil {
		t.Fatal(err)
	}
	if g.Status(a) != gerrit.StatusMerged || g.Status(b) != gerrit.StatusMerged {
		t.Fatalf("statuses %s, %s; want both merged", g.Status(a), g.Status(b))
	}
	if p.Upstream != g.Tip() || p.Upstream != g.Revision(b) {
		t.Errorf("upstream = %s, want b's merged commit %s (tip %s)", p.Upstream, g.Revision(b), g.Tip())
	}
	if len(p.Changes) != 2 || p.Changes[0].ID != strconv.Itoa(a) || p.Changes[1].ID != strconv.Itoa(b) {
		t.Fatalf("changes = %+v, want a then b", p.Changes)
	}
	ca, cb := p.Changes[0], p.Changes[1]
	if ca.Commit != g.Revision(a) || ca.Subject != "Add the helper" || ca.Author != "Bob Submitter" ||
		ca.AuthorEmail != "bob@example.org" || ca.Owner != "bob" || ca.URL != fmt.Sprintf("%s/c/app/+/%d", g.URL, a) ||
		strings.Join(ca.Bugs, ",") != "T100" {
		t.Errorf("change a = %+v", ca)
	}
	if cb.Owner != "carol" || strings.Join(cb.Bugs, ",") != "T101,T100" {
		t.Errorf("change b = %+v", cb)
	}
	prog := e.progressText()
	ia := strings.Index(prog, fmt.Sprintf("voted Code-Review +2 on change %d", a))
	ib := strings.Index(prog, fmt.Sprintf("voted Code-Review +2 on change %d", b))
	if !strings.Contains(prog, fmt.Sprintf("merged and fetched: change %d (Add the helper) %s/c/app/+/%d [T100]; change %d (Use the helper) %s/c/app/+/%d [T101, T100]", a, g.URL, a, b, g.URL, b)) {
		t.Errorf("progress should end naming each change with its link and tasks:\n%s", prog)
	}
	if ia < 0 || ib < 0 || ia > ib || !strings.Contains(prog, "for Alice Deployer") {
		t.Errorf("progress should announce the votes in dependency order, naming the requester:\n%s", prog)
	}
	for _, n := range []int{a, b} {
		found := false
		for _, m := range g.Messages(n) {
			found = found || (strings.Contains(m.Message, "Code-Review+2") && strings.Contains(m.Message, "by Alice Deployer"))
		}
		if !found {
			t.Errorf("change %d has no +2 naming the requester: %+v", n, g.Messages(n))
		}
	}
	for _, r := range g.Requests() {
		if _, path, _ := strings.Cut(r, " "); !strings.HasPrefix(path, "/a/changes/") {
			t.Errorf("%s: an authenticated source must call under /a/", r)
		}
	}
	// The staging repo holds the merged commit: it can be staged.
	if !e.repo.HasCommit(p.Upstream) {
		t.Error("the upstream commit was not fetched")
	}

	// Asking again is safe: merged changes get no second vote.
	posts := len(e.posts())
	if _, err := e.prepare(prev, false, strconv.Itoa(a), strconv.Itoa(b)); err != nil {
		t.Fatal(err)
	}
	if len(e.posts()) != posts {
		t.Errorf("a retried request posted again: %q", e.posts()[posts:])
	}
	// Once deployed, they are refused as such.
	_, err = e.prepare(p.Upstream, false, strconv.Itoa(b))
	wantError(t, err, deployer.EConflict, fmt.Sprintf("change %d (Use the helper) is already deployed", b))
}

func TestRebaseOnSubmitIsFollowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	g := e.g
	x := g.Upload("bob", "", map[string]string{"x": "1"}, "Change X")
	y := g.Upload("carol", "", map[string]string{"y": "1"}, "Change Y")
	if err := g.Submit(y); err != nil {
		t.Fatal(err)
	}
	prev, _ := e.src.Baseline(context.Background()) // Y is deployed
	ps1 := g.Revision(x)
	p, err := e.prepare(prev, false, strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream == ps1 || p.Upstream != g.Tip() {
		t.Errorf("upstream = %s; want the rebased commit %s, not patch set 1 %s", p.Upstream, g.Tip(), ps1)
	}
	if len(p.Changes) != 1 || p.Changes[0].Commit != p.Upstream {
		t.Errorf("changes = %+v", p.Changes)
	}
}

func TestUnexpectedCommitsAreListed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	g := e.g
	prev, _ := e.src.Baseline(context.Background())
	z := g.Upload("carol", "", map[string]string{"z": "1"}, "Someone else's change")
	if err := g.Submit(z); err != nil {
		t.Fatal(err)
	}
	zID := strings.TrimSpace(strings.TrimPrefix(lastLine(g.CommitMessage(z)), "Change-Id:"))
	x := g.Upload("bob", "", map[string]string{"x": "1"}, "My change")
	_, err := e.prepare(prev, false, strconv.Itoa(x))
	wantError(t, err, deployer.EConflict, fmt.Sprintf("deploying change %d would also ship 1 commit", x),
		g.Revision(z)[:10]+" Someone else's change (Carol Reviewer, "+g.URL+"/q/"+zID+")", "--include-unexpected")
	// Refused before anything was approved: x is not merged behind the
	// deployer's back.
	if posts := e.posts(); len(posts) != 0 || g.Status(x) != gerrit.StatusNew {
		t.Errorf("the refused request touched change %d (%s): %q", x, g.Status(x), posts)
	}
	p, err := e.prepare(prev, true, strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 || p.Changes[0].ID != g.Revision(z) || p.Changes[0].URL != g.URL+"/q/"+zID || p.Changes[1].ID != strconv.Itoa(x) {
		t.Errorf("changes = %+v, want z (by commit, linked by Change-Id) then x", p.Changes)
	}
}

func TestNothingDeployedYet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	x := e.g.Upload("bob", "", map[string]string{"x": "1"}, "First ever")
	p, err := e.prepare("", false, strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() || len(p.Changes) != 1 || p.Changes[0].ID != strconv.Itoa(x) {
		t.Errorf("prepared %+v", p)
	}
}

func TestWaitsForPeopleWhenNotApproving(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{}, func(c *gerrit.Config) { c.Approve = false })
	x := e.g.Upload("bob", "", map[string]string{"x": "1"}, "Needs a human")
	go func() {
		// Carol approves once the bot is waiting: after its first poll
		// (the second lookup of the change; the first was validation).
		lookup := fmt.Sprintf("GET /a/changes/%d", x)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			n := 0
			for _, r := range e.g.Requests() {
				if r == lookup {
					n++
				}
			}
			if n >= 2 {
				break
			}
		}
		e.g.Vote(x, "carol", gerrit.CodeReview, 2)
		if err := e.g.Submit(x); err != nil {
			t.Error(err)
		}
	}()
	prev, _ := e.src.Baseline(context.Background())
	p, err := e.prepare(prev, false, strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() {
		t.Errorf("upstream %s, tip %s", p.Upstream, e.g.Tip())
	}
	if len(e.posts()) != 0 || e.g.VoteOf(x, e.g.Username, gerrit.CodeReview) != 0 {
		t.Errorf("the bot voted although approve is off: %q", e.posts())
	}
	if !strings.Contains(e.progressText(), "to be approved and merged") {
		t.Errorf("progress = %q", e.progressText())
	}
}

func TestDependsOnOrdersTheRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	g := e.g
	prev, _ := e.src.Baseline(context.Background())
	a := g.Upload("carol", "", map[string]string{"schema.sql": "v2"}, "Schema change")
	aID := strings.TrimSpace(strings.TrimPrefix(lastLine(g.CommitMessage(a)), "Change-Id:"))
	b := g.Upload("bob", "", map[string]string{"index.php": "uses v2"}, "Use the new schema", "Depends-On: "+aID)
	p, err := e.prepare(prev, false, strconv.Itoa(b), strconv.Itoa(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 2 || p.Changes[0].ID != strconv.Itoa(a) || p.Changes[1].ID != strconv.Itoa(b) {
		t.Fatalf("changes = %+v, want a (the dependency) before b", p.Changes)
	}
	// b sat on the old tip: Gerrit rebased it onto a when it merged.
	if p.Upstream != g.Tip() || p.Changes[1].Commit != g.Tip() {
		t.Errorf("upstream %s, b merged as %s, tip %s", p.Upstream, p.Changes[1].Commit, g.Tip())
	}
	// A Depends-On on a merged change is satisfied.
	c := g.Upload("bob", "", map[string]string{"more.php": "1"}, "More", "Depends-On: "+aID)
	if _, err := e.prepare(p.Upstream, false, strconv.Itoa(c)); err != nil {
		t.Errorf("a merged Depends-On was not accepted: %v", err)
	}
}

func TestOutdatedPatchSetLinkIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	e.g.NewPatchSet(n, map[string]string{"a": "2"})
	_, err := e.prepare("", false, fmt.Sprintf("%s/c/app/+/%d/1", e.g.URL, n))
	wantError(t, err, deployer.EInvalid, fmt.Sprintf("you linked patch set 1 of change %d, but its current patch set is 2", n))
	if len(e.posts()) != 0 {
		t.Errorf("posted: %q", e.posts())
	}
	if _, err := e.prepare("", false, fmt.Sprintf("%s/c/app/+/%d/2", e.g.URL, n)); err != nil {
		t.Errorf("the current patch set's link: %v", err)
	}
}

// TestMergedBeforeTheVote: someone submits the change between the bot's
// validation and its vote; Gerrit refuses the vote (409) and the bot
// carries on with the merged change.
func TestMergedBeforeTheVote(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	e.g.BeforeReview = func(num int) {
		e.g.Vote(num, "carol", gerrit.CodeReview, 2)
		if err := e.g.Submit(num); err != nil {
			t.Error(err)
		}
	}
	prev, _ := e.src.Baseline(context.Background())
	p, err := e.prepare(prev, false, strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() || e.g.VoteOf(n, e.g.Username, gerrit.CodeReview) != 0 {
		t.Errorf("upstream %s (tip %s), bot's vote %d", p.Upstream, e.g.Tip(), e.g.VoteOf(n, e.g.Username, gerrit.CodeReview))
	}
}

// TestWaitEndsWithItsContext: !cancel during a long wait for a merge
// interrupts Prepare's context, and the wait ends at once.
func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{}, func(c *gerrit.Config) { c.MergeTimeout = time.Minute })
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "Never merges")
	ctx, cancel := context.WithCancel(context.Background())
	e.g.OnReview = func(int, gerrit.ReviewInput) { time.AfterFunc(50*time.Millisecond, cancel) }
	start := time.Now()
	_, err := e.src.Prepare(ctx, deployer.Request{Refs: []string{strconv.Itoa(n)}, Requester: "Alice Deployer"}, "", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the wait took %s to notice the cancellation", took)
	}
}

// TestLogLinesNameTheDeployment: every line the source logs while it
// prepares a request, its own and its helpers' (the vote, an internal
// error), carries the request's deployment=<id>.
func TestLogLinesNameTheDeployment(t *testing.T) {
	t.Parallel()
	var buf testparts.Buffer
	logTo := func(c *gerrit.Config) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) }
	e := newEnv(t, gerrittest.Options{AutoSubmit: true}, logTo)
	x := e.g.Upload("bob", "", map[string]string{"x": "1"}, "First ever")
	req := deployer.Request{Refs: []string{strconv.Itoa(x)}, Requester: "Alice Deployer", Deployment: 7}
	if _, err := e.src.Prepare(context.Background(), req, "", nil); err != nil {
		t.Fatal(err)
	}
	bad := newEnv(t, gerrittest.Options{}, logTo, func(c *gerrit.Config) { c.Password = "wrong-password" })
	req.Refs = []string{strconv.Itoa(bad.g.Upload("bob", "", map[string]string{"a": "1"}, "A change"))}
	req.Deployment = 8
	if _, err := bad.src.Prepare(context.Background(), req, "", nil); err == nil {
		t.Fatal("a refused login prepared the change")
	}
	out := buf.String()
	for _, want := range []string{
		`msg="gerrit: approved" deployment=7 change=`,
		`msg="gerrit changes prepared" deployment=7 refs=`,
		`msg="gerrit: looking up a change failed" deployment=8 change=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestDescribe: `!add` learns a change's number, subject, owner, author
// and link from Gerrit; a change of another branch and an unknown number
// are refused as !backport refuses them.
func TestDescribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	g := e.g
	x := g.Upload("bob", "", map[string]string{"x": "1"}, "My change", "Bug: T1")
	y := g.Upload("bob", "", map[string]string{"y": "1"}, "Elsewhere")
	g.Move(y, g.Project, "other")
	c, err := e.src.Describe(strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != strconv.Itoa(x) || c.Subject != "My change" || c.Owner != "bob" || c.AuthorEmail != "bob@example.org" ||
		c.URL != e.src.Link(x) || strings.Join(c.Bugs, ",") != "T1" {
		t.Errorf("Describe(%d) = %+v", x, c)
	}
	for ref, want := range map[string]string{
		strconv.Itoa(y): fmt.Sprintf("change %d (Elsewhere) is for %s branch other; I deploy %s branch %s", y, g.Project, g.Project, g.Branch),
		"424242":        "change 424242 was not found on ",
	} {
		if _, err := e.src.Describe(ref); err == nil || !strings.Contains(deployer.ErrorMessage(err), want) {
			t.Errorf("Describe(%s): %v, want %q", ref, err, want)
		}
	}
}

// TestRevertsAndUnexpectedCommitsAreMarked: a revert change, asked for or
// shipped unrequested, says which commit it reverts, and an unrequested
// commit is marked unexpected, so a rollback blames neither a revert nor
// calls an unrequested commit "asked for" (found by
// TestModelPipelineGerrit).
func TestRevertsAndUnexpectedCommitsAreMarked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	g := e.g
	prev, _ := e.src.Baseline(context.Background())
	bad := g.Upload("bob", "", map[string]string{"bad": "1"}, "Bad change")
	if err := g.Submit(bad); err != nil {
		t.Fatal(err)
	}
	rv := g.Revert(bad, "")
	if err := g.Submit(rv); err != nil {
		t.Fatal(err)
	}
	x := g.Upload("bob", "", map[string]string{"x": "1"}, "My change")
	p, err := e.prepare(prev, true, strconv.Itoa(x))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 3 {
		t.Fatalf("changes = %+v, want the bad change, its revert, then x", p.Changes)
	}
	if c := p.Changes[0]; !c.Unexpected || c.Reverts != "" {
		t.Errorf("the unrequested bad change: %+v, want unexpected, no revert", c)
	}
	if c := p.Changes[1]; !c.Unexpected || c.Reverts != g.Revision(bad) {
		t.Errorf("the unrequested revert: %+v, want unexpected, reverting %s", c, g.Revision(bad))
	}
	if c := p.Changes[2]; c.Unexpected || c.Reverts != "" {
		t.Errorf("the requested change: %+v, want neither", c)
	}
	// The revert asked for by number says what it reverts too.
	bad2 := g.Upload("bob", "", map[string]string{"bad2": "1"}, "Another bad change")
	if err := g.Submit(bad2); err != nil {
		t.Fatal(err)
	}
	rv2 := g.Revert(bad2, "")
	p, err = e.prepare(g.Revision(bad2), false, strconv.Itoa(rv2))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 1 || p.Changes[0].ID != strconv.Itoa(rv2) || p.Changes[0].Reverts != g.Revision(bad2) || p.Changes[0].Unexpected {
		t.Errorf("changes = %+v, want revert change %d reverting %s", p.Changes, rv2, g.Revision(bad2))
	}
}
