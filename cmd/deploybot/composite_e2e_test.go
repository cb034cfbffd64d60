package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/internal/testparts"
)

// cworld runs the bot through Main on a composite source: the MediaWiki-
// shaped repositories of mwRepos, five local hosts with healthy traffic,
// and a configuration the test rewrites to add or retire components.
type cworld struct {
	t      *testing.T
	r      *mwRepos
	dir    string
	cfg    string
	stages string
	running
	tap  *Tap
	out  *testparts.Buffer
	next int64
}

// healthy answers /metrics with counters that grow on every scrape, with
// 0.5% errors: a tree the canary judge passes.
func healthy() http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n", k*100-k/2, k/2)
	})
}

func newCWorld(t *testing.T, r *mwRepos, comps string) *cworld {
	t.Helper()
	w := &cworld{t: t, r: r, dir: t.TempDir(), out: &testparts.Buffer{}, tap: NewTap()}
	w.stages = w.hostStages(func(string) http.Handler { return healthy() })
	w.cfg = filepath.Join(w.dir, "deploybot.yaml")
	w.configure(comps)
	w.open()
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

// configure writes the configuration with source.components comps.
func (w *cworld) configure(comps string) {
	w.t.Helper()
	cfg := fmt.Sprintf(`bot: {name: deploybot, prefix: "!"}
store: {path: %[1]s/deploybot.db, open_timeout: 5s}
staging: {path: %[1]s/staging.git}
source:
  type: git
  git: {push_reverts: true}
  components:
%[2]shosts:
  transport: local
  stages:
%[3]s`, w.dir, comps, w.stages) + compositeTailYAML(w.dir)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *cworld) open() {
	w.t.Helper()
	m := NewMain(strings.NewReader(""), w.out, w.out)
	if err := m.ParseFlags([]string{"--config", w.cfg}); err != nil {
		w.t.Fatal(err)
	}
	m.Adapters = append(m.Adapters, w.tap)
	if err := m.Open(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.m = m
}

func (w *cworld) stop() { w.running.stop(w.t) }

// reconfigure restarts the bot on a new component list, as an operator
// does when a release branch goes live or is retired.
func (w *cworld) reconfigure(comps string) {
	w.t.Helper()
	w.stop()
	w.configure(comps)
	w.open()
	w.run()
}

func (w *cworld) say(user, text string) { w.m.Console.Handle("/as "+user+" "+text, w.m.Bot.Handle) }

func (w *cworld) wait(id int64, kinds ...deployer.NoticeKind) deployer.Notice {
	w.t.Helper()
	n, err := w.tap.Wait(context.Background(), id, 90*time.Second, kinds...)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *cworld) get(id int64) *deployer.Deployment {
	w.t.Helper()
	d, err := w.m.Store.Get(id)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func (w *cworld) head() string {
	w.t.Helper()
	h, _, err := w.m.Staging.Head(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return h
}

// check compares every host of each stage with the composed tree given
// for it: the host reads back the staging commit wanted, its slot equals
// that commit file by file (hosts.VerifyHost), and the staging commit's
// files equal git's own composition of the upstream repositories.
func (w *cworld) check(step string, commit map[deployer.Stage]string, tree map[deployer.Stage]map[string]string) {
	w.t.Helper()
	ctx := context.Background()
	for stage, want := range commit {
		for _, h := range w.m.Fleet[stage] {
			cur, err := h.Current(ctx)
			if err != nil || cur != want {
				w.t.Fatalf("%s: %s (%s) serves %.10s (%v), want %.10s", step, h.Name(), stage, cur, err, want)
			}
			lh := h.(*hosts.Local)
			if err := hosts.VerifyHost(ctx, lh, w.m.Staging); err != nil {
				w.t.Fatalf("%s: %s: tree differs from its staging commit: %v", step, h.Name(), err)
			}
			if got := slotFiles(w.t, lh); !reflect.DeepEqual(got, tree[stage]) {
				w.t.Fatalf("%s: %s (%s) serves files other than the composed tree:\n got %v\nwant %v", step, h.Name(), stage, keys(got), keys(tree[stage]))
			}
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// slotFiles reads what a local host serves, path -> content.
func slotFiles(t *testing.T, h *hosts.Local) map[string]string {
	t.Helper()
	dir, err := h.ActiveDir()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.Dir(rel) == "." && rel[0] == '.' {
			return nil // slot bookkeeping, not deployed content
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func every[T any](v T) map[deployer.Stage]T {
	return map[deployer.Stage]T{deployer.Testservers: v, deployer.Canaries: v, deployer.Production: v}
}

// deploy runs one backport through every stage, checking every host
// against the composed trees before (old) and after (new) at each stop:
// after the testservers' sync only they serve the new tree, and at the
// end every host does. It returns the finished deployment.
func (w *cworld) deploy(refs string, old, new map[string]string) *deployer.Deployment {
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

func changeRefs(d *deployer.Deployment) []string {
	var out []string
	for _, c := range d.Changes {
		out = append(out, c.Component+"@"+c.ID[:8])
	}
	sort.Strings(out)
	return out
}

// TestCompositeThroughMain deploys, through Main and every stage, a change
// to the root (config) repository, one to the release branch, one to an
// extension submodule, then all three together, and rolls that last one
// back; every host is compared file by file with git's own composition of
// the upstream repositories at every stop. Between them a release branch
// goes live (a component added to the configuration) and is retired
// again: the next deployment carries, or removes, its whole tree and says
// so.
func TestCompositeThroughMain(t *testing.T) {
	t.Parallel()
	r := newMWRepos(t)
	r.git(r.core, "branch", "wmf/2")
	root := `    - {path: "", url: ` + r.config + `, branch: master}
`
	php1 := `    - {path: php-1, url: ` + r.core + `, branch: wmf/1, submodules: true}
`
	php2 := `    - {path: php-2, url: ` + r.core + `, branch: wmf/2, submodules: true}
`
	w := newCWorld(t, r, root+php1)
	tree := func(withPhp2 bool) map[string]string {
		dirs := map[string]string{"php-1": "wmf/1"}
		if withPhp2 {
			dirs["php-2"] = "wmf/2"
		}
		return r.composed(dirs)
	}

	// 1. The root: one config change.
	old := tree(false)
	cfg := r.commit(r.config, "config: raise the limit", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 2\n"})
	d := w.deploy("root:"+cfg[:8], old, tree(false))
	if got := strings.Join(d.Files, ","); got != "wmf-config/InitialiseSettings.php" {
		t.Errorf("#1 files: %s", got)
	}

	// 2. The release branch: a core change.
	old = tree(false)
	coreFix := r.commit(r.core, "core: fix Setup", map[string]string{"includes/Setup.php": "<?php // fixed\n"})
	d = w.deploy("php-1:"+coreFix[:8], old, tree(false))
	if got := strings.Join(d.Files, ","); got != "php-1/includes/Setup.php" {
		t.Errorf("#2 files: %s", got)
	}

	// 3. The extension: merged in Foo, then core's pointer moved (as
	// Gerrit's superproject subscription does).
	old = tree(false)
	extFix := r.commit(r.ext, "Foo: new message", map[string]string{"i18n/en.json": "{\"foo\":\"hi\"}\n"})
	r.bump(extFix)
	d = w.deploy("php-1/extensions/Foo:"+extFix[:8], old, tree(false))
	if got := strings.Join(d.Files, ","); got != "php-1/extensions/Foo/i18n/en.json" {
		t.Errorf("#3 files: %s", got)
	}

	// 4. A release branch goes live: the next deployment (a config change)
	// adds php-2 whole, and says so.
	old = tree(false)
	w.reconfigure(root + php1 + php2)
	cfg = r.commit(r.config, "config: php-2 for group0", map[string]string{"wmf-config/wikiversions.json": "{\"testwiki\":\"php-2\"}\n"})
	d = w.deploy("root:"+cfg[:8], old, tree(true))
	if !strings.Contains(w.out.String(), "component php-2 ("+r.core+" wmf/2) is new in the configuration: this deployment adds its whole tree") {
		t.Errorf("#4: the new component was not announced")
	}
	if n := len(d.Files); n != len(tree(true))-len(old) {
		t.Errorf("#4 changed %d files, want php-2's %d and the config file", n, len(tree(true))-len(old))
	}

	// 5. It is retired: the next deployment removes it, and says so.
	old = tree(true)
	w.reconfigure(root + php1)
	cfg = r.commit(r.config, "config: php-2 retired", map[string]string{"wmf-config/wikiversions.json": "{\"testwiki\":\"php-1\"}\n"})
	w.deploy("root:"+cfg[:8], old, tree(false))
	if !strings.Contains(w.out.String(), "component php-2 ("+r.core+" wmf/2) is no longer configured: this deployment removes its whole tree") {
		t.Errorf("#5: the removed component was not announced")
	}

	// 6. All three at once: root, release branch and extension. Core's
	// change is named before the pointer update that follows it: the
	// update ships too (it only moves Foo's pointer, so it is expected).
	old = tree(false)
	before := w.head()
	cfg = r.commit(r.config, "config: enable Foo everywhere", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // Foo on\n"})
	coreFix = r.commit(r.core, "core: new entry point", map[string]string{"api.php": "<?php // api\n"})
	extFix = r.commit(r.ext, "Foo: drop the old file", map[string]string{"Foo.php": "", "src/Foo.php": "<?php // Foo 2\n"})
	bump := r.bump(extFix)
	d = w.deploy("root:"+cfg[:8]+" php-1:"+coreFix[:8]+" php-1/extensions/Foo:"+extFix[:8], old, tree(false))
	want := []string{"@" + cfg[:8], "php-1/extensions/Foo@" + extFix[:8], "php-1@" + bump[:8], "php-1@" + coreFix[:8]}
	sort.Strings(want)
	if got := changeRefs(d); !reflect.DeepEqual(got, want) {
		t.Errorf("#6 changes %v, want %v", got, want)
	}
	if got := strings.Join(d.Files, ","); got != "php-1/api.php,php-1/extensions/Foo/Foo.php,php-1/extensions/Foo/src/Foo.php,wmf-config/InitialiseSettings.php" {
		t.Errorf("#6 files: %s", got)
	}

	// 7. Roll it back: both components (and the extension) are restored
	// exactly on every host.
	w.rollBackExactly(d, before, old, "#6")
}

// compositeTailYAML is the part of the composite worlds' configuration
// after the hosts (the git and the Gerrit one): short waits, Alice
// deploying, Bob submitting, the console, a log file in dir, no web.
func compositeTailYAML(dir string) string {
	return `pipeline: {verify_timeout: 1m, promote_timeout: 1m, sync_retries: 0, rollback_tries: 2, retry_delay: 20ms}
canary:
  baseline_min: 300ms
  window: 1s
  interval: 100ms
  production_watch: 300ms
  judge: {min_requests: 40}
` + peopleYAML(dir)
}

// peopleYAML is the end of the test worlds' configurations (the model's,
// the composite ones): Alice deploys, Bob submits, both on the console,
// the log in dir, no web.
func peopleYAML(dir string) string {
	return fmt.Sprintf(`access:
  deployers: [Alice Deployer]
people:
  - {name: Alice Deployer, emails: [alice@example.org], chat: ["console:alice"], nick: alice}
  - {name: Bob Submitter, emails: [bob@example.org], chat: ["console:bob"], nick: bob}
  - {name: Dan Submitter, emails: [dan@example.org], chat: ["console:dan"], nick: dan}
chat:
  console: {user: alice}
log: {level: debug, format: text, file: %s/deploybot.log}
web: {listen: "off"}
`, dir)
}

// rollBackExactly rolls d back with !rollback and checks that it ends
// rolled back, with a rollback commit on top of staging, and every host
// serving exactly old again, the tree of staging commit before.
func (w *cworld) rollBackExactly(d *deployer.Deployment, before string, old map[string]string, label string) {
	w.t.Helper()
	w.say("alice", "!rollback")
	w.wait(d.ID, deployer.NoticeRolledBack)
	if got := w.get(d.ID); got.State != deployer.StateRolledBack {
		w.t.Fatalf("%s after !rollback: %s %q", label, got.State, got.Reason)
	}
	if rb := w.head(); rb == d.Commit || rb == before {
		w.t.Errorf("no rollback commit in staging (head %.10s)", rb)
	}
	w.check(label+" rolled back", every(before), every(old))
}

// hostStages makes the composite worlds' local hosts (ts1; can1, can2;
// mw1, mw2) under w.dir, each with a metrics server from metrics(its
// root), and returns the stages section of their configuration.
func (w *cworld) hostStages(metrics func(root string) http.Handler) string {
	w.t.Helper()
	var stages strings.Builder
	for _, st := range []struct {
		stage string
		names []string
	}{{"testservers", []string{"ts1"}}, {"canaries", []string{"can1", "can2"}}, {"production", []string{"mw1", "mw2"}}} {
		fmt.Fprintf(&stages, "    %s:\n", st.stage)
		for _, n := range st.names {
			root := filepath.Join(w.dir, "hosts", n)
			if err := os.MkdirAll(root, 0o755); err != nil {
				w.t.Fatal(err)
			}
			srv := httptest.NewServer(metrics(root))
			w.t.Cleanup(srv.Close)
			fmt.Fprintf(&stages, "      - {name: %s, root: %s, metrics: \"%s/metrics\"}\n", n, root, srv.URL)
		}
	}
	return stages.String()
}
