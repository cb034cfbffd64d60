package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestRealPrometheusScrapesMetrics has a real Prometheus scrape the
// dashboard's /metrics and reads the bot's series back through its query
// API: the exposition is what Prometheus accepts, not only what a parser
// in this test thinks.
func TestRealPrometheusScrapesMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	d, err := f.st.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Announce(deployer.Notice{Deployment: 2, Kind: deployer.NoticeVerdict, Verdict: &d.Verdicts[0]}, nil)
	f.srv.Announce(deployer.Notice{Deployment: 2, Kind: deployer.NoticeRolledBack}, nil)
	f.srv.Reconnected("slack")
	ts := httptest.NewServer(f.srv)
	defer ts.Close()

	prom := testparts.StartPrometheus(t, []string{strings.TrimPrefix(ts.URL, "http://")})
	query := func(q string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, prom.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
			return "", false
		}
		v, _ := r.Data.Result[0].Value[1].(string)
		return v, true
	}
	want := map[string]string{
		`up{job="deploybot-test"}`:                                        "1",
		`deploybot_deployments_total{outcome="rolled-back"}`:              "1",
		`deploybot_rollbacks_total`:                                       "1",
		`deploybot_canary_verdict_seconds_count{outcome="fail"}`:          "1",
		`deploybot_stage_duration_seconds_count{state="rolling-back"}`:    "1",
		`deploybot_chat_reconnects_total{adapter="slack"}`:                "1",
		`deploybot_queue_length`:                                          "1",
		`deploybot_stage_duration_seconds_sum{state="checking-canaries"}`: "1.41",
	}
	deadline := time.Now().Add(45 * time.Second)
	for q, w := range want {
		for {
			got, ok := query(q)
			if ok && got == w {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus answers %s = %q (found %v), want %s", q, got, ok, w)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
