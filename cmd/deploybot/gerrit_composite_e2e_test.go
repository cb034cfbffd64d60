package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
	"github.com/deploybot/deploybot/internal/testparts"
)

// The MediaWiki shape on a fake Gerrit: the configuration repository at
// the root, core's release branch at php-1.46.0-wmf.3 with extension Foo
// as a submodule core's branch subscribes to.
const (
	gcConfig = "operations/mediawiki-config"
	gcCore   = "mediawiki/core"
	gcFoo    = "mediawiki/extensions/Foo"
	gcWMF    = "wmf/1.46.0-wmf.3"
	gcDir    = "php-1.46.0-wmf.3"
)

// newGerritMW starts the fake Gerrit with the three projects.
func newGerritMW(t *testing.T) (*gerrittest.Server, *mwRepos) {
	t.Helper()
	testparts.Need(t, "git", "git")
	g := gerrittest.New(t, gerrittest.Options{Project: gcConfig, Branch: "master", AutoSubmit: true})
	g.AddProject(gcCore, gcWMF, map[string]string{"index.php": "<?php // core 1\n", "includes/Setup.php": "<?php\n"})
	g.AddProject(gcFoo, gcWMF, map[string]string{"Foo.php": "<?php // Foo 1\n", "i18n/en.json": "{}\n"})
	g.AddSubmodule(gcCore, gcWMF, "extensions/Foo", gcFoo, gcWMF)
	// git's own view of the trees, through mwRepos on the fake's bare
	// repositories.
	r := &mwRepos{t: t, base: t.TempDir(), config: g.ProjectDir(gcConfig), core: g.ProjectDir(gcCore), ext: g.ProjectDir(gcFoo)}
	return g, r
}

// gcOpt adds to newGerritCWorld's configuration: YAML appended to the
// file, and the runner's clock (nil: real time).
type gcOpt struct {
	yaml string
	now  func() time.Time
}

// newGerritCWorld runs the bot through Main with source.type gerrit over
// the fake's projects as source.components.
func newGerritCWorld(t *testing.T, g *gerrittest.Server, r *mwRepos, timeout string, opts ...gcOpt) *cworld {
	t.Helper()
	w := &cworld{t: t, r: r, dir: t.TempDir(), out: &testparts.Buffer{}, tap: NewTap()}
	stages := w.hostStages(func(root string) http.Handler { return servingHealth(root) })
	pw := filepath.Join(w.dir, "gerrit-password")
	if err := os.WriteFile(pw, []byte(g.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg = filepath.Join(w.dir, "deploybot.yaml")
	cfg := fmt.Sprintf(`bot: {name: deploybot, prefix: "!"}
store: {path: %[1]s/deploybot.db, open_timeout: 5s}
staging: {path: %[1]s/staging.git}
source:
  type: gerrit
  gerrit: {url: %[3]s, username: %[4]s, password_file: %[5]s, approve: true, merge_timeout: %[6]s, poll_interval: 50ms}
  components:
    - {path: "", project: %[7]s, url: %[8]s, branch: master}
    - {path: %[9]s, project: %[10]s, url: %[11]s, branch: %[12]s, submodules: true}
hosts:
  transport: local
  stages:
%[2]s`, w.dir, stages, g.URL, g.Username, pw, timeout, gcConfig, r.config, gcDir, gcCore, r.core, gcWMF) + compositeTailYAML(w.dir)
	for _, o := range opts {
		cfg += o.yaml
	}
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.open()
	if _, ok := w.m.Runner.Source.(*gerrit.Composite); !ok {
		t.Fatalf("the runner's source is %T, want *gerrit.Composite", w.m.Runner.Source)
	}
	for _, o := range opts {
		if o.now != nil {
			w.m.Runner.Now = o.now
		}
	}
	if err := w.m.Provision(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.run()
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			t.Logf("conversation:\n%s", w.out.String())
		}
	})
	return w
}

// gcBroken is what a file holds in a change that breaks the site: a host
// serving a tree with it answers 60% of its requests with errors.
const gcBroken = "FATAL: every request fails"

