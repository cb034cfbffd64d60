package judge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// page is a metrics endpoint on a real TCP port whose text the test sets.
type page struct {
	srv  *httptest.Server
	mu   sync.Mutex
	text string
}

func newPage(t *testing.T, text string) *page {
	t.Helper()
	p := &page{text: text}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, p.text)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *page) set(text string) {
	p.mu.Lock()
	p.text = text
	p.mu.Unlock()
}

func (p *page) hostPort(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestAudit7PrometheusOneBadHostDoesNotBlindTheOthers: a real Prometheus
// scrapes a canary that answers 500 to everything and a production host
// whose exporter reports its request counter as NaN. The canary's counters
// are in Prometheus and must reach the judge: one broken exporter on a
// control host made every host of the read "no data", so a canary at 100%
// errors could not fail (the check became inconclusive), where the scrape
// source reports only the broken host.
func TestAudit7PrometheusOneBadHostDoesNotBlindTheOthers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	can := newPage(t, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"500\"} 400\n")
	prod := newPage(t, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} NaN\n")
	inst := map[string]string{"can1": can.hostPort(t), "prod1": prod.hostPort(t)}
	prom := testparts.StartPrometheus(t, []string{inst["can1"], inst["prod1"]})

	// Wait until Prometheus has scraped both: count() of a NaN series is 1.
	seen := NewPrometheus(PrometheusConfig{URL: prom.URL, Instances: inst,
		RequestsQuery: `count by (instance) (http_requests_total{instance=~"{{hosts}}"})`,
		ErrorsQuery:   `count by (instance) (http_requests_total{instance=~"{{hosts}}",code=~"5.."})`})
	for {
		s, err := seen.Read(ctx, []string{"can1", "prod1"})
		if err == nil && s.Hosts["can1"].Err == "" && s.Hosts["prod1"].Err == "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus never scraped both hosts: %+v %v", s.Hosts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	src := NewPrometheus(PrometheusConfig{URL: prom.URL, Instances: inst})
	s, err := src.Read(ctx, []string{"can1", "prod1"})
	if err != nil {
		t.Fatalf("Read failed as a whole because of one host's value: %v", err)
	}
	if c := s.Hosts["can1"]; c.Err != "" || c.Requests != 400 || c.Errors != 400 {
		t.Errorf("can1 = %+v, want 400 requests, 400 errors", c)
	}
	if c := s.Hosts["prod1"]; !strings.Contains(c.Err, "NaN") || !strings.Contains(c.Err, "not a count") {
		t.Errorf("prod1 = %+v, want an error saying its NaN is not a count", c)
	}

	// The judge, given the canary's counters, fails it: one more scrape
	// of 100 errors after the start.
	can.set("# TYPE http_requests_total counter\nhttp_requests_total{code=\"500\"} 500\n")
	var later deployer.Sample
	for {
		later, err = src.Read(ctx, []string{"can1", "prod1"})
		if err == nil && later.Hosts["can1"].Requests == 500 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus never saw can1 at 500: %+v %v", later.Hosts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	v := New(Config{}).Judge(deployer.Window{Stage: deployer.Canaries, Judged: []string{"can1"}, Control: []string{"prod1"},
		Start: s, Samples: []deployer.Sample{later}})
	if v.Outcome != deployer.Fail {
		t.Errorf("canary at 100%% errors: %s: %s", v.Outcome, v.Reason)
	}
}

