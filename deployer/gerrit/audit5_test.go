package gerrit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestReworkedAndMergedBehindTheBotIsRefused: the bot validates patch set
// 1 and votes on it; someone then uploads patch set 2 with other content
// and submits it before the bot's next poll. The change is merged, but not
// with what the bot checked and approved: the bot must refuse, not deploy
// patch set 2.
func TestReworkedAndMergedBehindTheBotIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(e *env, act func(int))
	}{
		// After the bot's vote, while it waits for the merge.
		{"while waiting", func(e *env, act func(int)) {
			e.g.OnReview = func(n int, in gerrit.ReviewInput) {
				if in.Labels[gerrit.CodeReview] == 2 {
					act(n)
				}
			}
		}},
		// Between the validation and the vote: the vote gets 409.
		{"before the vote", func(e *env, act func(int)) { e.g.BeforeReview = act }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, gerrittest.Options{})
			n := e.g.Upload("bob", "", map[string]string{"a": "checked\n"}, "A change")
			tc.set(e, func(num int) {
				e.g.NewPatchSet(num, map[string]string{"a": "never checked\n"})
				e.g.Vote(num, "carol", gerrit.CodeReview, 2)
				if err := e.g.Submit(num); err != nil {
					t.Error(err)
				}
			})
			before, _ := e.src.Baseline(context.Background())
			p, err := e.prepare(before, false, strconv.Itoa(n))
			if err == nil {
				t.Fatalf("deployed %s, which holds patch set 2 that the bot never validated", p.Upstream)
			}
			wantError(t, err, deployer.EConflict, "change "+strconv.Itoa(n), "merged as patch set 2, but I checked and approved patch set 1", "nothing was deployed")
		})
	}
}

// TestReworkedAndMergedWithoutApproving: the same race when people, not
// the bot, approve and submit: the bot only checked patch set 1, and says
// no more than that.
func TestReworkedAndMergedWithoutApproving(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{}, func(c *gerrit.Config) { c.Approve = false })
	n := e.g.Upload("bob", "", map[string]string{"a": "checked\n"}, "A change")
	before, _ := e.src.Baseline(context.Background())
	// Once the bot says it waits, people rework the change and submit it.
	_, err := e.src.Prepare(context.Background(), deployer.Request{Refs: []string{strconv.Itoa(n)}, Requester: "Alice Deployer"}, before, func(line string) {
		if strings.HasPrefix(line, "waiting up to") {
			e.g.NewPatchSet(n, map[string]string{"a": "never checked\n"})
			e.g.Vote(n, "carol", gerrit.CodeReview, 2)
			if err := e.g.Submit(n); err != nil {
				t.Error(err)
			}
		}
	})
	msg := wantError(t, err, deployer.EConflict, "merged as patch set 2, but I checked patch set 1", "nothing was deployed")
	if strings.Contains(msg, "approved") {
		t.Errorf("the bot did not approve anything, but says so: %q", msg)
	}
}

// TestRebasedOnSubmitStillDeploys: the usual case the check above must
// not refuse: Gerrit rebases the approved patch set onto the branch when
// it submits it (a new patch set with the same change), and that is what
// goes out.
func TestRebasedOnSubmitStillDeploys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	n := e.g.Upload("bob", "", map[string]string{"a": "checked\n"}, "A change")
	// Another change merges first, so n's submit is a rebase.
	other := e.g.Upload("carol", "", map[string]string{"b": "1\n"}, "Other")
	e.g.Vote(other, "carol", gerrit.CodeReview, 2)
	if err := e.g.Submit(other); err != nil {
		t.Fatal(err)
	}
	before, _ := e.src.Baseline(context.Background())
	p, err := e.prepare(before, false, strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() || p.Upstream != e.g.Revision(n) {
		t.Errorf("deployed %s; tip %s, change's merged revision %s", p.Upstream, e.g.Tip(), e.g.Revision(n))
	}
}

// TestClippedSubjectsStayText: a long subject in another script is cut
// for chat on a character boundary, never inside a character, which would
// put invalid UTF-8 in the channel.
func TestClippedSubjectsStayText(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	subject := strings.Repeat("翻訳の更新", 10) // 150 bytes
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, subject)
	e.g.Abandon(n)
	_, err := e.prepare("", false, strconv.Itoa(n))
	msg := wantError(t, err, deployer.EInvalid, "is abandoned")
	if !utf8.ValidString(msg) {
		t.Errorf("the refusal is not valid UTF-8: %q", msg)
	}
	// And what a person typed, repeated back.
	_, err = e.prepare("", false, strings.Repeat("€", 40))
	if msg := deployer.ErrorMessage(err); !utf8.ValidString(msg) {
		t.Errorf("the refusal is not valid UTF-8: %q", msg)
	}
}

