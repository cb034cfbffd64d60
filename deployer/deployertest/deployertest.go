// Package deployertest builds a runner for fast table tests of the
// pipeline's states: a real bbolt store and a real staging repository over
// a real upstream git repository (made with go-git, no git command), real
// local two-slot hosts in temporary directories, and, as the only scripted
// parts, the metrics and the judge, so a test says in one line what the
// canary check decides. Announcements are recorded.
//
// It is the deployer's counterpart of wtf's mock/ and inmem/: the
// end-to-end tests (cmd/deploybot) and the model-based test cover the same
// pipeline through Main and real HTTP metrics.
package deployertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/deployer/hosts"
	"github.com/deploybot/deploybot/store"
)

// Judge decides every window with Decide; Pending until the window is
// complete unless Decide says Fail.
type Judge struct {
	mu     sync.Mutex
	Decide func(w deployer.Window) deployer.Outcome
	calls  int
}

// Judge implements deployer.Judge.
func (j *Judge) Judge(w deployer.Window) deployer.Verdict {
	j.mu.Lock()
	j.calls++
	decide := j.Decide
	j.mu.Unlock()
	out := deployer.Pass
	if decide != nil {
		out = decide(w)
	}
	if out != deployer.Fail && !w.Complete {
		out = deployer.Pending
	}
	return deployer.Verdict{Stage: w.Stage, Outcome: out, Reason: "scripted: " + string(out)}
}

// Calls returns how many times the judge was asked.
func (j *Judge) Calls() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.calls
}

// Metrics returns the same growing counters for every host, or, for the
// hosts named in Broken, a reading error.
type Metrics struct {
	mu     sync.Mutex
	n      float64
	Broken map[string]string
}

// Read implements deployer.Metrics.
func (m *Metrics) Read(ctx context.Context, hs []string) (deployer.Sample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n += 100
	s := deployer.Sample{Time: time.Now(), Hosts: map[string]deployer.Counts{}}
	for _, h := range hs {
		if why, bad := m.Broken[h]; bad {
			s.Hosts[h] = deployer.Counts{Err: why}
			continue
		}
		s.Hosts[h] = deployer.Counts{Requests: m.n, Errors: m.n / 200}
	}
	return s, nil
}

// Recorder keeps every notice.
type Recorder struct {
	mu      sync.Mutex
	notices []deployer.Notice
}

// Announce implements deployer.Announcer.
func (r *Recorder) Announce(n deployer.Notice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, n)
}

// Text returns every notice, one "kind: text" line each.
func (r *Recorder) Text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, n := range r.notices {
		s = append(s, string(n.Kind)+": "+n.Text)
	}
	return strings.Join(s, "\n")
}

// Env is one runner on real parts but its metrics and judge.
type Env struct {
	t        testing.TB
	Dir      string
	Upstream *git.Repository
	Store    *store.Store
	Staging  *gitrepo.Repo
	Fleet    deployer.Fleet
	Runner   *deployer.Runner
	Judge    *Judge
	Metrics  *Metrics
	Notices  *Recorder
	cancel   context.CancelFunc
	done     chan struct{}
	commits  int
}

// Timings are short enough for table tests.
var Timings = deployer.Config{VerifyTimeout: time.Second, PromoteTimeout: time.Second, BaselineMin: time.Millisecond,
	CanaryWindow: 100 * time.Millisecond, SampleInterval: 20 * time.Millisecond, RetryDelay: 10 * time.Millisecond, RollbackTries: 2}

// New builds an Env with one testserver, two canaries and two production
// hosts, all provisioned on the upstream's first commit, and starts the
// runner. cfg, when its CanaryWindow is set, replaces Timings.
func New(t testing.TB, cfg deployer.Config) *Env {
	t.Helper()
	if cfg.CanaryWindow == 0 {
		cfg = Timings
	}
	dir := t.TempDir()
	e := &Env{t: t, Dir: dir, Judge: &Judge{}, Metrics: &Metrics{}, Notices: &Recorder{}}
	up, err := git.PlainInit(filepath.Join(dir, "upstream"), false)
	if err != nil {
		t.Fatal(err)
	}
	e.Upstream = up
	e.Commit("index.html", "the app\n", "the app")
	if e.Store, err = store.Open(filepath.Join(dir, "d.db"), time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Store.Close() })
	if e.Staging, err = gitrepo.Open(filepath.Join(dir, "staging.git"), gitrepo.Upstream{URL: filepath.Join(dir, "upstream"), Branch: "master"}); err != nil {
		t.Fatal(err)
	}
	e.Fleet = deployer.Fleet{}
	for stage, names := range map[deployer.Stage][]string{deployer.Testservers: {"ts1"}, deployer.Canaries: {"can1", "can2"}, deployer.Production: {"mw1", "mw2"}} {
		for _, n := range names {
			e.Fleet[stage] = append(e.Fleet[stage], hosts.NewLocal(n, filepath.Join(dir, "hosts", n)))
		}
	}
	e.Runner = deployer.NewRunner(cfg, deployer.Deps{
		Store: e.Store, Source: &gitrepo.Reverter{Repo: e.Staging}, Staging: e.Staging, Fleet: e.Fleet,
		Metrics: e.Metrics, Judge: e.Judge, Announcer: e.Notices,
	})
	ctx := context.Background()
	head, err := e.Runner.EnsureBaseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range e.Fleet.Hosts() {
		if err := os.MkdirAll(filepath.Join(dir, "hosts", h.Name()), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(ctx, head, e.Staging); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	e.cancel, e.done = cancel, make(chan struct{})
	go func() { defer close(e.done); e.Runner.Run(rctx) }()
	t.Cleanup(e.Stop)
	<-e.Runner.Ready()
	return e
}

// Stop stops the runner (as a crash does, as far as the store is
// concerned).
func (e *Env) Stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

// Commit adds a commit writing path on the upstream's branch and returns
// its id.
func (e *Env) Commit(path, content, msg string) string {
	e.t.Helper()
	wt, err := e.Upstream.Worktree()
	if err != nil {
		e.t.Fatal(err)
	}
	full := filepath.Join(wt.Filesystem.Root(), path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if _, err := wt.Add(path); err != nil {
		e.t.Fatal(err)
	}
	e.commits++
	when := time.Date(2026, 1, 1, 0, e.commits, 0, 0, time.UTC)
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Bob", Email: "bob@example.org", When: when}})
	if err != nil {
		e.t.Fatal(err)
	}
	return h.String()
}

// Change commits a new file changes/<n>.txt and returns the commit id.
func (e *Env) Change() string {
	return e.Commit(fmt.Sprintf("changes/%d.txt", e.commits+1), fmt.Sprintf("change %d\n", e.commits+1), fmt.Sprintf("change %d", e.commits+1))
}

// Await waits until deployment id is in one of states, and returns it.
func (e *Env) Await(id int64, states ...deployer.State) *deployer.Deployment {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := e.Store.Get(id)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, s := range states {
			if d.State == s {
				return d
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("#%d is %s, want one of %v; notices:\n%s", id, d.State, states, e.Notices.Text())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Serving returns the commit each host serves, read back.
func (e *Env) Serving() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, h := range e.Fleet.Hosts() {
		cur, err := h.Current(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		out[h.Name()] = cur
	}
	return out
}

// AwaitSaid waits until the channel has heard s, and reports whether it
// did within a few seconds (a notice follows its state change).
func (e *Env) AwaitSaid(s string) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(e.Notices.Text(), s) {
			return true
		}
	}
	return false
}
