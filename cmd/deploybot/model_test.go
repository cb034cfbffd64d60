package main

// The model-based test of the whole pipeline: random sequences of chat
// commands, upstream changes, host faults, restarts and crashes injected
// at store transitions and in the middle of host writes, run through the
// real program (Main, the runner, a bbolt file, local two-slot hosts whose
// HTTP /metrics reflect the tree they serve, a real upstream git
// repository). After every step, once the bot is quiet, it checks the
// invariants in check(). pgregory.net/rapid draws the sequences and
// shrinks a failure to a short one; the seed it prints replays it.
//
// `make test` runs a fixed number of sequences; `make soak DURATION=30m`
// runs TestModelSoak with new seeds until the time is up.
//
// worldOptions.composite makes upstream a composite deploy tree instead
// (TestModelPipelineComposite, model_composite_test.go).
// worldOptions.gerrit makes it a fake Gerrit (TestModelPipelineGerrit,
// model_gerrit_test.go).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/internal/testparts"
)

// kinds of upstream change the model makes. Each change adds the file
// changes/<n>.txt holding its kind, so a host's tree says which changes it
// serves, and its /metrics answer as that tree would under traffic.
const (
	kindGood    = "good"    // 0.5% errors, like the baseline
	kindBad     = "bad"     // 60% errors: the canaries must catch it
	kindQuiet   = "quiet"   // no traffic: the canary check is inconclusive
	kindNoStats = "nostats" // /metrics answers 500: inconclusive, never a pass
	kindRevert  = "revert"  // a git revert of an earlier change
)

type modelChange struct {
	n      int
	kind   string
	commit string
	of     string // for a revert: the commit it reverts
	ref    string // how chat names it ("": commit[:10])
	path   string // its file's deploy path ("": changes/c<n>.txt)
	comp   string // the component it was committed to (composite mode)
	author string // who wrote it and verifies it ("": bob)
}

// file is the deploy path of the file change c adds.
func (c *modelChange) file() string {
	if c.path != "" {
		return c.path
	}
	return fmt.Sprintf("changes/c%d.txt", c.n)
}

// chatRef is how a command names change c.
func (c *modelChange) chatRef() string {
	if c.ref != "" {
		return c.ref
	}
	return c.commit[:10]
}

type modelHost struct {
	name, stage, root string
	srv               *httptest.Server
	metricsDown       atomic.Bool // /metrics answers 500 whatever the tree
	scrapes           atomic.Int64
	errs              atomic.Int64
	changeDirs        []string // where change files lie in its tree (nil: changes)
}

// changeFiles calls fn with the deploy path and the content of each
// change file the host's current tree holds.
func (h *modelHost) changeFiles(fn func(path, content string)) {
	dirs := h.changeDirs
	if dirs == nil {
		dirs = []string{"changes"}
	}
	for _, dir := range dirs {
		ents, _ := os.ReadDir(filepath.Join(h.root, "current", dir))
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(h.root, "current", dir, e.Name())); err == nil {
				fn(dir+"/"+e.Name(), string(b))
			}
		}
	}
}

// badFiles are the deploy paths of the bad changes' files the host's
// current tree holds.
func (h *modelHost) badFiles() []string {
	var out []string
	h.changeFiles(func(path, content string) {
		if kind, _, _ := strings.Cut(content, "\n"); kind == kindBad {
			out = append(out, path)
		}
	})
	return out
}

// served reads the numbers of the changes whose files the host's
// current tree holds.
func (h *modelHost) served() []int {
	var out []int
	h.changeFiles(func(_, content string) {
		var kind string
		var n int
		if _, err := fmt.Sscanf(content, "%s\nchange %d\n", &kind, &n); err == nil {
			out = append(out, n)
		}
	})
	return out
}

// kinds reads which change kinds the host's current tree holds.
func (h *modelHost) kinds() map[string]bool {
	out := map[string]bool{}
	h.changeFiles(func(_, content string) {
		kind, _, _ := strings.Cut(content, "\n")
		out[kind] = true
	})
	return out
}

// ServeHTTP answers /metrics with counters that grow on every scrape, as
// traffic on the tree it serves would make them.
func (h *modelHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := h.kinds()
	if h.metricsDown.Load() || (k[kindNoStats] && h.stage != "testservers") {
		http.Error(w, "metrics broken", http.StatusInternalServerError)
		return
	}
	n := h.scrapes.Add(1)
	switch {
	case k[kindBad]:
		h.errs.Add(60)
	case k[kindQuiet] && h.stage == "canaries":
		h.scrapes.Add(-1) // no traffic at all
	default:
		if n%2 == 0 {
			h.errs.Add(1) // 0.5%
		}
	}
	req := h.scrapes.Load() * 100
	errs := h.errs.Load()
	fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} %d\nhttp_requests_total{code=\"500\"} %d\n", req-errs, errs)
}

// crashStore wraps the store so that a crash can be injected at a chosen
// transition: the transition is written or not (drawn), and from then on
// every call fails, as if the process had died, until the bot restarts on
// a new wrapper.
type crashStore struct {
	deployer.Store
	mu     sync.Mutex
	armed  int  // crash at the armed-th transition from now (0: off)
	commit bool // whether the crashing transition is written first
	dead   bool
	crash  func()
}

var errCrashed = errors.New("crashed (injected)")

func (c *crashStore) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errCrashed
	}
	return nil
}

func (c *crashStore) Transition(id int64, from, to deployer.State, ev deployer.Event, mutate func(*deployer.Deployment)) (*deployer.Deployment, error) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return nil, errCrashed
	}
	if c.armed > 0 {
		c.armed--
		if c.armed == 0 {
			c.dead = true
			c.mu.Unlock()
			if c.commit {
				c.Store.Transition(id, from, to, ev, mutate)
			}
			c.crash()
			return nil, errCrashed
		}
	}
	c.mu.Unlock()
	return c.Store.Transition(id, from, to, ev, mutate)
}

func (c *crashStore) Create(d *deployer.Deployment) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Store.Create(d)
}
func (c *crashStore) Get(id int64) (*deployer.Deployment, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Store.Get(id)
}
func (c *crashStore) Update(id int64, m func(*deployer.Deployment)) (*deployer.Deployment, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Store.Update(id, m)
}
func (c *crashStore) AppendEvent(ev deployer.Event) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Store.AppendEvent(ev)
}
func (c *crashStore) Unfinished() ([]*deployer.Deployment, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Store.Unfinished()
}
func (c *crashStore) SetLock(l *deployer.Lock) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Store.SetLock(l)
}
func (c *crashStore) SetBlock(b deployer.Block) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Store.SetBlock(b)
}
func (c *crashStore) Unblock(id string) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Store.Unblock(id)
}
func (c *crashStore) UpdateHosts(names []string, m func(*deployer.HostRecord)) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Store.UpdateHosts(names, m)
}

// faultyHost is a host whose syncs fail while broken (a full disk), or
// whose next sync is interrupted by a crash of the whole bot.
type faultyHost struct {
	deployer.Host
	w *world
}

func (f *faultyHost) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	if f.w.isBroken(f.Name()) {
		return errors.New("no space left on device")
	}
	if f.w.crashInSync.CompareAndSwap(true, false) {
		// The crash lands while the host is being written.
		go func() { time.Sleep(time.Millisecond); f.w.crashNow() }()
	}
	return f.Host.Sync(ctx, commit, src)
}

func (f *faultyHost) Unwrap() deployer.Host { return f.Host }

// world is one sequence's system under test.
// tb is what the world needs of rapid.T: failures inside a rapid property
// must go through it, so that rapid can shrink them.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

