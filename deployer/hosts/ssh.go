package hosts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/deploybot/deploybot/deployer"
)

// SSHConfig is how to reach one host over ssh and where its tree lives.
type SSHConfig struct {
	// Address is host or host:port; Port applies when it has no port.
	Address string
	Port    int // default 22
	User    string
	// Root is the remote directory holding slots/ and current (absolute).
	Root string
	// KeyFile is a private key without a passphrase. With UseAgent the
	// keys of the agent at $SSH_AUTH_SOCK are offered too (first).
	KeyFile  string
	UseAgent bool
	// KnownHosts is the known_hosts file the host's key must be in. It is
	// required: a host key is never accepted unchecked.
	KnownHosts string
	// ConnectTimeout bounds the TCP connect and the ssh handshake
	// (default 10s); CommandTimeout bounds each remote command (default
	// 10m); Keepalive is how often an idle connection is probed, and how
	// long an answer may take before it is dropped (default 15s).
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	Keepalive      time.Duration
	// Logger receives one line per sync and per connection event; nil
	// discards. For a sync, a logger the context carries
	// (deployer.WithLogger, with the deployment's id) is used instead.
	Logger *slog.Logger
	// Rebuilt, when set, is called when a sync had to rewrite the slot in
	// full, with the reason (a drifted slot, an interrupted sync, a host
	// never synced), so the runner can say so in chat. It is called
	// before Sync returns.
	Rebuilt func(host, reason string)
}

// Defaults for SSHConfig's zero values, as config.example.yaml documents
// them; the config package reads them from here.
const (
	DefaultSSHPort        = 22
	DefaultConnectTimeout = 10 * time.Second
	DefaultCommandTimeout = 10 * time.Minute
	DefaultKeepalive      = 15 * time.Second
)

// SSH is a host reached over ssh (golang.org/x/crypto/ssh). It keeps the
// same two-slot layout as Local and runs fixed POSIX shell scripts there
// (ssh_scripts.go); it holds one connection, dialled on first use and
// again after a failure, for every sync, read and hook of the host.
type SSH struct {
	name string
	cfg  SSHConfig
	addr string
	auth []ssh.AuthMethod

	// syncMu serialises syncs of this host within the process, and guards
	// known: the host's state as the last sync left it (nil: read it).
	syncMu sync.Mutex
	known  *remoteState

	connMu sync.Mutex
	client *ssh.Client

	// skipSlotCheck trusts a slot's fingerprint token without checking the
	// slot's entries. It is not configurable: the benchmark sets it to
	// measure what the check costs.
	skipSlotCheck bool
}

var _ deployer.Host = (*SSH)(nil)

var commitName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// NewSSH returns the host called name reached as cfg says. It reads the key
// file now, so a missing or unusable key fails at start-up; it does not
// connect.
func NewSSH(name string, cfg SSHConfig) (*SSH, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultSSHPort
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	if cfg.Address == "" {
		return nil, fmt.Errorf("host %s: no ssh address", name)
	}
	if !strings.HasPrefix(cfg.Root, "/") {
		return nil, fmt.Errorf("host %s: the root %q must be an absolute path on the host", name, cfg.Root)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("host %s: no ssh user", name)
	}
	if cfg.KnownHosts == "" {
		return nil, fmt.Errorf("host %s: no known_hosts file: host keys are always checked", name)
	}
	h := &SSH{name: name, cfg: cfg, addr: cfg.Address}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		h.addr = net.JoinHostPort(strings.Trim(cfg.Address, "[]"), strconv.Itoa(cfg.Port))
	}
	if cfg.UseAgent && os.Getenv("SSH_AUTH_SOCK") == "" {
		return nil, fmt.Errorf("host %s: use_agent is set but SSH_AUTH_SOCK is not", name)
	}
	if cfg.KeyFile != "" {
		data, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("host %s: reading the ssh key: %w", name, err)
		}
		signer, err := ssh.ParsePrivateKey(data)
		var pe *ssh.PassphraseMissingError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("host %s: the ssh key %s has a passphrase; load it into an ssh agent and set use_agent instead", name, cfg.KeyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("host %s: the ssh key %s cannot be used: %v", name, cfg.KeyFile, err)
		}
		h.auth = append(h.auth, ssh.PublicKeys(signer))
	}
	if len(h.auth) == 0 && !cfg.UseAgent {
		return nil, fmt.Errorf("host %s: no ssh key_file and use_agent is off: nothing to log in with", name)
	}
	return h, nil
}

