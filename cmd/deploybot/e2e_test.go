package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/deploybot/deploybot/internal/testparts"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// testTimings keep each end-to-end deployment to a few seconds while the
// judge still sees real traffic (20 requests/s per host).
var testTimings = demoTimings{VerifyTimeout: time.Minute, PromoteTimeout: time.Minute,
	BaselineMin: time.Second, Window: 4 * time.Second, Interval: 250 * time.Millisecond, ProductionWatch: 2 * time.Second, MinRequests: 40}

// e2e is one sandbox with the bot running through Main.Run.
type e2e struct {
	t      *testing.T
	sb     *sandbox
	out    *testparts.Buffer
	cancel context.CancelFunc
	done   chan error
}

// newE2E starts a sandbox and runs the bot on it until the test ends.
func newE2E(t *testing.T, tm demoTimings, configure ...func(*Main)) *e2e {
	t.Helper()
	out := &testparts.Buffer{}
	sb, err := startSandbox(context.Background(), t.TempDir(), tm, "debug", strings.NewReader(""), out, out, configure...)
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, sb: sb, out: out}
	t.Cleanup(func() {
		e.stop()
		sb.Close()
		if t.Failed() {
			t.Logf("conversation:\n%s", out.String())
		}
	})
	e.start()
	return e
}

func (e *e2e) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- e.sb.Main.Run(ctx) }()
}

// stop stops the bot the way a crash does as far as the store is
// concerned: no state is changed on the way out.
func (e *e2e) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Main.Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		e.t.Error("Main.Run did not return after its context ended")
	}
	e.cancel = nil
	e.sb.Main.Close()
}

// restart opens a new Main on the same configuration and store, and runs it.
func (e *e2e) restart(configure ...func(*Main)) {
	e.t.Helper()
	e.stop()
	m := NewMain(strings.NewReader(""), e.out, e.out)
	if err := m.ParseFlags([]string{"--config", filepath.Join(e.sb.Env.Dir, "deploybot.yaml")}); err != nil {
		e.t.Fatal(err)
	}
	m.Adapters = append(m.Adapters, e.sb.Tap)
	for _, f := range configure {
		f(m)
	}
	if err := m.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.sb.Main = m
	e.start()
}

func (e *e2e) say(user, text string) { e.sb.say(user, text) }

