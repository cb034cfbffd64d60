// Package demo is a self-contained sandbox for deploybot: an upstream git
// repository holding a small web app and two pending changes (one good, one
// whose pages load but whose search suggestions fail under traffic), and a fleet of local "hosts", each an HTTP server
// on 127.0.0.1 serving whatever its <root>/current slot holds and counting
// responses in a Prometheus /metrics endpoint, plus generated traffic so the
// canary judge has something to measure. `deploybot demo` runs it, and the
// end-to-end tests deploy into it. It needs no setup and no network beyond
// loopback.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/deploybot/deploybot/deployer"
)

// Options configure New. Zero values take the defaults noted.
type Options struct {
	// Dir is the sandbox directory, created if needed; everything the
	// sandbox writes lives under it.
	Dir string
	// Host counts per stage; 0 means the default (1, 2 and 4), a negative
	// count means no hosts in that stage.
	Testservers, Canaries, Production int
	// RPS is the generated requests per second per host once StartTraffic
	// runs; 0 means 20.
	RPS float64
	// BaselineErrorRate is the fraction of requests a healthy host fails
	// with a 500 anyway, so error rates have a realistic baseline; 0 means
	// 0.005, a negative value means none.
	BaselineErrorRate float64
	// Seed makes the hosts' random choices (which requests fail, which
	// paths traffic asks for) repeatable.
	Seed uint64
	// Logger receives the sandbox's own messages; nil discards them.
	Logger *slog.Logger
}

// Defaults for Options' zero values.
const (
	DefaultTestservers       = 1
	DefaultCanaries          = 2
	DefaultProduction        = 4
	DefaultRPS               = 20
	DefaultBaselineErrorRate = 0.005
)

// Host is one demo host.
type Host struct {
	Name  string // e.g. mw-canary1001
	Stage string // "testservers", "canaries" or "production"
	// Root is the host root the bot syncs: it creates slots/a, slots/b and
	// the current link there. New creates only the empty directory.
	Root       string
	URL        string // the app, e.g. http://127.0.0.1:41234/
	MetricsURL string // its Prometheus text-format counters
}

// Env is a running sandbox.
type Env struct {
	Dir string
	// Upstream is the path of the upstream git repository: non-bare, with
	// branches main, good-change and bad-change, main checked out.
	Upstream string
	// Release and Extension are the bare repositories of the live release
	// branch (mediawiki/core at ReleaseBranch, deployed at ReleaseDir) and
	// of its extension submodule Foo (release.go).
	Release, Extension string
	// Hosts lists every host, testservers first, then canaries, then
	// production.
	Hosts []Host

	opt     Options
	log     *slog.Logger
	servers []*http.Server
	client  *http.Client

	mu            sync.Mutex
	closed        bool
	trafficCancel context.CancelFunc // stops the running traffic; nil when none was started
	trafficDone   chan struct{}      // closed when the running traffic's goroutines have all ended
}

// stagePrefix gives each stage's host name prefix, after the MediaWiki
// fleet's conventions.
var stagePrefix = map[deployer.Stage]string{
	deployer.Testservers: "mwdebug",
	deployer.Canaries:    "mw-canary",
	deployer.Production:  "mw",
}

