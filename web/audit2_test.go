package web

import (
	"encoding/json"
	"strings"
	"testing"
)

// The JSON API answers a deployment id that is not a number in JSON, as
// it answers every other refusal ({"error": ...}), not with a text page.
func TestAudit2APIBadIDIsJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, id := range []string{"x1", "0", "-3", "99999999999999999999"} {
		a := do(t, f.srv, "GET", "/api/deployments/"+id)
		var e apiError
		if a.code != 404 || !strings.HasPrefix(a.hdr.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(a.body), &e) != nil || !strings.Contains(e.Error, "not a deployment number") {
			t.Errorf("GET /api/deployments/%s = %d %s %q", id, a.code, a.hdr.Get("Content-Type"), a.body)
		}
	}
}