// TestDuplicateRefKeepsItsPatchSet: a change named twice, once by number
// and once by a link to an outdated patch set, is still checked against
// the patch set the link names; the duplicate used to be dropped with its
// patch set, and the current one deployed unseen.
func TestDuplicateRefKeepsItsPatchSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true})
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	e.g.NewPatchSet(n, map[string]string{"a": "2"})
	_, err := e.prepare("", false, strconv.Itoa(n), fmt.Sprintf("%s/c/app/+/%d/1", e.g.URL, n))
	wantError(t, err, deployer.EInvalid, fmt.Sprintf("you linked patch set 1 of change %d, but its current patch set is 2", n))
	if len(e.posts()) != 0 {
		t.Errorf("posted: %q", e.posts())
	}
}

// TestCompositeCheckRefRefusesJunkComponentRefs: with components, a
// component:ref is checked when typed, as the git composite checks it; a
// ref like php-1:-o or php-1:HEAD~1 was queued (spending a deployment id)
// and refused only when the deployment started.
func TestCompositeCheckRefRefusesJunkComponentRefs(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	for _, ref := range []string{"php-1.46.0-wmf.3:-o", "php-1.46.0-wmf.3:--upload-pack=x", "root:HEAD~1", "root:@{-1}", "-o:abc1234", "root:a..b"} {
		if err := e.src.CheckRef(ref); err == nil {
			t.Errorf("CheckRef(%q) accepted it", ref)
		} else if deployer.ErrorCode(err) != deployer.EInvalid {
			t.Errorf("CheckRef(%q) = %v, want an invalid-ref refusal", ref, err)
		}
	}
	for _, ref := range []string{"php-1.46.0-wmf.3:abc1234", "root:master", "12345", e.g.URL + "/c/app/+/12345"} {
		if err := e.src.CheckRef(ref); err != nil {
			t.Errorf("CheckRef(%q) = %v, want it accepted", ref, err)
		}
	}
}

// TestMergeCommitOnSubmitDeploys: with Gerrit's default submit type
// (MERGE_IF_NECESSARY), a change that is not on the branch tip merges as a
// merge commit of the tip and the change. What the branch now holds, and
// what must be deployed, is that merge commit; the change's own commit
// alone does not descend from the deployed tip. The bot refused every such
// change as if the branch had been rewritten.
func TestMergeCommitOnSubmitDeploys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true, MergeIfNecessary: true})
	n := e.g.Upload("bob", "", map[string]string{"a": "1\n"}, "The change")
	// Another change merges first, so n's submit makes a merge commit.
	other := e.g.Upload("carol", "", map[string]string{"b": "1\n"}, "Other")
	e.g.Vote(other, "carol", gerrit.CodeReview, 2)
	if err := e.g.Submit(other); err != nil {
		t.Fatal(err)
	}
	prev, _ := e.src.Baseline(context.Background()) // other is deployed
	p, err := e.prepare(prev, false, strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() {
		t.Errorf("staged %.10s, want the merge commit on the branch %.10s", p.Upstream, e.g.Tip())
	}
	if len(p.Changes) != 1 || p.Changes[0].ID != strconv.Itoa(n) || p.Changes[0].Subject != "The change" {
		t.Errorf("changes = %+v, want change %d alone", p.Changes, n)
	}
}

// TestMergeCommitOfAChainDeploys: a relation chain submitted with merge
// commits ships both changes, and only them; a change of someone else
// merged meanwhile is still refused as unexpected.
func TestMergeCommitOfAChainDeploys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{AutoSubmit: true, MergeIfNecessary: true})
	parent := e.g.Upload("bob", "", map[string]string{"p": "1\n"}, "Parent")
	child := e.g.Upload("bob", e.g.Revision(parent), map[string]string{"c": "1\n"}, "Child")
	other := e.g.Upload("carol", "", map[string]string{"b": "1\n"}, "Other")
	e.g.Vote(other, "carol", gerrit.CodeReview, 2)
	if err := e.g.Submit(other); err != nil {
		t.Fatal(err)
	}
	prev, _ := e.src.Baseline(context.Background())
	p, err := e.prepare(prev, false, strconv.Itoa(child), strconv.Itoa(parent))
	if err != nil {
		t.Fatal(err)
	}
	if p.Upstream != e.g.Tip() || len(p.Changes) != 2 {
		t.Errorf("staged %.10s with %+v; want the tip %.10s with the two changes", p.Upstream, p.Changes, e.g.Tip())
	}
	// Someone else's change merges (a merge commit too); ours is next.
	late := e.g.Upload("carol", prev, map[string]string{"l": "1\n"}, "Late")
	e.g.Vote(late, "carol", gerrit.CodeReview, 2)
	if err := e.g.Submit(late); err != nil {
		t.Fatal(err)
	}
	mine := e.g.Upload("bob", prev, map[string]string{"m": "1\n"}, "Mine")
	_, err = e.prepare(p.Upstream, false, strconv.Itoa(mine))
	wantError(t, err, deployer.EConflict, "would also ship", "Late")
}

