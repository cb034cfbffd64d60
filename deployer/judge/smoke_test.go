package judge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// smokeHost is a web server like a synced host: healthy, or broken the way
// the demo's bad change breaks one (every page 500 with a one-line reason).
func smokeHost(t *testing.T, broken bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if broken {
			http.Error(w, "config/app.json: invalid character '}' looking for beginning of object key string", http.StatusInternalServerError)
			return
		}
		switch {
		case r.Host == "en.example.org" && r.URL.Path == "/wiki/Main_Page":
			fmt.Fprintln(w, "<title>Main Page - Example Wiki</title>")
		case r.URL.Path == "/wiki/Main_Page":
			fmt.Fprintln(w, "<title>Unknown site</title>")
		case r.URL.Path == "/old":
			http.Redirect(w, r, "/new", http.StatusMovedPermanently)
		case r.URL.Path == "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case r.URL.Path == "/healthz":
			fmt.Fprintln(w, "ok")
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestSmoke(t *testing.T) {
	t.Parallel()
	good, bad := smokeHost(t, false), smokeHost(t, true)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	checks := []SmokeCheck{
		{Path: "/healthz", ExpectBody: "ok"},
		{Path: "/wiki/Main_Page", HostHeader: "en.example.org", ExpectBody: "Main Page"},
		{Path: "/old", ExpectStatus: 301},
	}
	s := NewSmoke(SmokeConfig{
		Checks: map[deployer.Stage][]SmokeCheck{deployer.Testservers: checks, deployer.Canaries: checks},
		URLs:   map[string]string{"mw-good": good.URL, "mw-bad": bad.URL + "/", "mw-down": down.URL},
	})
	ctx := context.Background()
	if got := s.Smoke(ctx, deployer.Testservers, []string{"mw-good"}); len(got) != 0 {
		t.Errorf("a healthy host failed: %q", got)
	}
	if got := s.Smoke(ctx, deployer.Production, []string{"mw-bad"}); len(got) != 0 {
		t.Errorf("a stage without checks failed: %q", got)
	}
	got := s.Smoke(ctx, deployer.Canaries, []string{"mw-bad", "mw-good", "mw-down", "mw-nourl"})
	want := []string{
		"mw-bad GET /healthz answered 500, want 200: config/app.json: invalid character '}' looking for beginning of object key string",
		"mw-bad GET /wiki/Main_Page (Host: en.example.org) answered 500, want 200: config/app.json: invalid character '}' looking for beginning of object key string",
		"mw-bad GET /old answered 500, want 301: config/app.json: invalid character '}' looking for beginning of object key string",
		"mw-down GET /healthz: connection refused",
		"mw-down GET /wiki/Main_Page (Host: en.example.org): connection refused",
		"mw-down GET /old: connection refused",
		"mw-nourl: no url configured, so its smoke checks cannot run",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSmokeBodyHostHeaderAndTimeout(t *testing.T) {
	t.Parallel()
	good := smokeHost(t, false)
	s := NewSmoke(SmokeConfig{
		Checks: map[deployer.Stage][]SmokeCheck{deployer.Canaries: {
			// Without the Host header the server answers another site.
			{Path: "/wiki/Main_Page", ExpectBody: "Main Page"},
			{Path: "/slow", Timeout: 100 * time.Millisecond},
			{Path: "/missing"},
			{Path: "/missing", ExpectStatus: 404},
			// Redirects are reported as they are, not followed.
			{Path: "/old"},
		}},
		URLs: map[string]string{"mw1": good.URL},
	})
	start := time.Now()
	got := s.Smoke(context.Background(), deployer.Canaries, []string{"mw1"})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("smoke checks took %s: the timeout was not applied", took)
	}
	want := []string{
		`mw1 GET /wiki/Main_Page answered 200 but the body lacks "Main Page"`,
		"mw1 GET /slow: no answer within 100ms",
		"mw1 GET /missing answered 404, want 200: 404 page not found",
		"mw1 GET /old answered 301, want 200",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSmokeRunsInParallel(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
		inFlight.Add(-1)
	}))
	t.Cleanup(srv.Close)
	urls := map[string]string{}
	var hosts []string
	for i := range 6 {
		h := fmt.Sprintf("mw%d", i)
		hosts = append(hosts, h)
		urls[h] = srv.URL
	}
	s := NewSmoke(SmokeConfig{Checks: map[deployer.Stage][]SmokeCheck{deployer.Production: {{Path: "/"}}}, URLs: urls, Parallel: 3})
	start := time.Now()
	if got := s.Smoke(context.Background(), deployer.Production, hosts); len(got) != 0 {
		t.Errorf("got %q", got)
	}
	took := time.Since(start)
	if most.Load() != 3 {
		t.Errorf("at most %d requests ran at once, want the bound, 3", most.Load())
	}
	if took > time.Second {
		t.Errorf("6 checks of 200ms, 3 at a time, took %s", took)
	}
}

func TestSmokeConfigValidate(t *testing.T) {
	ok := SmokeConfig{Checks: map[deployer.Stage][]SmokeCheck{deployer.Canaries: {{Path: "/", ExpectStatus: 204, HostHeader: "en.example.org"}}},
		URLs: map[string]string{"a": "http://10.0.0.1"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for _, tc := range []struct {
		c    SmokeConfig
		want string
	}{
		{SmokeConfig{Checks: map[deployer.Stage][]SmokeCheck{deployer.Canaries: {{Path: "wiki"}}}}, `smoke check 1 of canaries: path "wiki" must start with /`},
		{SmokeConfig{Checks: map[deployer.Stage][]SmokeCheck{deployer.Testservers: {{Path: "/"}, {Path: "/", ExpectStatus: 1000}}}}, "smoke check 2 of testservers: expect_status 1000 is not an HTTP status"},
		{SmokeConfig{Checks: map[deployer.Stage][]SmokeCheck{deployer.Canaries: {{Path: "/", HostHeader: "a b"}}}}, `host_header "a b" is not a host name`},
		{SmokeConfig{URLs: map[string]string{"a": "10.0.0.1:80"}}, `host a: url "10.0.0.1:80" is not an http:// or https:// URL`},
	} {
		err := tc.c.Validate()
		if err == nil || deployer.ErrorCode(err) != deployer.EInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}
