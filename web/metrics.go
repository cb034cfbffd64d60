package web

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deploybot/deploybot/deployer"
)

// metrics are the bot's own series, in a registry of their own so that
// nothing else registered globally leaks into /metrics.
type metrics struct {
	reg         *prometheus.Registry
	deployments *prometheus.CounterVec   // by outcome
	rollbacks   prometheus.Counter       // every finished rollback
	stages      *prometheus.HistogramVec // time spent in each pipeline state
	verdicts    *prometheus.HistogramVec // canary window start to verdict, by outcome
	reconnects  *prometheus.CounterVec   // by chat adapter
	notices     *prometheus.CounterVec   // by kind
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_deployments_total",
			Help: "Deployments that finished, by outcome (done, rolled-back, failed, cancelled). A done deployment rolled back later counts under both.",
		}, []string{"outcome"}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deploybot_rollbacks_total",
			Help: "Rollbacks completed: after a failed canary check, a timeout, a sync failure or a person's !rollback/!abort.",
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deploybot_stage_duration_seconds",
			Help:    "Time a deployment spent in each pipeline state, from the stored timeline.",
			Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600},
		}, []string{"state"}),
		verdicts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "deploybot_canary_verdict_seconds",
			Help:    "Time from the start of a canary window to its verdict, by outcome: how fast bad changes are caught.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"outcome"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_chat_reconnects_total",
			Help: "Times a chat adapter reconnected to its network.",
		}, []string{"adapter"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploybot_notices_total",
			Help: "Pipeline notices announced in chat, by kind.",
		}, []string{"kind"}),
	}
	for _, o := range []deployer.State{deployer.StateDone, deployer.StateRolledBack, deployer.StateFailed, deployer.StateCancelled} {
		m.deployments.WithLabelValues(string(o)) // present at 0 from the start
	}
	m.reg.MustRegister(m.deployments, m.rollbacks, m.stages, m.verdicts, m.reconnects, m.notices,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "deploybot_queue_length",
			Help: "Deployments waiting in the queue.",
		}, func() float64 {
			q, _, _, err := s.queueState()
			if err != nil {
				return -1
			}
			return float64(len(q))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "deploybot_locked",
			Help: "1 while deployments are frozen with !lock.",
		}, func() float64 {
			if l, err := s.opt.Store.Lock(); err == nil && l != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "deploybot_dashboard_live_clients",
			Help: "Browsers following the dashboard's live updates.",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(s.clients)
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observe counts a notice: outcomes, rollbacks and verdict latency from the
// notice itself, state durations from the deployment's stored timeline.
func (s *Server) observe(n deployer.Notice) {
	m := s.metrics
	m.notices.WithLabelValues(string(n.Kind)).Inc()
	switch n.Kind {
	case deployer.NoticeDone:
		m.deployments.WithLabelValues(string(deployer.StateDone)).Inc()
	case deployer.NoticeRolledBack:
		m.deployments.WithLabelValues(string(deployer.StateRolledBack)).Inc()
		m.rollbacks.Inc()
	case deployer.NoticeFailed:
		m.deployments.WithLabelValues(string(deployer.StateFailed)).Inc()
	case deployer.NoticeCancelled:
		m.deployments.WithLabelValues(string(deployer.StateCancelled)).Inc()
	}
	if v := n.Verdict; v != nil && !v.End.IsZero() && !v.Start.IsZero() {
		m.verdicts.WithLabelValues(string(v.Outcome)).Observe(v.End.Sub(v.Start).Seconds())
	}
	if n.Deployment != 0 {
		s.observeStates(n.Deployment)
	}
}

// observeStates records how long deployment id stayed in each state it has
// left since the last look. The timeline is the source, so the durations
// are the stored ones, whichever notices were sent.
func (s *Server) observeStates(id int64) {
	evs, err := s.opt.Store.Events(id)
	if err != nil {
		s.log.Warn("reading a timeline for the metrics failed", "deployment", id, "err", err)
		return
	}
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	var states []deployer.Event
	for _, e := range evs {
		if e.Kind == "state" && e.To != "" {
			states = append(states, e)
		}
	}
	done := s.stateObs[id]
	if len(states) > 0 && len(states)-1 > done {
		s.stateObs[id] = len(states) - 1
	}
	for i := done; i+1 < len(states); i++ {
		d := states[i+1].Time.Sub(states[i].Time)
		if d >= 0 {
			s.metrics.stages.WithLabelValues(string(states[i].To)).Observe(d.Seconds())
		}
	}
}

// Reconnected counts a chat adapter's reconnection; set it as
// bot.Bot.OnReconnect.
func (s *Server) Reconnected(adapter string) {
	s.metrics.reconnects.WithLabelValues(adapter).Inc()
}