// servingHealth answers /metrics for the host at root with counters that
// grow on every scrape, as traffic on the tree it serves would make them:
// 0.5% errors, or 60% while its current tree holds a file with gcBroken.
func servingHealth(root string) http.Handler {
	var scrapes, errs atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		switch {
		case treeHolds(filepath.Join(root, "current"), gcBroken):
			errs.Add(60)
		case n%2 == 0:
			errs.Add(1)
		}
		req, e := scrapes.Load()*100, errs.Load()
		fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n", req-e, e)
	})
}

// treeHolds reports whether a file under dir (followed if a symlink)
// contains s.
func treeHolds(dir, s string) bool {
	found := false
	_ = filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || found || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), s) {
			found = true
		}
		return nil
	})
	return found
}

// gcTree is git's own composition of the fake's branches now.
func gcTree(r *mwRepos) map[string]string {
	return r.composed(map[string]string{gcDir: gcWMF})
}

// TestGerritCompositeThroughMain deploys through Main and every stage,
// by change number, a change of the configuration repository, one of
// core's release branch, one of extension Foo (shipped once core's
// subscription, a little late, points at it), then one of each in one
// `!backport`, asked for in the wrong order and tied by Depends-On across
// projects; then rolls that last one back. Every host is compared file by
// file with git's own composition of the fake's branches at every stop,
// and the rollback restores both components and the extension exactly.
func TestGerritCompositeThroughMain(t *testing.T) {
	t.Parallel()
	g, r := newGerritMW(t)
	w := newGerritCWorld(t, g, r, "20s")
	g.SetSubscriptionDelay(300 * time.Millisecond)
	num := strconv.Itoa
	expectChange := func(d *deployer.Deployment, n int, component string) {
		t.Helper()
		for _, c := range d.Changes {
			if c.ID == num(n) {
				if c.Component != component || c.Owner != "bob" {
					t.Errorf("#%d: change %d staged in %q by %q, want %q by bob", d.ID, n, c.Component, c.Owner, component)
				}
				return
			}
		}
		t.Errorf("#%d: change %d not among %+v", d.ID, n, d.Changes)
	}

	// 1. The root: a config change.
	old := gcTree(r)
	cfgN := g.UploadTo(gcConfig, "master", "bob", "", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 2\n"}, "config: raise the limit")
	d := w.deployExpecting(num(cfgN), old, func() map[string]string { return gcTree(r) })
	expectChange(d, cfgN, "")

	// 2. Core's release branch.
	old = gcTree(r)
	coreN := g.UploadTo(gcCore, gcWMF, "bob", "", map[string]string{"includes/Setup.php": "<?php // fixed\n"}, "core: fix Setup")
	d = w.deployExpecting(num(coreN), old, func() map[string]string { return gcTree(r) })
	expectChange(d, coreN, gcDir)
	if got := strings.Join(d.Files, ","); got != gcDir+"/includes/Setup.php" {
		t.Errorf("#2 files: %s", got)
	}

	// 3. The extension: merged in Foo, picked up by core later.
	old = gcTree(r)
	fooN := g.UploadTo(gcFoo, gcWMF, "bob", "", map[string]string{"i18n/en.json": "{\"foo\":\"hi\"}\n"}, "Foo: new message")
	d = w.deployExpecting(num(fooN), old, func() map[string]string { return gcTree(r) })
	expectChange(d, fooN, gcDir+"/extensions/Foo")
	if got := strings.Join(d.Files, ","); got != gcDir+"/extensions/Foo/i18n/en.json" {
		t.Errorf("#3 files: %s", got)
	}
	if !strings.Contains(w.out.String(), fmt.Sprintf("change %d merged in %s; waiting up to 20s for %s's %s to point %s/extensions/Foo at it", fooN, gcFoo, gcCore, gcWMF, gcDir)) {
		t.Errorf("#3: the wait for the subscription was not announced")
	}

	// 4. All three, asked for Foo first, each depending on the next.
	old = gcTree(r)
	before := w.head()
	cfg4 := g.UploadTo(gcConfig, "master", "bob", "", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // Foo on\n"}, "config: enable Foo everywhere")
	core4 := g.UploadTo(gcCore, gcWMF, "bob", "", map[string]string{"api.php": "<?php // api\n"}, "core: new entry point", "Depends-On: "+gerrittest.ChangeID(cfg4))
	foo4 := g.UploadTo(gcFoo, gcWMF, "bob", "", map[string]string{"Foo.php": "", "src/Foo.php": "<?php // Foo 2\n"}, "Foo: move the class", "Depends-On: "+gerrittest.ChangeID(core4))
	d = w.deployExpecting(num(foo4)+" "+num(core4)+" "+num(cfg4), old, func() map[string]string { return gcTree(r) })
	expectChange(d, cfg4, "")
	expectChange(d, core4, gcDir)
	expectChange(d, foo4, gcDir+"/extensions/Foo")
	text := w.out.String()
	if i, j, k := strings.Index(text, "+2 on change "+num(cfg4)), strings.Index(text, "+2 on change "+num(core4)), strings.Index(text, "+2 on change "+num(foo4)); i < 0 || !(i < j && j < k) {
		t.Errorf("#4 was not approved in dependency order (config, core, Foo)")
	}
	files := append([]string(nil), d.Files...)
	sort.Strings(files)
	if got := strings.Join(files, ","); got != gcDir+"/api.php,"+gcDir+"/extensions/Foo/Foo.php,"+gcDir+"/extensions/Foo/src/Foo.php,wmf-config/InitialiseSettings.php" {
		t.Errorf("#4 files: %s", got)
	}

	// 5. Roll it back: both components and the extension are restored
	// exactly on every host.
	w.rollBackExactly(d, before, old, "#4")
}

// deployExpecting is cworld.deploy for trees that exist only once the
// deployment merged its changes: want is computed after it is done.
func (w *cworld) deployExpecting(refs string, old map[string]string, want func() map[string]string) *deployer.Deployment {
	w.t.Helper()
	w.next++
	id := w.next
	base := w.head()
	w.check(fmt.Sprintf("#%d before", id), every(base), every(old))
	w.say("alice", "!backport "+refs)
	w.wait(id, deployer.NoticeVerify, deployer.NoticeFailed, deployer.NoticeCancelled)
	d := w.get(id)
	if d.State != deployer.StateAwaitingVerification {
		w.t.Fatalf("#%d (%s) is %s: %s", id, refs, d.State, d.Reason)
	}
	new := want()
	w.check(fmt.Sprintf("#%d awaiting verification", id),
		map[deployer.Stage]string{deployer.Testservers: d.Commit, deployer.Canaries: base, deployer.Production: base},
		map[deployer.Stage]map[string]string{deployer.Testservers: new, deployer.Canaries: old, deployer.Production: old})
	w.say("bob", "verified")
	w.wait(id, deployer.NoticeDone, deployer.NoticeRolledBack, deployer.NoticeFailed)
	d = w.get(id)
	if d.State != deployer.StateDone {
		w.t.Fatalf("#%d (%s) ended %s: %s", id, refs, d.State, d.Reason)
	}
	w.check(fmt.Sprintf("#%d done", id), every(d.Commit), every(new))
	return d
}

// TestGerritCompositeSubscriptionNeverThroughMain: Foo's change merges
// and core never picks it up: the deployment fails saying so plainly,
// nothing is staged and no host changes.
func TestGerritCompositeSubscriptionNeverThroughMain(t *testing.T) {
	t.Parallel()
	g, r := newGerritMW(t)
	w := newGerritCWorld(t, g, r, "1s")
	old := gcTree(r)
	base := w.head()
	g.SetSubscriptionDelay(-1)
	fooN := g.UploadTo(gcFoo, gcWMF, "bob", "", map[string]string{"Foo.php": "<?php // Foo 2\n"}, "Foo: fix")
	w.say("alice", "!backport "+strconv.Itoa(fooN))
	w.wait(1, deployer.NoticeFailed, deployer.NoticeVerify, deployer.NoticeCancelled)
	d := w.get(1)
	want := fmt.Sprintf("%s's %s did not pick up %s's merge of change %d within 1s; nothing was deployed", gcCore, gcWMF, gcFoo, fooN)
	if d.State != deployer.StateFailed || !strings.Contains(d.Reason, want) {
		t.Fatalf("ended %s: %q, want failed with %q", d.State, d.Reason, want)
	}
	if !strings.Contains(w.out.String(), want) {
		t.Errorf("the channel was not told %q", want)
	}
	if g.Status(fooN) != gerrit.StatusMerged {
		t.Errorf("change %d is %s, want merged", fooN, g.Status(fooN))
	}
	if h := w.head(); h != base {
		t.Errorf("staging moved from %.10s to %.10s", base, h)
	}
	w.check("after the failed wait", every(base), every(old))
}

// TestCheckConfigGerritComponents runs check-config on a Gerrit composite
// source over the fake's projects: valid as is; a followed submodule
// whose URL is no project of the Gerrit, or whose .gitmodules entry names
// no branch, is reported at its component's line; a component without a
// project is refused offline.
func TestCheckConfigGerritComponents(t *testing.T) {
	t.Parallel()
	g, r := newGerritMW(t)
	dir := t.TempDir()
	gerritLine := fmt.Sprintf("  gerrit: {url: %s, username: bot, password_env: GERRIT_PW}\n", g.URL)
	root := fmt.Sprintf("    - {path: \"\", project: %s, url: %s, branch: master}\n", gcConfig, r.config)
	core := fmt.Sprintf("    - {path: %s, project: %s, url: %s, branch: %s, submodules: true}\n", gcDir, gcCore, r.core, gcWMF)
	// A core elsewhere, whose Foo submodule's relative URL leads out of
	// the Gerrit's projects.
	moved := filepath.Join(t.TempDir(), "elsewhere", "core.git")
	r.git(dir, "clone", "-q", "--bare", r.core, moved)
	// A branch of core whose .gitmodules names no branch for Foo: no
	// subscription follows it.
	g.CreateBranch(gcCore, gcWMF, "wmf/nobranch")
	g.Push(gcCore, "wmf/nobranch", map[string]string{".gitmodules": "[submodule \"extensions/Foo\"]\n\tpath = extensions/Foo\n\turl = ../extensions/Foo.git\n"}, "Foo: follow no branch", "carol")
	for _, tc := range []struct {
		name, comps string
		code        int
		want        string
	}{
		{"mediawiki shape", root + core, 0, "source gerrit, 2 component(s), every remote answered"},
		{"submodule of no project", root + fmt.Sprintf("    - {path: %s, project: %s, url: %s, branch: %s, submodules: true}\n", gcDir, gcCore, moved, gcWMF), 1,
			"line 9: source.components: component " + gcDir + ": submodule extensions/Foo comes from " + filepath.Join(filepath.Dir(moved), "extensions", "Foo.git") + ", which is no project of " + g.URL},
		{"submodule without a branch", root + fmt.Sprintf("    - {path: %s, project: %s, url: %s, branch: wmf/nobranch, submodules: true}\n", gcDir, gcCore, r.core), 1,
			"line 9: source.components: component " + gcDir + ": submodule extensions/Foo names no branch in .gitmodules, so no superproject subscription follows it and I refuse its Gerrit changes; add \"branch = .\" (or the branch it tracks) to its entry in .gitmodules of wmf/nobranch, or configure a component at " + gcDir + "/extensions/Foo"},
		{"no project", root + fmt.Sprintf("    - {path: %s, url: %s, branch: %s}\n", gcDir, r.core, gcWMF), 1,
			"line 9: source.components: component \"" + gcDir + "\": project is required with source.type gerrit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(configYAML(dir, "source:\n  type: gerrit\n"+gerritLine+"  components:\n"+tc.comps)), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := realMain([]string{"check-config", "--config", path}, nil, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out.String(), errOut.String())
			}
		})
	}
}

