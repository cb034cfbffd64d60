package main

// The Gerrit mode of the model (TestModelPipelineGerrit): the same
// operations and invariants as TestModelPipeline, where upstream is the
// fake Gerrit (deployer/gerrit/gerrittest: Gerrit's REST JSON over a real
// git repository) and the bot runs the one-project `source.type: gerrit`
// configuration of README "Gerrit", approving (Code-Review +2) and waiting
// for the merge as in production. A model change is an open change bob
// uploads (good, bad, quiet or nostats, as in the other modes; now and then
// on top of the previous open change, a relation chain); chat names it by
// its number, and only the bot's vote merges it. Reverts are Gerrit
// changes: those the bot opens after a rollback that blames a change,
// which a person merges (merge-revert) or has the bot deploy
// (backport-revert), and those the model makes (revert-upstream: a revert
// change, merged at once). Every revert change is a revert of the model,
// so "Suspected: never names a revert" holds for them too, by number and
// by commit.
//
// On top of the model's invariants, after every step: "upstream contains
// change c" is c merged on the branch of the fake's repository, with c's
// file at the tip; every deployment's upstream commit is on that branch;
// every change a deployment carries by number is merged in Gerrit as the
// very commit the deployment names; every merged change of the model was
// asked for by a person (the bot merges nothing else); the fake saw no
// error.
//
// TestModelPipelineGerritComposite runs the same over the composite
// Gerrit source (gerrit.Composite), with the composite mode's check of
// every served staging commit's composition (w.comp).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
)

// gerritTB is the testing.TB the fake Gerrit reports through inside a
// rapid property: it cannot be a rapid.T, and the fake's HTTP handlers run
// on their own goroutines. Errors are recorded and fail the next check;
// a fatal error also panics (rapid reports a panic in the property as a
// failure and shrinks it; net/http recovers one in a handler). The
// embedded TB is nil: gerrittest calls only the methods below.
type gerritTB struct {
	testing.TB
	dir      string
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (g *gerritTB) Helper() {}
func (g *gerritTB) record(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.errs = append(g.errs, s)
}
func (g *gerritTB) Errorf(format string, args ...any) { g.record(fmt.Sprintf(format, args...)) }
func (g *gerritTB) Fatal(args ...any) {
	s := fmt.Sprint(args...)
	g.record(s)
	panic("gerrittest: " + s)
}
func (g *gerritTB) Fatalf(format string, args ...any) { g.Fatal(fmt.Sprintf(format, args...)) }

// Logf drops the fake's notes (an auto-submit that did not merge is seen
// by the bot, and by the checks, through the change's status).
func (g *gerritTB) Logf(string, ...any) {}
func (g *gerritTB) Cleanup(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cleanups = append(g.cleanups, f)
}
func (g *gerritTB) TempDir() string {
	d, err := os.MkdirTemp(g.dir, "gerrit-")
	if err != nil {
		g.Fatal(err)
	}
	return d
}
func (g *gerritTB) errors() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.errs...)
}

// gerritUpstream is the Gerrit upstream of a world.
type gerritUpstream struct {
	w         *world
	g         *gerrittest.Server
	tb        *gerritTB
	byNumber  map[int]*modelChange
	upstreams map[string]bool // deployments' upstream commits found on the branch
	// composite: the MediaWiki shape of gerrit_composite_e2e_test.go (the
	// configuration project at the root, core's release branch at
	// compRelease with Foo as a submodule its branch subscribes to), with
	// w.comp checking every served staging commit's composition.
	composite bool
}

// gerritComps are the composite mode's components: the model's name, the
// Gerrit project and branch, and the deploy path.
var gerritComps = map[string]struct{ project, branch, at string }{
	"root": {gcConfig, "master", ""},
	"core": {gcCore, gcWMF, compRelease},
	"ext":  {gcFoo, gcWMF, compExt},
}

