package web

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deploybot/deploybot/deployer"
)

type answer struct {
	code int
	body string
	hdr  http.Header
}

func do(t *testing.T, h http.Handler, method, target string, hdr ...string) answer {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Body.String(), rec.Header()}
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s does not contain %q", what, w)
		}
	}
}

func TestFrontPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	a := do(t, f.srv, "GET", "/")
	if a.code != 200 {
		t.Fatalf("GET / = %d: %s", a.code, a.body)
	}
	mustContain(t, "the front page", a.body,
		`id="active" data-id="4" data-state="awaiting-verification"`,
		// one host of seven serves #4's commit: the testserver
		`data-synced="1" data-total="7"`, "testservers 1/1", "canaries 0/2",
		"waiting for console:bob to test it", `id="seconds-left"`,
		"Deployments are locked",                              // the lock
		`<a href="/deployments/5">#5</a></td><td>next-change`, // the queue
		`new EventSource("/events")`)
	if m := regexp.MustCompile(`data-seconds="(\d+)"`).FindStringSubmatch(a.body); m == nil {
		t.Error("no countdown")
	} else if n, _ := strconv.Atoi(m[1]); n < 590 || n > 600 {
		t.Errorf("countdown shows %ds left, want about 600", n)
	}
	csp := a.hdr.Get("Content-Security-Policy")
	n := regexp.MustCompile(`<script nonce="([^"]+)">`).FindStringSubmatch(a.body)
	if n == nil || !strings.Contains(csp, "'nonce-"+n[1]+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("the inline script's nonce %v is not the CSP's: %q", n, csp)
	}
}

