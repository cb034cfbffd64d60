package gerrit_test

import (
	"context"
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

// Gerrit projects of the MediaWiki-shaped fake.
const (
	cfgProject  = "operations/mediawiki-config"
	coreProject = "mediawiki/core"
	fooProject  = "mediawiki/extensions/Foo"
	wmf         = "wmf/1.46.0-wmf.3"
)

// cenv is a fake Gerrit with the configuration repository, core's release
// branch and extension Foo subscribed in core at extensions/Foo, and the
// composite source over a real staging repository.
type cenv struct {
	t    *testing.T
	g    *gerrittest.Server
	repo *gitrepo.Repo
	git  *gitrepo.Composite
	src  *gerrit.Composite

	mu       sync.Mutex
	progress []string
}

func newCEnv(t *testing.T, timeout time.Duration, extra ...func(g *gerrittest.Server) gerrit.Component) *cenv {
	t.Helper()
	testparts.Need(t, "git", "git")
	e := &cenv{t: t, g: gerrittest.New(t, gerrittest.Options{Project: cfgProject, Branch: "master", AutoSubmit: true})}
	e.g.AddProject(coreProject, wmf, map[string]string{"index.php": "<?php // core\n", "includes/Setup.php": "<?php\n"})
	e.g.AddProject(fooProject, wmf, map[string]string{"Foo.php": "<?php // Foo 1\n"})
	e.g.AddSubmodule(coreProject, wmf, "extensions/Foo", fooProject, wmf)
	comps := []gerrit.Component{
		{Component: gitrepo.Component{Path: "", URL: e.g.ProjectDir(cfgProject), Branch: "master"}, Project: cfgProject},
		{Component: gitrepo.Component{Path: "php-1.46.0-wmf.3", URL: e.g.ProjectDir(coreProject), Branch: wmf, Submodules: true}, Project: coreProject},
	}
	for _, f := range extra {
		comps = append(comps, f(e.g))
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
		MergeTimeout: timeout, PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if e.src, err = gerrit.NewComposite(cfg, repo, e.git, comps); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *cenv) prepare(prev string, refs ...string) (*deployer.Prepared, error) {
	return e.src.Prepare(context.Background(), deployer.Request{Refs: refs, Requester: "Alice Deployer", Deployment: 7}, prev, func(s string) {
		e.mu.Lock()
		e.progress = append(e.progress, s)
		e.mu.Unlock()
	})
}

func (e *cenv) progressText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.progress, "\n")
}

