package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// demoTimings are the pipeline's timings in the demo: short enough to
// watch, long enough for the judge to see traffic.
type demoTimings struct {
	VerifyTimeout, PromoteTimeout, BaselineMin, Window, Interval, ProductionWatch time.Duration
	MinRequests                                                                   int
	RPS                                                                           float64 // requests/s per host; 0: the demo's default
}

var interactiveTimings = demoTimings{VerifyTimeout: 10 * time.Minute, PromoteTimeout: 5 * time.Minute,
	BaselineMin: 5 * time.Second, Window: 20 * time.Second, Interval: time.Second, ProductionWatch: 10 * time.Second, MinRequests: 100}

var demoConfig = template.Must(template.New("demo").Parse(`# Written by deploybot demo, with the ports of its hosts' web servers,
# which run only while the demo does. Run the same sandbox again with:
#   deploybot demo --dir {{.Dir}}
bot: {name: deploybot, prefix: "!"}
store: {path: deploybot.db, open_timeout: 1s}
staging: {path: staging.git}
source:
  type: git
  components:
    - {path: "", url: {{.Upstream}}, branch: main}
    - {path: {{.ReleaseDir}}, url: {{.Release}}, branch: {{.ReleaseBranch}}, submodules: true}
hosts:
  transport: local
  parallel: 10
  stages:
{{- range $stage, $hosts := .Stages}}
    {{$stage}}:
{{- range $hosts}}
      - {name: {{.Name}}, root: {{.Root}}, metrics: "{{.MetricsURL}}", url: "{{.URL}}"}
{{- end}}
{{- end}}
pipeline:
  verify_timeout: {{.T.VerifyTimeout}}
  promote_timeout: {{.T.PromoteTimeout}}
  sync_retries: 1
  batch: {enabled: true, max_changes: 8, max_rounds: 10}
canary:
  baseline_min: {{.T.BaselineMin}}
  window: {{.T.Window}}
  interval: {{.T.Interval}}
  production_watch: {{.T.ProductionWatch}}
  judge: {min_requests: {{.T.MinRequests}}}
access:
  deployers: [Alice Deployer]
people:
  - {name: Alice Deployer, emails: [alice@example.org], chat: ["console:alice"], nick: alice}
  - {name: Bob Submitter, emails: [bob@example.org], chat: ["console:bob"], nick: bob}
  - {name: Dana Developer, emails: [dana@example.org], chat: ["console:dana"], nick: dana}
  - {name: Erin Editor, emails: [erin@example.org], chat: ["console:erin"], nick: erin}
chat:
  console: {user: alice}
log: {level: {{.LogLevel}}, format: text, file: deploybot.log}
web: {listen: "127.0.0.1:0"}
# A backport window open from the sandbox's start for 12 hours: !window
# shows it, !add puts a change on its list, !window go deploys the list
# (as one batch). Outside a window a backport needs --emergency <reason>.
# The evening window opens an hour after it (demo --scenario moves the
# bot's clock there).
windows:
  once:
    - {start: "{{.WindowStart}}", duration: 12h, name: morning backport window}
    - {start: "{{.EveningStart}}", duration: 1h, name: evening backport window}
`))

// demoWindows are the sandbox's two backport windows: the morning one,
// open from its start for 12 hours, and the evening one an hour after.
type demoWindows struct{ Morning, Evening time.Time }

func newDemoWindows(now time.Time) demoWindows {
	m := now.UTC().Add(-time.Minute).Truncate(time.Second)
	return demoWindows{Morning: m, Evening: m.Add(13 * time.Hour)}
}

// writeDemoConfig writes the sandbox's configuration file and returns its path.
func writeDemoConfig(env *demo.Env, t demoTimings, logLevel string, win demoWindows) (string, error) {
	path := filepath.Join(env.Dir, "deploybot.yaml")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	err = demoConfig.Execute(f, map[string]any{"Dir": env.Dir, "Upstream": env.Upstream,
		"ReleaseDir": demo.ReleaseDir, "Release": env.Release, "ReleaseBranch": demo.ReleaseBranch, "Stages": env.HostsByStage(), "T": t, "LogLevel": logLevel,
		"WindowStart": win.Morning.Format(time.RFC3339), "EveningStart": win.Evening.Format(time.RFC3339)})
	if err != nil {
		return "", err
	}
	return path, f.Close()
}

