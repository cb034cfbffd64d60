package judge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// SmokeCheck is one HTTP request a freshly synced host must answer as
// expected before anyone is asked to test it (testservers) and before the
// canary window opens (canaries).
type SmokeCheck struct {
	// Path is requested on the host's base URL, e.g. "/wiki/Main_Page".
	Path string
	// ExpectStatus is the status the answer must have. Default 200.
	// Redirects are not followed, so a check can expect a 301.
	ExpectStatus int
	// ExpectBody, when set, must occur in the answer's body (its first
	// MiB), e.g. a word of the main page that a broken page lacks.
	ExpectBody string
	// HostHeader, when set, is sent as the Host: header, to the host's own
	// address: how one reaches a virtual host (en.wikipedia.org) on one
	// particular server.
	HostHeader string
	// Timeout bounds the request. Default 5s.
	Timeout time.Duration
}

// DefaultSmokeTimeout is a smoke check's timeout when none is configured.
const DefaultSmokeTimeout = 5 * time.Second

// smokeBodyLimit bounds the body searched for ExpectBody: a page's words
// come early, and a check must not read a 2 GB download.
const smokeBodyLimit = 1 << 20

// SmokeConfig is every stage's checks and where each host answers.
type SmokeConfig struct {
	// Checks lists each stage's checks; a stage without any passes.
	Checks map[deployer.Stage][]SmokeCheck
	// URLs maps a host name to its base URL, e.g. "http://10.0.0.7:80".
	URLs map[string]string
	// Parallel bounds how many requests run at once. Default 8.
	Parallel int
	// Client makes the requests; its redirect policy is replaced so that
	// redirects are reported, not followed. Default: Go's default transport.
	Client *http.Client
}

// Validate reports checks that cannot work, for check-config.
func (c SmokeConfig) Validate() error {
	for _, stage := range deployer.Stages {
		for i, ch := range c.Checks[stage] {
			if err := ch.validate(); err != nil {
				return deployer.Errorf(deployer.EInvalid, "smoke check %d of %s: %s", i+1, stage, err.Error())
			}
		}
	}
	for h, u := range c.URLs {
		if _, err := baseURL(u); err != nil {
			return deployer.Errorf(deployer.EInvalid, "host %s: %s", h, err.Error())
		}
	}
	return nil
}

func (ch SmokeCheck) validate() error {
	switch {
	case !strings.HasPrefix(ch.Path, "/"):
		return fmt.Errorf("path %q must start with /", ch.Path)
	case strings.ContainsAny(ch.Path, " \t\r\n#"):
		return fmt.Errorf("path %q has a blank or a #", ch.Path)
	case ch.ExpectStatus != 0 && (ch.ExpectStatus < 100 || ch.ExpectStatus > 599):
		return fmt.Errorf("expect_status %d is not an HTTP status", ch.ExpectStatus)
	case strings.ContainsAny(ch.HostHeader, " \t\r\n/"):
		return fmt.Errorf("host_header %q is not a host name", ch.HostHeader)
	case ch.Timeout < 0:
		return fmt.Errorf("timeout must not be negative")
	}
	return nil
}

func baseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an http:// or https:// URL", s)
	}
	return u, nil
}

// Smoke runs smoke checks. It implements deployer.Smoker and is safe for
// concurrent use.
type Smoke struct {
	cfg    SmokeConfig
	client *http.Client
}

var _ deployer.Smoker = (*Smoke)(nil)

// NewSmoke returns a Smoker running cfg's checks.
func NewSmoke(cfg SmokeConfig) *Smoke {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	client := &http.Client{}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Smoke{cfg: cfg, client: client}
}

// Checks returns how many checks stage has.
func (s *Smoke) Checks(stage deployer.Stage) int { return len(s.cfg.Checks[stage]) }

// Smoke runs every check of stage against every host, in parallel, and
// returns one line per failure, in host order then check order, e.g.
// "mwdebug1001 GET /wiki/Main_Page answered 500, want 200". None means
// every check passed (or the stage has none).
func (s *Smoke) Smoke(ctx context.Context, stage deployer.Stage, hosts []string) []string {
	checks := s.cfg.Checks[stage]
	if len(checks) == 0 {
		return nil
	}
	results := make([][]string, len(hosts))
	for i := range results {
		results[i] = make([]string, len(checks))
	}
	sem := make(chan struct{}, s.cfg.Parallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		base, ok := s.cfg.URLs[h]
		if !ok || base == "" {
			results[i] = []string{h + ": no url configured, so its smoke checks cannot run"}
			continue
		}
		for k, ch := range checks {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				results[i][k] = s.run(ctx, h, base, ch)
			})
		}
	}
	wg.Wait()
	var out []string
	for _, r := range results {
		for _, line := range r {
			if line != "" {
				out = append(out, line)
			}
		}
	}
	return out
}

// run performs one check; it returns "" when it passed, else one line.
func (s *Smoke) run(ctx context.Context, host, base string, ch SmokeCheck) string {
	want := ch.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	timeout := ch.Timeout
	if timeout <= 0 {
		timeout = DefaultSmokeTimeout
	}
	what := host + " GET " + ch.Path
	if ch.HostHeader != "" {
		what += " (Host: " + ch.HostHeader + ")"
	}
	if err := ch.validate(); err != nil {
		return what + ": " + err.Error()
	}
	u, err := baseURL(base)
	if err != nil {
		return host + ": " + err.Error()
	}
	target := strings.TrimSuffix(u.String(), "/") + ch.Path
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return what + ": cannot make the request"
	}
	if ch.HostHeader != "" {
		req.Host = ch.HostHeader
	}
	req.Header.Set("User-Agent", "deploybot-smoke")
	resp, err := s.client.Do(req)
	if err != nil {
		return what + ": " + smokeError(ctx, err, timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, smokeBodyLimit))
	if resp.StatusCode != want {
		line := fmt.Sprintf("%s answered %d, want %d", what, resp.StatusCode, want)
		if snippet := firstLine(body); snippet != "" {
			line += ": " + snippet
		}
		return line
	}
	if err != nil && len(body) < smokeBodyLimit {
		return what + ": " + smokeError(ctx, err, timeout) + " while reading the body"
	}
	if ch.ExpectBody != "" && !bytes.Contains(body, []byte(ch.ExpectBody)) {
		return fmt.Sprintf("%s answered %d but the body lacks %q", what, resp.StatusCode, ch.ExpectBody)
	}
	return ""
}

// firstLine is the start of an error page, so the channel sees "config/
// app.json: invalid character" rather than just "500".
func firstLine(body []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	s := strings.ToValidUTF8(string(bytes.TrimSpace(line)), "?")
	if strings.HasPrefix(s, "<") {
		return "" // HTML says nothing in one line
	}
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return s
}

// smokeError turns a transport error into a few words.
func smokeError(ctx context.Context, err error, timeout time.Duration) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection dropped"
	case errors.As(err, &dns):
		return "unknown host " + dns.Name
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	}
	return "request failed"
}
