package judge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/deploybot/deploybot/deployer"
)

// HostsPlaceholder is replaced, in PrometheusConfig's queries, by a regular
// expression matching exactly the instances of the hosts being read.
const HostsPlaceholder = "{{hosts}}"

// Defaults for PrometheusConfig.
const (
	DefaultRequestsQuery = `sum by (instance) (http_requests_total{instance=~"{{hosts}}"})`
	DefaultErrorsQuery   = `sum by (instance) (http_requests_total{instance=~"{{hosts}}",code=~"5.."})`
	DefaultInstanceLabel = "instance"
)

// PrometheusConfig says which Prometheus server to ask and how. Zero fields
// take the defaults above (Timeout: DefaultTimeout).
type PrometheusConfig struct {
	// URL is the server's base URL, e.g. http://prometheus:9090.
	URL string
	// RequestsQuery and ErrorsQuery are PromQL instant queries returning one
	// series per host: its CUMULATIVE request and error counters, summed
	// over whatever other labels the counter has. {{hosts}} is replaced by
	// a regular expression matching the hosts' instances (each escaped,
	// joined by |) written for a double-quoted PromQL string, so it belongs
	// inside "..." after =~.
	//
	// Why raw counters and not rate(): the judge compares the growth of
	// counters between its own readings, exactly as with the scrape source,
	// so it needs no range selector whose width must match the scrape
	// interval, and it is right from the second reading on. A rate() over a
	// window that reaches back before the sync would mix old code's traffic
	// into the new code's, and early rate() values (less than two scrapes
	// in the range) are missing or low.
	RequestsQuery string
	ErrorsQuery   string
	// InstanceLabel is the label of the result series that names the host.
	// Default "instance".
	InstanceLabel string
	// Instances maps a host name to its InstanceLabel value, e.g.
	// "mw-canary1" -> "10.0.0.7:9100". A host not listed is looked up by
	// its own name.
	Instances map[string]string
	// Timeout bounds one Read (both queries). Default 2s.
	Timeout time.Duration
	// Client makes the requests; default a client with Go's default
	// transport.
	Client *http.Client
}

// Validate reports a configuration that cannot work, for check-config.
func (c PrometheusConfig) Validate() error {
	switch {
	case c.URL == "":
		return deployer.Errorf(deployer.EInvalid, "the prometheus source needs the server's url")
	case !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://"):
		return deployer.Errorf(deployer.EInvalid, "prometheus url %q must start with http:// or https://", c.URL)
	case c.RequestsQuery != "" && !strings.Contains(c.RequestsQuery, HostsPlaceholder):
		return deployer.Errorf(deployer.EInvalid, "requests_query must contain %s, where the stage's hosts go", HostsPlaceholder)
	case c.ErrorsQuery != "" && !strings.Contains(c.ErrorsQuery, HostsPlaceholder):
		return deployer.Errorf(deployer.EInvalid, "errors_query must contain %s, where the stage's hosts go", HostsPlaceholder)
	case c.InstanceLabel != "" && !labelName.MatchString(c.InstanceLabel):
		return deployer.Errorf(deployer.EInvalid, "instance_label %q is not a label name", c.InstanceLabel)
	case c.Timeout < 0:
		return deployer.Errorf(deployer.EInvalid, "the prometheus timeout must not be negative")
	}
	return nil
}

// labelName is what PromQL's `by (...)` accepts unquoted.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Prometheus is the metrics source that asks a Prometheus server (PromQL
// over its HTTP API) for the hosts' counters. It implements
// deployer.Metrics and is safe for concurrent use.
type Prometheus struct {
	cfg PrometheusConfig
	api v1.API
	bad error // a configuration error, reported by every Read
}

var _ deployer.Metrics = (*Prometheus)(nil)

// NewPrometheus returns a source asking cfg.URL. A configuration Validate
// rejects is not a panic: every Read then fails with the reason.
func NewPrometheus(cfg PrometheusConfig) *Prometheus {
	bad := cfg.Validate()
	if cfg.RequestsQuery == "" {
		cfg.RequestsQuery = DefaultRequestsQuery
	}
	if cfg.ErrorsQuery == "" {
		cfg.ErrorsQuery = DefaultErrorsQuery
	}
	if cfg.InstanceLabel == "" {
		cfg.InstanceLabel = DefaultInstanceLabel
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	p := &Prometheus{cfg: cfg}
	if bad != nil {
		p.bad = bad
		return p
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, Client: cfg.Client})
	if err != nil {
		p.bad = deployer.Errorf(deployer.EInvalid, "prometheus url %q is not usable", cfg.URL)
		return p
	}
	p.api = v1.NewAPI(c)
	return p
}

// instance returns the InstanceLabel value of host.
func (p *Prometheus) instance(host string) string {
	if i, ok := p.cfg.Instances[host]; ok && i != "" {
		return i
	}
	return host
}