func (e *cenv) baseline() string {
	e.t.Helper()
	b, err := e.src.Baseline(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *cenv) composed(upstream, at string) string {
	e.t.Helper()
	h, err := e.git.ComposedCommit(upstream, at)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// changeIDOf returns the Change-Id of change n.
func (e *cenv) changeIDOf(n int) string { return gitrepo.ChangeIDOf(e.g.CommitMessage(n)) }

// TestCompositeBackportAcrossProjects ships, in one request, a change of
// the configuration repository, one of core's release branch and one of
// extension Foo, asked for in the wrong order and tied by Depends-On
// across projects: each is approved and merged in dependency order, Foo's
// waits for core's subscription, and the composition holds every merge
// where it belongs.
func TestCompositeBackportAcrossProjects(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	cfgN := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"wmf-config/Foo.php": "<?php $wgFoo = true;\n"}, "Enable Foo", "Bug: T100")
	coreN := e.g.UploadTo(coreProject, wmf, "bob", "", map[string]string{"includes/Setup.php": "<?php // hook for Foo\n"}, "Add the Foo hook", "Depends-On: "+e.changeIDOf(cfgN))
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: use the hook", "Depends-On: "+e.changeIDOf(coreN))

	p, err := e.prepare(prev, strconv.Itoa(fooN), strconv.Itoa(coreN), strconv.Itoa(cfgN))
	if err != nil {
		t.Fatalf("prepare: %v\n%s", err, e.progressText())
	}
	text := e.progressText()
	iCfg, iCore, iFoo := strings.Index(text, fmt.Sprintf("+2 on change %d", cfgN)), strings.Index(text, fmt.Sprintf("+2 on change %d", coreN)), strings.Index(text, fmt.Sprintf("+2 on change %d", fooN))
	if iCfg < 0 || !(iCfg < iCore && iCore < iFoo) {
		t.Errorf("not approved in dependency order (config, core, Foo):\n%s", text)
	}
	if !strings.Contains(text, fmt.Sprintf("mediawiki/core's %s now points php-1.46.0-wmf.3/extensions/Foo at change %d's merge", wmf, fooN)) {
		t.Errorf("the subscription was not reported:\n%s", text)
	}
	if got, want := e.composed(p.Upstream, ""), e.g.Revision(cfgN); got != want {
		t.Errorf("root holds %.10s, want config's merge %.10s", got, want)
	}
	if got, want := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"), e.g.Revision(fooN); got != want {
		t.Errorf("Foo holds %.10s, want its merge %.10s", got, want)
	}
	if got, want := e.composed(p.Upstream, "php-1.46.0-wmf.3"), e.g.TipOf(coreProject, wmf); got != want {
		t.Errorf("core holds %.10s, want the subscription's commit %.10s", got, want)
	}
	ids := map[string]deployer.Change{}
	for _, c := range p.Changes {
		ids[c.ID] = c
	}
	for n, comp := range map[int]string{cfgN: "", coreN: "php-1.46.0-wmf.3", fooN: "php-1.46.0-wmf.3/extensions/Foo"} {
		c, ok := ids[strconv.Itoa(n)]
		if !ok || c.Component != comp || c.Owner != "bob" || !strings.Contains(c.URL, "/c/") {
			t.Errorf("change %d staged as %+v (want component %q, owner bob, a link)", n, c, comp)
		}
	}
	if c := ids[strconv.Itoa(fooN)]; c.URL != fmt.Sprintf("%s/c/%s/+/%d", e.g.URL, fooProject, fooN) {
		t.Errorf("Foo's link %s is not in its project", c.URL)
	}
}

// TestCompositeSubscriptionThatNeverHappens: Foo's change merges, core
// never picks it up; the deployer is told plainly, nothing is staged.
func TestCompositeSubscriptionThatNeverHappens(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 400*time.Millisecond)
	prev := e.baseline()
	e.g.SetSubscriptionDelay(-1)
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	_, err := e.prepare(prev, strconv.Itoa(fooN))
	want := fmt.Sprintf("mediawiki/core's %s did not pick up mediawiki/extensions/Foo's merge of change %d within 400ms; nothing was deployed. The change is merged", wmf, fooN)
	if err == nil || !strings.Contains(deployer.ErrorMessage(err), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if e.g.Status(fooN) != gerrit.StatusMerged {
		t.Errorf("change %d is %s", fooN, e.g.Status(fooN))
	}
	if text := e.progressText(); !strings.Contains(text, fmt.Sprintf("change %d merged in mediawiki/extensions/Foo; waiting up to 400ms for mediawiki/core's %s to point php-1.46.0-wmf.3/extensions/Foo at it", fooN, wmf)) {
		t.Errorf("the wait was not announced:\n%s", text)
	}
}

// TestCompositeSubscriptionLater: the pointer moves a while after the
// merge; the bot waits for it and ships.
func TestCompositeSubscriptionLater(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	e.g.SetSubscriptionDelay(300 * time.Millisecond)
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	p, err := e.prepare(prev, strconv.Itoa(fooN))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"); got != e.g.Revision(fooN) {
		t.Errorf("Foo holds %.10s, want %.10s", got, e.g.Revision(fooN))
	}
	if !strings.Contains(e.progressText(), "waiting up to 10s for mediawiki/core's") {
		t.Errorf("the wait was not announced:\n%s", e.progressText())
	}
}

