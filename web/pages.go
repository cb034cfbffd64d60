package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

//go:embed templates/*.html
var templateFS embed.FS

type pages struct{ t *template.Template }

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 10 {
			return s[:10]
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05.0")
	},
	"took": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return ""
		}
		return b.Sub(a).Round(100 * time.Millisecond).String()
	},
	"secs": func(n int) string {
		return (time.Duration(n) * time.Second).String()
	},
	"pct":    pct,
	"inc":    func(i int) int { return i + 1 },
	"num":    func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) },
	"join":   strings.Join,
	"states": func() []deployer.State { return pipelineStates },
	"stateIndex": func(s deployer.State) int {
		for i, p := range pipelineStates {
			if p == s {
				return i
			}
		}
		return -1
	},
	// pathIndex is where a state sits on the forward path: its own
	// step, or for a state off it the step it belongs to (bisecting and
	// a promote decision are part of the canary check); -1 for none.
	"pathIndex": func(s deployer.State) int {
		switch s {
		case deployer.StateAwaitingMetrics:
			s = deployer.StateAwaitingVerification
		case deployer.StateBisecting, deployer.StateAwaitingPromotion:
			s = deployer.StateCheckingCanaries
		case deployer.StateCheckingProduction:
			s = deployer.StateSyncingProduction
		}
		return slices.Index(pipelineStates, s)
	},
	"outcomes": func() []deployer.State {
		return []deployer.State{deployer.StateDone, deployer.StateRolledBack, deployer.StateFailed, deployer.StateCancelled,
			deployer.StateQueued, deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
			deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateAwaitingPromotion,
			deployer.StateSyncingProduction, deployer.StateCheckingProduction, deployer.StateRollingBack}
	},
	"finished": func(s deployer.State) bool { return s.Finished() },
}

// pipelineStates is the forward path, drawn as the progress bar.
var pipelineStates = []deployer.State{
	deployer.StateQueued, deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
	deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateSyncingProduction, deployer.StateDone,
}

func mustPages() *pages {
	t := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	return &pages{t: t}
}

// render executes a page into a buffer first, so a template error becomes
// a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data map[string]any) {
	n := nonce()
	data["Nonce"] = n
	data["Path"] = r.URL.Path
	var buf bytes.Buffer
	if err := s.pages.t.ExecuteTemplate(&buf, name, data); err != nil {
		s.internalError(w, r, err, "template", name)
		return
	}
	setPageHeaders(w, n)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleNow(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	recent, err := s.opt.Store.List(0, 8)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.render(w, r, "now.html", map[string]any{"Title": "now", "Status": st, "Recent": recent})
}

// historyQuery is the history's filter and page.
type historyQuery struct {
	Person  string
	Outcome deployer.State
	Offset  int
	Limit   int
	// ownLimit: the request chose Limit (?limit=), so the page's links
	// keep it.
	ownLimit bool
}

func (s *Server) parseHistory(r *http.Request) (historyQuery, error) {
	q := r.URL.Query()
	h := historyQuery{Person: strings.TrimSpace(q.Get("person")), Outcome: deployer.State(strings.TrimSpace(q.Get("outcome"))), Limit: s.opt.PageSize}
	if h.Outcome != "" && !h.Outcome.Valid() {
		return h, deployer.Errorf(deployer.EInvalid, "%q is not a deployment state (try done, rolled-back, failed or cancelled)", string(h.Outcome))
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return h, deployer.Errorf(deployer.EInvalid, "offset %q is not a number of deployments to skip", v)
		}
		h.Offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return h, deployer.Errorf(deployer.EInvalid, "limit %q must be a number from 1 to 200", v)
		}
		h.Limit, h.ownLimit = n, n != s.opt.PageSize
	}
	return h, nil
}

func (h historyQuery) matches(d *deployer.Deployment) bool {
	if h.Outcome != "" && d.State != h.Outcome {
		return false
	}
	if h.Person != "" {
		p := strings.ToLower(h.Person)
		if !strings.Contains(strings.ToLower(d.Requester), p) && !strings.Contains(strings.ToLower(d.Submitter), p) {
			return false
		}
	}
	return true
}

// history returns one page of deployments, newest first, and whether more
// follow. With a filter it reads the history in batches until the page is
// full.
func (s *Server) history(h historyQuery) ([]*deployer.Deployment, bool, error) {
	if h.Person == "" && h.Outcome == "" {
		ds, err := s.opt.Store.List(h.Offset, h.Limit+1)
		if err != nil {
			return nil, false, err
		}
		more := len(ds) > h.Limit
		if more {
			ds = ds[:h.Limit]
		}
		return ds, more, nil
	}
	const batch = 200
	out := []*deployer.Deployment{}
	skipped := 0
	for off := 0; ; off += batch {
		ds, err := s.opt.Store.List(off, batch)
		if err != nil {
			return nil, false, err
		}
		for _, d := range ds {
			if !h.matches(d) {
				continue
			}
			if skipped < h.Offset {
				skipped++
				continue
			}
			if len(out) == h.Limit {
				return out, true, nil
			}
			out = append(out, d)
		}
		if len(ds) < batch {
			return out, false, nil
		}
	}
}

