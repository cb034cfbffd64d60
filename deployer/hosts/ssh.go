package hosts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
// (ssh_scripts.go; the sync protocol is in ssh_sync.go); it holds one
// connection, dialled on first use and again after a failure, for every
// sync, read and hook of the host.
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

// unwrapPath drops the absolute path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
