package judge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deploybot/deploybot/deployer"
)

// ScrapeConfig says where each host exposes its counters and which series
// count as requests and errors. Zero fields take the defaults below.
type ScrapeConfig struct {
	// Targets maps a host name to the URL of its Prometheus text-format
	// metrics page, e.g. "http://mw-canary1:9090/metrics".
	Targets map[string]string
	// Metric is the request counter; every series of it counts as requests.
	// Default "http_requests_total".
	Metric string
	// CodeLabel is the label holding the response status. Default "code".
	CodeLabel string
	// ErrorCodes is a regular expression; series whose CodeLabel matches it
	// count as errors. Default "^5..$" (server errors only: a 404 is the
	// client's problem, not the deployment's).
	ErrorCodes string
	// Timeout bounds one host's read. Default 2s: the judge reads every
	// second or so, and a host slower than that is reported, not waited for.
	Timeout time.Duration
	// Client makes the requests. Default: a client with Go's default
	// transport (the timeout comes from Timeout, through the context).
	Client *http.Client
}

// Defaults for ScrapeConfig.
const (
	DefaultMetric     = "http_requests_total"
	DefaultCodeLabel  = "code"
	DefaultErrorCodes = "^5..$"
	DefaultTimeout    = 2 * time.Second
)

// maxBody bounds one metrics page. Real pages are kilobytes to a few
// megabytes; anything bigger is not what we were told to read.
const maxBody = 32 << 20

// Validate reports a configuration that cannot work, for check-config.
func (c ScrapeConfig) Validate() error {
	if c.ErrorCodes != "" {
		if _, err := regexp.Compile(c.ErrorCodes); err != nil {
			return deployer.Errorf(deployer.EInvalid, "error code pattern %q is not a valid regular expression", c.ErrorCodes)
		}
	}
	if c.Timeout < 0 {
		return deployer.Errorf(deployer.EInvalid, "scrape timeout must not be negative")
	}
	return nil
}

// Scrape is the embedded metrics source: the bot reads each host's
// Prometheus-format metrics page itself, so no Prometheus server is needed.
// It implements deployer.Metrics and is safe for concurrent use.
type Scrape struct {
	cfg    ScrapeConfig
	errors *regexp.Regexp
	bad    error // a configuration error, reported by every Read
}

var _ deployer.Metrics = (*Scrape)(nil)

// NewScrape returns a Scrape reading cfg.Targets. An invalid ErrorCodes
// pattern is not a panic: every Read then fails with the reason (and
// ScrapeConfig.Validate reports it earlier).
func NewScrape(cfg ScrapeConfig) *Scrape {
	if cfg.Metric == "" {
		cfg.Metric = DefaultMetric
	}
	if cfg.CodeLabel == "" {
		cfg.CodeLabel = DefaultCodeLabel
	}
	if cfg.ErrorCodes == "" {
		cfg.ErrorCodes = DefaultErrorCodes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	s := &Scrape{cfg: cfg}
	re, err := regexp.Compile(cfg.ErrorCodes)
	if err != nil {
		s.bad = cfg.Validate()
	}
	s.errors = re
	return s
}

// Read fetches every host's page in parallel and returns its cumulative
// request and error counters. A host that cannot be read is present with Err
// set to a short reason meant for chat; err is only for a configuration
// that makes every read impossible.
func (s *Scrape) Read(ctx context.Context, hosts []string) (deployer.Sample, error) {
	sample := deployer.Sample{Time: time.Now(), Hosts: make(map[string]deployer.Counts, len(hosts))}
	if s.bad != nil {
		return sample, s.bad
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			c := s.readHost(ctx, h)
			mu.Lock()
			sample.Hosts[h] = c
			mu.Unlock()
		})
	}
	wg.Wait()
	return sample, nil
}

// readHost reads one host. Every failure becomes Counts.Err, worded for a
// person: the judge shows it in chat as the reason a host has no data.
func (s *Scrape) readHost(ctx context.Context, host string) deployer.Counts {
	url, ok := s.cfg.Targets[host]
	if !ok || url == "" {
		return deployer.Counts{Err: "no metrics target configured"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return deployer.Counts{Err: "bad metrics URL " + url}
	}
	// Ask for the text format: an exporter built with client_golang would
	// otherwise be free to answer in protobuf.
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,text/plain;q=0.5")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return deployer.Counts{Err: s.fetchError(ctx, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return deployer.Counts{Err: fmt.Sprintf("metrics page answered HTTP %d", resp.StatusCode)}
	}
	c, err := s.count(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		var pe *parseError
		var big *tooBig
		switch {
		case errors.As(err, &pe):
			return deployer.Counts{Err: fmt.Sprintf("malformed metrics page (%s)", pe.Error())}
		case errors.As(err, &big):
			return deployer.Counts{Err: "metrics page larger than 32 MiB"}
		case errors.As(err, new(*missing)):
			return deployer.Counts{Err: err.Error()}
		}
		return deployer.Counts{Err: s.fetchError(ctx, err)}
	}
	return c
}