// Name returns the host's name, as configured.
func (h *SSH) Name() string { return h.name }

// Address returns host:port.
func (h *SSH) Address() string { return h.addr }

// Root returns the remote root directory.
func (h *SSH) Root() string { return h.cfg.Root }

// Close drops the connection. A later call dials again.
func (h *SSH) Close() error {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.client == nil {
		return nil
	}
	err := h.client.Close()
	h.client = nil
	return err
}

func (h *SSH) logger() *slog.Logger {
	if h.cfg.Logger != nil {
		return h.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// HostKeyError is a host key that known_hosts does not vouch for.
type HostKeyError struct {
	Host, Addr, KnownHosts string
	Changed                bool // a different key is known for the host
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host %s (%s): its ssh host key does not match the one in %s; the host may have been reinstalled, or someone is intercepting the connection: check, then replace the entry", e.Host, e.Addr, e.KnownHosts)
	}
	host, port, err := net.SplitHostPort(e.Addr)
	if err != nil {
		host, port = e.Addr, "22"
	}
	return fmt.Sprintf("host %s (%s): its ssh host key is not in %s; check it and add it (ssh-keyscan -p %s %s >> %s)", e.Host, e.Addr, e.KnownHosts, port, host, e.KnownHosts)
}

// conn returns the host's connection, dialling it when there is none.
func (h *SSH) conn(ctx context.Context) (*ssh.Client, error) {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.client != nil {
		return h.client, nil
	}
	c, err := h.dial(ctx)
	if err != nil {
		return nil, err
	}
	h.client = c
	go h.keepalive(c)
	return c, nil
}

// drop closes c when it is still the host's connection, so the next use
// dials again.
func (h *SSH) drop(c *ssh.Client) {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.client == c {
		h.client = nil
	}
	c.Close()
}

func (h *SSH) dial(ctx context.Context) (*ssh.Client, error) {
	check, err := knownhosts.New(h.cfg.KnownHosts)
	if err != nil {
		return nil, &OpError{Host: h.name, Op: "read known_hosts", Path: h.cfg.KnownHosts, Err: unwrapPath(err)}
	}
	var keyErr *HostKeyError
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			keyErr = &HostKeyError{Host: h.name, Addr: h.addr, KnownHosts: h.cfg.KnownHosts, Changed: len(ke.Want) > 0}
			return keyErr
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			keyErr = &HostKeyError{Host: h.name, Addr: h.addr, KnownHosts: h.cfg.KnownHosts, Changed: true}
			return keyErr
		}
		return err
	}
	auth := h.auth
	if h.cfg.UseAgent {
		// The agent's keys are asked for at each login, so a key added to
		// it later is used; its connection is needed only until then.
		conn, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
		if err != nil {
			return nil, &OpError{Host: h.name, Op: "reach the ssh agent", Err: err}
		}
		defer conn.Close()
		auth = append([]ssh.AuthMethod{ssh.PublicKeysCallback(agent.NewClient(conn).Signers)}, auth...)
	}
	cfg := &ssh.ClientConfig{
		User:              h.cfg.User,
		Auth:              auth,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: knownAlgorithms(check, h.addr),
		Timeout:           h.cfg.ConnectTimeout,
	}
	d := net.Dialer{Timeout: h.cfg.ConnectTimeout, KeepAlive: h.cfg.Keepalive}
	raw, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, &OpError{Host: h.name, Op: "connect to " + h.addr, Err: err}
	}
	// The deadline bounds the handshake and the login; it is lifted after.
	raw.SetDeadline(time.Now().Add(h.cfg.ConnectTimeout))
	cc, chans, reqs, err := ssh.NewClientConn(raw, h.addr, cfg)
	if err != nil {
		raw.Close()
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, &OpError{Host: h.name, Op: "ssh to " + h.addr, Err: err}
	}
	raw.SetDeadline(time.Time{})
	h.logger().Info("ssh connected", "host", h.name, "addr", h.addr)
	return ssh.NewClient(cc, chans, reqs), nil
}