func newGerritUpstream(w *world, composite bool) *gerritUpstream {
	tb := &gerritTB{dir: w.dir}
	o := gerrittest.Options{AutoSubmit: true}
	if composite {
		o.Project, o.Branch = gcConfig, "master"
	}
	g := gerrittest.New(tb, o)
	u := &gerritUpstream{w: w, g: g, tb: tb, byNumber: map[int]*modelChange{}, upstreams: map[string]bool{}, composite: composite}
	if composite {
		g.AddProject(gcCore, gcWMF, map[string]string{"index.php": "<?php // core 1\n", "includes/Setup.php": "<?php\n"})
		g.AddProject(gcFoo, gcWMF, map[string]string{"Foo.php": "<?php // Foo 1\n", "i18n/en.json": "{}\n"})
		g.AddSubmodule(gcCore, gcWMF, "extensions/Foo", gcFoo, gcWMF)
		w.comp = &compUpstream{w: w, checked: map[string]bool{},
			r: &mwRepos{t: w.t, base: w.dir, config: g.ProjectDir(gcConfig), core: g.ProjectDir(gcCore), ext: g.ProjectDir(gcFoo)}}
	}
	return u
}

// where is the Gerrit project, branch and deploy path of c's component.
func (u *gerritUpstream) where(c *modelChange) (project, branch, at string) {
	if !u.composite {
		return u.g.Project, u.g.Branch, ""
	}
	p := gerritComps[c.comp]
	return p.project, p.branch, p.at
}

// source is the configuration's source section: one Gerrit project, the
// bot approving and waiting for the merge (well inside settle's minute).
func (u *gerritUpstream) source() string {
	pw := filepath.Join(u.w.dir, "gerrit-password")
	if err := os.WriteFile(pw, []byte(u.g.Password+"\n"), 0o600); err != nil {
		u.w.t.Fatal(err)
	}
	if u.composite {
		return fmt.Sprintf(`source:
  type: gerrit
  gerrit: {url: %s, username: %s, password_file: %s, approve: true, merge_timeout: 5s, poll_interval: 30ms}
  components:
    - {path: "", project: %s, url: %s, branch: master}
    - {path: %s, project: %s, url: %s, branch: %s, submodules: true}
`, u.g.URL, u.g.Username, pw, gcConfig, u.g.ProjectDir(gcConfig), compRelease, gcCore, u.g.ProjectDir(gcCore), gcWMF)
	}
	return fmt.Sprintf(`source:
  type: gerrit
  gerrit: {url: %s, project: %s, branch: %s, git_url: %s, username: %s, password_file: %s, approve: true, merge_timeout: 5s, poll_interval: 30ms}
`, u.g.URL, u.g.Project, u.g.Branch, u.g.Dir, u.g.Username, pw)
}