type world struct {
	t        tb
	dir      string
	upstream string
	cfg      string
	hosts    []*modelHost
	changes  []*modelChange
	byCommit map[string]*modelChange
	comp     *compUpstream // the composite upstream (nil: one repository)

	running
	tap   *Tap
	out   *testparts.Buffer
	store *crashStore

	// margin is how far off a waiting deployment's deadline must be for
	// the bot to count as quiet (scripted tests with their own short
	// verification timeout use none).
	margin time.Duration

	// promotedBad are the files of bad changes a person promoted past a
	// canary verdict that was no pass (!promote of an inconclusive one):
	// that person decided they may reach production, and they may stay
	// there until production serves none of them any more.
	promotedBad map[string]bool
	// promoting are the bad changes' files of the deployment a !promote
	// was just said for; the check moves them to promotedBad when the bot
	// says it was promoted.
	promoting map[int64][]string

	mu          sync.Mutex
	broken      map[string]bool
	crashInSync atomic.Bool
	crashed     atomic.Bool
	faults      int // faults injected (crashes, broken hosts)
	restarts    int
	resumable   map[int64]bool // deployments active at the last restart
	steps       int
	checks      int
	log         []string
	// now, when set, is the runner's clock (window tests move it).
	now func() time.Time

	ger *gerritUpstream // the fake Gerrit upstream (model_gerrit_test.go; nil: git)
}

var modelTimings = struct{ verify, promote, window, interval, watch string }{"5s", "5s", "300ms", "30ms", "150ms"}

// worldOptions change the model's configuration for scripted tests.
type worldOptions struct {
	noPushReverts bool   // the git source only says what to revert
	noProvision   bool   // the hosts start empty, as on a first start
	batch         bool   // pipeline.batch.enabled (batch_e2e_test.go)
	maxRounds     int    // pipeline.batch.max_rounds (0: the default)
	windows       string // a windows: section, YAML (none: no windows)
	verify        string // verify_timeout (none: modelTimings.verify)
	composite     bool   // upstream is a composite (model_composite_test.go)
	gerrit        bool   // upstream is the fake Gerrit (model_gerrit_test.go; with composite, its composite)
}

func newWorld(t tb) *world { return newWorldWith(t, worldOptions{}) }

func newWorldWith(t tb, opt worldOptions) *world { return newWorldWithClock(t, opt, nil) }

