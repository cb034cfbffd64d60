// Package web is deploybot's dashboard: the deployment running now with
// live progress (server-sent events), the queue and the lock, the history,
// one page per deployment with its timeline, files, hosts and canary chart
// (SVG drawn here, on the server), a JSON API, /healthz, and the bot's own
// Prometheus metrics at /metrics. It is the only place where the bot serves
// HTTP.
//
// Everything here is read-only: only GET and HEAD are answered. It learns
// about progress as a chat adapter (Server implements bot.Adapter and sees
// every deployer.Notice) and reads everything else from the store. Pages
// are html/template, so whatever people typed (refs, reasons, lock
// messages) is escaped; they work offline (no CDN, no framework; one small
// inline script for the live updates, allowed by a per-response nonce).
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploybot/deploybot/deployer"
)

// Options are what the dashboard reads from. Store is required.
type Options struct {
	Store deployer.Store
	// Fleet is asked, on the pages that show hosts, which commit each host
	// serves now (Host.Current).
	Fleet deployer.Fleet
	// Pipeline gives the canary window and baseline wait, to count down
	// the waits the deployment itself does not store a deadline for.
	Pipeline deployer.Config
	// Token, when not empty, must accompany every request but /healthz:
	// "Authorization: Bearer TOKEN", ?token=TOKEN (which also sets a
	// cookie) or that cookie. Listen refuses a non-loopback address
	// without one.
	Token string
	// BaseURL is how people reach the dashboard, for links in chat; empty
	// means http:// and the address it listens on.
	BaseURL string
	// ChangeURL links a change without a URL of its own; {id} is replaced
	// by the change id. Empty means no link.
	ChangeURL string
	// PageSize is the history's page length (default 25).
	PageSize int
	// MaxLive bounds the live-update streams open at once (default 64);
	// each costs a goroutine and a status read a second.
	MaxLive int
	Logger  *slog.Logger
	// Now is the clock (tests may replace it); time.Now by default.
	Now func() time.Time
}

// Server is the dashboard. It is an http.Handler, a bot.Adapter named "web"
// (so it sees every notice), and it owns the bot's metrics registry.
type Server struct {
	opt     Options
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	pages   *pages

	mu      sync.Mutex
	ln      net.Listener
	changed chan struct{} // closed and replaced on every notice
	last    map[int64]deployer.Notice
	clients int

	curMu sync.Mutex // one round of Host.Current at a time; guards cur, curAt
	cur   map[string]HostNow
	curAt time.Time

	obsMu    sync.Mutex    // one timeline read for the metrics at a time
	stateObs map[int64]int // state events already observed per deployment
}

// New returns a dashboard reading from opt.Store.
func New(opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.PageSize <= 0 {
		opt.PageSize = 25
	}
	if opt.MaxLive <= 0 {
		opt.MaxLive = 64
	}
	s := &Server{
		opt:      opt,
		log:      opt.Logger,
		mux:      http.NewServeMux(),
		changed:  make(chan struct{}),
		last:     map[int64]deployer.Notice{},
		stateObs: map[int64]int{},
	}
	s.metrics = newMetrics(s)
	s.pages = mustPages()
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("/{$}", s.handleNow)
	s.mux.HandleFunc("/history", s.handleHistory)
	s.mux.HandleFunc("/deployments/{id}", s.handleDeployment)
	s.mux.HandleFunc("/events", s.handleEvents)
	s.mux.HandleFunc("/api/deployments", s.handleAPIList)
	s.mux.HandleFunc("/api/deployments/{id}", s.handleAPIDeployment)
	s.mux.HandleFunc("/api/status", s.handleAPIStatus)
	s.mux.HandleFunc("/healthz", s.handleHealth)
	s.mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}))
}