// hostsRegexp matches exactly the given instances: each is regex-escaped
// (RE2, as Prometheus uses) and then escaped again for a double-quoted
// PromQL string, whose backslash escapes are Go's.
func hostsRegexp(instances []string) string {
	parts := make([]string, len(instances))
	for i, in := range instances {
		s := regexp.QuoteMeta(in)
		s = strings.ReplaceAll(s, `\`, `\\`)
		s = strings.ReplaceAll(s, `"`, `\"`)
		parts[i] = s
	}
	return strings.Join(parts, "|")
}

// Queries returns the two PromQL queries Read sends for hosts: what a
// person can paste into Prometheus' own page to see what the bot saw.
func (p *Prometheus) Queries(hosts []string) (requests, errs string) {
	inst := make([]string, len(hosts))
	for i, h := range hosts {
		inst[i] = p.instance(h)
	}
	re := hostsRegexp(inst)
	return strings.ReplaceAll(p.cfg.RequestsQuery, HostsPlaceholder, re),
		strings.ReplaceAll(p.cfg.ErrorsQuery, HostsPlaceholder, re)
}

// Read asks Prometheus for every host's counters, both queries evaluated at
// the same instant, which is the sample's time. A host whose requests
// series is absent (Prometheus has not scraped it yet, or its series went
// stale because scrapes fail) is present with Err set; a host with requests
// but no error series has had no errors. err is for the source as a whole:
// the server cannot be reached or rejects a query; the sample then carries
// the same reason on every host.
func (p *Prometheus) Read(ctx context.Context, hosts []string) (deployer.Sample, error) {
	now := time.Now()
	sample := deployer.Sample{Time: now, Hosts: make(map[string]deployer.Counts, len(hosts))}
	fail := func(err error) (deployer.Sample, error) {
		for _, h := range hosts {
			sample.Hosts[h] = deployer.Counts{Err: err.Error()}
		}
		return sample, err
	}
	if p.bad != nil {
		return fail(p.bad)
	}
	if len(hosts) == 0 {
		return sample, nil
	}
	byInstance := make(map[string][]string, len(hosts))
	for _, h := range hosts {
		byInstance[p.instance(h)] = append(byInstance[p.instance(h)], h)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	rq, eq := p.Queries(hosts)
	// A fixed evaluation time makes both answers describe one moment (and
	// the sample's Time say which); Prometheus answers with the latest
	// value of each series at or before it.
	at := now.Truncate(time.Millisecond)
	reqs, badReqs, err := p.query(ctx, "requests", rq, at)
	if err != nil {
		return fail(err)
	}
	errs, badErrs, err := p.query(ctx, "errors", eq, at)
	if err != nil {
		return fail(err)
	}
	sample.Time = at
	for _, h := range hosts {
		sample.Hosts[h] = deployer.Counts{Err: fmt.Sprintf("no requests series for %s=%q in Prometheus", p.cfg.InstanceLabel, p.instance(h))}
	}
	for inst, v := range reqs {
		for _, h := range byInstance[inst] {
			sample.Hosts[h] = deployer.Counts{Requests: v, Errors: errs[inst]}
		}
	}
	// A value that is not a count is that host's problem only: the
	// others' counters are still good evidence (as with the scrape source).
	for _, bad := range []map[string]string{badErrs, badReqs} {
		for inst, why := range bad {
			for _, h := range byInstance[inst] {
				sample.Hosts[h] = deployer.Counts{Err: why}
			}
		}
	}
	return sample, nil
}

// query runs one instant query and returns its values by InstanceLabel,
// and, by InstanceLabel too, why a value that is not a count (NaN,
// negative, huge: a broken exporter) was left out. Everything else that
// goes wrong fails the whole query, in one sentence for chat.
func (p *Prometheus) query(ctx context.Context, what, q string, at time.Time) (map[string]float64, map[string]string, error) {
	val, _, err := p.api.Query(ctx, q, at)
	if err != nil {
		return nil, nil, deployer.Errorf(deployer.EInternal, "%s", p.describe(ctx, what, err))
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, nil, deployer.Errorf(deployer.EInvalid, "the %s query returns a %s, not an instant vector (one series per host)", what, val.Type())
	}
	out := make(map[string]float64, len(vec))
	bad := map[string]string{}
	label := model.LabelName(p.cfg.InstanceLabel)
	for _, s := range vec {
		inst, ok := s.Metric[label]
		if !ok {
			return nil, nil, deployer.Errorf(deployer.EInvalid, "the %s query returns series without the %s label (aggregate with sum by (%s))", what, label, label)
		}
		_, dup := out[string(inst)]
		if _, dupBad := bad[string(inst)]; dup || dupBad {
			return nil, nil, deployer.Errorf(deployer.EInvalid, "the %s query returns several series for %s=%q (aggregate with sum by (%s))", what, label, inst, label)
		}
		v := float64(s.Value)
		if v != v || v < 0 || v > 1e300 {
			bad[string(inst)] = fmt.Sprintf("its %s counter in Prometheus is %v, not a count", what, s.Value)
			continue
		}
		out[string(inst)] = v
	}
	return out, bad, nil
}

// describe turns an API or transport error into a few words, without Go's
// error chain.
func (p *Prometheus) describe(ctx context.Context, what string, err error) string {
	var ae *v1.Error
	if errors.As(err, &ae) {
		msg := ae.Msg
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		switch ae.Type {
		case v1.ErrBadData:
			return fmt.Sprintf("Prometheus rejected the %s query: %s", what, msg)
		case v1.ErrTimeout, v1.ErrCanceled:
			return fmt.Sprintf("Prometheus gave up on the %s query: %s", what, msg)
		case v1.ErrClient:
			if strings.Contains(msg, "404") {
				return fmt.Sprintf("%s does not answer like Prometheus (no /api/v1/query)", p.cfg.URL)
			}
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ae.Type != v1.ErrClient {
			return fmt.Sprintf("Prometheus failed the %s query (%s): %s", what, ae.Type, msg)
		}
	}
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("Prometheus at %s did not answer within %s", p.cfg.URL, p.cfg.Timeout)
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		return "read cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("Prometheus at %s refused the connection", p.cfg.URL)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("Prometheus at %s dropped the connection", p.cfg.URL)
	case errors.As(err, &dns):
		return "unknown host " + dns.Name
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("Prometheus at %s did not answer within %s", p.cfg.URL, p.cfg.Timeout)
	}
	return fmt.Sprintf("cannot read the %s from Prometheus at %s", what, p.cfg.URL)
}