func (e *e2e) wait(id int64, timeout time.Duration, kinds ...deployer.NoticeKind) deployer.Notice {
	e.t.Helper()
	n, err := e.sb.Tap.Wait(context.Background(), id, timeout, kinds...)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

var finished = []deployer.NoticeKind{deployer.NoticeDone, deployer.NoticeRolledBack, deployer.NoticeFailed, deployer.NoticeCancelled}

func (e *e2e) get(id int64) *deployer.Deployment {
	e.t.Helper()
	d, err := e.sb.Main.Store.Get(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// expect checks that every host serves the commit given for its stage,
// read back from the host, and that the tree it serves equals that
// commit's git tree file by file (contents, modes, symlinks).
func (e *e2e) expect(byStage map[deployer.Stage]string) {
	e.t.Helper()
	ctx := context.Background()
	for stage, want := range byStage {
		for _, h := range e.sb.Main.Fleet[stage] {
			cur, err := h.Current(ctx)
			if err != nil {
				e.t.Errorf("%s: reading current: %v", h.Name(), err)
				continue
			}
			if cur != want {
				e.t.Errorf("%s (%s) serves %.10s, want %.10s", h.Name(), stage, cur, want)
				continue
			}
			if hk, ok := h.(interface{ Unwrap() deployer.Host }); ok {
				h = hk.Unwrap()
			}
			if err := hosts.VerifyHost(ctx, h.(*hosts.Local), e.sb.Main.Staging); err != nil {
				e.t.Errorf("%s: tree differs from its commit: %v", h.Name(), err)
			}
		}
	}
}

func all(c string) map[deployer.Stage]string {
	return map[deployer.Stage]string{deployer.Testservers: c, deployer.Canaries: c, deployer.Production: c}
}

func (e *e2e) head() string {
	e.t.Helper()
	h, _, err := e.sb.Main.Staging.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// rolledBackWithoutBlame waits for deployment id to finish and checks that
// it was rolled back for a reason containing why, without blaming the
// change (no block, no upstream revert), with restored hosts announced, and
// every host read back on base with its tree exact.
func (e *e2e) rolledBackWithoutBlame(id int64, wait time.Duration, why string, restored int, base string) *deployer.Deployment {
	e.t.Helper()
	n := e.wait(id, wait, finished...)
	d := e.get(id)
	if d.State != deployer.StateRolledBack || !strings.Contains(d.Reason, why) {
		e.t.Fatalf("#%d ended %s: %q, want rolled back for %q", id, d.State, d.Reason, why)
	}
	if d.Blame {
		e.t.Errorf("#%d: %q must not blame (block, revert) the change", id, why)
	}
	if want := fmt.Sprintf("Restored %d host", restored); !strings.Contains(n.Text, want) {
		e.t.Errorf("announcement lacks %q: %s", want, n.Text)
	}
	e.expect(all(base))
	return d
}

// deployGood runs good-change through to done and returns it.
func (e *e2e) deployGood() *deployer.Deployment {
	e.t.Helper()
	base := e.head()
	e.expect(all(base))
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	d := e.get(1)
	// After the testservers' sync: only they serve the new commit.
	e.expect(map[deployer.Stage]string{deployer.Testservers: d.Commit, deployer.Canaries: base, deployer.Production: base})
	e.say("bob", "verified")
	e.wait(1, time.Minute, deployer.NoticeVerdict)
	e.wait(1, time.Minute, finished...)
	d = e.get(1)
	if d.State != deployer.StateDone {
		e.t.Fatalf("good change ended %s: %s", d.State, d.Reason)
	}
	e.expect(all(d.Commit))
	return d
}

func TestGoodBackportReachesEveryHost(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	d := e.deployGood()
	if d.Base != base || d.Submitter != "Bob Submitter" || d.Requester != "Alice Deployer" {
		t.Errorf("deployment: base %.10s (want %.10s), submitter %q, requester %q", d.Base, base, d.Submitter, d.Requester)
	}
	if len(d.Verdicts) != 2 || d.Verdicts[0].Stage != deployer.Canaries || d.Verdicts[0].Outcome != deployer.Pass ||
		d.Verdicts[1].Stage != deployer.Production || d.Verdicts[1].Outcome != deployer.Pass {
		for _, v := range d.Verdicts {
			t.Errorf("verdict: %s %s: %s", v.Stage, v.Outcome, v.Reason)
		}
		t.Errorf("want a passing canary check and a passing production watch")
	}
	if got := strings.Join(d.Files, ","); got != "config/app.json,index.html" {
		t.Errorf("files changed: %s", got)
	}
	if len(d.Touched) != 7 {
		t.Errorf("touched %d hosts, want 7: %v", len(d.Touched), d.Touched)
	}
	// The verification ping names the submitter and the testserver.
	ping := e.wait(1, time.Second, deployer.NoticeVerify)
	if len(ping.Mention) != 1 || ping.Mention[0] != "Bob Submitter" || !strings.Contains(ping.Text, "mwdebug1001") {
		t.Errorf("verify ping: %+v", ping)
	}
	if !strings.Contains(e.out.String(), "bob: [#1]") {
		t.Errorf("the console did not ping bob by nick:\n%s", e.out.String())
	}
	// The timeline holds every state the deployment went through, in order.
	evs, err := e.sb.Main.Store.Events(1)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, ev := range evs {
		if ev.Kind == "state" {
			states = append(states, string(ev.To))
		}
	}
	want := "queued preparing syncing-testservers awaiting-verification syncing-canaries checking-canaries syncing-production checking-production done"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("timeline states:\n got %s\nwant %s", got, want)
	}
}

func TestBadBackportTripsEarlyAndRollsBack(t *testing.T) {
	t.Parallel()
	tm := testTimings
	tm.Window = 30 * time.Second // a gross failure must trip long before this
	e := newE2E(t, tm)
	base := e.head()
	e.say("alice", "!backport bad-change --include-unexpected")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	synced := time.Now()
	e.wait(1, time.Minute, deployer.NoticeVerdict)
	rb := e.wait(1, time.Minute, finished...)
	took := time.Since(synced)
	d := e.get(1)
	if d.State != deployer.StateRolledBack {
		t.Fatalf("bad change ended %s: %s", d.State, d.Reason)
	}
	if took > 15*time.Second {
		t.Errorf("the rollback came %s after verification; a gross failure must trip well inside the 30s window", took)
	}
	v := d.Verdicts[len(d.Verdicts)-1]
	if v.Outcome != deployer.Fail || v.Stage != deployer.Canaries {
		t.Errorf("last verdict: %s %s", v.Stage, v.Outcome)
	}
	for _, h := range d.Touched {
		if strings.HasPrefix(h, "mw1") {
			t.Errorf("production host %s was touched", h)
		}
	}
	// Every host is back on the base, read back, trees exact.
	e.expect(all(base))
	for _, want := range []string{"canary check FAIL", "Restored 3 hosts", "each read back", "mwdebug1001, mw-canary1001, mw-canary1002"} {
		if !strings.Contains(rb.Text+e.out.String(), want) {
			t.Errorf("announcement lacks %q:\n%s", want, rb.Text)
		}
	}
	// The staging repo recorded the rollback as a commit whose tree is the base's.
	if d.RollbackCommit == "" || d.RollbackCommit != e.head() {
		t.Errorf("rollback commit %q, staging head %q", d.RollbackCommit, e.head())
	}
	if ch, err := e.sb.Main.Staging.Changed(context.Background(), base, d.RollbackCommit); err != nil || len(ch) != 0 {
		t.Errorf("rollback commit differs from the base: %v %v", ch, err)
	}
	// The bad change may not ship again until upstream no longer has it.
	e.say("alice", "!backport bad-change --include-unexpected")
	f := e.wait(2, time.Minute, finished...)
	if e.get(2).State != deployer.StateFailed || !strings.Contains(f.Text, "would ship again") {
		t.Errorf("re-shipping the rolled-back change: %s: %s", e.get(2).State, f.Text)
	}
	e.expect(all(base))
}

func TestVerificationTimeoutRollsBackTestservers(t *testing.T) {
	t.Parallel()
	tm := testTimings
	tm.VerifyTimeout = 2 * time.Second
	e := newE2E(t, tm)
	base := e.head()
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	rem := e.wait(1, 10*time.Second, deployer.NoticeReminder)
	if len(rem.Mention) != 1 || rem.Mention[0] != "Bob Submitter" {
		t.Errorf("reminder did not ping the submitter: %+v", rem)
	}
	d := e.rolledBackWithoutBlame(1, 20*time.Second, "nobody replied `verified` within 2s", 1, base)
	if strings.Join(d.Touched, ",") != "mwdebug1001" {
		t.Errorf("touched %v, want only the testserver", d.Touched)
	}
	// A late answer is told the deployment is no longer waiting.
	e.say("bob", "verified 1")
	if !strings.Contains(e.out.String(), "is not waiting for verification") {
		t.Errorf("late verified was not answered:\n%s", e.out.String())
	}
}

func TestRollbackAfterDoneRestoresEveryHost(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	d := e.deployGood()
	e.say("alice", "!rollback")
	n := e.wait(1, time.Minute, deployer.NoticeRolledBack)
	got := e.get(1)
	if got.State != deployer.StateRolledBack || got.Reason != "rolled back by Alice Deployer" {
		t.Fatalf("after !rollback: %s %q", got.State, got.Reason)
	}
	if !strings.Contains(n.Text, "Restored 7 hosts") {
		t.Errorf("announcement: %s", n.Text)
	}
	e.expect(all(base))
	if d.Commit == e.head() {
		t.Error("no rollback commit in staging")
	}
	// Rolling back again is refused with a reason.
	e.say("alice", "!rollback 1")
	if !strings.Contains(e.out.String(), "deployment #1 is rolled-back; there is nothing to roll back") {
		t.Errorf("second rollback not refused:\n%s", e.out.String())
	}
}

func TestRollbackOfOlderDeploymentIsRefused(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.deployGood()
	e.say("alice", "!backport bad-change")
	e.wait(2, time.Minute, deployer.NoticeVerify)
	e.say("alice", "!rollback 1")
	if !strings.Contains(e.out.String(), "deployment #2 is running now") {
		t.Errorf("rollback of #1 while #2 runs was not refused:\n%s", e.out.String())
	}
	e.say("bob", "!abort")
	e.wait(2, time.Minute, deployer.NoticeRolledBack)
	if d := e.get(2); !d.Blame || d.Reason != "aborted by Bob Submitter" {
		t.Errorf("abort by the submitter: blame %v, reason %q", d.Blame, d.Reason)
	}
}

func TestUnauthorisedUsersAreRefused(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	cases := []struct{ user, text, want string }{
		{"mallory", "!backport good-change", "mallory: only deployers may do that"},
		{"bob", "!lock because", "bob: only deployers may do that"},
		{"mallory", "!rollback 1", "mallory: only deployers may do that"},
		{"alice", "!backport", "what should I deploy?"},
		{"alice", "!backport good-change --force", `unknown option "--force"`},
		{"alice", "!history lots", `"lots": give a number from 1 to 100`},
		{"alice", "!frobnicate", `I don't know "frobnicate"`},
		{"alice", "!status 999", "there is no deployment #999"},
	}
	for _, c := range cases {
		e.say(c.user, c.text)
		if !strings.Contains(e.out.String(), c.want) {
			t.Errorf("%s says %q: no %q in:\n%s", c.user, c.text, c.want, e.out.String())
		}
	}
	if q, _ := e.sb.Main.Runner.Queue(); len(q) != 0 {
		t.Errorf("a refused backport was queued: %v", q)
	}
	// A stranger cannot verify someone else's deployment; the submitter can.
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("mallory", "verified")
	if !strings.Contains(e.out.String(), "mallory: only the submitter (bob) or a deployer may answer for #1") {
		t.Errorf("stranger's verified not refused:\n%s", e.out.String())
	}
	if d := e.get(1); d.State != deployer.StateAwaitingVerification {
		t.Errorf("after a stranger's verified: %s", d.State)
	}
	e.say("bob", "verified")
	e.wait(1, time.Minute, deployer.NoticeVerified)
	// Refusals are recorded in the store with who and what.
	general, _ := e.sb.Main.Store.Events(0)
	own, _ := e.sb.Main.Store.Events(1)
	refused := 0
	for _, ev := range append(general, own...) {
		if ev.Kind == "refused" {
			refused++
			if ev.Actor == "" || ev.Message == "" {
				t.Errorf("refusal recorded without actor or message: %+v", ev)
			}
		}
	}
	if refused < 4 {
		t.Errorf("%d refusals recorded, want at least 4", refused)
	}
	e.wait(1, time.Minute, finished...)
}

// gate is a host whose syncs block until the bot is stopped: a crash in
// the middle of a sync, as far as the store can tell.
type gate struct {
	deployer.Host
	once    sync.Once
	entered chan struct{}
}

func (g *gate) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	g.once.Do(func() { close(g.entered) })
	<-ctx.Done()
	return ctx.Err()
}

func TestRestartMidSyncFinishesTheDeployment(t *testing.T) {
	t.Parallel()
	var g *gate
	e := newE2E(t, testTimings, func(m *Main) {})
	// Block the last production host's sync; the runner shares the Fleet.
	prod := e.sb.Main.Fleet[deployer.Production]
	g = &gate{Host: prod[len(prod)-1], entered: make(chan struct{})}
	prod[len(prod)-1] = g
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	select {
	case <-g.entered:
	case <-time.After(time.Minute):
		t.Fatal("the production sync never started")
	}
	if d := e.get(1); d.State != deployer.StateSyncingProduction {
		t.Fatalf("state at the crash: %s", d.State)
	}
	e.restart()
	e.wait(1, time.Minute, deployer.NoticeDone)
	d := e.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("after restart: %s %s", d.State, d.Reason)
	}
	e.expect(all(d.Commit))
	if !strings.Contains(e.out.String(), "resuming after a restart (it was syncing-production)") {
		t.Errorf("the resume was not announced:\n%s", e.out.String())
	}
}

func TestRestartMidCanaryCheckRollsBack(t *testing.T) {
	t.Parallel()
	tm := testTimings
	tm.Window = 30 * time.Second
	e := newE2E(t, tm)
	base := e.head()
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	deadline := time.Now().Add(time.Minute)
	for e.get(1).State != deployer.StateCheckingCanaries {
		if time.Now().After(deadline) {
			t.Fatalf("never reached checking-canaries: %s", e.get(1).State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.restart()
	e.rolledBackWithoutBlame(1, time.Minute, "restarted during the canary check", 3, base)
}

func TestRestartDuringVerificationKeepsWaiting(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	before := e.get(1).Deadline
	e.restart()
	time.Sleep(300 * time.Millisecond)
	d := e.get(1)
	if d.State != deployer.StateAwaitingVerification || !d.Deadline.Equal(before) {
		t.Fatalf("after restart: %s, deadline %s (was %s)", d.State, d.Deadline, before)
	}
	e.say("bob", "verified")
	e.wait(1, time.Minute, deployer.NoticeDone)
	e.expect(all(e.get(1).Commit))
}

func TestQueueLockAndCancel(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	e.say("alice", "!lock train deploy in progress")
	e.say("alice", "!backport good-change")
	e.say("alice", "!backport bad-change")
	out := e.out.String()
	for _, want := range []string{"deployments locked by Alice Deployer: train deploy in progress", "queued good-change as #1; deployments are locked by Alice Deployer"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if d := e.get(1); d.State != deployer.StateQueued {
		t.Fatalf("a locked deployment started: %s", d.State)
	}
	e.say("bob", "!queue")
	if !strings.Contains(e.out.String(), "2 queued:") || !strings.Contains(e.out.String(), "2. #2 bad-change by Alice Deployer") {
		t.Errorf("queue listing:\n%s", e.out.String())
	}
	e.say("alice", "!cancel 2")
	if d := e.get(2); d.State != deployer.StateCancelled {
		t.Errorf("#2 after cancel: %s", d.State)
	}
	e.say("alice", "!unlock")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("anyone", "!status")
	if !strings.Contains(e.out.String(), "#1 awaiting-verification: ") {
		t.Errorf("status:\n%s", e.out.String())
	}
}

func TestSecondBotOnTheSameStoreExits(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	m := NewMain(strings.NewReader(""), e.out, e.out)
	if err := m.ParseFlags([]string{"--config", filepath.Join(e.sb.Env.Dir, "deploybot.yaml")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := m.Open(context.Background())
	if err == nil {
		m.Close()
		t.Fatal("a second bot opened the same store")
	}
	if !strings.Contains(err.Error(), filepath.Join(e.sb.Env.Dir, "deploybot.db")) || time.Since(start) > 5*time.Second {
		t.Errorf("error %q after %s: want the file named, within the 1s open timeout", err, time.Since(start))
	}
}

func TestInconclusiveVerdictAsksDeployers(t *testing.T) {
	t.Parallel()
	tm := testTimings
	tm.MinRequests = 100000 // no window this short can pass: the verdict is inconclusive
	tm.PromoteTimeout = 3 * time.Second
	e := newE2E(t, tm)

	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	p := e.wait(1, time.Minute, deployer.NoticePromote)
	if !strings.Contains(p.Text, "INCONCLUSIVE") || len(p.Choices) != 2 || p.Verdict == nil || p.Verdict.Outcome != deployer.Inconclusive {
		t.Errorf("promote prompt: %+v", p)
	}
	e.say("bob", "!promote")
	if !strings.Contains(e.out.String(), "bob: only deployers may do that") {
		t.Error("the submitter was allowed to promote")
	}
	e.say("alice", "!promote 1")
	e.wait(1, time.Minute, deployer.NoticeDone)
	good := e.get(1)
	e.expect(all(good.Commit))
	if v := good.Verdicts; len(v) == 0 || v[0].Stage != deployer.Canaries || v[0].Outcome != deployer.Inconclusive {
		t.Errorf("first verdict: want an inconclusive canary check, got %d verdicts", len(v))
	}
}

func TestUnansweredInconclusiveVerdictRollsBack(t *testing.T) {
	t.Parallel()
	tm := testTimings
	tm.MinRequests = 100000
	tm.PromoteTimeout = 2 * time.Second
	e := newE2E(t, tm)
	base := e.head()
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.wait(1, time.Minute, deployer.NoticePromote)
	e.rolledBackWithoutBlame(1, 30*time.Second, "inconclusive and nobody answered within 2s", 3, base)
}

// flaky is a host whose syncs fail while failOn says so: a full disk, a
// dead machine. failOn may be changed between deployments (the host is
// mended).
type flaky struct {
	deployer.Host
	mu     sync.Mutex
	failOn func(commit string) bool
}

func (f *flaky) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	f.mu.Lock()
	fail := f.failOn != nil && f.failOn(commit)
	f.mu.Unlock()
	if fail {
		return errors.New("no space left on device")
	}
	return f.Host.Sync(ctx, commit, src)
}

// Unwrap gives the real host, for the tree checks.
func (f *flaky) Unwrap() deployer.Host { return f.Host }

func (f *flaky) mend() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOn = nil
}

// breakHost replaces the named host of the running bot's fleet with a
// flaky one (the runner shares the Fleet's slices).
func (e *e2e) breakHost(name string, failOn func(commit string) bool) *flaky {
	e.t.Helper()
	for _, hs := range e.sb.Main.Fleet {
		for i, h := range hs {
			if h.Name() == name {
				f := &flaky{Host: h, failOn: failOn}
				hs[i] = f
				return f
			}
		}
	}
	e.t.Fatalf("no host %s", name)
	return nil
}

func TestProductionToleratesMaxFailedHosts(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings, func(m *Main) { m.Config.Hosts.MaxFailedHosts = "1" })
	base := e.head()
	forward := func(c string) bool { return c != base }
	e.breakHost("mw1004", forward)
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.wait(1, time.Minute, finished...)
	d := e.get(1)
	if d.State != deployer.StateDone {
		t.Fatalf("one failed production host within max_failed_hosts=1: ended %s: %s", d.State, d.Reason)
	}
	if note := d.FailedHosts["mw1004"]; !strings.Contains(note, "no space left on device") || !strings.Contains(note, "left on the previous commit") {
		t.Errorf("failed host note: %q", note)
	}
	if !strings.Contains(e.out.String(), "1 production host failed to sync, within max_failed_hosts (1): mw1004 (no space left on device)") {
		t.Errorf("the failed host was not reported by name:\n%s", e.out.String())
	}
	// Every host serves a commit the store knows: the new one, or the base.
	e.expect(map[deployer.Stage]string{deployer.Testservers: d.Commit, deployer.Canaries: d.Commit})
	for _, h := range e.sb.Main.Fleet[deployer.Production] {
		want := d.Commit
		if h.Name() == "mw1004" {
			want = base
		}
		if cur, err := h.Current(context.Background()); err != nil || cur != want {
			t.Errorf("%s serves %.10s (%v), want %.10s", h.Name(), cur, err, want)
		}
	}
}

func TestProductionOverMaxFailedHostsRollsBackTheFleet(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings, func(m *Main) { m.Config.Hosts.MaxFailedHosts = "1" })
	base := e.head()
	forward := func(c string) bool { return c != base }
	e.breakHost("mw1003", forward)
	e.breakHost("mw1004", forward)
	e.say("alice", "!backport good-change")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.rolledBackWithoutBlame(1, time.Minute, "(more than the 1 allowed)", 7, base)
}

func TestUnrestorableHostIsDepooledAndRepooled(t *testing.T) {
	t.Parallel()
	pooled := t.TempDir()
	e := newE2E(t, testTimings, func(m *Main) {
		m.Config.Hosts.StageOptions = map[string]config.StageOptions{"canaries": {
			Depool: []string{"touch", filepath.Join(pooled, "depooled-{host}")},
			Repool: []string{"rm", "-f", filepath.Join(pooled, "depooled-{host}")},
		}}
	})
	base := e.head()
	broken := e.breakHost("mw-canary1002", func(c string) bool { return c == base })
	e.say("alice", "!backport bad-change --include-unexpected")
	e.wait(1, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	n := e.wait(1, time.Minute, finished...)
	d := e.get(1)
	if d.State != deployer.StateRolledBack || strings.Join(d.Depooled, ",") != "mw-canary1002" {
		t.Fatalf("ended %s, depooled %v: %s", d.State, d.Depooled, n.Text)
	}
	for _, want := range []string{"COULD NOT RESTORE: mw-canary1002 (no space left on device)", "Depooled mw-canary1002 so it takes no traffic"} {
		if !strings.Contains(n.Text, want) {
			t.Errorf("announcement lacks %q:\n%s", want, n.Text)
		}
	}
	marker := filepath.Join(pooled, "depooled-mw-canary1002")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the depool command did not run: %v", err)
	}
	e.say("anyone", "!status")
	if !strings.Contains(e.out.String(), "mw-canary1002 (serves ") {
		t.Errorf("!status does not show the depooled host:\n%s", e.out.String())
	}
	// Still broken: repooling is refused, and it stays out.
	e.say("alice", "!repool mw-canary1002")
	if !strings.Contains(e.out.String(), "It stays depooled") {
		t.Errorf("repool of a broken host was not refused:\n%s", e.out.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("a broken host was repooled")
	}
	// Mended: repool syncs it to the deployed commit, then puts it back.
	broken.mend()
	e.say("alice", "!repool mw-canary1002")
	if !strings.Contains(e.out.String(), "repooled mw-canary1002: it serves the deployed commit again") {
		t.Errorf("repool after mending:\n%s", e.out.String())
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the repool command did not run: %v", err)
	}
	e.expect(all(base))
	if dp, _ := e.sb.Main.Runner.Depooled(); len(dp) != 0 {
		t.Errorf("still depooled: %v", dp)
	}
}

// TestDemoRollbackAfterRollback is the sequences issue's "done means" in
// the demo's sandbox: good-change verified, bad-change verified (and
// rolled back by the canaries), then `!rollback 1` rolls #1 back on every
// host, and the next backport starts. It used to leave #1 rolling back
// for ever and the queue stuck.
func TestDemoRollbackAfterRollback(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testTimings)
	base := e.head()
	good := e.deployGood()
	e.say("alice", "!backport bad-change --include-unexpected")
	e.wait(2, time.Minute, deployer.NoticeVerify)
	e.say("bob", "verified")
	e.wait(2, time.Minute, finished...)
	if d := e.get(2); d.State != deployer.StateRolledBack {
		t.Fatalf("bad-change ended %s: %s", d.State, d.Reason)
	}
	e.expect(all(good.Commit))
	e.say("alice", "!rollback 1")
	n := e.wait(1, time.Minute, deployer.NoticeRolledBack)
	if d := e.get(1); d.State != deployer.StateRolledBack || !strings.Contains(n.Text, "Restored 7 hosts") {
		t.Fatalf("#1 after !rollback 1: %s (%s): %s", d.State, d.Reason, n.Text)
	}
	if strings.Contains(e.out.String(), "resuming after a restart") || strings.Contains(e.out.String(), "internal error") {
		t.Errorf("untrue lines:\n%s", e.out.String())
	}
	e.expect(all(base))
	e.say("alice", "!backport good-change --include-unexpected")
	e.wait(3, time.Minute, deployer.NoticeStarted)
	e.wait(3, time.Minute, finished...)
	e.expect(all(base))
}