type tooBig struct{}

func (*tooBig) Error() string { return "too big" }

// missing says what the page lacks for the counts: the counter, or the
// code label its errors are told by.
type missing struct{ msg string }

func (m *missing) Error() string { return m.msg }

// count sums the request counter over all its series, and over those whose
// code label matches the error pattern. A page where no series has the code
// label is an error, not 0 errors: the label is misnamed in the
// configuration (status, not code), and a canary failing every request
// would pass. A series listed twice counts once, its first value, as
// Prometheus keeps the first sample of a series in a scrape: summed, it
// would double the host's traffic, and a duplicate that comes and goes
// would read as a counter reset.
func (s *Scrape) count(r io.Reader) (deployer.Counts, error) {
	lr := &countingReader{r: r}
	var c deployer.Counts
	found, labelled := false, false
	seen := map[string]bool{}
	err := readSeries(lr, func(x series) error {
		if x.name != s.cfg.Metric {
			return nil
		}
		if math.IsNaN(x.value) || math.IsInf(x.value, 0) || x.value < 0 {
			return fmt.Errorf("%s value %v is not a count", s.cfg.Metric, x.value)
		}
		key := x.key()
		if seen[key] {
			return nil
		}
		seen[key] = true
		found = true
		if x.labels[s.cfg.CodeLabel] != "" {
			labelled = true
		}
		c.Requests += x.value
		if s.errors.MatchString(x.labels[s.cfg.CodeLabel]) {
			c.Errors += x.value
		}
		return nil
	})
	if lr.n > maxBody {
		return c, &tooBig{}
	}
	if err != nil {
		return c, err
	}
	if !found {
		return c, &missing{"no " + s.cfg.Metric + " counter on the metrics page"}
	}
	if !labelled {
		// Its errors would always count 0: every canary would pass.
		return c, &missing{fmt.Sprintf("no %s series on the metrics page has a %s label, so its errors cannot be counted", s.cfg.Metric, s.cfg.CodeLabel)}
	}
	return c, nil
}

// series is one sample line of a metrics page: a metric name, its labels
// and its value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// key identifies the series among its family's: its labels, sorted.
func (x series) key() string {
	names := make([]string, 0, len(x.labels))
	for n := range x.labels {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%q=%q,", n, x.labels[n])
	}
	return b.String()
}

// parseError says why a metrics page is malformed, in words for chat:
// "line 4: invalid metric name".
type parseError struct {
	line int // 0 when the problem is not one line's
	msg  string
}

func (e *parseError) Error() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

// readSeries parses a Prometheus text-format body with expfmt's parser and
// calls fn for every counter, gauge or untyped series, family by family in
// name order. Like Prometheus itself it rejects the whole body on any
// malformed line, so an HTML error page served with status 200 is an error,
// not "metric absent". Summaries and histograms are skipped: their series
// are not counts of requests. A series fn rejects ends the read with that
// reason as a *parseError.
//
// Series names may be quoted UTF-8 ({"http.requests.total"}), as text format
// 1.0 writes them, so the parser validates names as UTF-8.
func readSeries(r io.Reader, fn func(series) error) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		var pe expfmt.ParseError
		if errors.As(err, &pe) {
			return &parseError{line: pe.Line, msg: pe.Msg}
		}
		return err
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := fams[n]
		for _, m := range f.GetMetric() {
			x := series{name: n, labels: make(map[string]string, len(m.GetLabel()))}
			for _, l := range m.GetLabel() {
				x.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				x.value = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				x.value = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				x.value = m.GetUntyped().GetValue()
			default:
				continue
			}
			if err := fn(x); err != nil {
				return &parseError{msg: err.Error()}
			}
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// fetchError turns a transport error into a few words, without Go's error
// chain ("Get \"http://...\": dial tcp ...: connect: connection refused").
func (s *Scrape) fetchError(ctx context.Context, err error) string {
	var dns *net.DNSError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s", s.cfg.Timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return "read cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection dropped while reading"
	case errors.As(err, &dns):
		return "unknown host " + dns.Name
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("timed out after %s", s.cfg.Timeout)
	}
	return "cannot fetch the metrics page"
}
