package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// appConfig is what the sample app expects in config/app.json. The server
// only needs it to parse; the version is echoed in a response header so a
// person (or a test) can see which tree answered.
type appConfig struct {
	Site     string          `json:"site"`
	Version  int             `json:"version"`
	Features map[string]bool `json:"features"`
	// ExtraErrorRate is a share of requests failed on top of the host's
	// own error rate (branch slow-regression sets it).
	ExtraErrorRate float64 `json:"extra_error_rate"`
}

// hostServer is the HTTP handler of one demo host. It serves whatever tree
// <root>/current points at, resolving the link on every request, so a slot
// flip takes effect on the very next request.
type hostServer struct {
	name    string
	root    string
	errRate float64
	log     *slog.Logger

	mu     sync.Mutex
	rng    *rand.Rand     // guarded by mu; decides simulated backend errors
	counts map[int]uint64 // guarded by mu; requests served by status code
}

func newHostServer(name, root string, errRate float64, seed uint64, log *slog.Logger) *hostServer {
	return &hostServer{
		name:    name,
		root:    root,
		errRate: errRate,
		log:     log,
		rng:     rand.New(rand.NewPCG(seed, hashName(name))),
		// A counter that has never been incremented is exported as 0 rather
		// than left out, so a scraper sees the series from the start and can
		// tell "no errors" from "no data".
		counts: map[int]uint64{http.StatusOK: 0, http.StatusInternalServerError: 0},
	}
}

// hashName turns a host name into a second seed word, so hosts sharing one
// Seed still make different random choices.
func hashName(s string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (s *hostServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics":
		s.serveMetrics(w)
		return
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	s.serveApp(sw, r)
	code := sw.code
	if code == 0 {
		code = http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	s.mu.Lock()
	s.counts[code]++
	s.mu.Unlock()
}

// serveApp is the sample app: it refuses to serve when its config does not
// parse, fails a configured fraction of requests, and otherwise serves the
// requested file from the current slot.
func (s *hostServer) serveApp(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	// A request path with a ".." segment (also when percent-encoded, since
	// URL.Path is decoded) is refused outright rather than cleaned into
	// something else; the os.Root below is the second line of defence.
	if slices.Contains(strings.Split(r.URL.Path, "/"), "..") {
		httpError(w, http.StatusBadRequest, "bad path")
		return
	}
	slot, slotName, err := s.currentSlot()
	if errors.Is(err, fs.ErrNotExist) {
		// No current link: the bot has not synced this host yet.
		httpError(w, http.StatusServiceUnavailable, "not deployed")
		return
	}
	if err != nil {
		s.log.Warn("demo host cannot open its current slot", "host", s.name, "err", err)
		httpError(w, http.StatusInternalServerError, "current slot unreadable")
		return
	}
	defer slot.Close()
	w.Header().Set("X-Demo-Host", s.name)
	w.Header().Set("X-Demo-Slot", slotName)

	raw, err := slot.ReadFile("config/app.json")
	if err != nil {
		httpError(w, http.StatusInternalServerError, "config/app.json: "+shortErr(err))
		return
	}
	var cfg appConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		httpError(w, http.StatusInternalServerError, "config/app.json: "+err.Error())
		return
	}
	w.Header().Set("X-App-Version", strconv.Itoa(cfg.Version))

	if s.simulatedError(cfg.ExtraErrorRate) {
		httpError(w, http.StatusInternalServerError, "simulated backend error")
		return
	}
	if r.URL.Path == "/api/suggest" {
		// The search backend: the old one answers (no suggestions); the
		// one search_v2 turns on has no index and fails every call.
		if cfg.Features["search_v2"] {
			httpError(w, http.StatusInternalServerError, "search_v2: the suggestion index is missing")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, "[]")
		return
	}

	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	f, st, err := openFile(slot, name)
	if err != nil {
		// Missing files, directories without an index.html, and symlinks
		// that lead out of the slot (os.Root refuses to follow them) are all
		// simply not there.
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	defer f.Close()
	http.ServeContent(w, r, path.Base(st.Name()), st.ModTime(), f)
}

// openFile opens a regular file in the slot, or a directory's index.html.
func openFile(slot *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := slot.Open(name)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		f.Close()
		if f, err = slot.Open(path.Join(name, "index.html")); err != nil {
			return nil, nil, err
		}
		st, err = f.Stat()
	}
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// currentSlot opens the directory <root>/current points at. It reads the
// link itself (rather than opening through it) to report which slot that is.
// An error wrapping fs.ErrNotExist means there is no current link.
func (s *hostServer) currentSlot() (*os.Root, string, error) {
	link := filepath.Join(s.root, "current")
	target, err := os.Readlink(link)
	var dir string
	switch {
	case err == nil:
		dir = target
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.root, dir)
		}
	case errors.Is(err, syscall.EINVAL):
		// current is a plain directory, not a link: serve it as it is.
		dir, target = link, "current"
	default:
		return nil, "", err
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		// A dangling link is a broken deployment, not an undeployed host.
		err = fmt.Errorf("current points at missing %s", target)
	}
	return root, filepath.ToSlash(target), err
}

func (s *hostServer) simulatedError(extra float64) bool {
	if s.errRate+extra <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.errRate+extra
}

// serveMetrics writes the request counters in the Prometheus text format
// (version 0.0.4) by hand: one counter needs no client library, and a demo
// host stands for a web server that is not written in Go.
func (s *hostServer) serveMetrics(w http.ResponseWriter) {
	s.mu.Lock()
	codes := make([]int, 0, len(s.counts))
	for c := range s.counts {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	b.WriteString("# HELP http_requests_total Requests the demo app answered, by HTTP status code.\n")
	b.WriteString("# TYPE http_requests_total counter\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "http_requests_total{code=\"%d\"} %d\n", c, s.counts[c])
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

// httpError answers with code and a one-line plain-text body.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// shortErr drops the slot's absolute path from a file error: the body is
// for whoever made the request.
func shortErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