// TestGerritCompositeWindowThroughMain: with backport windows, !add takes
// a core commit as component:ref (a deployer adds it) and a change of
// extension Foo (its owner adds it; the list shows its subject, owner and
// where it lands); a change of a project nobody deploys is refused at
// !add; !window go deploys both in the list's order, each through every
// stage, the hosts compared file by file.
func TestGerritCompositeWindowThroughMain(t *testing.T) {
	t.Parallel()
	g, r := newGerritMW(t)
	clock := &testClock{}
	day := time.Now().UTC().AddDate(0, 0, 1)
	at := func(h, m int) time.Time { return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, time.UTC) }
	clock.set(at(12, 50))
	w := newGerritCWorld(t, g, r, "20s", gcOpt{now: clock.Now, yaml: `windows:
  timezone: UTC
  weekly:
    - {days: [mon, tue, wed, thu, fri, sat, sun], at: ["13:00"], duration: 60m, name: the backport window}
`})
	g.AddProject("mediawiki/extensions/Bar", gcWMF, map[string]string{"Bar.php": "bar\n"})
	bar := g.UploadTo("mediawiki/extensions/Bar", gcWMF, "bob", "", map[string]string{"Bar.php": "bar 2\n"}, "Bar: fix")
	fooN := g.UploadTo(gcFoo, gcWMF, "bob", "", map[string]string{"i18n/en.json": "{\"foo\":\"hi\"}\n"}, "Foo: new message")
	old := gcTree(r) // what the hosts serve: the baseline
	coreC := g.Push(gcCore, gcWMF, map[string]string{"includes/Setup.php": "<?php // pushed\n"}, "core: pushed fix", "bob")

	w.say("alice", "!add "+gcDir+":"+coreC[:10])
	w.say("bob", "!add "+strconv.Itoa(fooN))
	w.say("bob", "!add "+strconv.Itoa(bar))
	v, err := w.m.Runner.WindowStatus()
	if err != nil || len(v.Items) != 2 {
		t.Fatalf("window %+v (%v): want two items", v, err)
	}
	core, foo := v.Items[0], v.Items[1]
	if foo.Change.ID != strconv.Itoa(fooN) || foo.Change.Subject != "Foo: new message" || foo.Change.Owner != "bob" ||
		foo.Change.Component != gcDir+"/extensions/Foo" || foo.Submitter != "Bob Submitter" {
		t.Errorf("Foo's item: %+v", foo)
	}
	if core.Change.ID != gcDir+":"+coreC || core.Change.Subject != "core: pushed fix" || core.Change.Component != gcDir {
		t.Errorf("core's item: %+v", core)
	}
	if want := fmt.Sprintf("change %d (Bar: fix) is for mediawiki/extensions/Bar branch %s, which I do not deploy", bar, gcWMF); !strings.Contains(w.out.String(), want) {
		t.Errorf("the channel was not told %q", want)
	}
	if want := fmt.Sprintf("added %d (Foo: new message) to the window", fooN); !strings.Contains(w.out.String(), want) {
		t.Errorf("the channel was not told %q", want)
	}

	clock.set(at(13, 0).Add(time.Second))
	base := w.head()
	w.say("alice", "!window go")
	for id := int64(1); id <= 2; id++ {
		w.wait(id, deployer.NoticeVerify, deployer.NoticeFailed, deployer.NoticeCancelled)
		d := w.get(id)
		if d.State != deployer.StateAwaitingVerification {
			t.Fatalf("#%d is %s: %s", id, d.State, d.Reason)
		}
		new := gcTree(r) // #1: core at the pushed commit; #2: Foo's change merged and picked up
		w.check(fmt.Sprintf("#%d awaiting verification", id),
			map[deployer.Stage]string{deployer.Testservers: d.Commit, deployer.Canaries: base, deployer.Production: base},
			map[deployer.Stage]map[string]string{deployer.Testservers: new, deployer.Canaries: old, deployer.Production: old})
		w.say("bob", "verified")
		w.wait(id, deployer.NoticeDone, deployer.NoticeRolledBack, deployer.NoticeFailed)
		if d = w.get(id); d.State != deployer.StateDone {
			t.Fatalf("#%d ended %s: %s", id, d.State, d.Reason)
		}
		w.check(fmt.Sprintf("#%d done", id), every(d.Commit), every(new))
		old, base = new, d.Commit
	}
	if got := w.get(1).Refs; len(got) != 1 || got[0] != gcDir+":"+coreC {
		t.Errorf("#1 deployed %v, want core's commit", got)
	}
	if got := w.get(2).Refs; len(got) != 1 || got[0] != strconv.Itoa(fooN) {
		t.Errorf("#2 deployed %v, want Foo's change", got)
	}
}