func (u *gerritUpstream) close() {
	u.tb.mu.Lock()
	cs := u.tb.cleanups
	u.tb.cleanups = nil
	u.tb.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

func number(c *modelChange) int {
	n, _ := strconv.Atoi(c.ref)
	return n
}

// commit uploads an open change of kind, owned by bob: on the branch tip,
// or now and then on top of the newest open change (a relation chain).
func (u *gerritUpstream) commit(rt *rapid.T, kind string) *modelChange {
	w := u.w
	c := &modelChange{n: len(w.changes) + 1, kind: kind}
	if u.composite {
		c.comp = rapid.SampledFrom([]string{"root", "core", "ext"}).Draw(rt, "component")
		c.path = joinDeploy(gerritComps[c.comp].at, fmt.Sprintf("changes/c%d.txt", c.n))
	}
	project, branch, at := u.where(c)
	rel := strings.TrimPrefix(strings.TrimPrefix(c.file(), at), "/")
	parent, on := "", ""
	if rapid.IntRange(0, 4).Draw(rt, "chain") == 0 {
		for i := len(w.changes) - 1; i >= 0; i-- {
			if p := w.changes[i]; p.kind != kindRevert && p.comp == c.comp && u.g.Status(number(p)) == gerrit.StatusNew {
				parent, on = p.commit, fmt.Sprintf(" on change %s", p.ref)
				break
			}
		}
	}
	n := u.g.UploadTo(project, branch, "bob", parent, map[string]string{rel: fmt.Sprintf("%s\nchange %d\n", kind, c.n)}, fmt.Sprintf("change %d (%s)", c.n, kind))
	c.commit, c.ref = u.g.Revision(n), strconv.Itoa(n)
	u.add(c)
	w.log = append(w.log, fmt.Sprintf("gerrit: bob uploads change %d (model %d, %s) to %s %s %.10s%s", n, c.n, kind, project, branch, c.commit, on))
	return c
}

func (u *gerritUpstream) add(c *modelChange) {
	u.w.changes = append(u.w.changes, c)
	u.w.byCommit[c.commit] = c
	u.byNumber[number(c)] = c
}

// refresh brings the model up to what Gerrit holds: a change merged as a
// rebased commit is known by that commit too, and every revert change
// (the bot's included) is a revert of the model.
func (u *gerritUpstream) refresh() {
	w := u.w
	for i := 0; i < len(w.changes); i++ { // reverts are appended as found
		c := w.changes[i]
		n := number(c)
		if cur := u.g.Revision(n); cur != c.commit && u.g.Status(n) == gerrit.StatusMerged {
			w.byCommit[cur] = c
			c.commit = cur
		}
		if c.kind == kindRevert {
			continue
		}
		for _, r := range u.g.RevertsOf(n) {
			if u.byNumber[r] == nil {
				rc := &modelChange{n: len(w.changes) + 1, kind: kindRevert, of: c.commit, ref: strconv.Itoa(r), commit: u.g.Revision(r), comp: c.comp, path: c.path}
				u.add(rc)
				w.log = append(w.log, fmt.Sprintf("gerrit: revert change %d of change %d (%s) is open", r, n, u.g.Status(r)))
			}
		}
	}
}

// onUpstream reports whether change c is merged on the branch and not
// reverted there: its file is at the tip.
func (u *gerritUpstream) onUpstream(c *modelChange) bool {
	if u.g.Status(number(c)) != gerrit.StatusMerged {
		return false
	}
	project, branch, at := u.where(c)
	rel := strings.TrimPrefix(strings.TrimPrefix(c.file(), at), "/")
	return exec.Command("git", "-C", u.g.ProjectDir(project), "cat-file", "-e", "refs/heads/"+branch+":"+rel).Run() == nil
}

// revert merges a revert change of c, as a person does: the open one
// (the bot's) if there is one, else a new one.
func (u *gerritUpstream) revert(c *modelChange) *modelChange {
	u.refresh()
	n := number(c)
	r := 0
	for _, o := range u.g.RevertsOf(n) {
		if u.g.Status(o) == gerrit.StatusNew {
			r = o
		}
	}
	if r == 0 {
		r = u.g.Revert(n, "")
		u.refresh()
	}
	u.merge(r, fmt.Sprintf("revert change %d of change %d", r, n))
	return u.byNumber[r]
}

// merge has a person approve and submit change r.
func (u *gerritUpstream) merge(r int, what string) {
	w := u.w
	u.g.Vote(r, "carol", gerrit.CodeReview, 2)
	if err := u.g.Submit(r); err != nil {
		w.log = append(w.log, fmt.Sprintf("gerrit: carol merges %s: %v", what, err))
		return
	}
	u.refresh()
	w.log = append(w.log, fmt.Sprintf("gerrit: carol merges %s: %.10s", what, u.g.Revision(r)))
}

// openReverts are the revert changes still open.
func (u *gerritUpstream) openReverts() []*modelChange {
	u.refresh()
	var out []*modelChange
	for _, c := range u.w.changes {
		if c.kind == kindRevert && u.g.Status(number(c)) == gerrit.StatusNew {
			out = append(out, c)
		}
	}
	return out
}

// tipRef names a change of the model: Gerrit has no branch refs to
// deploy.
func (u *gerritUpstream) tipRef(rt *rapid.T) string {
	return rapid.SampledFrom(u.w.changes).Draw(rt, "change").ref
}

// actions are the model's operations with those of a Gerrit upstream.
func (u *gerritUpstream) actions() map[string]func(*rapid.T) {
	w := u.w
	acts := w.actions()
	// With no revert change open, these steps change nothing (and the
	// invariants are checked all the same).
	mergeRevert := func(rt *rapid.T) {
		if rs := u.openReverts(); len(rs) > 0 {
			r := rapid.SampledFrom(rs).Draw(rt, "revert")
			u.merge(number(r), "revert change "+r.ref)
		}
		w.settle()
	}
	acts["merge-revert"] = mergeRevert
	acts["merge-revert-2"] = mergeRevert
	acts["backport-revert"] = func(rt *rapid.T) {
		rs := u.openReverts()
		if len(rs) == 0 {
			w.settle()
			return
		}
		r := rapid.SampledFrom(rs).Draw(rt, "revert")
		w.say("alice", "!backport "+r.ref+" --include-unexpected")
		w.settle()
		if id := w.active(); id != 0 && rapid.Bool().Draw(rt, "answer") {
			w.say("bob", fmt.Sprintf("verified %d", id))
			w.settle()
		}
	}
	return acts
}

func (u *gerritUpstream) git(args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", u.g.Dir}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// check asserts the Gerrit invariants (refresh has run at the start of
// the step's check).
func (u *gerritUpstream) check() {
	w := u.w
	t := w.t
	t.Helper()
	if errs := u.tb.errors(); len(errs) > 0 {
		t.Fatalf("the fake Gerrit reported: %s", strings.Join(errs, "; "))
	}
	ds, err := w.m.Store.List(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	asked := map[string]bool{}
	for _, d := range ds {
		for _, r := range d.Refs {
			asked[r] = true
		}
		if d.Upstream != "" && !u.upstreams[d.Upstream] && !u.composite { // a composition: w.comp checks it
			if _, err := u.git("merge-base", "--is-ancestor", d.Upstream, "refs/heads/"+u.g.Branch); err != nil {
				t.Fatalf("#%d ships upstream %.10s, which is not on Gerrit's %s", d.ID, d.Upstream, u.g.Branch)
			}
			u.upstreams[d.Upstream] = true
		}
		for _, c := range d.Changes {
			n, err := strconv.Atoi(c.ID)
			if err != nil {
				continue // an unexpected commit, by its hash
			}
			if mc := u.byNumber[n]; mc == nil {
				t.Fatalf("#%d carries change %d, which the model never made", d.ID, n)
			}
			if st := u.g.Status(n); st != gerrit.StatusMerged {
				t.Fatalf("#%d carries change %d, which Gerrit says is %s", d.ID, n, st)
			}
			if rev := u.g.Revision(n); c.Commit != rev {
				t.Fatalf("#%d carries change %d as %.10s, but Gerrit merged it as %.10s", d.ID, n, c.Commit, rev)
			}
		}
	}
	for _, c := range w.changes {
		if c.kind != kindRevert && u.g.Status(number(c)) == gerrit.StatusMerged && !asked[c.ref] {
			t.Fatalf("change %s (model %d) is merged, but no deployment asked for it", c.ref, c.n)
		}
	}
	// A suspect "asked for" was asked for: the deployment's request named
	// it (by number; a commit cannot be asked for by its hash here). In
	// composite mode too: Gerrit's submodule pointer updates are said to
	// move a pointer, other unnamed commits to ship with
	// --include-unexpected.
	refsOf := map[int64][]string{}
	for _, d := range ds {
		refsOf[d.ID] = d.Refs
	}
	for _, n := range w.tap.Notices() {
		for _, line := range strings.Split(n.Text, "\n") {
			if !strings.HasPrefix(line, "Suspected: ") {
				continue
			}
			for _, m := range askedRe.FindAllStringSubmatch(line, -1) {
				if !slices.Contains(refsOf[n.Deployment], m[1]) {
					t.Fatalf("#%d says %s was asked for, but its request named %v: %s", n.Deployment, m[1], refsOf[n.Deployment], line)
				}
			}
		}
	}
	// A revert change is never a suspect, by number either.
	var reverts []string
	for _, c := range w.changes {
		if c.kind == kindRevert {
			reverts = append(reverts, regexp.QuoteMeta(c.ref))
		}
	}
	if len(reverts) == 0 {
		return
	}
	re := regexp.MustCompile(`(?:^Suspected: |, )(` + strings.Join(reverts, "|") + `) \(`)
	for _, n := range w.tap.Notices() {
		for _, line := range strings.Split(n.Text, "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				t.Fatalf("#%d blames revert change %s: %s", n.Deployment, m[1], line)
			}
		}
	}
}

var askedRe = regexp.MustCompile(`(?:^Suspected: |, )(\S+) \([^;]*; asked for\)`)

// runModelGerritOver plays the Gerrit mode, over the composite source
// when composite is set, adding the changes Gerrit merged to merged.
func runModelGerritOver(composite bool, merged *atomic.Int64) func(*rapid.T, *modelTotals) {
	return func(rt *rapid.T, totals *modelTotals) {
		playModel(rt, totals, worldOptions{gerrit: true, composite: composite},
			func(w *world) map[string]func(*rapid.T) { return w.ger.actions() },
			func(w *world) { merged.Add(int64(w.ger.merged())) })
	}
}

// merged counts the model's changes Gerrit merged.
func (u *gerritUpstream) merged() int {
	k := 0
	for _, c := range u.w.changes {
		if u.g.Status(number(c)) == gerrit.StatusMerged {
			k++
		}
	}
	return k
}

// gerritMerged counts the changes merged over a run, so a run in which
// the bot never merged one is seen.
var gerritMerged atomic.Int64

// TestModelPipelineGerrit runs the model in Gerrit mode over a fixed set
// of seeds (8 sequences of up to 20 steps by default; the -rapid flags
// and -model.soak as for TestModelPipeline).
func TestModelPipelineGerrit(t *testing.T) {
	totals, start := runModelTest(t, "8", runModelGerritOver(false, &gerritMerged))
	msg := fmt.Sprintf("model (gerrit): %d sequences, %d steps, %d invariant checks, %d changes merged in Gerrit in %s; %s", totals.sequences, totals.steps, totals.checks, gerritMerged.Load(), time.Since(start).Round(time.Second), totals.summary())
	t.Log(msg)
	fmt.Println(msg)
	if totals.steps == 0 || gerritMerged.Load() == 0 {
		t.Fatal("the model ran no step, or Gerrit merged no change")
	}
}

var gerritCompMerged atomic.Int64

// TestModelPipelineGerritComposite runs the Gerrit mode over the
// composite source (gerrit.Composite): each change goes to the
// configuration project at the root, to core's release branch, or to
// extension Foo (its merge moves core's pointer through the fake's
// superproject subscription), and every served staging commit must hold
// the composition it records, as in TestModelPipelineComposite (3
// sequences of up to 20 steps by default).
func TestModelPipelineGerritComposite(t *testing.T) {
	before := compositionsChecked.Load()
	totals, start := runModelTest(t, "3", runModelGerritOver(true, &gerritCompMerged))
	held := compositionsChecked.Load() - before
	msg := fmt.Sprintf("model (gerrit, composite): %d sequences, %d steps, %d invariant checks, %d changes merged in Gerrit, %d staging commits held their composition, in %s; %s", totals.sequences, totals.steps, totals.checks, gerritCompMerged.Load(), held, time.Since(start).Round(time.Second), totals.summary())
	t.Log(msg)
	fmt.Println(msg)
	if totals.steps == 0 || gerritCompMerged.Load() == 0 || held == 0 {
		t.Fatal("the model ran no step, Gerrit merged no change, or no staging commit's composition was checked")
	}
}