func (h historyQuery) link(offset int) string {
	v := url.Values{}
	if h.Person != "" {
		v.Set("person", h.Person)
	}
	if h.Outcome != "" {
		v.Set("outcome", string(h.Outcome))
	}
	if offset > 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	if h.ownLimit {
		v.Set("limit", strconv.Itoa(h.Limit))
	}
	if len(v) == 0 {
		return "/history"
	}
	return "/history?" + v.Encode()
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	h, err := s.parseHistory(r)
	if err != nil {
		http.Error(w, deployer.ErrorMessage(err), http.StatusBadRequest)
		return
	}
	ds, more, err := s.history(h)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	data := map[string]any{"Title": "history", "Deployments": ds, "Query": h, "From": h.Offset + 1, "To": h.Offset + len(ds)}
	if h.Offset > 0 {
		data["Prev"] = h.link(max(0, h.Offset-h.Limit))
	}
	if more {
		data["Next"] = h.link(h.Offset + h.Limit)
	}
	s.render(w, r, "history.html", data)
}

// hostRow is one host on a deployment's page.
type hostRow struct {
	HostNow
	Serves  string // "this deployment", "its base", "#12", or ""
	Link    string
	Touched bool
	Failed  string
}

// chartView is one verdict with its chart.
type chartView struct {
	Verdict deployer.Verdict
	Chart   *Chart
}

// changeView is one change with its link.
type changeView struct {
	deployer.Change
	Link string
}

// detail is everything a deployment's page and its API answer show.
type detail struct {
	Deployment *deployer.Deployment `json:"deployment"`
	Events     []deployer.Event     `json:"events"`
	Hosts      []HostNow            `json:"hosts"`
	rows       []hostRow
	charts     []chartView
	changes    []changeView
}

func (s *Server) detail(r *http.Request, id int64) (*detail, error) {
	d, err := s.opt.Store.Get(id)
	if err != nil {
		return nil, err
	}
	evs, err := s.opt.Store.Events(id)
	if err != nil {
		return nil, err
	}
	out := &detail{Deployment: d, Events: evs, Hosts: []HostNow{}}
	cur := s.currents(r.Context())
	// Which deployment each commit belongs to, for "serves #12". Recent
	// history is enough: hosts serve one of the last few.
	byCommit := map[string]int64{}
	if recent, err := s.opt.Store.List(0, 200); err == nil {
		for i := len(recent) - 1; i >= 0; i-- {
			if c := recent[i].Commit; c != "" {
				byCommit[c] = recent[i].ID
			}
		}
	}
	touched := map[string]bool{}
	for _, h := range d.Touched {
		touched[h] = true
	}
	for _, stage := range deployer.Stages {
		for _, h := range s.opt.Fleet[stage] {
			hn := cur[h.Name()]
			out.Hosts = append(out.Hosts, hn)
			row := hostRow{HostNow: hn, Touched: touched[h.Name()], Failed: d.FailedHosts[h.Name()]}
			switch {
			case hn.Commit == "":
			case hn.Commit == d.Commit:
				row.Serves = "this deployment"
			case hn.Commit == d.Base:
				row.Serves = "what it replaced"
				if other, ok := byCommit[hn.Commit]; ok {
					row.Serves += fmt.Sprintf(" (#%d)", other)
					row.Link = fmt.Sprintf("/deployments/%d", other)
				}
			default:
				if other, ok := byCommit[hn.Commit]; ok {
					row.Serves = fmt.Sprintf("#%d", other)
					row.Link = fmt.Sprintf("/deployments/%d", other)
				}
			}
			out.rows = append(out.rows, row)
		}
	}
	for _, v := range d.Verdicts {
		var sync time.Time
		// The sync of the judged stage ended when the deployment entered
		// its checking state; take the last such entry before the verdict.
		want := deployer.StateCheckingCanaries
		if v.Stage == deployer.Production {
			want = deployer.StateCheckingProduction
		}
		for _, e := range evs {
			if e.Kind == "state" && e.To == want && !e.Time.After(v.End) {
				sync = e.Time
			}
		}
		var before *deployer.Sample
		if v.Stage == deployer.Canaries {
			before = d.Baseline
		}
		out.charts = append(out.charts, chartView{Verdict: v, Chart: NewChart(v, sync, before)})
	}
	for _, c := range d.Changes {
		out.changes = append(out.changes, changeView{Change: c, Link: s.changeURL(c)})
	}
	return out, nil
}

func (s *Server) handleDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(w, r)
	if !ok {
		return
	}
	dt, err := s.detail(r, id)
	if errors.Is(err, deployer.ErrNotFound) || deployer.ErrorCode(err) == deployer.ENotFound {
		http.Error(w, fmt.Sprintf("there is no deployment #%d", id), http.StatusNotFound)
		return
	}
	if err != nil {
		s.internalError(w, r, err, "deployment", id)
		return
	}
	// How far along the pipeline it got: its state, or for one that was
	// rolled back, failed or cancelled, the last step it reached.
	reached := dt.Deployment.State
	for _, e := range dt.Events {
		if e.Kind == "state" && slices.Contains(pipelineStates, e.To) && e.To != deployer.StateDone {
			if slices.Index(pipelineStates, e.To) > slices.Index(pipelineStates, reached) || !slices.Contains(pipelineStates, reached) {
				reached = e.To
			}
		}
	}
	if dt.Deployment.State == deployer.StateDone {
		reached = deployer.StateDone
	}
	s.render(w, r, "deployment.html", map[string]any{
		"Title": fmt.Sprintf("#%d", id), "D": dt.Deployment, "Reached": reached, "Events": dt.Events, "Hosts": dt.rows,
		"Charts": dt.charts, "Changes": dt.changes, "Live": !dt.Deployment.State.Finished(),
	})
}