// newWorldWithClock builds a world whose runner reads the clock now (nil:
// the real one).
func newWorldWithClock(t tb, opt worldOptions, now func() time.Time) *world {
	dir, err := os.MkdirTemp("", "deploybot-model-")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, upstream: filepath.Join(dir, "upstream"), byCommit: map[string]*modelChange{}, broken: map[string]bool{}, promotedBad: map[string]bool{}, now: now}
	var source string
	var changeDirs []string
	if opt.gerrit {
		w.ger = newGerritUpstream(w, opt.composite)
		source = w.ger.source()
		if opt.composite {
			changeDirs = w.comp.changeDirs()
		}
	} else if opt.composite {
		w.comp = newCompUpstream(w)
		source, changeDirs = w.comp.source(!opt.noPushReverts), w.comp.changeDirs()
	} else {
		w.git("init", "-q", "-b", "main", w.upstream)
		// push_reverts pushes to the checked-out branch: let it update the tree.
		w.git("-C", w.upstream, "config", "receive.denyCurrentBranch", "updateInstead")
		w.write("index.html", "<h1>the app</h1>\n")
		w.write("changes/.keep", "")
		w.git("-C", w.upstream, "add", "-A")
		w.git("-C", w.upstream, "commit", "-q", "-m", "the app")
		source = fmt.Sprintf("source:\n  type: git\n  git: {url: %s, branch: main, push_reverts: %v}\n", w.upstream, !opt.noPushReverts)
	}
	var stages strings.Builder
	for _, st := range []struct {
		stage string
		names []string
	}{{"testservers", []string{"ts1"}}, {"canaries", []string{"can1", "can2"}}, {"production", []string{"mw1", "mw2", "mw3"}}} {
		fmt.Fprintf(&stages, "    %s:\n", st.stage)
		for _, n := range st.names {
			h := &modelHost{name: n, stage: st.stage, root: filepath.Join(dir, "hosts", n), changeDirs: changeDirs}
			if err := os.MkdirAll(h.root, 0o755); err != nil {
				t.Fatal(err)
			}
			h.srv = httptest.NewServer(h)
			w.hosts = append(w.hosts, h)
			fmt.Fprintf(&stages, "      - {name: %s, root: %s, metrics: \"%s/metrics\"}\n", n, h.root, h.srv.URL)
		}
	}
	w.cfg = filepath.Join(dir, "deploybot.yaml")
	// Depooling is a file per host: the model sees who is out of service.
	var pool string
	for _, st := range []string{"canaries", "production"} {
		pool += fmt.Sprintf("    %s: {depool: [touch, \"%s/depooled-{host}\"], repool: [rm, -f, \"%s/depooled-{host}\"]}\n", st, dir, dir)
	}
	pool = "  stage_options:\n" + pool
	cfg := fmt.Sprintf(`bot: {name: deploybot, prefix: "!"}
store: {path: %s/deploybot.db, open_timeout: 5s}
staging: {path: %s/staging.git}
%shosts:
  transport: local
  parallel: 10
  max_failed_hosts: "1"
%s  stages:
%spipeline: {verify_timeout: %s, promote_timeout: %s, sync_retries: 0, rollback_tries: 2, retry_delay: 20ms, batch: {enabled: %v, max_rounds: %d}}
%s
canary:
  baseline_min: 1ms
  window: %s
  interval: %s
  production_watch: %s
  judge: {min_requests: 50}
`, dir, dir, source, pool, stages.String(), orString(opt.verify, modelTimings.verify), modelTimings.promote, opt.batch, opt.maxRounds, opt.windows, modelTimings.window, modelTimings.interval, modelTimings.watch) + peopleYAML(dir)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	w.margin = 1500 * time.Millisecond
	if opt.verify != "" {
		w.margin = 0
	}
	w.out = &testparts.Buffer{}
	w.tap = NewTap()
	w.open()
	// The fleet starts on upstream main, as an operator provisions it.
	if !opt.noProvision {
		if err := w.m.Provision(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	w.run()
	return w
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// close stops the bot and removes the world. On a failure it first logs
// the steps and the conversation.
func (w *world) close(failed bool) {
	w.stop()
	if w.ger != nil {
		w.ger.close()
	}
	for _, h := range w.hosts {
		h.srv.Close()
	}
	if failed {
		w.t.Logf("steps:\n  %s\nconversation:\n%s", strings.Join(w.log, "\n  "), w.out.String())
		w.t.Logf("the world is kept in %s", w.dir)
		return
	}
	os.RemoveAll(w.dir)
}

func (w *world) git(args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Bob Submitter", "GIT_AUTHOR_EMAIL=bob@example.org",
		"GIT_COMMITTER_NAME=Bob Submitter", "GIT_COMMITTER_EMAIL=bob@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (w *world) write(path, content string) {
	p := filepath.Join(w.upstream, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// open builds a new Main on the same configuration and store, wrapping
// its store and hosts for fault injection.
func (w *world) open() {
	m := NewMain(strings.NewReader(""), w.out, w.out)
	if err := m.ParseFlags([]string{"--config", w.cfg}); err != nil {
		w.t.Fatal(err)
	}
	m.Adapters = append(m.Adapters, w.tap)
	if err := m.Open(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.m = m
	if w.now != nil {
		m.Runner.Now = w.now
	}
	w.crashed.Store(false)
	w.store = &crashStore{Store: m.Store, crash: w.crashNow}
	m.Runner.Store, m.Bot.Store = w.store, w.store
	for _, hs := range m.Fleet {
		for i, h := range hs {
			hs[i] = &faultyHost{Host: h, w: w}
		}
	}
}

// running is a Main whose runner runs until stop.
type running struct {
	m      *Main
	cancel context.CancelFunc
	done   chan error
}

func (r *running) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.m.Runner.Run(ctx) }()
}

// stop stops the runner (as a crash does, as far as the store is
// concerned) and closes the Main.
func (r *running) stop(t tb) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the runner did not stop after its context ended")
	}
	r.cancel = nil
	r.m.Close()
}

func (w *world) crashNow() {
	if w.crashed.CompareAndSwap(false, true) {
		w.store.mu.Lock()
		w.store.dead = true
		w.store.mu.Unlock()
		w.cancel()
	}
}

func (w *world) stop() { w.running.stop(w.t) }

// restart stops the bot (as a crash does, as far as the store is
// concerned) and starts a new one on the same store.
func (w *world) restart() {
	w.stop()
	w.restarts++
	w.resumable = map[int64]bool{}
	st := w.open
	st()
	if unf, err := w.m.Store.Unfinished(); err == nil {
		for _, d := range unf {
			if d.State.Active() {
				w.resumable[d.ID] = true
			}
		}
	}
	w.run()
}

func (w *world) isBroken(h string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.broken[h]
}

func (w *world) say(user, text string) {
	w.log = append(w.log, fmt.Sprintf("<%s> %s", user, text))
	w.m.Console.Handle("/as "+user+" "+text, w.m.Bot.Handle)
}

// commit adds a change of kind to upstream main and returns it.
func (w *world) commit(kind string) *modelChange { return w.commitBy(kind, "bob") }

// commitBy commits a change of kind upstream written by who: bob, or dan
// (Dan Submitter), who answers for his own changes only.
func (w *world) commitBy(kind, who string) *modelChange {
	c := &modelChange{n: len(w.changes) + 1, kind: kind, author: who}
	w.write(fmt.Sprintf("changes/c%d.txt", c.n), fmt.Sprintf("%s\nchange %d\n", kind, c.n))
	w.git("-C", w.upstream, "add", "-A")
	args := []string{"-C", w.upstream, "commit", "-q", "-m", fmt.Sprintf("change %d (%s)", c.n, kind)}
	if who == "dan" {
		args = append(args, "--author=Dan Submitter <dan@example.org>")
	}
	w.git(args...)
	c.commit = w.git("-C", w.upstream, "rev-parse", "HEAD")
	c.ref = c.commit[:10]
	w.changes = append(w.changes, c)
	w.byCommit[c.commit] = c
	w.log = append(w.log, fmt.Sprintf("upstream: change %d (%s) by %s %.10s", c.n, kind, who, c.commit))
	return c
}

// revert reverts change c upstream, as a person merging a revert does.
func (w *world) revert(c *modelChange) *modelChange {
	w.git("-C", w.upstream, "revert", "--no-edit", c.commit)
	r := &modelChange{n: len(w.changes) + 1, kind: kindRevert, of: c.commit}
	r.commit = w.git("-C", w.upstream, "rev-parse", "HEAD")
	w.changes = append(w.changes, r)
	w.byCommit[r.commit] = r
	w.log = append(w.log, fmt.Sprintf("upstream: revert of change %d: %.10s", c.n, r.commit))
	return r
}

// change adds a change of kind upstream: to main, or in composite mode to
// a component rapid draws.
func (w *world) change(rt *rapid.T, kind string) *modelChange {
	if w.ger != nil {
		return w.ger.commit(rt, kind)
	}
	return w.changeBy(rt, kind, rapid.SampledFrom([]string{"bob", "bob", "dan"}).Draw(rt, "author"))
}

// changeBy adds a change of kind written by author (bob or dan; in Gerrit
// mode always bob, who uploads every change there).
func (w *world) changeBy(rt *rapid.T, kind, author string) *modelChange {
	switch {
	case w.ger != nil:
		return w.ger.commit(rt, kind)
	case w.comp != nil:
		return w.comp.commit(rt, kind, author)
	}
	return w.commitBy(kind, author)
}

// revertChange reverts change c upstream, where it was committed.
func (w *world) revertChange(c *modelChange) *modelChange {
	if w.ger != nil {
		return w.ger.revert(c)
	}
	if w.comp != nil {
		return w.comp.revert(c)
	}
	return w.revert(c)
}

// onUpstream reports whether c's file is still on its branch upstream
// (the bot may have pushed a revert).
func (w *world) onUpstream(c *modelChange) bool {
	if w.ger != nil {
		return w.ger.onUpstream(c)
	}
	if w.comp != nil {
		return w.comp.onUpstream(c)
	}
	_, err := os.Stat(filepath.Join(w.upstream, c.file()))
	return err == nil
}

// tipRef names a branch tip to deploy.
func (w *world) tipRef(rt *rapid.T) string {
	if w.ger != nil {
		return w.ger.tipRef(rt)
	}
	if w.comp != nil {
		return w.comp.tipRef(rt)
	}
	return "main"
}

// shortRef shortens a change id as a person types it: a commit's first ten
// digits, after its component's name and colon if it has one.
func shortRef(id string) string {
	where, commit, ok := strings.Cut(id, ":")
	if !ok {
		return id[:min(10, len(id))] // a Gerrit change number is shorter
	}
	return where + ":" + commit[:min(10, len(commit))]
}

// quiet reports whether the bot has nothing to do until a person answers
// or a deadline passes.
func (w *world) quiet() bool {
	if w.crashed.Load() {
		return false
	}
	select {
	case <-w.m.Runner.Ready():
	default:
		return false // still reading back its hosts
	}
	unf, err := w.m.Store.Unfinished()
	if err != nil {
		return false
	}
	lock, _ := w.m.Store.Lock()
	for _, d := range unf {
		switch {
		case d.State == deployer.StateAwaitingVerification, d.State == deployer.StateAwaitingPromotion, d.State == deployer.StateAwaitingMetrics:
			// Quiet only while its deadline is not about to fire during
			// the checks (which read the store and hosts one by one).
			if time.Until(d.Deadline) < w.margin {
				return false
			}
		case d.State.Active():
			return false
		case d.State == deployer.StateQueued && lock == nil && !w.anyActive(unf):
			return false
		}
	}
	return true
}

func (w *world) anyActive(ds []*deployer.Deployment) bool {
	for _, d := range ds {
		if d.State.Active() {
			return true
		}
	}
	return false
}

// settle waits until the bot is quiet, restarting it after an injected
// crash, then checks every invariant.
func (w *world) settle() {
	w.t.Helper()
	w.steps++
	deadline := time.Now().Add(60 * time.Second)
	stable := 0
	last := -1
	for stable < 3 {
		if w.crashed.Load() {
			w.log = append(w.log, "(crashed; restarting)")
			w.restart()
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the bot did not settle within 60s (stuck?); unfinished: %s", w.describeUnfinished())
		}
		n := len(w.tap.Notices())
		if w.quiet() && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		time.Sleep(40 * time.Millisecond)
	}
	w.store.mu.Lock()
	w.store.armed = 0
	w.store.mu.Unlock()
	w.crashInSync.Store(false)
	w.check()
}

// settleQuietly waits a moment for the bot without checking invariants
// (for states the invariants do not cover yet, such as a first start).
func (w *world) settleQuietly() {
	time.Sleep(50 * time.Millisecond)
}

func (w *world) describeUnfinished() string {
	unf, _ := w.m.Store.Unfinished()
	var s []string
	for _, d := range unf {
		s = append(s, fmt.Sprintf("#%d %s", d.ID, d.State))
	}
	return strings.Join(s, ", ")
}

// check asserts the invariants.
func (w *world) check() {
	w.t.Helper()
	w.checks++
	if w.ger != nil {
		w.ger.refresh()
	}
	ctx := context.Background()
	st := w.m.Store
	unf, err := st.Unfinished()
	if err != nil {
		w.t.Fatal(err)
	}
	// Every deployment is terminal, queued, or waiting for a person with a
	// deadline; at most one holds the pipeline.
	var active *deployer.Deployment
	for _, d := range unf {
		if !d.State.Active() {
			continue
		}
		if active != nil {
			w.t.Fatalf("two active deployments: #%d %s and #%d %s", active.ID, active.State, d.ID, d.State)
		}
		active = d
		if d.Deadline.IsZero() {
			w.t.Fatalf("#%d waits (%s) without a deadline", d.ID, d.State)
		}
	}
	// The queue is first-in first-out: nothing started while an earlier
	// deployment still waits in the queue.
	all, _ := st.List(0, 1000)
	started := func(d *deployer.Deployment) bool {
		return d.State != deployer.StateQueued && !(d.State == deployer.StateCancelled && d.Base == "")
	}
	for _, a := range all {
		for _, b := range all {
			if a.State == deployer.StateQueued && b.ID > a.ID && started(b) {
				w.t.Fatalf("#%d started while the earlier #%d still waits in the queue", b.ID, a.ID)
			}
		}
	}
	// Every host serves exactly what its record says, tree exact.
	recs, err := st.Hosts()
	if err != nil {
		w.t.Fatal(err)
	}
	serving := map[string]string{}
	for _, hs := range w.m.Fleet {
		for _, h := range hs {
			cur, err := h.Current(ctx)
			if err != nil {
				w.t.Fatalf("%s: %v", h.Name(), err)
			}
			serving[h.Name()] = cur
			rec := recs[h.Name()]
			if rec.Unknown || rec.Target != "" || rec.Commit != cur {
				w.t.Fatalf("%s serves %.10s but the store says %+v", h.Name(), cur, rec)
			}
			inner := h.(*faultyHost).Host
			if hk, ok := inner.(interface{ Unwrap() deployer.Host }); ok {
				inner = hk.Unwrap()
			}
			if err := hosts.VerifyHost(ctx, inner.(*hosts.Local), w.m.Staging); err != nil {
				w.t.Fatalf("%s: its tree is not its commit's: %v", h.Name(), err)
			}
		}
	}
	// What the store says the hosts serve agrees with the deployments.
	v, err := w.m.Runner.FleetView(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	head, _, err := w.m.Staging.Head(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, hs := range v.Hosts {
		want := v.Commit
		name := hs.Record.Name
		if active != nil {
			want = active.Base
			if hs.Stage == deployer.Testservers || (hs.Stage == deployer.Canaries && active.State == deployer.StateAwaitingPromotion) {
				want = active.Commit
			}
		}
		if serving[name] != want && hs.Record.Behind == "" && !hs.Record.Depooled {
			w.t.Fatalf("%s (%s) serves %.10s, want %.10s (active: %v)", name, hs.Stage, serving[name], want, active != nil)
		}
	}
	// The staging tip's tree is the tree the fleet serves.
	if active != nil {
		if head != active.Commit {
			w.t.Fatalf("staging tip %.10s is not the running #%d's commit %.10s", head, active.ID, active.Commit)
		}
	} else if diff, err := w.m.Staging.Changed(ctx, head, v.Commit); err != nil || len(diff) > 0 {
		w.t.Fatalf("staging tip %.10s does not hold the fleet's tree %.10s: %v %v", head, v.Commit, diff, err)
	}
	// No production host ever serves a bad change unless a person
	// promoted it; no host a blocked one.
	for id, files := range w.promoting {
		for _, n := range w.tap.Notices() {
			if n.Deployment == id && strings.HasPrefix(n.Text, "promoted by ") {
				for _, f := range files {
					w.promotedBad[f] = true
				}
			}
		}
	}
	w.promoting = nil
	blocks, _ := st.Blocks()
	for _, h := range w.hosts {
		if h.stage == "production" {
			for _, f := range h.badFiles() {
				if !w.promotedBad[f] {
					w.t.Fatalf("production host %s serves a bad change (%s) nobody promoted", h.name, f)
				}
			}
		}
		rec := recs[h.name]
		_, err := os.Stat(filepath.Join(w.dir, "depooled-"+h.name))
		if rec.Depooled != (err == nil) {
			w.t.Fatalf("%s: the store says depooled=%v, the pool says %v", h.name, rec.Depooled, err == nil)
		}
		if rec.Depooled || rec.Behind != "" {
			continue
		}
		for _, b := range blocks {
			if c := w.byCommit[b.Change.Commit]; c != nil {
				if _, err := os.Stat(filepath.Join(h.root, "current", c.file())); err == nil && c.kind != kindRevert {
					if data, _ := os.ReadFile(filepath.Join(h.root, "current", c.file())); strings.HasPrefix(string(data), c.kind+"\n") {
						w.t.Fatalf("%s serves change %d, which is blocked (#%d)", h.name, c.n, b.Deployment)
					}
				}
			}
		}
	}
	// Every change a host serves was named by a deployment that shipped
	// it (one neither refused, cancelled nor rolled back): a change a
	// batch shipped without never rides along unnamed with a later one.
	named := map[int]bool{}
	for _, d := range all {
		switch d.State {
		case deployer.StateQueued, deployer.StateCancelled, deployer.StateFailed, deployer.StateRolledBack:
			continue
		}
		for _, ch := range d.Changes {
			var n int
			if _, err := fmt.Sscanf(ch.Subject, "change %d (", &n); err == nil {
				named[n] = true
			}
		}
	}
	for _, h := range w.hosts {
		if rec := recs[h.name]; rec.Depooled || rec.Behind != "" {
			continue
		}
		for _, n := range h.served() {
			if !named[n] {
				w.t.Fatalf("%s serves change %d, which no deployment that shipped named", h.name, n)
			}
		}
	}
	// A promoted bad change is allowed only while production still serves
	// it: shipped again later, it needs a person's promotion again.
	for f := range w.promotedBad {
		held := false
		for _, h := range w.hosts {
			held = held || h.stage == "production" && slices.Contains(h.badFiles(), f)
		}
		if !held {
			delete(w.promotedBad, f)
		}
	}
	if w.comp != nil {
		w.comp.check(serving, head)
	}
	if w.ger != nil {
		w.ger.check()
	}
	w.checkTranscript()
}

// backportAdvice finds the bot's advice to backport: "Next: `!backport …`".
var backportAdvice = regexp.MustCompile("`(!backport [^`]+)`")

var fateRe = regexp.MustCompile(`; (shipped in|rolled back in|dropped from|deploying in|queued as) #(\d+)`)

// checkWindowFates holds what !window says of each deployed item (reply)
// to the deployments' records once the step settled: "shipped in #N" only
// when #N is done (a done deployment changes only on a command, and none
// came since), "rolled back in #N" and "dropped from #N" only when #N
// dropped a change, "deploying in #N" only once #N had started (it may
// have finished while the step settled).
func (w *world) checkWindowFates(reply string) {
	w.t.Helper()
	for _, m := range fateRe.FindAllStringSubmatch(reply, -1) {
		id, _ := strconv.ParseInt(m[2], 10, 64)
		d, err := w.m.Store.Get(id)
		if err != nil {
			w.t.Fatalf("!window names #%d, which the store does not have: %v", id, err)
		}
		ok := false
		switch m[1] {
		case "shipped in":
			ok = d.State == deployer.StateDone
		case "rolled back in", "dropped from":
			ok = len(d.Dropped) > 0
		case "deploying in":
			// It may have finished while the step settled; it had started.
			ok = d.State != deployer.StateQueued
		case "queued as":
			ok = true // it may have started since; that it exists is checked above
		}
		if !ok {
			w.t.Fatalf("!window says %q of #%d, which is %s (%d dropped):\n%s", m[0], id, d.State, len(d.Dropped), reply)
		}
	}
}

var (
	lastDeployedRe = regexp.MustCompile(`last deployed: #(\d+) `)
	sinceThenRe    = regexp.MustCompile(`(?:since then|ended done: the last,) #(\d+) .*? was rolled back`)
	fleetServesRe  = regexp.MustCompile(`the fleet serves (?:#(\d+) .*?: (its commit|what it replaced \(it was ([a-z-]+)\))|the baseline ([0-9a-f]{10}))`)
	fleetBackRe    = regexp.MustCompile(`\(#(\d+) was rolled back\)$`)
	queuedRe       = regexp.MustCompile(`(\d+) queued \(next: #(\d+) by `)
	blockedRe      = regexp.MustCompile(`rolled back in #(\d+)\)`)
)

// checkStatus holds what !status says (reply) to the store and to what the
// hosts really serve, as they were when it answered: with an id (one deployment),
// its state; without, whether anything is deploying, what was deployed
// last and rolled back since, what the fleet serves and which hosts are
// not on it, the queue, the lock and the blocked changes.
func (w *world) checkStatus(id int64, reply string) {
	w.t.Helper()
	st := w.m.Store
	fail := func(format string, args ...any) {
		w.t.Helper()
		w.t.Fatalf("!status: "+format+"\nreply:\n%s", append(args, reply)...)
	}
	if id > 0 {
		d, err := st.Get(id)
		if err != nil {
			fail("#%d: %v", id, err)
		}
		if !strings.Contains(reply, fmt.Sprintf("#%d %s: ", id, d.State)) {
			fail("does not say #%d is %s", id, d.State)
		}
		return
	}
	all, err := st.List(0, 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	var active *deployer.Deployment
	lastDone, lastRolledBack := int64(0), int64(0)
	for _, d := range all {
		switch {
		case d.State.Active():
			active = d
		case d.State == deployer.StateDone:
			lastDone = max(lastDone, d.ID)
		case d.State == deployer.StateRolledBack, d.State == deployer.StateRollbackFailed:
			lastRolledBack = max(lastRolledBack, d.ID)
		}
	}
	idle := strings.Contains(reply, "nothing is deploying right now")
	if idle != (active == nil) {
		fail("says nothing is deploying: %v; the running deployment: %v", idle, active)
	}
	if active != nil && !strings.Contains(reply, fmt.Sprintf("#%d %s: ", active.ID, active.State)) {
		fail("does not say #%d is %s", active.ID, active.State)
	}
	if idle {
		m := lastDeployedRe.FindStringSubmatch(reply)
		switch {
		case m == nil && lastDone != 0:
			fail("says nothing of the last deployment, #%d", lastDone)
		case m != nil && m[1] != strconv.FormatInt(lastDone, 10):
			fail("says #%s was deployed last; it was #%d", m[1], lastDone)
		}
		if m := sinceThenRe.FindStringSubmatch(reply); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			if n <= lastDone || n != lastRolledBack {
				fail("says #%d was rolled back since #%d; the last rolled back is #%d", n, lastDone, lastRolledBack)
			}
		} else if lastRolledBack > lastDone {
			fail("does not say #%d was rolled back since #%d", lastRolledBack, lastDone)
		}
		if strings.Contains(reply, "nothing was deployed through me yet") && (lastDone != 0 || lastRolledBack != 0) {
			fail("says nothing was deployed; #%d was", max(lastDone, lastRolledBack))
		}
	}
	// What the fleet serves, and which hosts are not on it, against the
	// hosts themselves.
	v, err := w.m.Runner.FleetView(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	fleet := v.Commit
	if idle {
		line := ""
		for _, l := range strings.Split(reply, "\n") {
			if strings.Contains(l, "the fleet serves ") {
				line = strings.TrimSpace(l)
			}
		}
		m := fleetServesRe.FindStringSubmatch(line)
		if m == nil {
			fail("does not say what the fleet serves")
		}
		// "(#M was rolled back)": M is what decided the fleet's commit last,
		// and the fleet is back on what came before it.
		named := int64(0)
		if b := fleetBackRe.FindStringSubmatch(line); b != nil {
			if v.Landed == nil || v.Landed.ID != mustID(b[1]) || v.Landed.State != deployer.StateRolledBack {
				fail("says #%s was rolled back last; the fleet's last deployment is %v", b[1], v.Landed)
			}
		} else if v.Landed != nil {
			named = v.Landed.ID
		}
		if m[4] != "" {
			if named != 0 || !strings.HasPrefix(fleet, m[4]) {
				fail("says the fleet serves the baseline %s; it serves %.10s (landed: %v)", m[4], fleet, v.Landed)
			}
		} else {
			d, err := st.Get(mustID(m[1]))
			if err != nil {
				fail("#%s: %v", m[1], err)
			}
			if named != 0 && d.ID != named {
				fail("says the fleet serves #%d; #%d decided what it serves", d.ID, named)
			}
			want := d.Base
			if m[2] == "its commit" {
				if d.State != deployer.StateDone {
					fail("says the fleet serves #%d's commit, but #%d is %s", d.ID, d.ID, d.State)
				}
				want = d.Commit
			} else if m[3] != string(d.State) || d.State == deployer.StateDone {
				fail("says #%d was %s; it is %s", d.ID, m[3], d.State)
			}
			if want != fleet {
				fail("says the fleet serves %.10s (#%d); the store's fleet commit is %.10s", want, d.ID, fleet)
			}
		}
	}
	behind, onCommit := "", ""
	for _, l := range strings.Split(reply, "\n") {
		if i := strings.Index(l, "hosts not on the fleet's commit: "); i >= 0 {
			behind = l[i:]
		}
		if i := strings.Index(l, "depooled, though on the fleet's commit: "); i >= 0 {
			onCommit = l[i:]
		}
	}
	ctx := context.Background()
	for _, hs := range w.m.Fleet {
		for _, h := range hs {
			cur, err := h.Current(ctx)
			if err != nil {
				w.t.Fatal(err)
			}
			name := h.Name()
			_, statErr := os.Stat(filepath.Join(w.dir, "depooled-"+name))
			depooled := statErr == nil
			off := cur != fleet || depooled
			nameRe := regexp.MustCompile(`[:,] ` + regexp.QuoteMeta(name) + ` \(`)
			named := nameRe.MatchString(behind)
			if active != nil && slices.Contains(active.Touched, name) && !depooled {
				if named {
					fail("names %s as off the fleet's commit; the running #%d synced it", name, active.ID)
				}
				continue
			}
			// A depooled host on the fleet's commit is named as depooled,
			// not as off the commit.
			if onFleet := depooled && cur == fleet; nameRe.MatchString(onCommit) != onFleet {
				fail("named %s as depooled on the fleet's commit: %v; it serves %.10s (fleet %.10s), depooled: %v", name, !onFleet, cur, fleet, depooled)
			} else if onFleet {
				off = false
			}
			if named != off {
				fail("named %s off the fleet's commit: %v; it serves %.10s (fleet %.10s), depooled: %v", name, named, cur, fleet, depooled)
			}
		}
	}
	// The queue, the lock and the blocks.
	q, err := w.m.Runner.Queue()
	if err != nil {
		w.t.Fatal(err)
	}
	if m := queuedRe.FindStringSubmatch(reply); m == nil && len(q) > 0 || m != nil && (len(q) == 0 || m[1] != strconv.Itoa(len(q)) || mustID(m[2]) != q[0].ID) {
		fail("says of the queue %q; it holds %d", m, len(q))
	}
	if l, _ := st.Lock(); (l != nil) != strings.Contains(reply, "locked by ") {
		fail("says locked: %v; the lock: %v", l == nil, l)
	}
	blocks, _ := st.Blocks()
	var said, want []string
	for _, m := range blockedRe.FindAllStringSubmatch(reply, -1) {
		said = append(said, m[1])
	}
	for _, b := range blocks {
		want = append(want, strconv.FormatInt(b.Deployment, 10))
	}
	slices.Sort(said)
	slices.Sort(want)
	if !slices.Equal(said, want) {
		fail("names blocked changes rolled back in %v; the store's blocks are from %v", said, want)
	}
	// The changes a batch dropped that it calls not deployed since: the
	// batch dropped each, and no host serves it.
	if m := withheldRe.FindStringSubmatch(reply); m != nil {
		seen := map[string]bool{}
		for _, it := range withheldItemRe.FindAllStringSubmatch(m[1], -1) {
			if seen[it[1]] {
				fail("names %s twice among the dropped changes", it[1])
			}
			seen[it[1]] = true
			d, err := st.Get(mustID(it[2]))
			if err != nil {
				fail("names #%s: %v", it[2], err)
			}
			dropped := false
			for _, dc := range d.Dropped {
				dropped = dropped || deployer.SameChangeID(it[1], dc.Change.ID)
			}
			if !dropped {
				fail("says #%d dropped %s; it dropped %+v", d.ID, it[1], d.Dropped)
			}
			for _, c := range w.changes {
				if !strings.HasPrefix(c.commit, it[1]) {
					continue
				}
				for _, h := range w.hosts {
					if slices.Contains(h.served(), c.n) {
						fail("says %s (change %d) is not deployed; %s serves it", it[1], c.n, h.name)
					}
				}
			}
		}
	}
}

// withheldRe and withheldItemRe read !status's line on the changes a
// batch dropped that were not deployed since.
var (
	withheldRe     = regexp.MustCompile(`dropped from a batch and not deployed since: (.*); a deployment ships`)
	withheldItemRe = regexp.MustCompile(`([0-9a-f]{7,40}) \([^;]*; dropped from #(\d+)\)`)
)

func mustID(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

var restoredRe = regexp.MustCompile(`Restored (\d+) hosts? to .*?, each read back: ([^.]*)\.`)

// checkTranscript asserts that what the bot said is true.
func (w *world) checkTranscript() {
	w.t.Helper()
	resumes := map[int64]int{}
	for _, n := range w.tap.Notices() {
		// "Restored N hosts ..., each read back: a, b." names N hosts.
		if m := restoredRe.FindStringSubmatch(n.Text); m != nil {
			if want, got := m[1], strconv.Itoa(len(strings.Split(m[2], ", "))); want != got {
				w.t.Fatalf("#%d says it restored %s hosts but names %s: %s", n.Deployment, want, got, n.Text)
			}
		}
		switch {
		case strings.HasPrefix(n.Text, "resuming after a restart"):
			resumes[n.Deployment]++
			if w.restarts == 0 {
				w.t.Fatalf("#%d: %q without any restart", n.Deployment, n.Text)
			}
		case strings.HasPrefix(n.Text, "done: ") && strings.Contains(n.Text, " is on all "):
			// "on all N hosts" only when no host was left behind. A later
			// rollback of the same deployment records the hosts it could
			// not restore in FailedHosts too, so only a deployment still
			// done is held to it.
			if d, err := w.m.Store.Get(n.Deployment); err == nil && d.State == deployer.StateDone && len(d.FailedHosts) > 0 {
				w.t.Fatalf("#%d says it is on all hosts, but left %v behind: %s", n.Deployment, d.FailedHosts, n.Text)
			}
		case strings.Contains(n.Text, "internal error") && w.faults == 0:
			w.t.Fatalf("#%d: %q, but no fault was injected", n.Deployment, n.Text)
		}
		for _, line := range strings.Split(n.Text, "\n") {
			if !strings.HasPrefix(line, "Suspected: ") {
				continue
			}
			for _, c := range w.changes {
				if c.kind == kindRevert && strings.Contains(line, c.commit[:10]) {
					w.t.Fatalf("#%d blames a revert (%.10s): %s", n.Deployment, c.commit, line)
				}
			}
		}
	}
	for id, k := range resumes {
		if k > w.restarts {
			w.t.Fatalf("#%d said it resumed after a restart %d times, after %d restarts", id, k, w.restarts)
		}
	}
}

// active returns the running deployment's id, or 0.
func (w *world) active() int64 {
	d, _ := w.m.Runner.Active()
	if d == nil {
		return 0
	}
	return d.ID
}

// actions are the operations of the model: what a person, upstream or the
// machine may do next. An rt.Skip in an action only discards an action
// whose precondition does not hold (nothing is running to verify, say), and
// rapid draws another: it never skips the test, in CI or anywhere else.
func (w *world) actions() map[string]func(*rapid.T) {
	backport := func(kind string) func(*rapid.T) {
		return func(rt *rapid.T) {
			c := w.change(rt, kind)
			cmd := "!backport " + c.chatRef()
			if rapid.IntRange(0, 9).Draw(rt, "include-unexpected") < 7 {
				cmd += " --include-unexpected"
			}
			w.say("alice", cmd)
			w.settle()
			// Most submitters answer at once; the rest is left to later steps.
			if id := w.active(); id != 0 && rapid.IntRange(0, 9).Draw(rt, "answer") < 6 {
				w.say(orString(c.author, "bob"), fmt.Sprintf("verified %d", id))
				w.settle()
			}
		}
	}
	who := func(rt *rapid.T) string {
		return rapid.SampledFrom([]string{"bob", "alice", "eve", "dan"}).Draw(rt, "who")
	}
	return map[string]func(*rapid.T){
		"backport-good":    backport(kindGood),
		"backport-good-2":  backport(kindGood),
		"backport-good-3":  backport(kindGood),
		"backport-bad":     backport(kindBad),
		"backport-quiet":   backport(kindQuiet),
		"backport-nostats": backport(kindNoStats),
		"verified": func(rt *rapid.T) {
			id := w.active()
			if id == 0 {
				rt.Skip("nothing running")
			}
			w.say(who(rt), fmt.Sprintf("verified %d", id))
			w.settle()
		},
		"abort": func(rt *rapid.T) {
			w.say(who(rt), "!abort")
			w.settle()
		},
		"promote": func(rt *rapid.T) {
			// The bad changes of the deployment awaiting promotion, which
			// a person's promotion lets reach production.
			var bad []string
			d, _ := w.m.Runner.Active()
			if d != nil && d.State == deployer.StateAwaitingPromotion {
				for _, ch := range d.Changes {
					c := w.byCommit[ch.Commit]
					if c == nil {
						c = w.byCommit[ch.ID]
					}
					if c != nil && c.kind == kindBad {
						bad = append(bad, c.file())
					}
				}
			}
			if d != nil {
				w.promoting = map[int64][]string{d.ID: bad}
			}
			w.say(who(rt), "!promote")
			w.settle()
		},
		"rollback": func(rt *rapid.T) {
			n := w.lastID()
			if n == 0 {
				rt.Skip("no deployment")
			}
			id := rapid.Int64Range(0, n).Draw(rt, "id")
			if id == 0 {
				w.say("alice", "!rollback")
			} else {
				w.say("alice", fmt.Sprintf("!rollback %d", id))
			}
			w.settle()
		},
		"cancel": func(rt *rapid.T) {
			n := w.lastID()
			if n == 0 {
				rt.Skip("no deployment")
			}
			w.say("alice", fmt.Sprintf("!cancel %d", rapid.Int64Range(1, n).Draw(rt, "id")))
			w.settle()
		},
		"lock": func(rt *rapid.T) {
			w.say("alice", "!lock testing the model")
			w.settle()
		},
		"unlock": func(rt *rapid.T) {
			w.say("alice", "!unlock")
			w.settle()
		},
		"unblock": func(rt *rapid.T) {
			bs, _ := w.m.Store.Blocks()
			if len(bs) == 0 {
				rt.Skip("nothing blocked")
			}
			b := rapid.SampledFrom(bs).Draw(rt, "block")
			w.say("alice", "!unblock "+shortRef(b.Change.ID))
			w.settle()
		},
		"revert-upstream": func(rt *rapid.T) {
			// Changes still on main (the bot may have pushed reverts).
			var cands []*modelChange
			for _, c := range w.changes {
				if w.onUpstream(c) && c.kind != kindRevert {
					cands = append(cands, c)
				}
			}
			if len(cands) == 0 {
				rt.Skip("nothing to revert")
			}
			c := rapid.SampledFrom(cands).Draw(rt, "change")
			w.revertChange(c)
			w.settle()
		},
		"backport-batch": func(rt *rapid.T) {
			n := rapid.IntRange(2, 4).Draw(rt, "changes")
			var refs, authors []string
			for i := 0; i < n; i++ {
				c := w.change(rt, rapid.SampledFrom([]string{kindGood, kindGood, kindBad, kindQuiet}).Draw(rt, "kind"))
				refs = append(refs, c.chatRef())
				if a := orString(c.author, "bob"); !slices.Contains(authors, a) {
					authors = append(authors, a)
				}
			}
			cmd := "!backport --batch " + strings.Join(refs, " ")
			if rapid.Bool().Draw(rt, "include-unexpected") {
				cmd += " --include-unexpected"
			}
			w.say("alice", cmd)
			w.settle()
			// Each submitter may answer at once; one who does not has
			// their changes dropped when the wait runs out.
			for _, a := range authors {
				if id := w.active(); id != 0 && rapid.IntRange(0, 9).Draw(rt, "answer "+a) < 6 {
					w.say(a, fmt.Sprintf("verified %d", id))
					w.settle()
				}
			}
		},
		"batch-one-unverified": func(rt *rapid.T) {
			// A batch of bob's and dan's changes (bob's only in Gerrit
			// mode): bob answers, dan never does, and the wait runs out.
			var refs []string
			for i, n := 0, rapid.IntRange(2, 3).Draw(rt, "changes"); i < n; i++ {
				kind := rapid.SampledFrom([]string{kindGood, kindGood, kindQuiet}).Draw(rt, "kind")
				c := w.changeBy(rt, kind, map[bool]string{true: "dan", false: "bob"}[i == n-1])
				refs = append(refs, c.chatRef())
			}
			w.say("alice", "!backport --batch "+strings.Join(refs, " ")+" --include-unexpected")
			w.settle()
			d, _ := w.m.Runner.Active()
			if d == nil || d.State != deployer.StateAwaitingVerification {
				return
			}
			w.say("bob", fmt.Sprintf("verified %d", d.ID))
			w.settle()
			if d, _ = w.m.Runner.Active(); d != nil && d.State == deployer.StateAwaitingVerification {
				w.log = append(w.log, "wait out the deadline")
				time.Sleep(time.Until(d.Deadline) + 100*time.Millisecond)
				w.settle()
			}
		},
		"follow-backport-advice": func(rt *rapid.T) {
			// A deployer does what the bot's last "!backport" advice says
			// (a refused deployment names the request that would go).
			all := backportAdvice.FindAllStringSubmatch(w.out.String(), -1)
			if len(all) == 0 {
				w.log = append(w.log, "no !backport advice to follow")
				return
			}
			w.say("alice", all[len(all)-1][1])
			w.settle()
		},
		"window-add": func(rt *rapid.T) {
			c := w.change(rt, rapid.SampledFrom([]string{kindGood, kindBad}).Draw(rt, "kind"))
			w.say(rapid.SampledFrom([]string{"bob", "alice", "eve"}).Draw(rt, "who"), "!add "+c.chatRef())
			w.settle()
		},
		"window-drop": func(rt *rapid.T) {
			v, err := w.m.Runner.WindowStatus()
			if err != nil || len(v.Items) == 0 {
				rt.Skip("nothing on the list")
			}
			it := rapid.SampledFrom(v.Items).Draw(rt, "item")
			w.say(who(rt), "!drop "+shortRef(it.Change.ID))
			w.settle()
		},
		"window-go": func(rt *rapid.T) {
			w.say("alice", "!window go")
			w.settle()
		},
		"window": func(rt *rapid.T) {
			before := len(w.out.String())
			w.say(who(rt), "!window")
			w.settle()
			w.checkWindowFates(w.out.String()[before:])
		},
		"status": func(rt *rapid.T) {
			cmd := "!status"
			var id int64
			if n := w.lastID(); n > 0 && rapid.Bool().Draw(rt, "one") {
				id = rapid.Int64Range(1, n).Draw(rt, "id")
				cmd += fmt.Sprintf(" %d", id)
			}
			before := len(w.out.String())
			w.say(who(rt), cmd)
			// Checked at once: the bot was quiet and answered at once, so
			// nothing moved since; a deadline may fire while it settles.
			w.checkStatus(id, w.out.String()[before:])
			w.settle()
		},
		"backport-tip": func(rt *rapid.T) {
			if len(w.changes) == 0 {
				rt.Skip("no change")
			}
			w.say("alice", "!backport "+w.tipRef(rt)+" --include-unexpected")
			w.settle()
		},
		"break-host": func(rt *rapid.T) {
			h := rapid.SampledFrom(w.hosts).Draw(rt, "host")
			w.mu.Lock()
			w.broken[h.name] = true
			w.faults++
			w.mu.Unlock()
			w.log = append(w.log, "break "+h.name)
		},
		"mend-hosts": func(rt *rapid.T) {
			w.mu.Lock()
			w.broken = map[string]bool{}
			w.mu.Unlock()
			w.log = append(w.log, "mend every host")
			w.say("alice", "!sync")
			w.settle()
		},
		"restart": func(rt *rapid.T) {
			w.log = append(w.log, "restart")
			w.restart()
			w.settle()
		},
		"restart-then-answer": func(rt *rapid.T) {
			// An answer given the moment the bot is back, while it still
			// reads its hosts before it resumes the running deployment:
			// taken and acted on, never refused as "not running".
			var id int64
			if unf, err := w.m.Store.Unfinished(); err == nil {
				for _, d := range unf {
					if d.State.Active() {
						id = d.ID
					}
				}
			}
			answer := rapid.SampledFrom([]string{"!abort", "!rollback", "verified", "!promote"}).Draw(rt, "answer")
			nick := who(rt)
			w.log = append(w.log, "restart")
			w.restart()
			before := len(w.out.String())
			if id != 0 {
				w.say(nick, fmt.Sprintf("%s %d", answer, id))
			}
			reply := w.out.String()[before:]
			w.settle()
			if id == 0 {
				return
			}
			if strings.Contains(reply, "is not running right now") {
				w.t.Fatalf("#%d was running when the bot came back, yet %s was refused:\n%s", id, answer, reply)
			}
			if strings.Contains(reply, nick+": aborting #"+strconv.FormatInt(id, 10)+" ") || strings.Contains(reply, nick+": rolling back #"+strconv.FormatInt(id, 10)+" ") {
				if d, _ := w.m.Store.Get(id); d.State != deployer.StateRolledBack && d.State != deployer.StateRollbackFailed {
					w.t.Fatalf("the bot said it rolls #%d back, but it is %s:\n%s", id, d.State, reply)
				}
			}
		},
		"crash-at-transition": func(rt *rapid.T) {
			k := rapid.IntRange(1, 4).Draw(rt, "k")
			commit := rapid.Bool().Draw(rt, "written")
			w.store.mu.Lock()
			w.store.armed, w.store.commit = k, commit
			w.store.mu.Unlock()
			w.faults++
			w.log = append(w.log, fmt.Sprintf("crash armed at the %dth transition (written: %v)", k, commit))
			c := w.change(rt, kindGood)
			w.say("alice", "!backport "+c.chatRef()+" --include-unexpected")
			w.say("bob", "verified")
			w.settle()
		},
		"crash-in-host-write": func(rt *rapid.T) {
			w.crashInSync.Store(true)
			w.faults++
			w.log = append(w.log, "crash armed in the next host write")
			c := w.change(rt, kindGood)
			w.say("alice", "!backport "+c.chatRef()+" --include-unexpected")
			w.settle()
		},
		"break-canary-metrics": func(rt *rapid.T) {
			h := rapid.SampledFrom(w.hosts[1:3]).Draw(rt, "canary")
			h.metricsDown.Store(true)
			w.faults++
			w.log = append(w.log, "metrics of "+h.name+" answer 500")
		},
		"mend-metrics": func(rt *rapid.T) {
			for _, h := range w.hosts {
				h.metricsDown.Store(false)
			}
			w.log = append(w.log, "every host's metrics answer again")
		},
		"repool": func(rt *rapid.T) {
			dp, _ := w.m.Runner.Depooled()
			if len(dp) == 0 {
				rt.Skip("nothing depooled")
			}
			var names []string
			for n := range dp {
				names = append(names, n)
			}
			sort.Strings(names)
			w.say("alice", "!repool "+rapid.SampledFrom(names).Draw(rt, "host"))
			w.settle()
		},
		"last-chat-stops": func(rt *rapid.T) {
			// What the bot does when its last chat connection stops for
			// good (bot.Bot.stopped calls this).
			w.faults++
			w.log = append(w.log, "the last chat connection stops for good")
			w.m.Runner.NobodyCanAnswer("the last chat connection stopped (model)")
			w.settle()
		},
		"wait-out-deadline": func(rt *rapid.T) {
			d, _ := w.m.Runner.Active()
			if d == nil {
				rt.Skip("nothing waits")
			}
			w.log = append(w.log, "wait out the deadline")
			time.Sleep(time.Until(d.Deadline) + 100*time.Millisecond)
			w.settle()
		},
	}
}

func (w *world) lastID() int64 {
	ds, _ := w.m.Store.List(0, 1)
	if len(ds) == 0 {
		return 0
	}
	return ds[0].ID
}

// modelWindow is a backport window open for the whole of any sequence, so
// the model adds to its list and deploys it (window tests move a clock).
var modelWindow = fmt.Sprintf(`windows:
  once:
    - {start: "%s", duration: 1000h, name: the model's window}
`, time.Now().UTC().Add(-time.Hour).Format(time.RFC3339))

func runModel(rt *rapid.T, totals *modelTotals) {
	playModel(rt, totals, worldOptions{}, (*world).actions, nil)
}

// playModel plays one sequence of a mode: a world with opt (batches and
// the model's window on), actions drawn from acts until rapid stops,
// then done (when not nil) before the world closes.
func playModel(rt *rapid.T, totals *modelTotals, opt worldOptions, acts func(*world) map[string]func(*rapid.T), done func(*world)) {
	opt.batch, opt.windows = true, modelWindow
	w := newWorldWith(rt, opt)
	ok := false
	defer func() { w.close(!ok) }()
	w.settle()
	rt.Repeat(acts(w))
	totals.add(w)
	if done != nil {
		done(w)
	}
	ok = true
}

type modelTotals struct {
	mu                          sync.Mutex
	sequences, steps, checks, n int
	states                      map[deployer.State]int
	restarts, faults            int
	unverified                  int // changes dropped from a batch unverified
}

func (m *modelTotals) add(w *world) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sequences++
	m.steps += w.steps
	m.checks += w.checks
	m.restarts += w.restarts
	m.faults += w.faults
	if m.states == nil {
		m.states = map[deployer.State]int{}
	}
	ds, _ := w.m.Store.List(0, 1000)
	for _, d := range ds {
		m.states[d.State]++
		for _, dc := range d.Dropped {
			if !dc.Guilty {
				m.unverified++
			}
		}
	}
}

// summary says what the sequences reached, so a run that never reaches a
// state is seen.
func (m *modelTotals) summary() string {
	var parts []string
	for _, st := range []deployer.State{deployer.StateDone, deployer.StateRolledBack, deployer.StateRollbackFailed, deployer.StateFailed,
		deployer.StateCancelled, deployer.StateQueued, deployer.StateAwaitingVerification, deployer.StateAwaitingMetrics, deployer.StateAwaitingPromotion} {
		parts = append(parts, fmt.Sprintf("%s %d", st, m.states[st]))
	}
	return fmt.Sprintf("%d restarts, %d faults injected; deployments: %s; %d changes dropped from batches unverified", m.restarts, m.faults, strings.Join(parts, ", "), m.unverified)
}

// modelFlagsSet returns the flags given on the command line, read before
// any model test sets rapid's flags to its own defaults.
var modelFlagsSet = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
})

// runModelTest runs run over rapid's seeds: checks sequences of up to 20
// steps unless the -rapid flags say otherwise, or, with -model.soak=D, new
// seeds until D is up. It returns the totals and when it started.
func runModelTest(t *testing.T, checks string, run func(*rapid.T, *modelTotals)) (*modelTotals, time.Time) {
	set := modelFlagsSet()
	if !set["rapid.checks"] {
		flag.Set("rapid.checks", checks)
	}
	if !set["rapid.steps"] {
		flag.Set("rapid.steps", "20")
	}
	totals := &modelTotals{}
	start := time.Now()
	if *soak == 0 {
		rapid.Check(t, func(rt *rapid.T) { run(rt, totals) })
		return totals, start
	}
	for round := 0; time.Since(start) < *soak && !t.Failed(); round++ {
		seed := uint64(time.Now().UnixNano())
		flag.Set("rapid.seed", strconv.FormatUint(seed, 10))
		flag.Set("rapid.checks", "5")
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { run(rt, totals) })
		})
	}
	return totals, start
}

var soak = flag.Duration("model.soak", 0, "run TestModelPipeline with new seeds until this much time is up (make soak DURATION=30m)")

// TestModelPipeline runs the model over a fixed set of seeds: rapid's own
// (-rapid.seed replays one, -rapid.checks widens it; 15 sequences of up to
// 20 steps by default here). With -model.soak=D it runs new seeds until D
// is up and prints the totals, or the seed and minimal sequence of the
// first failure.
func TestModelPipeline(t *testing.T) {
	totals, start := runModelTest(t, "15", runModel)
	msg := fmt.Sprintf("model: %d sequences, %d steps, %d invariant checks in %s; %s", totals.sequences, totals.steps, totals.checks, time.Since(start).Round(time.Second), totals.summary())
	t.Log(msg)
	fmt.Println(msg)
	if totals.steps == 0 {
		t.Fatal("the model ran no step")
	}
}