// knownAlgorithms lists the host key types known_hosts holds for addr, so
// the server is asked for a key that can be checked: otherwise it may offer
// another of its keys and fail the check although the host is known. It
// returns nil (the library's default order) when none is known, so the
// check then fails with "unknown".
func knownAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil
	}
	err = check(addr, tcp, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos
}

// probeKey is a key no host has, used to ask known_hosts which keys it
// holds for an address.
type probeKey struct{}

func (probeKey) Type() string                        { return "deploybot-probe" }
func (probeKey) Marshal() []byte                     { return []byte("deploybot-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// keepalive probes the connection every Keepalive and drops it when the
// host does not answer within another Keepalive: a host that went away is
// noticed before the next command waits on it.
func (h *SSH) keepalive(c *ssh.Client) {
	t := time.NewTicker(h.cfg.Keepalive)
	defer t.Stop()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err == nil {
				continue
			}
			h.logger().Warn("ssh keepalive failed; dropping the connection", "host", h.name, "err", err)
		case <-time.After(h.cfg.Keepalive):
			h.logger().Warn("ssh keepalive unanswered; dropping the connection", "host", h.name, "after", h.cfg.Keepalive)
		case <-done:
			return
		}
		h.drop(c)
		return
	}
}

// exitError is a remote command that ran and exited non-zero.
type exitError struct {
	status int
	stderr string
}

func (e *exitError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		return fmt.Sprintf("exit status %d", e.status)
	}
	return fmt.Sprintf("exit status %d: %s", e.status, msg)
}

func exitStatus(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.status
	}
	return -1
}

// run runs the command string cmd on the host with stdin fed by feed (nil
// for none) and stdout copied to out (nil to discard). A session that
// cannot be opened on the kept connection means it died: it is dropped and
// dialled once more. A command that outlives CommandTimeout or ctx has its
// connection closed, which ends it on the host.
func (h *SSH) run(ctx context.Context, cmd string, feed func(io.Writer) error, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.CommandTimeout)
	defer cancel()
	var (
		c    *ssh.Client
		sess *ssh.Session
		err  error
	)
	for attempt := 0; attempt < 2; attempt++ {
		if c, err = h.conn(ctx); err != nil {
			return err
		}
		if sess, err = c.NewSession(); err == nil {
			break
		}
		h.drop(c)
	}
	if err != nil {
		return &OpError{Host: h.name, Op: "open an ssh session", Err: err}
	}
	defer sess.Close()
	var stderr bytes.Buffer
	sess.Stderr = &limitedBuffer{buf: &stderr, max: 64 << 10}
	if out != nil {
		sess.Stdout = out
	}
	var stdin io.WriteCloser
	if feed != nil {
		if stdin, err = sess.StdinPipe(); err != nil {
			return &OpError{Host: h.name, Op: "open an ssh session", Err: err}
		}
	}
	if err := sess.Start(cmd); err != nil {
		return &OpError{Host: h.name, Op: "start a command", Err: err}
	}
	feedErr := make(chan error, 1)
	if feed != nil {
		go func() {
			err := feed(stdin)
			stdin.Close()
			feedErr <- err
		}()
	} else {
		feedErr <- nil
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		// Closing the connection is what reliably stops the remote side;
		// the next command dials again.
		h.drop(c)
		<-waited
		<-feedErr
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &OpError{Host: h.name, Op: "run a command", Err: fmt.Errorf("no answer within %s", h.cfg.CommandTimeout)}
		}
		return &OpError{Host: h.name, Op: "run a command", Err: ctx.Err()}
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		<-feedErr // the remote side stopped reading; whatever feed says is moot
		return &exitError{status: ee.ExitStatus(), stderr: stderr.String()}
	}
	if err != nil {
		// No exit status: the connection went away mid-command.
		h.drop(c)
		<-feedErr
		return &OpError{Host: h.name, Op: "run a command", Err: fmt.Errorf("connection lost: %w", err)}
	}
	if err := <-feedErr; err != nil {
		return err
	}
	return nil
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Run runs argv on the host (a hook): each argument is single-quoted, so
// the remote shell runs the program with exactly these arguments. It
// returns the command's combined output, at most 64 KiB.
func (h *SSH) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	var out bytes.Buffer
	err := h.run(ctx, strings.Join(quoted, " "), nil, &limitedBuffer{buf: &out, max: 64 << 10})
	var ee *exitError
	if errors.As(err, &ee) {
		out.WriteString(ee.stderr)
	}
	return out.Bytes(), err
}