// Registry is the bot's own metrics registry, served at /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// ServeHTTP answers GET and HEAD only, checks the token when one is set,
// and adds the headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// The token may be in the URL once; never hand it to another site.
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read-only: only GET and HEAD are allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.opt.Token != "" && r.URL.Path != "/healthz" && !s.authorized(w, r) {
		h.Set("WWW-Authenticate", `Bearer realm="deploybot"`)
		http.Error(w, "this dashboard needs its access token: send Authorization: Bearer TOKEN, or open it once with ?token=TOKEN", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

const tokenCookie = "deploybot_token"

// authorized checks the request's token. A correct ?token= sets the
// cookie, so the links on the page work without repeating it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && s.tokenOK(strings.TrimSpace(tok))
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		if !s.tokenOK(tok) {
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.HasPrefix(s.opt.BaseURL, "https://")})
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil {
		return s.tokenOK(c.Value)
	}
	return false
}

func (s *Server) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.opt.Token)) == 1
}

// Listen binds addr. An address reachable from other machines is refused
// unless a token is set. Port 0 picks a free port; Addr reports it.
func (s *Server) Listen(addr string) error {
	if s.opt.Token == "" && !Loopback(addr) {
		return deployer.Errorf(deployer.EInvalid, "the dashboard would listen on %s, reachable from other machines, without an access token: set web.token_env or web.token_file, or listen on 127.0.0.1", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Loopback reports whether addr (host:port) listens only on the loopback
// interface. An empty host, 0.0.0.0, :: and any name other than localhost
// count as reachable from elsewhere. Listen refuses the others without a
// token; check-config (package config) asks the same question here.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address Listen bound ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the dashboard's base URL, without a trailing slash: BaseURL, or
// http:// and the bound address.
func (s *Server) URL() string {
	if s.opt.BaseURL != "" {
		return strings.TrimSuffix(s.opt.BaseURL, "/")
	}
	addr := s.Addr()
	// Bound to every interface: 0.0.0.0 is no address to give people, the
	// machine's name is the best guess (base_url says it exactly).
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			if name, err := os.Hostname(); err == nil && name != "" {
				addr = net.JoinHostPort(name, port)
			}
		}
	}
	return "http://" + addr
}

// Link is the page of deployment id, for bot.Bot.Link.
func (s *Server) Link(id int64) string {
	return s.URL() + "/deployments/" + strconv.FormatInt(id, 10)
}

// Serve answers requests on the bound address until ctx ends, then shuts
// down (open live-update streams end with ctx).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("dashboard: Serve before Listen")
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("dashboard listening", "url", s.URL(), "addr", ln.Addr().String(), "token", s.opt.Token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("dashboard: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

// nonce returns a fresh value for the inline script's CSP nonce.
func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// setPageHeaders allows the page nothing but its own inline styles, the
// one script carrying the nonce, and connections back to this server.
func setPageHeaders(w http.ResponseWriter, n string) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; script-src 'nonce-"+n+"'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
}

// internalError logs err in full and shows the person only that something
// went wrong, the way the bot does in chat.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	s.log.Error("dashboard request failed", append([]any{"path", r.URL.Path, "err", err}, attrs...)...)
	http.Error(w, "internal error (the bot's log has the details)", http.StatusInternalServerError)
}

// parseID reads the {id} path value; ok is false (and the answer written)
// when it is not a deployment number.
func parseID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, fmt.Sprintf("%q is not a deployment number", raw), http.StatusNotFound)
		return 0, false
	}
	return id, true
}

// changeURL is the link for a change: its own URL when it has one (http or
// https only), else the configured pattern.
func (s *Server) changeURL(c deployer.Change) string {
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			return c.URL
		}
		return ""
	}
	if s.opt.ChangeURL == "" {
		return ""
	}
	id := c.Commit
	if id == "" {
		id = c.ID
	}
	return strings.ReplaceAll(s.opt.ChangeURL, "{id}", url.PathEscape(id))
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "err", fmt.Sprint(v...)) }

// Close releases the bound address when Serve never ran (Serve closes it
// itself when its context ends). It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