// TestEscaping: what people typed (a ref, a requester, a lock reason)
// reaches every page escaped, never as markup.
func TestEscaping(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, path := range []string{"/", "/history", "/deployments/4", "/history?person=" + "%3Cscript%3E"} {
		a := do(t, f.srv, "GET", path)
		if a.code != 200 {
			t.Fatalf("GET %s = %d", path, a.code)
		}
		if strings.Contains(a.body, "<script>alert") {
			t.Errorf("%s carries the typed <script> unescaped", path)
		}
		if !strings.Contains(a.body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
			t.Errorf("%s does not show the typed text escaped", path)
		}
	}
	// The live update carries the same HTML, escaped by the same template.
	msg, err := f.srv.liveMessage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ HTML string }
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Errorf("the live HTML is not escaped: %s", m.HTML)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, p := range []string{"/", "/api/deployments", "/deployments/1", "/metrics"} {
			a := do(t, f.srv, m, p)
			if a.code != http.StatusMethodNotAllowed || a.hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s = %d (Allow %q), want 405", m, p, a.code, a.hdr.Get("Allow"))
			}
		}
	}
	if a := do(t, f.srv, "HEAD", "/deployments/2"); a.code != 200 || a.body != "" {
		t.Errorf("HEAD = %d with %d bytes", a.code, len(a.body))
	}
	if a := do(t, f.srv, "GET", "/deployments/99"); a.code != 404 || !strings.Contains(a.body, "there is no deployment #99") {
		t.Errorf("missing deployment: %d %q", a.code, a.body)
	}
	if a := do(t, f.srv, "GET", "/deployments/x1"); a.code != 404 || !strings.Contains(a.body, `"x1" is not a deployment number`) {
		t.Errorf("bad id: %d %q", a.code, a.body)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	const tok = "0123456789abcdef-token"
	f := newFixture(t, Options{Token: tok})
	if a := do(t, f.srv, "GET", "/"); a.code != 401 || strings.Contains(a.body, "next-change") {
		t.Errorf("no token: %d", a.code)
	}
	if a := do(t, f.srv, "GET", "/api/deployments", "Authorization", "Bearer wrong"); a.code != 401 {
		t.Errorf("wrong token: %d", a.code)
	}
	if a := do(t, f.srv, "GET", "/metrics", "Authorization", "Bearer "+tok); a.code != 200 {
		t.Errorf("bearer token: %d", a.code)
	}
	if a := do(t, f.srv, "GET", "/healthz"); a.code != 200 {
		t.Errorf("/healthz must answer health checks without the token: %d", a.code)
	}
	a := do(t, f.srv, "GET", "/?token="+tok)
	if a.code != 200 {
		t.Fatalf("?token=: %d", a.code)
	}
	var cookie string
	for _, c := range (&http.Response{Header: a.hdr}).Cookies() {
		if c.Name == tokenCookie && c.HttpOnly && c.SameSite == http.SameSiteStrictMode {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatalf("?token= set no HttpOnly, SameSite=Strict cookie: %v", a.hdr["Set-Cookie"])
	}
	if a := do(t, f.srv, "GET", "/deployments/2", "Cookie", cookie); a.code != 200 {
		t.Errorf("cookie: %d", a.code)
	}
	if a := do(t, f.srv, "GET", "/?token=nope"); a.code != 401 || a.hdr.Get("Set-Cookie") != "" {
		t.Errorf("wrong ?token=: %d, cookie %q", a.code, a.hdr.Get("Set-Cookie"))
	}

	// Off the loopback interface, a token is not optional.
	open := New(Options{Store: f.st})
	err := open.Listen("0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "without an access token") {
		t.Errorf("Listen on 0.0.0.0 without a token: %v", err)
	}
	if err := open.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(open.Link(7), "http://127.0.0.1:") || !strings.HasSuffix(open.Link(7), "/deployments/7") || strings.HasSuffix(open.Addr(), ":0") {
		t.Errorf("Link after Listen on port 0 = %q (addr %q)", open.Link(7), open.Addr())
	}
	if got := New(Options{Store: f.st, BaseURL: "https://deploy.example.org/"}).Link(3); got != "https://deploy.example.org/deployments/3" {
		t.Errorf("Link with a base URL = %q", got)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{PageSize: 2})
	ids := func(body string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<tr data-id="(\d+)">`).FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, tc := range []struct {
		path  string
		want  string
		links []string
	}{
		{"/history", "5 4", []string{`href="/history?offset=2" rel="next"`}},
		{"/history?offset=2", "3 2", []string{`href="/history" rel="prev"`, `href="/history?offset=4" rel="next"`}},
		{"/history?offset=4", "1", []string{`rel="prev"`}},
		{"/history?person=alice", "2 1", nil},
		{"/history?person=bob", "4 2", []string{`href="/history?offset=2&amp;person=bob" rel="next"`}},
		{"/history?person=bob&offset=2", "1", nil},
		{"/history?outcome=rolled-back", "2", nil},
		{"/history?person=carol&outcome=failed", "3", nil},
		{"/history?person=carol&outcome=done", "", nil},
	} {
		a := do(t, f.srv, "GET", tc.path)
		if a.code != 200 {
			t.Errorf("%s: %d %s", tc.path, a.code, a.body)
			continue
		}
		if got := strings.Join(ids(a.body), " "); got != tc.want {
			t.Errorf("%s lists %q, want %q", tc.path, got, tc.want)
		}
		mustContain(t, tc.path, a.body, tc.links...)
	}
	if a := do(t, f.srv, "GET", "/history?outcome=exploded"); a.code != 400 || !strings.Contains(a.body, `"exploded" is not a deployment state`) {
		t.Errorf("bad outcome: %d %q", a.code, a.body)
	}
}

func TestDeploymentPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{ChangeURL: "https://git.example.org/app/commit/{id}"})
	a := do(t, f.srv, "GET", "/deployments/2")
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	mustContain(t, "#2's page", a.body,
		`<span class="badge rolled-back" id="state">rolled-back</span>`,
		"canary check failed: mw-canary1001 error rate 90%",
		// the changes, with links: its own URL
		`<a href="https://gerrit.example.org/c/app/&#43;/4242">2222222222</a>`, "Add search_v2 flag",
		// the files
		`<li class="mono">config/app.json</li>`, `<li class="mono">static/app.js</li>`,
		// the timeline: who, what, when
		`<td class="mono">10:00:04.0</td><td>console:bob</td><td>state: awaiting-verification → syncing-canaries</td><td>verified by console:bob</td>`,
		"rolling-back → rolled-back",
		`<tr class="event verdict">`,
		// the verdict table and chart
		`class="canary-chart"`, `<td>mw-canary1001</td><td class="num">30</td><td class="num">27</td><td class="num">90%</td>`)
	// Every host, and the commit it serves now (read from the host): the
	// canaries are back on what #2 replaced, #1's commit.
	for _, h := range []string{"mw-canary1001", "mw-canary1002", "mw1001", "mw1004"} {
		re := regexp.MustCompile(`<tr class="" data-host="` + h + `"><td>` + h + `</td><td>\w+</td>\s*<td class="mono">bbbbbbbbbb</td>\s*<td><a href="/deployments/1">what it replaced \(#1\)</a></td>`)
		if !re.MatchString(a.body) {
			t.Errorf("host %s is not shown serving #1's commit", h)
		}
	}
	if !strings.Contains(a.body, `<td class="mono">eeeeeeeeee</td>`) {
		t.Error("the testserver's current commit (#4's) is not shown")
	}
	if strings.Contains(a.body, "<script nonce") {
		t.Error("a finished deployment's page should not follow live updates")
	}

	// A plain git commit is linked through change_url.
	a = do(t, f.srv, "GET", "/deployments/1")
	mustContain(t, "#1's page", a.body, `<a href="https://git.example.org/app/commit/1111111111111111111111111111111111111111">1111111111</a>`,
		`data-outcome="pass"`, `class="marker verdict pass"`)
	// The running one follows its progress.
	mustContain(t, "#4's page", do(t, f.srv, "GET", "/deployments/4").body, `<script nonce=`)
}

// svgElem is one element of a rendered chart.
type svgElem struct {
	name  string
	attrs map[string]string
	text  string
}

func parseSVG(t *testing.T, svg string) []svgElem {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	var out []svgElem
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			el := svgElem{name: e.Name.Local, attrs: map[string]string{}}
			for _, a := range e.Attr {
				el.attrs[a.Name.Local] = a.Value
			}
			out = append(out, el)
		case xml.CharData:
			if len(out) > 0 {
				out[len(out)-1].text += string(e)
			}
		}
	}
}