// TestCompositeTrackingTheExtensionDirectly: a component configured on
// Foo's branch takes the merged commit itself; no subscription is waited
// for (there is none).
func TestCompositeTrackingTheExtensionDirectly(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 300*time.Millisecond, func(g *gerrittest.Server) gerrit.Component {
		return gerrit.Component{Component: gitrepo.Component{Name: "foo", Path: "php-1.46.0-wmf.3/extensions/Foo", URL: g.ProjectDir(fooProject), Branch: wmf}, Project: fooProject}
	})
	prev := e.baseline()
	e.g.SetSubscriptionDelay(-1)
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	p, err := e.prepare(prev, strconv.Itoa(fooN))
	if err != nil {
		t.Fatalf("%v\n%s", err, e.progressText())
	}
	if got := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"); got != e.g.Revision(fooN) {
		t.Errorf("Foo holds %.10s, want %.10s", got, e.g.Revision(fooN))
	}
	if strings.Contains(e.progressText(), "waiting up to") && strings.Contains(e.progressText(), "superproject") {
		t.Errorf("waited for a subscription:\n%s", e.progressText())
	}
}

// TestCompositeRefusals: a change of a project nobody deploys, a
// Depends-On on an unmerged change of such a project, and changes that
// depend on each other in a circle are refused before anything is
// approved, each with what to do.
func TestCompositeRefusals(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	e.g.AddProject("mediawiki/extensions/Bar", wmf, map[string]string{"Bar.php": "bar\n"})
	bar := e.g.UploadTo("mediawiki/extensions/Bar", wmf, "bob", "", map[string]string{"Bar.php": "bar 2\n"}, "Bar: fix")
	needsBar := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"x": "1\n"}, "Needs Bar", "Depends-On: "+e.changeIDOf(bar))
	// Two changes that depend on each other: the first names the
	// Change-Id the second will get.
	a := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"a": "1\n"}, "A", "Depends-On: "+gerrittest.ChangeID(needsBar+2))
	b := e.g.UploadTo(coreProject, wmf, "bob", "", map[string]string{"b": "1\n"}, "B", "Depends-On: "+e.changeIDOf(a))
	if b != needsBar+2 {
		t.Fatalf("change numbers are not consecutive: %d, %d", needsBar, b)
	}
	for _, tc := range []struct {
		refs []int
		want string
	}{
		{[]int{bar}, fmt.Sprintf("change %d (Bar: fix) is for mediawiki/extensions/Bar branch %s, which I do not deploy (I deploy mediawiki/core %s, mediawiki/extensions/Foo %s at php-1.46.0-wmf.3/extensions/Foo, operations/mediawiki-config master)", bar, wmf, wmf, wmf)},
		{[]int{a, b}, fmt.Sprintf("changes %d, %d depend on each other in a circle (Depends-On lines or a relation chain), so I cannot tell which goes first; remove one of the Depends-On lines", a, b)},
		{[]int{needsBar}, fmt.Sprintf("change %d depends on change %d (Bar: fix) of mediawiki/extensions/Bar branch %s, which is not merged, and which I do not deploy; merge it first, or have a component follow", needsBar, bar, wmf)},
	} {
		var refs []string
		for _, n := range tc.refs {
			refs = append(refs, strconv.Itoa(n))
		}
		_, err := e.prepare(prev, refs...)
		if err == nil || !strings.Contains(deployer.ErrorMessage(err), tc.want) {
			t.Errorf("%v: got %v\nwant %q", refs, err, tc.want)
		}
	}
	for _, r := range e.g.Requests() {
		if strings.HasPrefix(r, "POST") {
			t.Errorf("a refused request posted: %s", r)
		}
	}
}

