package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// newEnv starts a small sandbox with no simulated errors, closed at the end
// of the test.
func newEnv(t *testing.T, opt Options) *Env {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	if opt.BaselineErrorRate == 0 {
		opt.BaselineErrorRate = -1
	}
	e, err := New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func branchCommit(t *testing.T, repo *git.Repository, branch string) *object.Commit {
	t.Helper()
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		t.Fatalf("branch %s: %v", branch, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeSlot writes the tree of an upstream branch into <root>/slots/<slot>,
// the way a sync would, leaving current alone.
func writeSlot(t *testing.T, e *Env, branch, root, slot string) {
	t.Helper()
	repo, err := git.PlainOpen(e.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := branchCommit(t, repo, branch).Tree()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, "slots", slot)
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err = tree.Files().ForEach(func(f *object.File) error {
		p := filepath.Join(dst, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		content, err := f.Contents()
		if err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Symlink:
			return os.Symlink(content, p)
		case filemode.Executable:
			return os.WriteFile(p, []byte(content), 0o755)
		default:
			return os.WriteFile(p, []byte(content), 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// flip points <root>/current at slots/<slot> with one rename.
func flip(t *testing.T, root, slot string) {
	t.Helper()
	tmp := filepath.Join(root, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("slots", slot), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// metrics scrapes a host and returns http_requests_total by code.
func metrics(t *testing.T, h Host) map[string]float64 {
	t.Helper()
	resp, body := get(t, h.MetricsURL)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", h.MetricsURL, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	for _, want := range []string{"# HELP http_requests_total ", "# TYPE http_requests_total counter\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		var code string
		var v float64
		if _, err := fmt.Sscanf(line, "http_requests_total{code=%q} %g", &code, &v); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[code] = v
	}
	return m
}

func total(m map[string]float64) float64 {
	n := 0.0
	for _, v := range m {
		n += v
	}
	return n
}

func TestUpstream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Testservers: -1, Canaries: -1, Production: -1})
	repo, err := git.PlainOpen(e.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil || head.Name() != plumbing.NewBranchReferenceName(MainBranch) {
		t.Fatalf("HEAD = %v, %v; want main checked out", head, err)
	}

	main := branchCommit(t, repo, MainBranch)
	if main.Author.Name != "Carol Upstream" || main.Author.Email != "carol@example.org" {
		t.Errorf("main author %s <%s>", main.Author.Name, main.Author.Email)
	}
	if main.NumParents() != 0 {
		t.Errorf("main has %d parents", main.NumParents())
	}
	tree, err := main.Tree()
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]filemode.FileMode{}
	tree.Files().ForEach(func(f *object.File) error { modes[f.Name] = f.Mode; return nil })
	if n := len(modes); n < 10 || n > 20 {
		t.Errorf("main has %d files, want 10-20: %v", n, modes)
	}
	for path, want := range map[string]filemode.FileMode{
		"index.html":           filemode.Regular,
		"static/style.css":     filemode.Regular,
		"static/app.js":        filemode.Regular,
		"config/app.json":      filemode.Regular,
		"docs/README.md":       filemode.Regular,
		"i18n/messages-ü.json": filemode.Regular,
		"bin/healthcheck.sh":   filemode.Executable,
		"current-config.json":  filemode.Symlink,
	} {
		if got, ok := modes[path]; !ok || got != want {
			t.Errorf("main %s: mode %v (present %v), want %v", path, got, ok, want)
		}
	}
	link, err := tree.File("current-config.json")
	if err != nil {
		t.Fatal(err)
	}
	if target, _ := link.Contents(); target != "config/app.json" {
		t.Errorf("current-config.json -> %q", target)
	}
	// The checked-out worktree has them too, as a person would see it.
	if target, err := os.Readlink(filepath.Join(e.Upstream, "current-config.json")); err != nil || target != "config/app.json" {
		t.Errorf("worktree symlink: %q, %v", target, err)
	}
	if st, err := os.Stat(filepath.Join(e.Upstream, "bin/healthcheck.sh")); err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Errorf("worktree healthcheck.sh not executable: %v, %v", st, err)
	}

	config := func(c *object.Commit) (appConfig, error) {
		t.Helper()
		f, err := c.File("config/app.json")
		if err != nil {
			t.Fatal(err)
		}
		s, _ := f.Contents()
		var cfg appConfig
		return cfg, json.Unmarshal([]byte(s), &cfg)
	}
	if cfg, err := config(main); err != nil || cfg.Version != 1 {
		t.Errorf("main config: %+v, %v", cfg, err)
	}

	good := branchCommit(t, repo, GoodBranch)
	for _, tc := range []struct {
		branch, subject string
		valid           bool
		version         int
		parent          plumbing.Hash
	}{
		{GoodBranch, GoodSubject, true, 2, main.Hash},
		{BadBranch, BadSubject, true, 2, good.Hash}, // valid: its fault shows only in traffic
	} {
		c := branchCommit(t, repo, tc.branch)
		if c.Author.Name != "Bob Submitter" || c.Author.Email != "bob@example.org" {
			t.Errorf("%s author %s <%s>", tc.branch, c.Author.Name, c.Author.Email)
		}
		if subject, _, _ := strings.Cut(c.Message, "\n"); subject != tc.subject {
			t.Errorf("%s subject %q", tc.branch, subject)
		}
		if c.NumParents() != 1 || c.ParentHashes[0] != tc.parent {
			t.Errorf("%s parents %v, want only %s", tc.branch, c.ParentHashes, tc.parent)
		}
		cfg, err := config(c)
		if (err == nil) != tc.valid || tc.valid && cfg.Version != tc.version || cfg.Features["search_v2"] != (tc.branch == BadBranch) {
			t.Errorf("%s config: %+v, %v", tc.branch, cfg, err)
		}
		hash, err := e.Commit(tc.branch)
		if err != nil || hash != c.Hash.String() {
			t.Errorf("Commit(%s) = %q, %v; want %s", tc.branch, hash, err, c.Hash)
		}
	}
	if _, err := e.Commit("no-such-branch"); err == nil {
		t.Error("Commit of a missing branch succeeded")
	}
}

func TestHostsLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	by := e.HostsByStage()
	want := map[string][]string{
		"testservers": {"mwdebug1001"},
		"canaries":    {"mw-canary1001", "mw-canary1002"},
		"production":  {"mw1001", "mw1002", "mw1003", "mw1004"},
	}
	for stage, names := range want {
		var got []string
		for _, h := range by[stage] {
			got = append(got, h.Name)
			if h.Root != filepath.Join(e.Dir, "hosts", h.Name) {
				t.Errorf("%s root %s", h.Name, h.Root)
			}
			if st, err := os.Stat(h.Root); err != nil || !st.IsDir() {
				t.Errorf("%s root: %v", h.Name, err)
			}
			u, err := url.Parse(h.URL)
			if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/" || h.MetricsURL != h.URL+"metrics" {
				t.Errorf("%s URL %q metrics %q", h.Name, h.URL, h.MetricsURL)
			}
		}
		if strings.Join(got, " ") != strings.Join(names, " ") {
			t.Errorf("%s: %v, want %v", stage, got, names)
		}
	}
	if len(e.Hosts) != 7 {
		t.Errorf("%d hosts", len(e.Hosts))
	}
	if h, ok := e.Host("mw1003"); !ok || h.Stage != "production" {
		t.Errorf("Host(mw1003) = %+v, %v", h, ok)
	}
}

func TestNotDeployed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Canaries: -1, Production: -1})
	h := e.Hosts[0]
	resp, body := get(t, h.URL)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(body) != "not deployed" {
		t.Errorf("GET / on an undeployed host: %s %q", resp.Status, body)
	}
	if resp, body := get(t, h.URL+"healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %s %q", resp.Status, body)
	}
	m := metrics(t, h)
	if m["503"] != 1 || total(m) != 1 {
		t.Errorf("metrics after one 503 (healthz and metrics not counted): %v", m)
	}
	if _, ok := m["500"]; !ok {
		t.Errorf("code=\"500\" not exported before any error: %v", m)
	}
}

