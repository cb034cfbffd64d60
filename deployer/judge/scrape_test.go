package judge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// exposition is a metrics page as a client_golang exporter writes it: HELP
// and TYPE comments, several families, label sets in any order, escapes, a
// timestamp, a histogram and special values.
const exposition = `# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.4e-05
go_gc_duration_seconds{quantile="0.5"} NaN
go_gc_duration_seconds_sum 0.0173
go_gc_duration_seconds_count 212
# HELP http_requests_total Requests served, by status code, method and handler.
# TYPE http_requests_total counter
http_requests_total{code="200",handler="/wiki",method="get"} 1027
http_requests_total{code="200",handler="/w/api.php",method="post"} 3
http_requests_total{code="304",handler="/wiki",method="get"} 40
http_requests_total{code="404",handler="/wiki",method="get"} 12
http_requests_total{code="429",handler="/w/api.php",method="get"} 5
http_requests_total{code="500",handler="/wiki",method="get"} 7
http_requests_total{method="get",code="503",handler="/w/api.php"} 2 1712345678000
http_requests_total{code="502",handler="/a \"quoted\" path\\n"} 1
# HELP http_request_duration_seconds Latency.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{code="500",le="0.1"} 100
http_request_duration_seconds_bucket{code="500",le="+Inf"} 120
http_request_duration_seconds_sum{code="500"} 12.5
http_request_duration_seconds_count{code="500"} 120
# A comment that is neither HELP nor TYPE.
http_requests_total_created{code="500"} 1.7e+09
other_requests_total{code="500"} 99
process_start_time_seconds 1.712e+09
`

func metricsServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	mux.Handle("/ok/metrics", page(exposition))
	mux.Handle("/zero/metrics", page("# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 0\n"))
	mux.Handle("/custom/metrics", page(`# TYPE app_hits counter
app_hits{status="200"} 90
app_hits{status="429"} 6
app_hits{status="500"} 4
http_requests_total{code="500"} 1000
`))
	mux.HandleFunc("/500/metrics", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow/metrics", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.Handle("/malformed/metrics", page("# TYPE http_requests_total counter\nhttp_requests_total{code=\"500\" 3\n"))
	mux.Handle("/html/metrics", page("<html><body><h1>It works!</h1></body></html>\n"))
	mux.Handle("/nometric/metrics", page("# HELP up Up.\n# TYPE up gauge\nup 1\n"))
	mux.Handle("/nan/metrics", page("http_requests_total{code=\"500\"} NaN\n"))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestScrapeRead(t *testing.T) {
	srv := metricsServer(t)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/metrics"
	down.Close()

	targets := map[string]string{}
	for _, p := range []string{"ok", "zero", "500", "slow", "malformed", "html", "nometric", "nan"} {
		targets["mw-"+p] = srv.URL + "/" + p + "/metrics"
	}
	targets["mw-down"] = downURL
	s := NewScrape(ScrapeConfig{Targets: targets, Timeout: 200 * time.Millisecond})

	hosts := []string{"mw-ok", "mw-zero", "mw-500", "mw-slow", "mw-malformed", "mw-html", "mw-nometric", "mw-nan", "mw-down", "mw-unknown"}
	before := time.Now()
	got, err := s.Read(context.Background(), hosts)
	took := time.Since(before)
	if err != nil {
		t.Fatal(err)
	}
	if took > time.Second {
		t.Errorf("Read took %s: hosts are not read in parallel, or the timeout is ignored", took)
	}
	if got.Time.Before(before) || got.Time.After(before.Add(took)) {
		t.Errorf("sample time %v is not the time of reading", got.Time)
	}
	want := map[string]deployer.Counts{
		// 1027+3+40+12+5+7+2+1 requests; 5xx only: 7+2+1.
		"mw-ok":        {Requests: 1097, Errors: 10},
		"mw-zero":      {Requests: 0, Errors: 0},
		"mw-500":       {Err: "metrics page answered HTTP 500"},
		"mw-slow":      {Err: "timed out after 200ms"},
		"mw-malformed": {Err: `malformed metrics page (line 2: unexpected end of label value "500")`},
		"mw-html":      {Err: "malformed metrics page (line 1: invalid metric name)"},
		"mw-nometric":  {Err: "no http_requests_total counter on the metrics page"},
		"mw-nan":       {Err: "malformed metrics page (http_requests_total value NaN is not a count)"},
		"mw-down":      {Err: "connection refused"},
		"mw-unknown":   {Err: "no metrics target configured"},
	}
	if len(got.Hosts) != len(want) {
		t.Errorf("%d hosts in the sample, want %d", len(got.Hosts), len(want))
	}
	for h, w := range want {
		if g := got.Hosts[h]; g != w {
			t.Errorf("%s: got %+v, want %+v", h, g, w)
		}
	}
	for h, c := range got.Hosts {
		if strings.Contains(c.Err, "Get \"") || strings.Contains(c.Err, "dial tcp") {
			t.Errorf("%s: error %q is a Go error chain, not a sentence", h, c.Err)
		}
	}
}

func TestScrapeCustomMetric(t *testing.T) {
	srv := metricsServer(t)
	s := NewScrape(ScrapeConfig{
		Targets:    map[string]string{"a": srv.URL + "/custom/metrics"},
		Metric:     "app_hits",
		CodeLabel:  "status",
		ErrorCodes: "^(5..|429)$",
	})
	got, err := s.Read(context.Background(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Hosts["a"]; c != (deployer.Counts{Requests: 100, Errors: 10}) {
		t.Errorf("got %+v, want 10 errors of 100", c)
	}
}

func TestScrapeSendsAcceptAndUsesClient(t *testing.T) {
	var accept string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		fmt.Fprint(w, exposition)
	}))
	defer srv.Close()
	s := NewScrape(ScrapeConfig{Targets: map[string]string{"a": srv.URL}, Client: srv.Client()})
	if _, err := s.Read(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(accept, "text/plain;version=0.0.4") {
		t.Errorf("Accept %q does not ask for the text format", accept)
	}
}

func TestScrapeBadConfig(t *testing.T) {
	cfg := ScrapeConfig{ErrorCodes: "^(5..$"}
	if err := cfg.Validate(); err == nil || deployer.ErrorCode(err) != deployer.EInvalid {
		t.Errorf("Validate() = %v, want an invalid-config error", err)
	}
	if _, err := NewScrape(cfg).Read(context.Background(), []string{"a"}); err == nil {
		t.Error("Read with a bad pattern succeeded")
	}
	if err := (ScrapeConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestScrapeCancelled(t *testing.T) {
	srv := metricsServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := NewScrape(ScrapeConfig{Targets: map[string]string{"a": srv.URL + "/ok/metrics"}}).Read(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Hosts["a"].Err != "read cancelled" {
		t.Errorf("got %+v", got.Hosts["a"])
	}
}