// Provision puts every host that serves nothing yet on the staging repo's
// tip (creating the baseline first), so the demo's fleet starts out
// serving the upstream main branch. A real fleet is provisioned by its
// operators; `run` never does this.
func (m *Main) Provision(ctx context.Context) error {
	head, err := m.Runner.EnsureBaseline(ctx)
	if err != nil {
		return err
	}
	for _, h := range m.Fleet.Hosts() {
		cur, err := h.Current(ctx)
		if err == nil && cur != "" {
			continue
		}
		if err := h.Sync(ctx, head, m.Staging); err != nil {
			return fmt.Errorf("provisioning %s: %w", h.Name(), err)
		}
	}
	return nil
}

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "sandbox directory (default: a new temporary directory)")
	scenario := fs.Bool("scenario", false, "play a good and a bad backport and a backport window's batch unattended, and check the outcome")
	if err := fs.Parse(args); err != nil {
		return helpOr2(err)
	}
	if err := noArgs(fs); err != nil {
		fmt.Fprintln(stderr, "deploybot demo:", err)
		return 2
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "deploybot-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "deploybot demo:", err)
			return 1
		}
		*dir = d
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "deploybot demo:", err)
		return 1
	}
	inputEnded := make(chan struct{})
	if !*scenario {
		// Nobody can type to the bot once its input ends (a closed
		// terminal, `< /dev/null`): the demo stops rather than run on
		// unreachable.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stdin = &endReader{r: stdin, end: func() { close(inputEnded); cancel() }}
	}
	sb, err := startSandbox(ctx, abs, interactiveTimings, "info", stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "deploybot demo:", err)
		return 1
	}
	defer sb.Close()
	if *scenario {
		sb.Main.Console.Echo = true
		fmt.Fprintf(stdout, "deploybot demo --scenario: sandbox in %s (bot log: %s)\n\n", abs, filepath.Join(abs, "deploybot.log"))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sb.Main.Runner.Run(runCtx) }()
		sb.Main.serveWeb(runCtx)
		fmt.Fprintf(stdout, "dashboard: %s\n\n", sb.Main.dashboardURL())
		err := playScenario(ctx, sb, stdout)
		cancel()
		<-done
		if err != nil {
			fmt.Fprintf(stdout, "\nSCENARIO FAILED: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, "\nSCENARIO PASSED: the config change and the extension change are on all 7 hosts; the bad change was caught on the canaries and rolled back before any production host got it; the evening window's batch was bisected on the canaries, its guilty change blocked and the four others shipped.")
		return 0
	}
	fmt.Fprintf(stdout, `deploybot demo: a sandbox in %s
  deploy tree: the configuration repository %s at the root (branches good-change
  and bad-change wait to be deployed), and release branch `+demo.ReleaseBranch+` of core
  at `+demo.ReleaseDir+`/ with extension Foo as a submodule
  hosts: %s
  bot log: %s

You are alice, a deployer. Bob (bob@example.org) wrote both changes, so the bot
will ask bob to test them. Type a line and press enter; "/as bob TEXT" speaks as bob.

  !backport good-change        deploy the good change
  /as bob verified             bob says it works on the testserver
  !backport bad-change         its pages load (have a look), but its search suggestions
                               fail under traffic: watch the canaries catch it
  !window                      the backport window open now and its list
  /as erin !add window-privacy    three changes for the window, by Erin, Bob and Dana
  /as bob !add window-sidebar     (after good-change, which they build on); Bob's fails
  /as dana !add window-spanish    a quarter of requests under traffic
  !window go                   deploy the list as one batch: the canaries fail it and
                               the bot bisects it to find Bob's change
  !status   !history   !rollback   !help

"deploybot demo --scenario" (make scenario) plays all of this unattended, with a
window that opens later and changes in core and extension Foo too.

Ctrl-C stops the bot; run the same sandbox later, hosts and traffic too, with:
  deploybot demo --dir %s
`, abs, sb.Env.Upstream, hostList(sb.Env), filepath.Join(abs, "deploybot.log"), abs)
	fmt.Fprintf(stdout, "\nThe dashboard (live progress, history, canary charts): %s\n\n", sb.Main.dashboardURL())
	sb.Main.NoSummary = true // the banner above is the demo's summary
	if err := sb.Main.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "deploybot demo:", err)
		return 1
	}
	select {
	case <-inputEnded:
		// Not `deploybot run`: it starts no host web servers and no
		// traffic, so their links would be dead and the canary check blind.
		fmt.Fprintf(stdout, "\nThe input ended, so nobody can talk to the bot: the demo stops. Whatever was deploying resumes where it stopped with\n  deploybot demo --dir %s\n", abs)
	default:
	}
	return 0
}