func TestServeAndFlip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Canaries: -1, Production: -1})
	h := e.Hosts[0]
	writeSlot(t, e, MainBranch, h.Root, "a")
	flip(t, h.Root, "a")

	resp, body := get(t, h.URL)
	if resp.StatusCode != 200 || !strings.Contains(body, "Wecome to the Example Wiki") {
		t.Fatalf("GET / on main: %s %q", resp.Status, body)
	}
	if resp.Header.Get("X-App-Version") != "1" || resp.Header.Get("X-Demo-Slot") != "slots/a" {
		t.Errorf("headers %v", resp.Header)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("index Content-Type %q", ct)
	}
	for path, want := range map[string]int{
		"static/style.css":     200,
		"current-config.json":  200, // a symlink inside the slot
		"i18n/messages-ü.json": 200,
		"static/":              404, // no index.html there
		"missing.html":         404,
	} {
		resp, _ := get(t, h.URL+(&url.URL{Path: path}).EscapedPath())
		if resp.StatusCode != want {
			t.Errorf("GET /%s: %s, want %d", path, resp.Status, want)
		}
	}

	// The good change in slot b: the flip shows on the very next request.
	writeSlot(t, e, GoodBranch, h.Root, "b")
	flip(t, h.Root, "b")
	resp, body = get(t, h.URL)
	if resp.StatusCode != 200 || !strings.Contains(body, "Welcome to the Example Wiki") || resp.Header.Get("X-App-Version") != "2" {
		t.Fatalf("GET / on good-change: %s %v %q", resp.Status, resp.Header, body)
	}

	// The good change's search suggestions work (an empty list).
	if resp, body := get(t, h.URL+"api/suggest?q=wiki"); resp.StatusCode != 200 || body != "[]\n" {
		t.Fatalf("GET /api/suggest on good-change: %s %q", resp.Status, body)
	}

	// The bad change in slot a: a quick look shows nothing wrong (pages
	// load), but every search suggestion, which traffic asks for, fails.
	writeSlot(t, e, BadBranch, h.Root, "a")
	flip(t, h.Root, "a")
	before := metrics(t, h)
	const n = 5
	for range n {
		for _, path := range []string{"", "static/style.css", "about.html"} {
			if resp, body := get(t, h.URL+path); resp.StatusCode != 200 {
				t.Fatalf("GET /%s on bad-change: %s %q, want the page", path, resp.Status, body)
			}
		}
		resp, body := get(t, h.URL+"api/suggest?q=wiki")
		if resp.StatusCode != 500 || !strings.HasPrefix(body, "search_v2: ") {
			t.Fatalf("GET /api/suggest on bad-change: %s %q", resp.Status, body)
		}
	}
	after := metrics(t, h)
	if got := after["500"] - before["500"]; got != n {
		t.Errorf("code=500 grew by %v, want %d (%v -> %v)", got, n, before, after)
	}

	// Rolling back is a flip too.
	flip(t, h.Root, "b")
	if resp, _ := get(t, h.URL); resp.StatusCode != 200 {
		t.Errorf("after flipping back: %s", resp.Status)
	}
}