// TestGerritCompositeBadExtensionChangeThroughMain: a change of extension
// Foo that breaks the site passes the testservers and is caught on the
// canaries: it is rolled back (every host serves the tree from before),
// the deployment blames it, its revert is opened in Foo's project and
// branch (not core's, whose subscription commit carried it), and asking
// for it again is refused with the revert's link.
func TestGerritCompositeBadExtensionChangeThroughMain(t *testing.T) {
	t.Parallel()
	g, r := newGerritMW(t)
	w := newGerritCWorld(t, g, r, "20s")
	old := gcTree(r)
	base := w.head()
	bad := g.UploadTo(gcFoo, gcWMF, "bob", "", map[string]string{"Foo.php": "<?php // " + gcBroken + "\n"}, "Foo: rewrite the hook")
	w.say("alice", "!backport "+strconv.Itoa(bad))
	w.wait(1, deployer.NoticeVerify, deployer.NoticeFailed, deployer.NoticeCancelled)
	merged := g.TipOf(gcFoo, gcWMF)
	w.say("bob", "verified")
	w.wait(1, deployer.NoticeRolledBack, deployer.NoticeDone, deployer.NoticeFailed)
	d := w.get(1)
	if d.State != deployer.StateRolledBack || !d.Blame || !strings.Contains(d.Reason, "canaries") {
		t.Fatalf("#1 ended %s (blame %v): %s; want rolled back, blamed, by the canaries", d.State, d.Blame, d.Reason)
	}
	w.check("#1 rolled back", every(base), every(old))

	reverts := g.RevertsOf(bad)
	if len(reverts) != 1 {
		t.Fatalf("reverts of change %d: %v, want one", bad, reverts)
	}
	rv := reverts[0]
	if project, branch := g.Where(rv); project != gcFoo || branch != gcWMF {
		t.Errorf("the revert %d was opened in %s %s, want %s %s", rv, project, branch, gcFoo, gcWMF)
	}
	if msg := g.CommitMessage(rv); !strings.Contains(msg, "This reverts commit "+merged) {
		t.Errorf("the revert does not revert Foo's merged commit %.10s:\n%s", merged, msg)
	}
	revertLink := fmt.Sprintf("%s/c/%s/+/%d", g.URL, gcFoo, rv)
	if !strings.Contains(w.out.String(), revertLink) {
		t.Errorf("the channel was not given the revert's link %s", revertLink)
	}

	// Blocked: asking for it again is refused, naming the revert.
	posts := len(g.Requests())
	w.say("alice", "!backport "+strconv.Itoa(bad))
	w.wait(2, deployer.NoticeFailed, deployer.NoticeVerify, deployer.NoticeCancelled)
	if d2 := w.get(2); d2.State != deployer.StateFailed || !strings.Contains(d2.Reason, revertLink) {
		t.Errorf("#2 (the bad change again) is %s: %q, want failed naming %s", d2.State, d2.Reason, revertLink)
	}
	for _, req := range g.Requests()[posts:] {
		if strings.HasPrefix(req, "POST") {
			t.Errorf("the refused request posted to Gerrit: %s", req)
		}
	}
	w.check("#2 refused", every(base), every(old))
}