// TestAudit7ScrapeCountsADuplicatedSeriesOnce: a metrics page that lists
// a series twice (two collectors registering the same counter, or two
// exporters' pages concatenated) was summed, doubling the host's
// requests and errors: the judge then had twice the evidence it really
// had, and a duplicate that comes and goes read as a counter reset, all
// of the host's cumulative traffic counted as new. Prometheus keeps the
// first sample of a series in a scrape; the scrape source does the same,
// so both sources give the same numbers.
func TestAudit7ScrapeCountsADuplicatedSeriesOnce(t *testing.T) {
	t.Parallel()
	doubled := "# TYPE http_requests_total counter\n" +
		"http_requests_total{code=\"200\",handler=\"/wiki\"} 10000\n" +
		"http_requests_total{code=\"500\",handler=\"/wiki\"} 30\n" +
		"http_requests_total{handler=\"/wiki\",code=\"200\"} 10000\n" +
		"http_requests_total{code=\"500\",handler=\"/wiki\"} 30\n"
	single := "# TYPE http_requests_total counter\n" +
		"http_requests_total{code=\"200\",handler=\"/wiki\"} 10100\n" +
		"http_requests_total{code=\"500\",handler=\"/wiki\"} 31\n"
	pg := newPage(t, doubled)
	src := NewScrape(ScrapeConfig{Targets: map[string]string{"can1": pg.srv.URL}})
	ctx := context.Background()
	first, err := src.Read(ctx, []string{"can1"})
	if err != nil {
		t.Fatal(err)
	}
	if c := first.Hosts["can1"]; c.Err != "" || c.Requests != 10030 || c.Errors != 30 {
		t.Fatalf("page with every series twice: %+v, want 10030 requests and 30 errors", c)
	}
	// The duplicate goes away: 100 more requests, one more error; not a
	// reset with 10131 new requests.
	pg.set(single)
	second, err := src.Read(ctx, []string{"can1"})
	if err != nil {
		t.Fatal(err)
	}
	v := New(Config{}).Judge(deployer.Window{Stage: deployer.Canaries, Judged: []string{"can1"},
		Start: first, Samples: []deployer.Sample{second}})
	if h := v.Hosts[0]; h.Requests != 101 || h.Errors != 1 {
		t.Errorf("traffic between the readings: %v requests, %v errors; want 101 and 1", h.Requests, h.Errors)
	}
}

// TestAudit7ScrapeSaysWhenErrorsCannotBeCounted: an application that
// labels its status "status", not "code" (the default code label), showed
// 0 errors whatever it answered: a canary answering 500 to every request
// passed the canary check at 0%. A page whose request series carry no
// code label at all now cannot be read, with the reason, so the check is
// inconclusive and the problem is said before the canaries are synced.
func TestAudit7ScrapeSaysWhenErrorsCannotBeCounted(t *testing.T) {
	t.Parallel()
	at := func(n int) string {
		return fmt.Sprintf("# TYPE http_requests_total counter\nhttp_requests_total{handler=\"/wiki\",status=\"500\"} %d\n", n)
	}
	can := newPage(t, at(1000))
	prod := newPage(t, "# TYPE http_requests_total counter\nhttp_requests_total{handler=\"/wiki\",status=\"200\"} 50000\n")
	src := NewScrape(ScrapeConfig{Targets: map[string]string{"can1": can.srv.URL, "prod1": prod.srv.URL}})
	ctx := context.Background()
	hosts := []string{"can1", "prod1"}
	start, err := src.Read(ctx, hosts)
	if err != nil {
		t.Fatal(err)
	}
	want := "no http_requests_total series on the metrics page has a code label, so its errors cannot be counted"
	if got := start.Hosts["can1"].Err; got != want {
		t.Errorf("can1: %+v, want the error %q", start.Hosts["can1"], want)
	}
	var samples []deployer.Sample
	for i := 1; i <= 3; i++ {
		can.set(at(1000 + 200*i))
		prod.set(fmt.Sprintf("# TYPE http_requests_total counter\nhttp_requests_total{handler=\"/wiki\",status=\"200\"} %d\n", 50000+1000*i))
		s, err := src.Read(ctx, hosts)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
	}
	v := New(Config{}).Judge(deployer.Window{Stage: deployer.Canaries, Judged: []string{"can1"}, Control: []string{"prod1"},
		Start: start, Samples: samples, Complete: true})
	if v.Outcome == deployer.Pass {
		t.Errorf("a canary answering 500 to everything passed: %s", v.Reason)
	}
	if !strings.Contains(v.Reason, "code label") {
		t.Errorf("the verdict does not say why: %s", v.Reason)
	}
}