// remoteState is what the probe script reports.
type remoteState struct {
	active  string // "a", "b" or "" (no current)
	target  string // current's text as read ("" when there is none)
	markers [2]*Marker
	merrs   [2]error
	mtexts  [2]string // the markers' text as read, without the final newline
	tokens  [2]string // fingerprint tokens, "" when absent
}

func slotIndex(s string) int {
	if s == "b" {
		return 1
	}
	return 0
}

var hexToken = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newToken returns a fresh fingerprint token: it names one completed write
// of a slot, so a sync planned on an older reading of the host is refused.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *SSH) probe(ctx context.Context, create bool) (*remoteState, error) {
	mode := "look"
	if create {
		mode = "create"
	}
	var out bytes.Buffer
	err := h.run(ctx, shellCommand(probeScript, h.cfg.Root, mode), nil, &limitedBuffer{buf: &out, max: 4 << 20})
	if err != nil {
		if ee := (*exitError)(nil); errors.As(err, &ee) {
			return nil, &OpError{Host: h.name, Op: "prepare " + h.cfg.Root, Err: err}
		}
		return nil, err
	}
	fields := strings.Split(out.String(), "\x00")
	if len(fields) != 6 {
		return nil, &OpError{Host: h.name, Op: "read the slots", Err: fmt.Errorf("unexpected answer of %d fields", len(fields))}
	}
	st := &remoteState{}
	switch cur := fields[0]; {
	case cur == "N":
	case cur == "X":
		return nil, &OpError{Host: h.name, Op: "read", Path: currentLink, Err: errors.New("not a symlink")}
	case strings.HasPrefix(cur, "L"):
		st.target = cur[1:]
		switch path.Clean(cur[1:]) {
		case slotDir("a"):
			st.active = "a"
		case slotDir("b"):
			st.active = "b"
		default:
			return nil, &OpError{Host: h.name, Op: "read", Path: currentLink, Err: fmt.Errorf("points at %q, not at slots/a or slots/b", cur[1:])}
		}
	default:
		return nil, &OpError{Host: h.name, Op: "read the slots", Err: fmt.Errorf("unexpected answer %q", cur)}
	}
	for i, s := range []string{"a", "b"} {
		m, fp := fields[1+2*i], fields[2+2*i]
		if strings.HasPrefix(m, "M") {
			st.mtexts[i] = strings.TrimRight(m[1:], "\n")
			var mk Marker
			if err := json.Unmarshal([]byte(m[1:]), &mk); err != nil {
				st.merrs[i] = opError(h.name, "read marker", markerPath(s), err)
			} else {
				st.markers[i] = &mk
			}
		}
		if strings.HasPrefix(fp, "F") && hexToken.MatchString(strings.TrimSpace(fp[1:])) {
			st.tokens[i] = strings.TrimSpace(fp[1:])
		}
	}
	return st, nil
}

