package web

import (
	"encoding/json"
	"strings"
	"testing"
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