// TestCompositeRevertsInTheChangesProjects: after a deployment of a core
// change and a Foo change, blamed, each revert is opened in its change's
// project and branch with the <project>~<number> identifier; core's
// subscription commit is left to the subscription and never blocks.
func TestCompositeRevertsInTheChangesProjects(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	coreN := e.g.UploadTo(coreProject, wmf, "bob", "", map[string]string{"includes/Setup.php": "<?php // broken\n"}, "Core: break")
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // broken\n"}, "Foo: break")
	p, err := e.prepare(prev, strconv.Itoa(coreN), strconv.Itoa(fooN))
	if err != nil {
		t.Fatalf("%v\n%s", err, e.progressText())
	}
	d := &deployer.Deployment{ID: 7, Changes: p.Changes, Upstream: p.Upstream, PrevUpstream: prev}
	posts := len(e.g.Requests())
	lines, reverts, err := e.src.RevertUpstream(context.Background(), d, "canaries failed")
	if err != nil {
		t.Fatal(err)
	}
	for n, project := range map[int]string{coreN: coreProject, fooN: fooProject} {
		rs := e.g.RevertsOf(n)
		if len(rs) != 1 {
			t.Fatalf("reverts of %d: %v\n%s", n, rs, strings.Join(lines, "\n"))
		}
		if pr, br := e.g.Where(rs[0]); pr != project || br != wmf {
			t.Errorf("revert of %d opened in %s %s, want %s %s", n, pr, br, project, wmf)
		}
		if want := fmt.Sprintf("%s/c/%s/+/%d", e.g.URL, project, rs[0]); reverts[strconv.Itoa(n)] != want {
			t.Errorf("revert link of %d = %q, want %q", n, reverts[strconv.Itoa(n)], want)
		}
		path := fmt.Sprintf("POST /a/changes/%s~%d/revert", strings.ReplaceAll(project, "/", "%2F"), n)
		found := false
		for _, r := range e.g.Requests()[posts:] {
			found = found || r == path
		}
		if !found {
			t.Errorf("no %s among %v", path, e.g.Requests()[posts:])
		}
	}
	if text := strings.Join(lines, "\n"); !strings.Contains(text, "left Gerrit's submodule pointer update(s)") {
		t.Errorf("the pointer update was not mentioned:\n%s", text)
	}
	for _, c := range p.Changes {
		ships, err := e.src.StillShips(context.Background(), p.Upstream, c)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.ID == strconv.Itoa(coreN) || c.ID == strconv.Itoa(fooN); ships != want {
			t.Errorf("StillShips(%s %q) = %v, want %v", c.ID, c.Subject, ships, want)
		}
	}
}