// newMergeCEnv is newCEnv on a Gerrit whose submits make merge commits.
func newMergeCEnv(t *testing.T) *cenv {
	t.Helper()
	testparts.Need(t, "git", "git")
	e := &cenv{t: t, g: gerrittest.New(t, gerrittest.Options{Project: cfgProject, Branch: "master", AutoSubmit: true, MergeIfNecessary: true})}
	e.g.AddProject(coreProject, wmf, map[string]string{"index.php": "<?php // core\n"})
	e.g.AddProject(fooProject, wmf, map[string]string{"Foo.php": "<?php // Foo 1\n"})
	e.g.AddSubmodule(coreProject, wmf, "extensions/Foo", fooProject, wmf)
	comps := []gerrit.Component{
		{Component: gitrepo.Component{Path: "", URL: e.g.ProjectDir(cfgProject), Branch: "master"}, Project: cfgProject},
		{Component: gitrepo.Component{Path: "php-1.46.0-wmf.3", URL: e.g.ProjectDir(coreProject), Branch: wmf, Submodules: true}, Project: coreProject},
	}
	repo, err := gitrepo.Open(filepath.Join(t.TempDir(), "staging.git"), gitrepo.Upstream{URL: comps[0].URL, Branch: "master"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	var gcs []gitrepo.Component
	for _, c := range comps {
		gcs = append(gcs, c.Component)
	}
	if e.git, err = gitrepo.NewComposite(repo, gcs); err != nil {
		t.Fatal(err)
	}
	e.repo = repo
	cfg := gerrit.Config{URL: e.g.URL, Username: e.g.Username, Password: e.g.Password, Approve: true,
		MergeTimeout: 10 * time.Second, PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if e.src, err = gerrit.NewComposite(cfg, repo, e.git, comps); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCompositeMergeCommitOnSubmitDeploys: with merge commits on submit,
// changes of the root and of an extension that were not on their
// branch's tip deploy what the branches hold (the merges), listed as the
// changes alone.
func TestCompositeMergeCommitOnSubmitDeploys(t *testing.T) {
	t.Parallel()
	e := newMergeCEnv(t)
	cfgN := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"wmf-config/Foo.php": "<?php $wgFoo = true;\n"}, "Enable Foo")
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	// Others merge first in both projects, and are deployed.
	for _, o := range []int{
		e.g.UploadTo(cfgProject, "master", "carol", "", map[string]string{"README": "config\n"}, "Config: other"),
		e.g.UploadTo(fooProject, wmf, "carol", "", map[string]string{"README": "Foo\n"}, "Foo: other"),
	} {
		e.g.Vote(o, "carol", gerrit.CodeReview, 2)
		if err := e.g.Submit(o); err != nil {
			t.Fatal(err)
		}
	}
	prev := e.baseline()
	p, err := e.prepare(prev, strconv.Itoa(cfgN), strconv.Itoa(fooN))
	if err != nil {
		t.Fatalf("prepare: %v\n%s", err, e.progressText())
	}
	if got, want := e.composed(p.Upstream, ""), e.g.TipOf(cfgProject, "master"); got != want {
		t.Errorf("root holds %.10s, want the branch's merge %.10s", got, want)
	}
	if got, want := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"), e.g.TipOf(fooProject, wmf); got != want {
		t.Errorf("Foo holds %.10s, want the branch's merge %.10s", got, want)
	}
	var ids []string
	for _, c := range p.Changes {
		if !c.Pointer {
			ids = append(ids, c.ID)
		}
	}
	if want := []string{strconv.Itoa(cfgN), strconv.Itoa(fooN)}; strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("changes %v, want %v: %+v", ids, want, p.Changes)
	}
}