// New creates the sandbox under opt.Dir: the upstream repository at
// <Dir>/upstream (an existing one is reused when it has the three branches),
// an empty root per host at <Dir>/hosts/<name>, and one HTTP server per
// host on an ephemeral loopback port. It does not start traffic. ctx bounds
// only the setup; the servers run until Close.
func New(ctx context.Context, opt Options) (*Env, error) {
	if opt.Dir == "" {
		return nil, errors.New("demo: Options.Dir is required")
	}
	opt = withDefaults(opt)
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	e := &Env{
		Dir:       dir,
		Upstream:  filepath.Join(dir, "upstream"),
		Release:   filepath.Join(dir, "release", "core.git"),
		Extension: filepath.Join(dir, "release", "extensions", "Foo.git"),
		opt:       opt,
		log:       log,
		client: &http.Client{
			Timeout: 2 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil, // loopback only, whatever the environment says
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
	if err := openOrCreateUpstream(e.Upstream); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := openOrCreateRelease(filepath.Join(dir, "release")); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	counts := map[deployer.Stage]int{
		deployer.Testservers: opt.Testservers,
		deployer.Canaries:    opt.Canaries,
		deployer.Production:  opt.Production,
	}
	for _, stage := range deployer.Stages {
		for i := range max(counts[stage], 0) {
			if err := ctx.Err(); err != nil {
				e.Close()
				return nil, err
			}
			name := fmt.Sprintf("%s%d", stagePrefix[stage], 1001+i)
			h, err := e.startHost(name, string(stage))
			if err != nil {
				e.Close()
				return nil, fmt.Errorf("demo: host %s: %w", name, err)
			}
			e.Hosts = append(e.Hosts, h)
		}
	}
	log.Info("demo sandbox ready", "dir", dir, "upstream", e.Upstream, "hosts", len(e.Hosts))
	return e, nil
}

func withDefaults(opt Options) Options {
	if opt.Testservers == 0 {
		opt.Testservers = DefaultTestservers
	}
	if opt.Canaries == 0 {
		opt.Canaries = DefaultCanaries
	}
	if opt.Production == 0 {
		opt.Production = DefaultProduction
	}
	if opt.RPS <= 0 {
		opt.RPS = DefaultRPS
	}
	if opt.BaselineErrorRate == 0 {
		opt.BaselineErrorRate = DefaultBaselineErrorRate
	}
	return opt
}

// startHost creates a host's root and starts its server.
func (e *Env) startHost(name, stage string) (Host, error) {
	root := filepath.Join(e.Dir, "hosts", name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Host{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Host{}, err
	}
	srv := &http.Server{
		Handler:           newHostServer(name, root, e.opt.BaselineErrorRate, e.opt.Seed, e.log),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	e.servers = append(e.servers, srv)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("demo host server stopped", "host", name, "err", err)
		}
	}()
	base := "http://" + ln.Addr().String() + "/"
	e.log.Info("demo host listening", "host", name, "stage", stage, "url", base, "root", root)
	return Host{Name: name, Stage: stage, Root: root, URL: base, MetricsURL: base + "metrics"}, nil
}

// HostsByStage groups the hosts by their Stage, each group in name order.
func (e *Env) HostsByStage() map[string][]Host {
	m := map[string][]Host{}
	for _, h := range e.Hosts {
		m[h.Stage] = append(m[h.Stage], h)
	}
	return m
}

// Host returns the host with this name.
func (e *Env) Host(name string) (Host, bool) {
	for _, h := range e.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Commit returns the tip hash of an upstream branch. It reads the repository
// afresh each time, so it sees what others (the bot) did to it meanwhile.
func (e *Env) Commit(branch string) (string, error) {
	repo, err := git.PlainOpen(e.Upstream)
	if err != nil {
		return "", fmt.Errorf("demo: open upstream: %w", err)
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return "", fmt.Errorf("demo: upstream branch %s: %w", branch, err)
	}
	return ref.Hash().String(), nil
}

// StartTraffic sends every host RPS requests a second (to "/", one in ten
// to /static/style.css, three in ten to /api/suggest as the search box's
// browsers do), one goroutine per host paced by a ticker,
// until ctx ends or Close. Responses are read and discarded: the hosts'
// /metrics count them. A call while traffic is running does nothing.
func (e *Env) StartTraffic(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if e.trafficDone != nil {
		select {
		case <-e.trafficDone:
		default:
			return // still running
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e.trafficCancel, e.trafficDone = cancel, done
	var wg sync.WaitGroup
	for i, h := range e.Hosts {
		wg.Go(func() { e.drive(ctx, h, uint64(i)) })
	}
	go func() {
		wg.Wait()
		close(done)
	}()
}

// drive is one host's traffic generator.
func (e *Env) drive(ctx context.Context, h Host, n uint64) {
	interval := max(time.Duration(float64(time.Second)/e.opt.RPS), time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	rng := newTrafficRand(e.opt.Seed, n)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		url := h.URL
		switch rng.IntN(10) {
		case 0:
			url += "static/style.css"
		case 1, 2, 3:
			url += "api/suggest?q=wiki"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			e.log.Error("demo traffic", "host", h.Name, "err", err)
			return
		}
		resp, err := e.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Debug("demo traffic request failed", "host", h.Name, "err", err)
			}
			continue
		}
		drain(resp)
	}
}

// Close stops the traffic, then the host servers. The sandbox directory is
// left in place. Close is safe to call more than once.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	cancel, done := e.trafficCancel, e.trafficDone
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	var errs []error
	for _, srv := range e.servers {
		errs = append(errs, srv.Close())
	}
	e.client.CloseIdleConnections()
	return errors.Join(errs...)
}

// newTrafficRand returns host n's traffic generator's random source, apart
// from the one its server uses for simulated errors.
func newTrafficRand(seed, n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x7472616666696321, n))
}

// drain reads and closes a response body so its connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}
