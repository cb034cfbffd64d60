package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

var _ bot.Adapter = (*Server)(nil)

// Name implements bot.Adapter.
func (s *Server) Name() string { return "web" }

// Run implements bot.Adapter: the dashboard takes no commands, so it only
// waits for ctx to end.
func (s *Server) Run(ctx context.Context, _ func(bot.Message)) error {
	<-ctx.Done()
	return nil
}

// Announce implements bot.Adapter: it counts the notice in the metrics,
// keeps it as the deployment's latest news, and wakes the live pages. It
// returns quickly; the pipeline calls it in line.
func (s *Server) Announce(n deployer.Notice, _ []string) {
	s.observe(n)
	s.mu.Lock()
	if n.Deployment != 0 {
		s.last[n.Deployment] = n
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// wake returns a channel closed at the next notice.
func (s *Server) wake() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// StageProgress is how many of a stage's hosts serve the deployment's
// commit now.
type StageProgress struct {
	Stage  deployer.Stage `json:"stage"`
	Synced int            `json:"synced"`
	Total  int            `json:"total"`
}

// Live is the deployment the pipeline is working on, as the front page
// and /events show it.
type Live struct {
	ID        int64          `json:"id"`
	Title     string         `json:"title"`
	State     deployer.State `json:"state"`
	Stage     string         `json:"stage"` // the stage the state belongs to, or "rollback"
	Requester string         `json:"requester"`
	Submitter string         `json:"submitter,omitempty"`
	URL       string         `json:"url"`
	// HostsSynced counts hosts serving the deployment's commit (while
	// rolling back: touched hosts back on the base), read from the hosts.
	HostsSynced int             `json:"hosts_synced"`
	HostsTotal  int             `json:"hosts_total"`
	Stages      []StageProgress `json:"stages"`
	// Wait says what the deployment waits for; SecondsLeft and Deadline
	// when that wait has an end.
	Wait        string    `json:"wait,omitempty"`
	Deadline    time.Time `json:"deadline,omitzero"`
	SecondsLeft int       `json:"seconds_left"`
	LastNotice  string    `json:"last_notice,omitempty"`
	Started     time.Time `json:"started,omitzero"`
}

// Status is the front page's data: what runs, what waits, and the lock.
type Status struct {
	Active *Live                  `json:"active"`
	Queue  []*deployer.Deployment `json:"queue"`
	Lock   *deployer.Lock         `json:"lock"`
}

// queueState reads the running deployment, the queue and the lock.
func (s *Server) queueState() (queue []*deployer.Deployment, active *deployer.Deployment, lock *deployer.Lock, err error) {
	unf, err := s.opt.Store.Unfinished()
	if err != nil {
		return nil, nil, nil, err
	}
	queue = []*deployer.Deployment{}
	for _, d := range unf {
		switch {
		case d.State == deployer.StateQueued:
			queue = append(queue, d)
		case active == nil && d.State.Active():
			active = d
		}
	}
	lock, err = s.opt.Store.Lock()
	return queue, active, lock, err
}

// status builds the front page's data, asking the hosts what they serve.
func (s *Server) status(ctx context.Context) (*Status, error) {
	queue, active, lock, err := s.queueState()
	if err != nil {
		return nil, err
	}
	st := &Status{Queue: queue, Lock: lock}
	if active != nil {
		st.Active, err = s.live(ctx, active)
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

func stageOf(st deployer.State) string {
	switch st {
	case deployer.StateSyncingTestservers, deployer.StateAwaitingVerification:
		return string(deployer.Testservers)
	case deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateAwaitingPromotion:
		return string(deployer.Canaries)
	case deployer.StateSyncingProduction, deployer.StateCheckingProduction:
		return string(deployer.Production)
	case deployer.StateRollingBack:
		return "rollback"
	}
	return ""
}

func (s *Server) live(ctx context.Context, d *deployer.Deployment) (*Live, error) {
	l := &Live{ID: d.ID, Title: d.Title(), State: d.State, Stage: stageOf(d.State), Requester: d.Requester,
		Submitter: d.Submitter, URL: "/deployments/" + fmt.Sprint(d.ID), Started: d.StartedAt}
	now := s.opt.Now()
	cur := s.currents(ctx)
	want := d.Commit
	touched := map[string]bool{}
	for _, h := range d.Touched {
		touched[h] = true
	}
	if d.State == deployer.StateRollingBack {
		want = d.Base
	}
	for _, stage := range deployer.Stages {
		p := StageProgress{Stage: stage}
		for _, h := range s.opt.Fleet[stage] {
			if d.State == deployer.StateRollingBack && !touched[h.Name()] {
				continue
			}
			p.Total++
			if c := cur[h.Name()]; want != "" && c.Commit == want {
				p.Synced++
			}
		}
		l.HostsSynced += p.Synced
		l.HostsTotal += p.Total
		l.Stages = append(l.Stages, p)
	}
	switch d.State {
	case deployer.StateAwaitingVerification:
		l.Wait = fmt.Sprintf("waiting for %s to test it on the testservers and reply `verified`", d.Submitter)
		l.Deadline = d.Deadline
	case deployer.StateAwaitingPromotion:
		l.Wait = "the canary check was inconclusive: waiting for a deployer to !promote or !rollback"
		l.Deadline = d.Deadline
	case deployer.StateCheckingCanaries:
		l.Wait = "watching the canaries' error rate"
		if t, err := s.entered(d.ID, deployer.StateCheckingCanaries); err == nil && !t.IsZero() {
			l.Deadline = t.Add(s.opt.Pipeline.CanaryWindow)
		}
	case deployer.StateSyncingCanaries:
		if d.WindowStart == nil && d.Baseline != nil && s.opt.Pipeline.BaselineMin > 0 {
			if end := d.Baseline.Time.Add(s.opt.Pipeline.BaselineMin); end.After(now) {
				l.Wait = "measuring the canaries' error rate before syncing them"
				l.Deadline = end
			}
		}
	case deployer.StateRollingBack:
		l.Wait = "restoring every touched host: " + d.Reason
	}
	if !l.Deadline.IsZero() {
		l.SecondsLeft = max(0, int(l.Deadline.Sub(now).Round(time.Second)/time.Second))
	}
	s.mu.Lock()
	if n, ok := s.last[d.ID]; ok {
		l.LastNotice = n.Text
	}
	s.mu.Unlock()
	return l, nil
}

// entered returns when deployment id last entered state st.
func (s *Server) entered(id int64, st deployer.State) (time.Time, error) {
	evs, err := s.opt.Store.Events(id)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	for _, e := range evs {
		if e.Kind == "state" && e.To == st {
			t = e.Time
		}
	}
	return t, nil
}

// HostNow is what one host serves now.
type HostNow struct {
	Name   string         `json:"name"`
	Stage  deployer.Stage `json:"stage"`
	Commit string         `json:"commit"`
	Err    string         `json:"error,omitempty"`
}

// currents asks every host what it serves, all at once, each within 2s.
// Answers are shared for a second: every live page polls once a second,
// and a host (over ssh, say) should not be asked once per open browser.
// A request that goes away meanwhile does not cut the round short.
func (s *Server) currents(ctx context.Context) map[string]HostNow {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	if s.curAt.IsZero() || time.Since(s.curAt) >= time.Second {
		// The answers are shared, so the request that happens to ask
		// must not cancel them by going away: each host has 2s anyway.
		s.cur = s.readCurrents(context.WithoutCancel(ctx))
		s.curAt = time.Now()
	}
	return s.cur
}

func (s *Server) readCurrents(ctx context.Context) map[string]HostNow {
	out := map[string]HostNow{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, stage := range deployer.Stages {
		for _, h := range s.opt.Fleet[stage] {
			wg.Add(1)
			go func(stage deployer.Stage, h deployer.Host) {
				defer wg.Done()
				hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				c, err := h.Current(hctx)
				hn := HostNow{Name: h.Name(), Stage: stage, Commit: c}
				if err != nil {
					s.log.Warn("reading what a host serves failed", "host", h.Name(), "err", err)
					hn.Err = "cannot be read (the bot's log has the details)"
				}
				mu.Lock()
				out[h.Name()] = hn
				mu.Unlock()
			}(stage, h)
		}
	}
	wg.Wait()
	return out
}

// handleEvents streams the front page's live part as server-sent events:
// one "status" event at once, then one whenever it changes (a notice, a
// host finishing its sync, a countdown second), and a comment every 15s
// to keep proxies from closing the stream.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return
	}
	s.mu.Lock()
	if s.clients >= s.opt.MaxLive {
		s.mu.Unlock()
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live pages are open; the page itself still works, reload it for news", http.StatusServiceUnavailable)
		return
	}
	s.clients++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	defer func() {
		s.mu.Lock()
		s.clients--
		s.mu.Unlock()
	}()
	ctx := r.Context()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var sent []byte
	var lastErr string
	lastWrite := time.Now()
	for {
		wake := s.wake()
		msg, err := s.liveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Once per distinct failure, not once a second per page.
			if err.Error() != lastErr {
				s.log.Error("dashboard live update failed", "err", err)
				lastErr = err.Error()
			}
		} else if lastErr = ""; !bytes.Equal(msg, sent) {
			if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", msg); err != nil {
				return
			}
			fl.Flush()
			sent, lastWrite = msg, time.Now()
		}
		if time.Since(lastWrite) > 15*time.Second {
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
			lastWrite = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

// liveMessage is one status event: the data and the live part of the
// front page rendered by the same template as the page itself.
func (s *Server) liveMessage(ctx context.Context) ([]byte, error) {
	st, err := s.status(ctx)
	if err != nil {
		return nil, err
	}
	var html bytes.Buffer
	if err := s.pages.t.ExecuteTemplate(&html, "live", st); err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		*Status
		HTML string `json:"html"`
	}{st, html.String()})
}
