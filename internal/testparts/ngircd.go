package testparts

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ngircd is a real ngircd IRC server on 127.0.0.1, configured in a
// temporary directory. Tests stop and start it again on the same port to
// play a network outage.
type Ngircd struct {
	Port int
	Addr string // 127.0.0.1:Port

	t    testing.TB
	bin  string
	conf string
	log  string

	mu    sync.Mutex
	cmd   *exec.Cmd
	waitc chan error
}

// ngircdConf is the whole server configuration. MaxPenaltyTime = 0 turns
// off the server's own flood penalties, which would otherwise slow every
// test; MaxNickLength leaves room for descriptive nicks. As root, ngircd
// insists on dropping privileges, so it runs as nobody/nogroup. PAM, DNS
// and ident lookups are off so a client registers at once and its host is
// always 127.0.0.1 (masks look like nick!~user@127.0.0.1).
const ngircdConf = `[Global]
	Name = irc.deploybot.test
	Info = deploybot test server
	AdminInfo1 = deploybot tests
	AdminInfo2 = 127.0.0.1
	AdminEMail = tests@deploybot.invalid
	Listen = 127.0.0.1
	Ports = %d
	MotdPhrase = "deploybot test server"
	ServerUID = nobody
	ServerGID = nogroup
[Limits]
	MaxNickLength = 30
	MaxPenaltyTime = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	PingTimeout = 120
	PongTimeout = 20
[Options]
	PAM = no
	DNS = no
	Ident = no
%s`

// StartNgircd starts ngircd on a free port and stops it when the test ends.
// It fails the test (never skips) when ngircd is not installed.
func StartNgircd(t testing.TB) *Ngircd {
	return StartNgircdWith(t, "")
}

// StartNgircdWith is StartNgircd with extra configuration appended (for
// example an [SSL] section).
func StartNgircdWith(t testing.TB, extra string) *Ngircd {
	t.Helper()
	bin := Need(t, "ngircd", "ngircd")
	dir := t.TempDir()
	// ngircd reads its configuration as root before dropping to nobody, but
	// a REHASH would read it as nobody: keep the directory readable.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Ngircd{Port: FreePort(t), t: t, bin: bin, conf: filepath.Join(dir, "ngircd.conf"), log: filepath.Join(dir, "ngircd.log")}
	n.Addr = Addr(n.Port)
	if err := os.WriteFile(n.conf, []byte(fmt.Sprintf(ngircdConf, n.Port, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	n.Start()
	return n
}

// Start starts the server (again) on its port and waits until the port
// accepts connections.
func (n *Ngircd) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.t.Fatal("ngircd is already running")
	}
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer logf.Close()
	// -n keeps it in the foreground, so its pid is the one we stop.
	cmd := exec.Command(n.bin, "-n", "-f", n.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("starting ngircd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			n.t.Fatalf("ngircd exited at start (%v); its log:\n%s", err, n.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			n.t.Fatalf("ngircd did not accept connections on %s within 10s; its log:\n%s", n.Addr, n.Log())
		}
	}
	n.cmd = cmd
	n.waitc = exited
}

// Stop kills the server by its pid, as a crash or a network outage would
// end it: clients see their connections reset. It is safe to call when the
// server is not running.
func (n *Ngircd) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.waitc
	n.cmd, n.waitc = nil, nil
}

// Freeze stops the server process (SIGSTOP) without closing anything:
// clients can still write into their connections, but nothing is read or
// relayed. A Stop after it loses whatever was written meanwhile, as a
// server that hangs and then dies would.
func (n *Ngircd) Freeze() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Log returns what the server wrote so far, for failure messages.
func (n *Ngircd) Log() string {
	b, _ := os.ReadFile(n.log)
	s := string(b)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}
