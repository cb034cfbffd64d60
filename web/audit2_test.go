package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
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

// The front page's pipeline bar of a deployment in a state off the
// forward path (checking production, bisecting, awaiting a promote
// decision) shows the steps it passed, not an empty bar.
func TestAudit2FrontPageBarOffThePath(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	at := time.Now()
	path := []deployer.State{deployer.StateAwaitingVerification, deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateBisecting}
	for i := 1; i < len(path); i++ {
		f.move(t, 4, path[i-1], path[i], at.Add(time.Duration(i)*time.Second), string(path[i]), nil)
	}
	a := do(t, f.srv, "GET", "/")
	for _, want := range []string{`<li class="past">awaiting-verification</li>`, `<li class="past">syncing-canaries</li>`} {
		if !strings.Contains(a.body, want) {
			i := strings.Index(a.body, `<ol class="pipeline">`)
			t.Errorf("the front page of a bisecting deployment lacks %s:\n%s", want, a.body[i:min(len(a.body), i+900)])
		}
	}
}