func byClass(es []svgElem, class string) []svgElem {
	var out []svgElem
	for _, e := range es {
		if e.attrs["class"] == class {
			out = append(out, e)
		}
	}
	return out
}

// TestChartSVG: one step line per canary computed from the samples'
// deltas, the baseline and threshold lines at their rates, the sync and
// the rollback marked at their moments.
func TestChartSVG(t *testing.T) {
	t.Parallel()
	v := failVerdict(t0)
	sync := t0.Add(100 * time.Millisecond)
	es := parseSVG(t, string(NewChart(v, sync, nil).SVG()))

	yOf := func(e svgElem, attr string) float64 {
		f, err := strconv.ParseFloat(e.attrs[attr], 64)
		if err != nil {
			t.Fatalf("%s %s=%q", e.attrs["class"], attr, e.attrs[attr])
		}
		return f
	}
	series := byClass(es, "series")
	if len(series) != 2 || series[0].attrs["data-host"] != "mw-canary1001" || series[1].attrs["data-host"] != "mw-canary1002" {
		t.Fatalf("series: %+v", series)
	}
	thr, base := byClass(es, "threshold"), byClass(es, "baseline")
	if len(thr) != 1 || len(base) != 1 {
		t.Fatalf("threshold lines %d, baseline lines %d", len(thr), len(base))
	}
	// The rate axis is linear from the bottom of the plot (y = padT+plotH)
	// up; its top tick names the rate drawn at its height.
	bottom := float64(padT + plotH)
	var perUnit float64 // rate per SVG unit of height
	for _, e := range byClass(es, "tick") {
		p, ok := strings.CutSuffix(strings.TrimSpace(e.text), "%")
		v, err := strconv.ParseFloat(p, 64)
		if !ok || err != nil || v == 0 || e.attrs["text-anchor"] != "end" {
			continue
		}
		perUnit = max(perUnit, v/100/(bottom-(yOf(e, "y")-4)))
	}
	if perUnit == 0 {
		t.Fatal("the rate axis has no ticks")
	}
	rateAt := func(y float64) float64 { return (bottom - y) * perUnit }
	if r := rateAt(yOf(thr[0], "y1")); r < 0.014 || r > 0.016 {
		t.Errorf("threshold drawn at %.4f, want 0.015", r)
	}
	if r := rateAt(yOf(base[0], "y1")); r < 0.004 || r > 0.006 {
		t.Errorf("baseline drawn at %.4f, want 0.005", r)
	}
	// mw-canary1001: 9 errors in 10 requests each interval. mw-canary1002:
	// 5/10, then a reset to {10,5} (all new traffic: 5/10), then 4/10.
	// The faint steps show each interval; the series, the rate since the
	// sync.
	drawnAt := func(e svgElem) []float64 {
		var out []float64
		for _, p := range strings.Fields(e.attrs["points"]) {
			_, ys, _ := strings.Cut(p, ",")
			y, err := strconv.ParseFloat(ys, 64)
			if err != nil {
				t.Fatalf("points %q", e.attrs["points"])
			}
			out = append(out, rateAt(y))
		}
		return out
	}
	near := func(got, want []float64) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 0.002 {
				return false
			}
		}
		return true
	}
	stepLines := byClass(es, "steps")
	if len(stepLines) != 2 {
		t.Fatalf("%d step lines, want 2", len(stepLines))
	}
	for i, tc := range []struct {
		steps, cumulative []float64
		rate              float64
	}{
		{[]float64{0.9, 0.9, 0.9, 0.9, 0.9, 0.9}, []float64{0.9, 0.9, 0.9, 0.9}, 0.9},
		{[]float64{0.5, 0.5, 0.5, 0.5, 0.4, 0.4}, []float64{0.5, 0.5, 0.5, 14.0 / 30}, 14.0 / 30},
	} {
		host := series[i].attrs["data-host"]
		if got := drawnAt(stepLines[i]); stepLines[i].attrs["data-host"] != host || !near(got, tc.steps) {
			t.Errorf("%s steps drawn at %.3f, want %.3f", host, got, tc.steps)
		}
		if got := drawnAt(series[i]); !near(got, tc.cumulative) {
			t.Errorf("%s drawn at %.3f, want %.3f", host, got, tc.cumulative)
		}
		if r, _ := strconv.ParseFloat(series[i].attrs["data-rate"], 64); math.Abs(r-tc.rate) > 1e-4 {
			t.Errorf("%s data-rate %v, want %v", host, r, tc.rate)
		}
	}
	if ctl := byClass(es, "control"); len(ctl) != 1 || ctl[0].attrs["data-host"] != "mw1001, mw1002" {
		t.Errorf("control series: %+v", ctl)
	}
	rb := byClass(es, "marker verdict rollback")
	sy := byClass(es, "marker sync")
	if len(rb) != 1 || len(sy) != 1 {
		t.Fatalf("rollback markers %d, sync markers %d", len(rb), len(sy))
	}
	// The window is 1.5s wide; the sync is 0.1s in, the verdict at its end.
	x0, w := float64(padL), float64(chartW-padR-padL) // no before panel: no Before sample
	if x := yOf(sy[0], "x1"); x < x0+w*0.1/1.5-1 || x > x0+w*0.1/1.5+1 {
		t.Errorf("sync marker at x %.1f, want %.1f", x, x0+w*0.1/1.5)
	}
	if x := yOf(rb[0], "x1"); x < x0+w-1 || x > x0+w+1 {
		t.Errorf("rollback marker at x %.1f, want the end %.1f", x, x0+w)
	}
	var labels []string
	for _, e := range es {
		if strings.Contains(e.attrs["class"], "verdict-label") {
			labels = append(labels, strings.TrimSpace(e.text))
		}
	}
	if len(labels) != 1 || !strings.Contains(labels[0], "rolled back") {
		t.Errorf("verdict labels %q, want one saying rolled back", labels)
	}
}