// rawGet sends target as the request line's path, byte for byte, so no
// client cleans it first, and returns the status code and body.
func rawGet(t *testing.T, h Host, target string) (int, string) {
	t.Helper()
	u, _ := url.Parse(h.URL)
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNoEscape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Canaries: -1, Production: -1})
	h := e.Hosts[0]
	writeSlot(t, e, MainBranch, h.Root, "a")
	flip(t, h.Root, "a")
	slot := filepath.Join(h.Root, "slots", "a")
	secret := filepath.Join(h.Root, "secret.txt") // outside the slot
	if err := os.WriteFile(secret, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs.txt":  secret,
		"rel.txt":  "../../secret.txt",
		"up":       "../..",
		"passwd":   "/etc/passwd",
		"etc-link": "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(slot, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, target := range []string{
		"/../../etc/passwd",
		"/../secret.txt",
		"/static/../../secret.txt",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/..%2f..%2fsecret.txt",
		"/abs.txt",
		"/rel.txt",
		"/up/secret.txt",
		"/passwd",
		"/etc-link/passwd",
	} {
		code, body := rawGet(t, h, target)
		if code != 400 && code != 404 {
			t.Errorf("GET %s: %d, want 400 or 404", target, code)
		}
		if strings.Contains(body, "root:") {
			t.Errorf("GET %s leaked %q", target, body)
		}
	}
}

func TestBaselineErrorRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Canaries: -1, Production: -1, BaselineErrorRate: 0.2, Seed: 7})
	h := e.Hosts[0]
	writeSlot(t, e, MainBranch, h.Root, "a")
	flip(t, h.Root, "a")
	const n = 300
	fails := 0
	for range n {
		resp, body := get(t, h.URL)
		switch {
		case resp.StatusCode == 200:
		case resp.StatusCode == 500 && body == "simulated backend error\n":
			fails++
		default:
			t.Fatalf("%s %q", resp.Status, body)
		}
	}
	if fails < n/10 || fails > n*35/100 {
		t.Errorf("%d of %d requests failed at a 0.2 error rate", fails, n)
	}
	if m := metrics(t, h); m["500"] != float64(fails) || total(m) != n {
		t.Errorf("metrics %v, want %d errors of %d", m, fails, n)
	}
}

func TestTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Testservers: 1, Canaries: 1, Production: 1, RPS: 20})
	// One deployed host answers 200s, the others 503s; both are counted.
	writeSlot(t, e, MainBranch, e.Hosts[0].Root, "a")
	flip(t, e.Hosts[0].Root, "a")
	ctx, cancel := context.WithCancel(context.Background())
	e.StartTraffic(ctx)
	e.StartTraffic(ctx) // already running: no second stream
	time.Sleep(1500 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond) // let in-flight requests land
	counts := map[string]float64{}
	for _, h := range e.Hosts {
		m := metrics(t, h)
		counts[h.Name] = total(m)
		if n := total(m); n < 15 || n > 45 {
			t.Errorf("%s got %v requests in 1.5s at 20 rps: %v", h.Name, n, m)
		}
		if h == e.Hosts[0] && m["200"] == 0 {
			t.Errorf("%s deployed but served no 200: %v", h.Name, m)
		}
		if h != e.Hosts[0] && m["503"] != total(m) {
			t.Errorf("%s undeployed but answered other than 503: %v", h.Name, m)
		}
	}
	// Cancelling ctx stopped the traffic.
	time.Sleep(300 * time.Millisecond)
	for _, h := range e.Hosts {
		if n := total(metrics(t, h)); n != counts[h.Name] {
			t.Errorf("%s still receiving traffic after cancel: %v -> %v", h.Name, counts[h.Name], n)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e, err := New(context.Background(), Options{Dir: dir, Testservers: 1, Canaries: 1, Production: 1})
	if err != nil {
		t.Fatal(err)
	}
	main, _ := e.Commit(MainBranch)
	e.StartTraffic(context.Background())
	time.Sleep(100 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	e.StartTraffic(context.Background()) // after Close: nothing
	for _, h := range e.Hosts {
		u, _ := url.Parse(h.URL)
		if c, err := net.DialTimeout("tcp", u.Host, 500*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", h.Name)
		}
	}

	// A new sandbox in the same directory reuses the upstream as it is.
	e2, err := New(context.Background(), Options{Dir: dir, Testservers: 1, Canaries: -1, Production: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if again, err := e2.Commit(MainBranch); err != nil || again != main {
		t.Errorf("reopened main = %q, %v; want %s", again, err, main)
	}
}

func TestNewNeedsDir(t *testing.T) {
	t.Parallel()
	if _, err := New(context.Background(), Options{}); err == nil {
		t.Error("New without Dir succeeded")
	}
}