// TestCompositeUnexpectedBeforeApproving: with a commit of someone else
// merged but not deployed in the configuration repository and another in
// extension Foo (picked up by core's subscription), a request for a config
// change and a Foo change is refused before anything is approved, listing
// each commit where it lands with the link to its Gerrit change; core's
// subscription commit is not listed (only its submodule's commit is). With
// --include-unexpected the same request ships all of it.
func TestCompositeUnexpectedBeforeApproving(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	e.g.AddAccount("carol", "Carol Reviewer", "carol@example.org")
	otherCfg := e.g.UploadTo(cfgProject, "master", "carol", "", map[string]string{"wmf-config/Other.php": "<?php\n"}, "Someone else's config")
	otherFoo := e.g.UploadTo(fooProject, wmf, "carol", "", map[string]string{"i18n/en.json": "{}\n"}, "Someone else's Foo")
	for _, n := range []int{otherCfg, otherFoo} {
		if err := e.g.Submit(n); err != nil {
			t.Fatal(err)
		}
	}
	cfgN := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"wmf-config/Foo.php": "<?php $wgFoo = true;\n"}, "Enable Foo")
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	posts := len(e.g.Requests())
	req := deployer.Request{Refs: []string{strconv.Itoa(cfgN), strconv.Itoa(fooN)}, Requester: "Alice Deployer", Deployment: 7}
	_, err := e.src.Prepare(context.Background(), req, prev, nil)
	link := func(n int) string { return e.g.URL + "/q/" + e.changeIDOf(n) }
	for _, want := range []string{
		fmt.Sprintf("deploying changes %d, %d would also ship 2 commits that were merged but not deployed: ", cfgN, fooN),
		fmt.Sprintf("in root: %.10s Someone else's config (Carol Reviewer, %s)", e.g.Revision(otherCfg), link(otherCfg)),
		fmt.Sprintf("in php-1.46.0-wmf.3/extensions/Foo: %.10s Someone else's Foo (Carol Reviewer, %s)", e.g.Revision(otherFoo), link(otherFoo)),
		"Nothing was approved. Check with their authors, then repeat with --include-unexpected to ship them too",
	} {
		if err == nil || deployer.ErrorCode(err) != deployer.EConflict || !strings.Contains(deployer.ErrorMessage(err), want) {
			t.Errorf("got %v\nwant it to hold %q", err, want)
		}
	}
	if err != nil && strings.Contains(deployer.ErrorMessage(err), "Update git submodules") {
		t.Errorf("core's subscription commit was listed: %v", err)
	}
	for _, r := range e.g.Requests()[posts:] {
		if strings.HasPrefix(r, "POST") {
			t.Errorf("the refused request posted %s", r)
		}
	}
	for _, n := range []int{cfgN, fooN} {
		if e.g.Status(n) != gerrit.StatusNew || e.g.VoteOf(n, e.g.Username, "Code-Review") != 0 {
			t.Errorf("change %d is %s with Code-Review %d after the refusal", n, e.g.Status(n), e.g.VoteOf(n, e.g.Username, "Code-Review"))
		}
	}

	req.IncludeUnexpected = true
	p, err := e.src.Prepare(context.Background(), req, prev, nil)
	if err != nil {
		t.Fatalf("with --include-unexpected: %v", err)
	}
	if got := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"); got != e.g.Revision(fooN) {
		t.Errorf("Foo holds %.10s, want %.10s", got, e.g.Revision(fooN))
	}
	shipped := map[string]bool{}
	for _, c := range p.Changes {
		shipped[c.Commit] = true
	}
	for _, n := range []int{otherCfg, otherFoo, cfgN, fooN} {
		if !shipped[e.g.Revision(n)] {
			t.Errorf("change %d's commit %.10s is not among the shipped changes", n, e.g.Revision(n))
		}
	}
}

