package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestAudit8PagingKeepsTheLimit: the links to the next and previous pages
// of the history, and the API's "next", keep the page length the request
// chose. They dropped ?limit=, so a client following "next" from
// /api/deployments?limit=2 got the default page length instead (here 3
// deployments, not 2), and the pages' "older" link changed page size under
// the reader.
func TestAudit8PagingKeepsTheLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{}) // five deployments, default page length 25
	var ids []string
	next := "/api/deployments?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatalf("still paging after %d pages: %v", pages, ids)
		}
		a := do(t, f.srv, "GET", next)
		var list struct {
			Deployments []map[string]json.RawMessage `json:"deployments"`
			Limit       int                          `json:"limit"`
			Next        string                       `json:"next"`
		}
		if err := json.Unmarshal([]byte(a.body), &list); err != nil {
			t.Fatalf("GET %s: %d %v\n%s", next, a.code, err, a.body)
		}
		if list.Limit != 2 || len(list.Deployments) > 2 {
			t.Errorf("GET %s (a link the API gave): limit %d, %d deployments; want a page of at most 2", next, list.Limit, len(list.Deployments))
		}
		for _, d := range list.Deployments {
			ids = append(ids, string(d["id"]))
		}
		next = list.Next
	}
	if got := strings.Join(ids, " "); got != "5 4 3 2 1" {
		t.Errorf("following next from limit=2 listed %q; want every deployment once: 5 4 3 2 1", got)
	}

	a := do(t, f.srv, "GET", "/history?limit=2&offset=2&outcome=")
	for _, want := range []string{`href="/history?limit=2&amp;offset=4" rel="next"`, `href="/history?limit=2" rel="prev"`} {
		if !strings.Contains(a.body, want) {
			i := strings.Index(a.body, `class="pager"`)
			t.Errorf("/history?limit=2&offset=2 lacks %s; pager: %s", want, a.body[i:min(len(a.body), i+300)])
		}
	}
	// The default page length needs no parameter.
	if a := do(t, f.srv, "GET", "/history?limit=25&offset=1"); strings.Contains(a.body, "limit=") || !strings.Contains(a.body, `href="/history" rel="prev"`) {
		t.Errorf("/history?limit=25&offset=1 (the default length) should link back to /history, without a limit")
	}
}

// slowHost answers Current after a delay, or fails when ctx ends first, as
// a host over ssh does.
type slowHost struct {
	deployer.Host
	delay time.Duration
}

func (h slowHost) Current(ctx context.Context) (string, error) {
	select {
	case <-time.After(h.delay):
		return h.Host.Current(ctx)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// TestAudit8ClosedPageDoesNotBreakTheHostsForOthers: the hosts' answers
// are shared for a second between requests, and they were read with the
// context of whichever request came first. A browser that closed its page
// (or a client that gave up) while the hosts were being asked cancelled
// the read: every host was then shown as "cannot be read" to every other
// viewer for that second, and each logged a warning.
func TestAudit8ClosedPageDoesNotBreakTheHostsForOthers(t *testing.T) {
	t.Parallel()
	var logs testparts.Buffer
	f := newFixture(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for stage, hs := range f.fleet {
		for i, h := range hs {
			f.fleet[stage][i] = slowHost{Host: h, delay: 300 * time.Millisecond}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	req := httptest.NewRequest("GET", "/api/status", nil).WithContext(ctx)
	f.srv.ServeHTTP(httptest.NewRecorder(), req) // the page that went away

	a := do(t, f.srv, "GET", "/api/status")
	var st struct {
		Active struct {
			HostsSynced int `json:"hosts_synced"`
		} `json:"active"`
	}
	if err := json.Unmarshal([]byte(a.body), &st); err != nil {
		t.Fatalf("%d %v\n%s", a.code, err, a.body)
	}
	// #4 is active and the testserver serves its commit.
	if st.Active.HostsSynced != 1 {
		t.Errorf("after another client went away, /api/status says %d hosts serve the active deployment; want 1 (the testserver)\n%s", st.Active.HostsSynced, a.body)
	}
	d := do(t, f.srv, "GET", "/api/deployments/1")
	if strings.Contains(d.body, "cannot be read") {
		t.Errorf("after another client went away, #1's hosts read as broken:\n%s", d.body)
	}
	if strings.Contains(logs.String(), "reading what a host serves failed") {
		t.Errorf("a client going away logged host failures:\n%s", logs.String())
	}
}