// Current returns the commit the host serves ("" when it serves nothing
// yet); an error when current or the served slot's marker is not sound.
func (h *SSH) Current(ctx context.Context) (string, error) {
	st, err := h.probe(ctx, false)
	if err != nil {
		return "", err
	}
	if st.active == "" {
		return "", nil
	}
	i := slotIndex(st.active)
	if st.merrs[i] != nil {
		return "", st.merrs[i]
	}
	m := st.markers[i]
	if m == nil {
		return "", opError(h.name, "read marker", markerPath(st.active), errors.New("missing: the served slot's contents are unknown"))
	}
	if len(m.Pending) > 0 {
		return "", opError(h.name, "read marker", markerPath(st.active), fmt.Errorf("the served slot records an interrupted write towards %s", strings.Join(m.Pending, ", ")))
	}
	return m.Commit, nil
}

// SSHSyncResult is what an ssh sync did, with what it sent.
type SSHSyncResult struct {
	SyncResult
	// Bytes is the size of the data stream sent to the host (the tar
	// archive and the deletion list).
	Bytes int64
}

// Sync makes the host serve commit; see deployer.Host.
func (h *SSH) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	_, err := h.SyncReport(ctx, commit, src)
	return err
}

// SyncReport is Sync that says what it did: nothing, a flip, an
// incremental write or a full rebuild (with why), how many files and how
// many bytes went to the host.
//
// The plan is Local's (slots.go): the inactive slot is brought from the
// commit its marker names to the target by the paths that differ, or
// rebuilt in full when its contents are unknown. On top of it, a slot is
// trusted only while it has the fingerprint recorded when the bot last
// finished writing it; a slot without one (an interrupted sync) or with
// another (someone changed files on the host) is rebuilt, and Rebuilt is
// told why.
func (h *SSH) SyncReport(ctx context.Context, commit string, src deployer.TreeSource) (SSHSyncResult, error) {
	h.syncMu.Lock()
	defer h.syncMu.Unlock()
	start := time.Now()
	res, err := h.sync(ctx, commit, src)
	attrs := []any{"host", h.name, "commit", commit, "action", res.Action, "slot", res.Slot,
		"written", res.Written, "deleted", res.Deleted, "bytes", res.Bytes, "took", time.Since(start)}
	log := deployer.LoggerFrom(ctx, h.logger())
	switch {
	case err != nil:
		log.Error("sync failed", append(attrs, "err", err)...)
	case res.Action == SyncRebuild:
		log.Warn("synced by rebuilding the slot in full", append(attrs, "reason", res.Reason)...)
		if h.cfg.Rebuilt != nil {
			h.cfg.Rebuilt(h.name, res.Reason)
		}
	default:
		log.Info("synced", attrs...)
	}
	return res, err
}

func (h *SSH) sync(ctx context.Context, commit string, src deployer.TreeSource) (SSHSyncResult, error) {
	if !commitName.MatchString(commit) {
		return SSHSyncResult{}, &OpError{Host: h.name, Op: "sync", Err: fmt.Errorf("%q is not a commit name", commit)}
	}
	// The host's state as this process left it saves reading it again;
	// the scripts check it (exit status 4 when it changed), and then the
	// host is read and the sync planned once more.
	st, cached := h.known, true
	for {
		if st == nil {
			var err error
			if st, err = h.probe(ctx, true); err != nil {
				return SSHSyncResult{}, err
			}
			cached = false
		}
		res, next, err := h.attempt(ctx, st, commit, src)
		h.known = next
		if exitStatus(err) == 4 && cached {
			st = nil
			continue
		}
		if exitStatus(err) == 4 {
			err = &OpError{Host: h.name, Op: "sync", Err: errors.New("the host's slots changed while the sync was planned; is another deploybot syncing it?")}
		}
		return res, err
	}
}