// TestCompositeDescribe: what `!add` learns of a ref before anything is
// deployed: a change of any configured project and branch, placed where
// it lands; a component:ref from git; and the refusals !backport would
// make, before anything is posted.
func TestCompositeDescribe(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	e.g.AddProject("mediawiki/extensions/Bar", wmf, map[string]string{"Bar.php": "bar\n"})
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix the hook", "Bug: T200")
	cfgN := e.g.UploadTo(cfgProject, "master", "bob", "", map[string]string{"x": "1\n"}, "Config: x")
	bar := e.g.UploadTo("mediawiki/extensions/Bar", wmf, "bob", "", map[string]string{"Bar.php": "bar 2\n"}, "Bar: fix")
	gone := e.g.UploadTo(coreProject, wmf, "bob", "", map[string]string{"y": "1\n"}, "Core: y")
	e.g.Abandon(gone)
	posts := len(e.g.Requests())

	for _, tc := range []struct {
		ref       string
		n         int
		component string
		project   string
	}{
		{strconv.Itoa(fooN), fooN, "php-1.46.0-wmf.3/extensions/Foo", fooProject},
		{fmt.Sprintf("%s/c/%s/+/%d", e.g.URL, cfgProject, cfgN), cfgN, "", cfgProject},
	} {
		c, err := e.src.Describe(tc.ref)
		if err != nil {
			t.Fatalf("Describe(%s): %v", tc.ref, err)
		}
		want := deployer.Change{ID: strconv.Itoa(tc.n), Owner: "bob", Author: "Bob Submitter", AuthorEmail: "bob@example.org",
			URL: fmt.Sprintf("%s/c/%s/+/%d", e.g.URL, tc.project, tc.n), Component: tc.component}
		got := c
		got.Subject, got.Bugs = "", nil
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Describe(%s) = %+v\nwant %+v", tc.ref, got, want)
		}
	}
	if c, _ := e.src.Describe(strconv.Itoa(fooN)); c.Subject != "Foo: fix the hook" || strings.Join(c.Bugs, ",") != "T200" {
		t.Errorf("Describe(%d): subject %q, bugs %v", fooN, c.Subject, c.Bugs)
	}

	tip := e.g.TipOf(coreProject, wmf)
	c, err := e.src.Describe("php-1.46.0-wmf.3:" + tip[:10])
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "php-1.46.0-wmf.3:"+tip || c.Commit != tip || c.Component != "php-1.46.0-wmf.3" || c.Subject == "" {
		t.Errorf("Describe(core:%.10s) = %+v", tip, c)
	}

	for ref, want := range map[string]string{
		strconv.Itoa(bar):  fmt.Sprintf("change %d (Bar: fix) is for mediawiki/extensions/Bar branch %s, which I do not deploy", bar, wmf),
		strconv.Itoa(gone): fmt.Sprintf("change %d (Core: y) is abandoned; restore it first", gone),
		"999999":           "change 999999 was not found on ",
		"nosuch:abc1234":   "nosuch is neither a component nor a submodule",
	} {
		if _, err := e.src.Describe(ref); err == nil || !strings.Contains(deployer.ErrorMessage(err), want) {
			t.Errorf("Describe(%s): %v, want %q", ref, err, want)
		}
	}
	for _, r := range e.g.Requests()[posts:] {
		if !strings.HasPrefix(r, "GET") {
			t.Errorf("Describe made %s", r)
		}
	}
}

// TestCompositeUnexpectedNamedAlongside: a merged commit of Foo named as
// component:ref next to an open Foo change is asked for, not unexpected:
// the request passes the check before approving and ships both.
func TestCompositeUnexpectedNamedAlongside(t *testing.T) {
	t.Parallel()
	e := newCEnv(t, 10*time.Second)
	prev := e.baseline()
	other := e.g.UploadTo(fooProject, wmf, "carol", "", map[string]string{"i18n/en.json": "{}\n"}, "Someone else's Foo")
	if err := e.g.Submit(other); err != nil {
		t.Fatal(err)
	}
	fooN := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	p, err := e.prepare(prev, "php-1.46.0-wmf.3/extensions/Foo:"+e.g.Revision(other)[:10], strconv.Itoa(fooN))
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if got := e.composed(p.Upstream, "php-1.46.0-wmf.3/extensions/Foo"); got != e.g.Revision(fooN) {
		t.Errorf("Foo holds %.10s, want %.10s", got, e.g.Revision(fooN))
	}
	// Without the ref, the same request is refused before approving.
	other2 := e.g.UploadTo(fooProject, wmf, "carol", "", map[string]string{"i18n/de.json": "{}\n"}, "Another of Foo")
	if err := e.g.Submit(other2); err != nil {
		t.Fatal(err)
	}
	fix := e.g.UploadTo(fooProject, wmf, "bob", "", map[string]string{"Foo.php": "<?php // Foo 3\n"}, "Foo: fix again")
	_, err = e.prepare(p.Upstream, strconv.Itoa(fix))
	if want := fmt.Sprintf("in php-1.46.0-wmf.3/extensions/Foo: %.10s Another of Foo", e.g.Revision(other2)); err == nil || !strings.Contains(deployer.ErrorMessage(err), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	if e.g.Status(fix) != gerrit.StatusNew {
		t.Errorf("change %d is %s after the refusal", fix, e.g.Status(fix))
	}
}