// endReader reads r and calls end once, when r ends.
type endReader struct {
	r    io.Reader
	end  func()
	once sync.Once
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(e.end)
	}
	return n, err
}

func hostList(env *demo.Env) string {
	var parts []string
	for _, h := range env.Hosts {
		parts = append(parts, fmt.Sprintf("%s %s", h.Name, strings.TrimSuffix(h.URL, "/")))
	}
	return strings.Join(parts, ", ")
}

// sandbox is a running demo: the environment and the bot wired to it.
type sandbox struct {
	Env     *demo.Env
	Main    *Main
	Tap     *Tap
	Windows demoWindows
	// Clock is the runner's clock: real time moved by an offset, so the
	// scenario can reach the evening window without waiting for it.
	Clock *offsetClock
	stop  context.CancelFunc
}

// offsetClock reads real time plus an offset that only moves forward
// (metrics carry real time; a window must never end before they began).
type offsetClock struct{ offset atomic.Int64 }

// Now is the clock's time.
func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Set makes the clock read t now.
func (c *offsetClock) Set(t time.Time) { c.offset.Store(int64(time.Until(t))) }

// clockedMetrics dates the hosts' counters by the runner's clock, so that
// the canaries' baseline and windows are measured in one time.
type clockedMetrics struct {
	deployer.Metrics
	clock *offsetClock
}

// Read implements deployer.Metrics.
func (m clockedMetrics) Read(ctx context.Context, hosts []string) (deployer.Sample, error) {
	s, err := m.Metrics.Read(ctx, hosts)
	if !s.Time.IsZero() {
		s.Time = s.Time.Add(time.Duration(m.clock.offset.Load()))
	}
	return s, err
}

// startSandbox creates the demo environment under dir, starts its
// traffic, writes its configuration and opens (but does not run) the bot.
//
// configure, when not nil, may change the configuration before the bot is
// opened (tests add chat adapters or other settings this way).
func startSandbox(ctx context.Context, dir string, t demoTimings, logLevel string, stdin io.Reader, stdout, stderr io.Writer, configure ...func(*Main)) (*sandbox, error) {
	envCtx, stop := context.WithCancel(context.Background())
	env, err := demo.New(ctx, demo.Options{Dir: dir, Seed: 1, RPS: t.RPS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		stop()
		return nil, err
	}
	env.StartTraffic(envCtx)
	sb := &sandbox{Env: env, stop: stop, Tap: NewTap(), Windows: newDemoWindows(time.Now())}
	path, err := writeDemoConfig(env, t, logLevel, sb.Windows)
	if err != nil {
		sb.Close()
		return nil, err
	}
	m := NewMain(stdin, stdout, stderr)
	if err := m.ParseFlags([]string{"--config", path}); err != nil {
		sb.Close()
		return nil, err
	}
	m.Adapters = append(m.Adapters, sb.Tap)
	for _, f := range configure {
		f(m)
	}
	if err := m.Open(ctx); err != nil {
		sb.Close()
		return nil, err
	}
	sb.Main = m
	sb.Clock = &offsetClock{}
	m.Runner.Now = sb.Clock.Now
	m.Runner.Metrics = clockedMetrics{Metrics: m.Runner.Metrics, clock: sb.Clock}
	if err := m.Provision(ctx); err != nil {
		sb.Close()
		return nil, err
	}
	return sb, nil
}

func (sb *sandbox) Close() {
	if sb.Main != nil {
		sb.Main.Close()
	}
	sb.stop()
	sb.Env.Close()
}

// Tap is a chat adapter that hears every notice; the scenario and the
// tests wait on it.
type Tap struct {
	mu      sync.Mutex
	notices []deployer.Notice
	changed chan struct{}
}

// NewTap returns an empty tap.
func NewTap() *Tap { return &Tap{changed: make(chan struct{})} }

// Name implements bot.Adapter.
func (t *Tap) Name() string { return "tap" }

// Run implements bot.Adapter; a tap has no input.
func (t *Tap) Run(ctx context.Context, _ func(bot.Message)) error {
	<-ctx.Done()
	return nil
}

// Announce implements bot.Adapter.
func (t *Tap) Announce(n deployer.Notice, _ []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.notices = append(t.notices, n)
	close(t.changed)
	t.changed = make(chan struct{})
}

// Notices returns every notice so far.
func (t *Tap) Notices() []deployer.Notice {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]deployer.Notice(nil), t.notices...)
}