func TestSteps(t *testing.T) {
	t.Parallel()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	samples := []deployer.Sample{
		counts(at(0), map[string][2]float64{"h": {100, 1}}),
		counts(at(1), map[string][2]float64{"h": {120, 3}}), // +20, +2
		{Time: at(2), Hosts: map[string]deployer.Counts{"h": {Err: "connection refused"}}},
		counts(at(3), map[string][2]float64{"h": {160, 3}}), // +40 since at(1), +0
		counts(at(4), map[string][2]float64{"h": {160, 3}}), // no traffic: no step
		counts(at(5), map[string][2]float64{"h": {30, 3}}),  // reset: all 30 are new
		{Time: at(6), Hosts: map[string]deployer.Counts{}},  // not read
		counts(at(7), map[string][2]float64{"h": {40, 8}}),  // +10, +5
	}
	got := steps(samples, "h")
	want := []Step{
		{From: at(0), To: at(1), Requests: 20, Errors: 2, Rate: 0.1},
		{From: at(1), To: at(3), Requests: 40, Errors: 0, Rate: 0},
		{From: at(4), To: at(5), Requests: 30, Errors: 3, Rate: 0.1},
		{From: at(5), To: at(7), Requests: 10, Errors: 5, Rate: 0.5},
	}
	if len(got) != len(want) {
		t.Fatalf("steps = %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].From.Equal(want[i].From) || !got[i].To.Equal(want[i].To) || got[i].Requests != want[i].Requests ||
			got[i].Errors != want[i].Errors || got[i].Rate != want[i].Rate {
			t.Errorf("step %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{PageSize: 2})
	a := do(t, f.srv, "GET", "/api/deployments?outcome=rolled-back")
	if a.code != 200 || !strings.HasPrefix(a.hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", a.code, a.hdr.Get("Content-Type"))
	}
	var list struct {
		Deployments []map[string]json.RawMessage `json:"deployments"`
		Offset      *int                         `json:"offset"`
		Limit       int                          `json:"limit"`
		Outcome     string                       `json:"outcome"`
		Next        string                       `json:"next"`
	}
	if err := json.Unmarshal([]byte(a.body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Deployments) != 1 || string(list.Deployments[0]["id"]) != "2" || string(list.Deployments[0]["state"]) != `"rolled-back"` ||
		list.Offset == nil || list.Limit != 2 || list.Outcome != "rolled-back" || list.Next != "" {
		t.Errorf("filtered list: %s", a.body)
	}
	if strings.Contains(a.body, `"samples"`) {
		t.Error("the list should leave the raw samples to /api/deployments/{id}")
	}
	a = do(t, f.srv, "GET", "/api/deployments")
	if err := json.Unmarshal([]byte(a.body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Deployments) != 2 || string(list.Deployments[0]["id"]) != "5" || list.Next != "/api/deployments?offset=2" {
		t.Errorf("first page: %d deployments, next %q", len(list.Deployments), list.Next)
	}
	if a := do(t, f.srv, "GET", "/api/deployments?limit=0"); a.code != 400 || !strings.Contains(a.body, `"error": "limit \"0\" must be a number from 1 to 200"`) {
		t.Errorf("bad limit: %d %s", a.code, a.body)
	}

	a = do(t, f.srv, "GET", "/api/deployments/2")
	var one struct {
		Deployment deployer.Deployment `json:"deployment"`
		Events     []deployer.Event    `json:"events"`
		Hosts      []HostNow           `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(a.body), &one); err != nil {
		t.Fatal(err)
	}
	if one.Deployment.ID != 2 || one.Deployment.State != deployer.StateRolledBack || len(one.Deployment.Verdicts) != 1 || len(one.Deployment.Verdicts[0].Samples) != 4 {
		t.Errorf("deployment: %+v", one.Deployment)
	}
	if len(one.Events) < 8 || one.Events[0].To != deployer.StateQueued || one.Events[len(one.Events)-1].To != deployer.StateRolledBack {
		t.Errorf("events: %+v", one.Events)
	}
	if len(one.Hosts) != 7 || one.Hosts[0].Name != "mwdebug1001" || one.Hosts[0].Commit != strings.Repeat("e", 40) || one.Hosts[1].Commit != commitGood {
		t.Errorf("hosts: %+v", one.Hosts)
	}
	if a := do(t, f.srv, "GET", "/api/deployments/42"); a.code != 404 || !strings.Contains(a.body, "there is no deployment #42") {
		t.Errorf("missing: %d %s", a.code, a.body)
	}
	a = do(t, f.srv, "GET", "/api/status")
	var st Status
	if err := json.Unmarshal([]byte(a.body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Active == nil || st.Active.ID != 4 || st.Active.HostsSynced != 1 || len(st.Queue) != 1 || st.Queue[0].ID != 5 || st.Lock == nil {
		t.Errorf("status: %s", a.body)
	}
	if a := do(t, f.srv, "GET", "/healthz"); a.code != 200 || !strings.Contains(a.body, `"status": "ok"`) {
		t.Errorf("healthz: %d %s", a.code, a.body)
	}
}

// TestMetrics feeds the notices the pipeline sends for #2 (a canary
// failure and its rollback) and a reconnect, and reads /metrics back with
// Prometheus' own parser.
func TestMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	d, err := f.st.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Announce(deployer.Notice{Deployment: 2, Kind: deployer.NoticeVerdict, Verdict: &d.Verdicts[0]}, nil)
	f.srv.Announce(deployer.Notice{Deployment: 2, Kind: deployer.NoticeRolledBack, Text: "rolled back"}, nil)
	f.srv.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeFailed}, nil)
	f.srv.Reconnected("irc")
	f.srv.Reconnected("irc")

	a := do(t, f.srv, "GET", "/metrics")
	if a.code != 200 {
		t.Fatal(a.code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(a.body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	value := func(name string, labels ...string) *dto.Metric {
		t.Helper()
		fam := fams[name]
		if fam == nil {
			t.Errorf("no %s", name)
			return nil
		}
	next:
		for _, m := range fam.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m
		}
		t.Errorf("no %s%v", name, labels)
		return nil
	}
	if m := value("deploybot_deployments_total", "outcome", "rolled-back"); m != nil && m.Counter.GetValue() != 1 {
		t.Errorf("rolled-back deployments = %v", m.Counter.GetValue())
	}
	if m := value("deploybot_deployments_total", "outcome", "failed"); m != nil && m.Counter.GetValue() != 1 {
		t.Errorf("failed deployments = %v", m.Counter.GetValue())
	}
	if m := value("deploybot_deployments_total", "outcome", "done"); m != nil && m.Counter.GetValue() != 0 {
		t.Errorf("done deployments = %v", m.Counter.GetValue())
	}
	if m := value("deploybot_rollbacks_total"); m != nil && m.Counter.GetValue() != 1 {
		t.Errorf("rollbacks = %v", m.Counter.GetValue())
	}
	if m := value("deploybot_canary_verdict_seconds", "outcome", "fail"); m != nil && (m.Histogram.GetSampleCount() != 1 || m.Histogram.GetSampleSum() != 1.5) {
		t.Errorf("verdict latency: %d samples, sum %v; want 1 of 1.5s", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
	}
	// #2 went queued -> preparing -> ... one second per step in the
	// fixture; checking-canaries lasted from +5s to the rollback at +6.41s.
	if m := value("deploybot_stage_duration_seconds", "state", "preparing"); m != nil && (m.Histogram.GetSampleCount() != 2 || m.Histogram.GetSampleSum() != 2) {
		t.Errorf("preparing: %d samples, sum %v; want #2's and #3's, 1s each", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
	}
	if m := value("deploybot_stage_duration_seconds", "state", "checking-canaries"); m != nil && (m.Histogram.GetSampleCount() != 1 || m.Histogram.GetSampleSum() < 1.40 || m.Histogram.GetSampleSum() > 1.42) {
		t.Errorf("checking-canaries: %d samples, sum %v", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
	}
	if m := value("deploybot_chat_reconnects_total", "adapter", "irc"); m != nil && m.Counter.GetValue() != 2 {
		t.Errorf("reconnects = %v", m.Counter.GetValue())
	}
	if m := value("deploybot_queue_length"); m != nil && m.Gauge.GetValue() != 1 {
		t.Errorf("queue length = %v", m.Gauge.GetValue())
	}
	if m := value("deploybot_locked"); m != nil && m.Gauge.GetValue() != 1 {
		t.Errorf("locked = %v", m.Gauge.GetValue())
	}
	// A second notice about #2 must not count its states again.
	f.srv.Announce(deployer.Notice{Deployment: 2, Kind: deployer.NoticeInfo}, nil)
	fams, _ = p.TextToMetricFamilies(strings.NewReader(do(t, f.srv, "GET", "/metrics").body))
	if m := value("deploybot_stage_duration_seconds", "state", "preparing"); m != nil && m.Histogram.GetSampleCount() != 2 {
		t.Errorf("preparing counted again: %d samples", m.Histogram.GetSampleCount())
	}
}

// TestLiveEvents follows /events over a real connection: the first event
// is the state now, and a notice arrives as a new event within moments.
func TestLiveEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := httptest.NewUnstartedServer(f.srv)
	ts.Config.BaseContext = nil
	ts.Start()
	defer ts.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if json.Unmarshal([]byte(data), &m) == nil {
					events <- m
				}
			}
		}
		close(events)
	}()
	next := func() map[string]any {
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
		return nil
	}
	first := next()
	active, _ := first["active"].(map[string]any)
	if active == nil || active["id"] != 4.0 || active["state"] != "awaiting-verification" || active["hosts_synced"] != 1.0 || active["hosts_total"] != 7.0 {
		t.Fatalf("first event: %v", first["active"])
	}
	if s, _ := active["seconds_left"].(float64); s < 590 || s > 600 {
		t.Errorf("seconds_left %v", active["seconds_left"])
	}
	if !strings.Contains(first["html"].(string), `id="active" data-id="4"`) {
		t.Errorf("the event's HTML is not the live part of the page")
	}
	f.srv.Announce(deployer.Notice{Deployment: 4, Kind: deployer.NoticeReminder, Text: "reminder: test it <now>"}, nil)
	deadline := time.After(5 * time.Second)
	for {
		m := next()
		if a, _ := m["active"].(map[string]any); a != nil && a["last_notice"] == "reminder: test it <now>" {
			if !strings.Contains(m["html"].(string), "reminder: test it &lt;now&gt;") {
				t.Error("the notice is not in the event's HTML, escaped")
			}
			break
		}
		select {
		case <-deadline:
			t.Fatal("the notice did not reach the live stream")
		default:
		}
	}
}

// TestChartBefore: with the canaries' counters from before the sync, each
// canary's own earlier rate is drawn in a panel of its own, left of the
// window, and the window moves right to make room.
func TestChartBefore(t *testing.T) {
	t.Parallel()
	v := failVerdict(t0)
	before := counts(t0.Add(-90*time.Second), map[string][2]float64{"mw-canary1001": {800, 4}, "mw-canary1002": {600, 5}})
	es := parseSVG(t, string(NewChart(v, t0.Add(100*time.Millisecond), &before).SVG()))
	lines := byClass(es, "before")
	if len(lines) != 2 {
		t.Fatalf("%d before lines, want one per canary", len(lines))
	}
	// 1 error in 200 requests, and 0 in 400: both far below the 90% and
	// 47% after the sync, so they are drawn far lower (larger y).
	y := func(e svgElem, a string) float64 { f, _ := strconv.ParseFloat(e.attrs[a], 64); return f }
	bottom := float64(padT + plotH)
	if got := y(lines[0], "y1"); lines[0].attrs["data-host"] != "mw-canary1001" || bottom-got < 0 || bottom-got > 2 {
		t.Errorf("mw-canary1001 before the sync at y %.1f, want just above the bottom %.1f (0.5%%)", got, bottom)
	}
	if got := y(lines[1], "y1"); got != bottom {
		t.Errorf("mw-canary1002 before the sync at y %.1f, want the bottom %.1f (0%%)", got, bottom)
	}
	if got := y(byClass(es, "threshold")[0], "x1"); got != padL+beforeW+beforeGap {
		t.Errorf("the window starts at x %.1f, want %d, right of the before panel", got, padL+beforeW+beforeGap)
	}
	mustContain(t, "the chart", string(NewChart(v, time.Time{}, &before).SVG()), ">before</text>", ">1m30s</text>", "seconds since the window opened")
}

// TestLiveLimit: past MaxLive open streams, /events says so at once rather
// than holding another goroutine; a closed stream frees its place.
func TestLiveLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{MaxLive: 1})
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/events", nil)
	first, err := ts.Client().Do(req)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first stream: %v %v", err, first)
	}
	second, err := ts.Client().Get(ts.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "too many live pages are open") {
		t.Errorf("second stream: %d %q", second.StatusCode, body)
	}
	cancel()
	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := ts.Client().Head(ts.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		f.srv.mu.Lock()
		n := f.srv.clients
		f.srv.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still counted after the only one closed", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestURLOnEveryInterface: a dashboard bound to 0.0.0.0 links with the
// machine's name, not with an address nobody can open.
func TestURLOnEveryInterface(t *testing.T) {
	t.Parallel()
	s := New(Options{Store: newFixture(t, Options{}).st, Token: "0123456789abcdef0123"})
	if err := s.Listen("0.0.0.0:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	if want := "http://" + net.JoinHostPort(name, port) + "/deployments/9"; s.Link(9) != want {
		t.Errorf("Link = %q, want %q", s.Link(9), want)
	}
}