// attempt plans and runs one sync against the host state st. It returns
// the host's state afterwards when it is known (nil otherwise).
func (h *SSH) attempt(ctx context.Context, st *remoteState, commit string, src deployer.TreeSource) (SSHSyncResult, *remoteState, error) {
	var res SSHSyncResult
	if st.active != "" && st.markers[slotIndex(st.active)].Holds(commit) {
		res.Action, res.Slot = SyncNone, st.active
		return res, st, nil
	}
	slot := "a"
	if st.active == "a" {
		slot = "b"
	}
	i := slotIndex(slot)
	m, merr, token := st.markers[i], st.merrs[i], st.tokens[i]
	res.Slot = slot
	flipped := func(token string, marker *Marker) *remoteState {
		next := *st
		next.active, next.target = slot, slotDir(slot)
		if marker != nil {
			text, _ := json.Marshal(marker)
			next.markers[i], next.merrs[i], next.mtexts[i], next.tokens[i] = marker, nil, string(text), token
		}
		return &next
	}

	var reason string
	switch {
	case merr != nil:
		reason = fmt.Sprintf("slot %s's marker is unreadable", slot)
	case m == nil:
		reason = fmt.Sprintf("slot %s has no marker, so its contents are unknown", slot)
	case token == "":
		reason = fmt.Sprintf("slot %s has no fingerprint (a sync into it was interrupted), so its contents are unknown", slot)
	case m.Holds(commit):
		// A rollback: the slot holds the commit already, so only current
		// moves, once the slot is shown unchanged since it was written.
		err := h.run(ctx, shellCommand(flipScript, h.cfg.Root, slot, token, st.target, st.mtexts[i]), nil, nil)
		if err == nil {
			res.Action = SyncFlip
			return res, flipped(token, nil), nil
		}
		if exitStatus(err) != 3 {
			return res, nil, h.scriptError("flip", err)
		}
		reason = driftReason(slot)
	}

	var changes []deployer.FileChange
	if reason == "" {
		// The slot is as the bot left it: plan as Local does.
		core := &slotHost{name: h.name}
		var err error
		changes, reason, err = core.plan(ctx, slot, m, nil, commit, src)
		if err != nil {
			return res, nil, err
		}
		if reason == "" {
			pending, err := json.Marshal(withPending(m, commit))
			if err != nil {
				return res, nil, err
			}
			res.Action = SyncIncremental
			next := newToken()
			err = h.send(ctx, &res, st, slot, token, next, string(pending), commit, changes, false)
			switch {
			case err == nil:
				return res, flipped(next, &Marker{Commit: commit}), nil
			case exitStatus(err) != 3:
				return res, nil, err
			}
			reason = driftReason(slot)
			changes = nil
		}
	}
	if changes == nil {
		// plan lists every file itself when it gives the reason.
		var err error
		if changes, err = src.Diff(ctx, "", commit); err != nil {
			return res, nil, opError(h.name, "list the files of "+commit, "", err)
		}
		for _, c := range changes {
			if err := checkPath(c.Path); err != nil {
				return res, nil, opError(h.name, "plan", c.Path, err)
			}
		}
	}
	res.Action, res.Reason = SyncRebuild, reason
	next := newToken()
	if err := h.send(ctx, &res, st, slot, "-", next, "-", commit, changes, true); err != nil {
		return res, nil, err
	}
	return res, flipped(next, &Marker{Commit: commit}), nil
}

func driftReason(slot string) string {
	return fmt.Sprintf("slot %s does not match the fingerprint recorded when it was written: files changed on the host behind the bot's back", slot)
}