// Wait returns the first notice about deployment id whose kind is one of
// kinds, waiting up to timeout for it.
func (t *Tap) Wait(ctx context.Context, id int64, timeout time.Duration, kinds ...deployer.NoticeKind) (deployer.Notice, error) {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		for _, n := range t.notices {
			if n.Deployment != id {
				continue
			}
			for _, k := range kinds {
				if n.Kind == k {
					t.mu.Unlock()
					return n, nil
				}
			}
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return deployer.Notice{}, fmt.Errorf("no %v notice for #%d within %s", kinds, id, timeout)
		case <-ctx.Done():
			return deployer.Notice{}, ctx.Err()
		}
	}
}

// WaitFor returns the first notice from index from on that ok accepts,
// and the index after it, waiting up to timeout.
func (t *Tap) WaitFor(ctx context.Context, from int, timeout time.Duration, ok func(deployer.Notice) bool) (deployer.Notice, int, error) {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		for i := from; i < len(t.notices); i++ {
			if ok(t.notices[i]) {
				n := t.notices[i]
				t.mu.Unlock()
				return n, i + 1, nil
			}
		}
		from = len(t.notices)
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return deployer.Notice{}, from, fmt.Errorf("no such notice within %s", timeout)
		case <-ctx.Done():
			return deployer.Notice{}, from, ctx.Err()
		}
	}
}

// say types a line into the console as user.
func (sb *sandbox) say(user, text string) {
	sb.Main.Console.Handle("/as "+user+" "+text, sb.Main.Bot.Handle)
}

// playScenario deploys good-change (a change to the root repository),
// then an extension change on the release branch, then bad-change,
// answering as the submitter, and checks after each that every host
// serves the composed tree (the staging commit), file by file.
func playScenario(ctx context.Context, sb *sandbox, out io.Writer) error {
	const patience = 3 * time.Minute
	finished := []deployer.NoticeKind{deployer.NoticeDone, deployer.NoticeRolledBack, deployer.NoticeFailed, deployer.NoticeCancelled}

	fmt.Fprintln(out, "--- 1. a good change (to the configuration repository at the root): a typo fix. Bob looks at it on")
	fmt.Fprintln(out, "    the testserver, it is fine, and it ships to every host.")
	sb.say("alice", "!backport good-change")
	if _, err := sb.Tap.Wait(ctx, 1, patience, deployer.NoticeVerify); err != nil {
		return err
	}
	if err := sb.quickLook(ctx, out); err != nil {
		return err
	}
	sb.say("bob", "verified")
	if _, err := sb.Tap.Wait(ctx, 1, patience, finished...); err != nil {
		return err
	}
	good, err := sb.Main.Store.Get(1)
	if err != nil {
		return err
	}
	if good.State != deployer.StateDone {
		return fmt.Errorf("the good change ended %s (%s), not done", good.State, good.Reason)
	}
	if err := sb.checkFleet(ctx, good.Commit, out); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n--- 2. an extension change on the release branch")
	ext, err := sb.Env.MergeExtensionChange()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "    (merged %.10s in Foo's %s; core's pointer moved to it, as Gerrit's superproject subscription does)\n", ext, demo.ReleaseBranch)
	sb.say("alice", "!backport "+demo.ReleaseDir+"/"+demo.ExtensionPath+":"+ext[:10])
	if _, err := sb.Tap.Wait(ctx, 2, patience, append(finished, deployer.NoticeVerify)...); err != nil {
		return err
	}
	sb.say("bob", "verified")
	if _, err := sb.Tap.Wait(ctx, 2, patience, finished...); err != nil {
		return err
	}
	extd, err := sb.Main.Store.Get(2)
	if err != nil {
		return err
	}
	if extd.State != deployer.StateDone {
		return fmt.Errorf("the extension change ended %s (%s), not done", extd.State, extd.Reason)
	}
	if want := demo.ReleaseDir + "/" + demo.ExtensionPath + "/i18n/en.json"; strings.Join(extd.Files, ",") != want {
		return fmt.Errorf("the extension change changed %v, want only %s", extd.Files, want)
	}
	if err := sb.checkFleet(ctx, extd.Commit, out); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n--- 3. a bad change: it turns on search_v2. Its pages load, so Bob's quick look on the testserver finds")
	fmt.Fprintln(out, "    nothing wrong, but its search suggestions fail, and only traffic asks for them (as with most real")
	fmt.Fprintln(out, "    regressions). The canaries see the errors, and the bot rolls back before production gets it.")
	sb.say("alice", "!backport bad-change")
	if _, err := sb.Tap.Wait(ctx, 3, patience, append(finished, deployer.NoticeVerify)...); err != nil {
		return err
	}
	if err := sb.quickLook(ctx, out); err != nil {
		return err
	}
	sb.say("bob", "verified")
	if _, err := sb.Tap.Wait(ctx, 3, patience, finished...); err != nil {
		return err
	}
	sb.say("alice", "!history 3")
	bad, err := sb.Main.Store.Get(3)
	if err != nil {
		return err
	}
	if bad.State != deployer.StateRolledBack {
		return fmt.Errorf("the bad change ended %s (%s), not rolled back", bad.State, bad.Reason)
	}

	if len(bad.Verdicts) == 0 || bad.Verdicts[len(bad.Verdicts)-1].Outcome != deployer.Fail {
		return fmt.Errorf("the bad change was rolled back without a failing canary verdict: %s", bad.Reason)
	}
	for _, h := range sb.Main.Fleet[deployer.Production] {
		for _, t := range bad.Touched {
			if t == h.Name() {
				return fmt.Errorf("production host %s received the bad change", t)
			}
		}
	}
	if err := sb.checkFleet(ctx, extd.Commit, out); err != nil {
		return err
	}
	return playWindow(ctx, sb, out)
}

// quickLook is what Bob does when pinged: he opens the testserver's front
// page, and reloads it once if it fails (every demo host fails 0.5% of its
// requests at random, as a baseline). It fails the scenario when the page
// does not load twice in a row.
func (sb *sandbox) quickLook(ctx context.Context, out io.Writer) error {
	for _, h := range sb.Env.Hosts {
		if h.Stage != string(deployer.Testservers) {
			continue
		}
		var status string
		ok := false
		for try := 0; try < 2; try++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("bob's look at %s: %w", h.URL, err)
			}
			resp.Body.Close()
			status, ok = resp.Status, resp.StatusCode == http.StatusOK
			if ok {
				break
			}
		}
		if !ok {
			return fmt.Errorf("bob's look at %s: %s twice, so he would not reply verified", h.URL, status)
		}
		fmt.Fprintf(out, "    (bob opens %s: %s, the page looks right)\n", h.URL, status)
	}
	return nil
}

// checkFleet reads back every host's commit and compares its served tree
// with the staging repo's tree, file by file.
func (sb *sandbox) checkFleet(ctx context.Context, want string, out io.Writer) error {
	var errs []error
	for _, h := range sb.Main.Fleet.Hosts() {
		cur, err := h.Current(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name(), err))
			continue
		}
		if cur != want {
			errs = append(errs, fmt.Errorf("%s serves %.10s, want %.10s", h.Name(), cur, want))
			continue
		}
		if hk, ok := h.(interface{ Unwrap() deployer.Host }); ok {
			h = hk.Unwrap()
		}
		if l, ok := h.(*hosts.Local); ok {
			if err := hosts.VerifyHost(ctx, l, sb.Main.Staging); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	fmt.Fprintf(out, "    check: all %d hosts serve %.10s, each tree identical file by file to the composed tree (the staging commit)\n", len(sb.Main.Fleet.Hosts()), want)
	return nil
}