// scriptError turns a remote script's exit status into what went wrong.
func (h *SSH) scriptError(op string, err error) error {
	var ee *exitError
	if !errors.As(err, &ee) {
		return err
	}
	what := map[int]string{
		10: "cannot enter or create the root " + h.cfg.Root,
		11: "cannot empty the slot",
		12: "the slot layout is not made of directories",
		13: "deleting files failed",
		14: "extracting the files failed (is GNU tar installed, and is the disk full?)",
		15: "recording the slot's fingerprint failed",
		20: "flipping current failed",
		21: "writing the slot's marker failed",
	}[ee.status]
	if what == "" {
		return &OpError{Host: h.name, Op: op, Err: err}
	}
	return &OpError{Host: h.name, Op: op, Err: fmt.Errorf("%s (%v)", what, err)}
}

// send streams changes into slot and flips to it (syncScript). With full
// the slot is emptied first and changes is every file of the commit.
func (h *SSH) send(ctx context.Context, res *SSHSyncResult, st *remoteState, slot, token, next, pending, commit string, changes []deployer.FileChange, full bool) error {
	var dels bytes.Buffer
	deleted := 0
	if !full {
		for _, c := range changes {
			if c.Delete {
				dels.WriteString(c.Path)
				dels.WriteByte(0)
				deleted++
			}
		}
	}
	final, err := json.Marshal(&Marker{Commit: commit})
	if err != nil {
		return err
	}
	mode := "incr"
	switch {
	case full:
		mode = "full"
	case h.skipSlotCheck:
		mode = "incr-unchecked"
	}
	written := 0
	var sent int64
	feed := func(w io.Writer) error {
		cw := &countingWriter{w: w}
		defer func() { sent = cw.n }()
		if _, err := cw.Write(dels.Bytes()); err != nil {
			return err
		}
		n, err := writeTar(ctx, h.name, cw, changes)
		written = n
		return err
	}
	cmd := shellCommand(syncScript, h.cfg.Root, slot, token, pending, string(final), strconv.Itoa(dels.Len()), mode,
		next, st.target, st.mtexts[slotIndex(slot)])
	err = h.run(ctx, cmd, feed, nil)
	res.Written, res.Deleted, res.Bytes = written, deleted, sent
	if st := exitStatus(err); err != nil && st != 3 && st != 4 {
		return h.scriptError("sync", err)
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTar writes the files and symlinks of changes (deletions skipped) as
// a tar archive, each preceded by entries for the parent directories not
// yet written: extracting a directory entry replaces a symlink or a file
// standing there, so nothing is ever extracted through a symlink. It
// returns how many files and symlinks it wrote.
func writeTar(ctx context.Context, host string, w io.Writer, changes []deployer.FileChange) (int, error) {
	tw := tar.NewWriter(w)
	now := time.Now()
	dirs := map[string]bool{}
	n := 0
	for _, c := range changes {
		if c.Delete {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, opError(host, "stopped before", c.Path, err)
		}
		for i := 0; i < len(c.Path); i++ {
			if c.Path[i] != '/' || dirs[c.Path[:i]] {
				continue
			}
			d := c.Path[:i]
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
				return n, err
			}
		}
		switch c.Mode {
		case deployer.ModeSymlink:
			target, err := readLinkTarget(c)
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: c.Path, Linkname: target, Mode: 0o777, ModTime: now}); err != nil {
				return n, err
			}
		case deployer.ModeRegular, deployer.ModeExecutable:
			if c.Open == nil {
				return n, opError(host, "read", c.Path, errors.New("the source gave no contents"))
			}
			rc, err := c.Open()
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			// The header needs the size first; blobs of a deployable tree
			// are small, and reading one whole also checks Size.
			buf, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			mode := int64(0o644)
			if c.Mode == deployer.ModeExecutable {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: c.Path, Size: int64(len(buf)), Mode: mode, ModTime: now}); err != nil {
				return n, err
			}
			if _, err := tw.Write(buf); err != nil {
				return n, err
			}
		default:
			return n, opError(host, "write", c.Path, fmt.Errorf("unknown file mode %d", c.Mode))
		}
		n++
	}
	return n, tw.Close()
}

// unwrapPath drops the absolute path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
