package testparts

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SSHD is a running sshd (Debian openssh-server) on 127.0.0.1 that accepts
// one generated client key. Tests serve several hosts through it by giving
// each a different root directory.
type SSHD struct {
	// Addr is 127.0.0.1:port.
	Addr string
	// Port is the port it listens on.
	Port int
	// User is the account to log in as: the one running the test.
	User string
	// KeyFile is the client's private key (ed25519, no passphrase), and
	// KeyFile+".pub" its public key.
	KeyFile string
	// KnownHosts is a known_hosts file holding the server's host key for
	// 127.0.0.1 on Port, as `ssh-keyscan` would write it.
	KnownHosts string
	// Dir is the temporary directory holding its configuration.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	args []string
	log  *Buffer
}

// StartSSHD starts sshd for the test and stops it when the test ends. It
// fails the test, naming the package to install, when sshd or ssh-keygen
// is missing.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	sshd := Need(t, "sshd", "openssh-server")
	keygen := Need(t, "ssh-keygen", "openssh-client")
	// sshd refuses to start without its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Getuid() == 0 {
		t.Fatalf("creating /run/sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_ed25519")
	clientKey := filepath.Join(dir, "client_ed25519")
	for _, k := range []string{hostKey, clientKey} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "deploybot-test", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	s := &SSHD{
		Addr: Addr(port), Port: port, User: u.Username,
		KeyFile: clientKey, KnownHosts: filepath.Join(dir, "known_hosts"), Dir: dir,
		log: &Buffer{},
	}
	fields := strings.Fields(string(hostPub))
	if len(fields) < 2 {
		t.Fatalf("unexpected host public key %q", hostPub)
	}
	kh := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, fields[0], fields[1])
	if err := os.WriteFile(s.KnownHosts, []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "sshd_config")
	cfg := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		fmt.Sprintf("Port %d", port),
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		// The benchmarks open many sessions on one connection at once.
		"MaxSessions 64",
		"MaxStartups 200",
		"LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// -D stays in the foreground, -e logs to standard error.
	s.args = []string{sshd, "-D", "-e", "-f", conf}
	s.start(t)
	t.Cleanup(func() { s.Stop() })
	return s
}

func (s *SSHD) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		t.Fatalf("starting sshd: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond); err == nil {
			// sshd accepts before it is ready to talk; wait for its banner.
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && strings.HasPrefix(line, "SSH-") {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited at start: %s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("sshd did not listen on %s within 10s: %s", s.Addr, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills sshd and every session it serves, as a host that dies would
// drop its connections. It is safe to call twice.
func (s *SSHD) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// Sessions run in child processes of the listener: find them first
	// (once the listener is gone they belong to init), then kill all.
	pids := append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid)
	for _, pid := range pids {
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill()
		}
	}
	s.cmd = nil
}

// Freeze stops (SIGSTOP) every session process sshd runs, and Thaw
// resumes them: a host that hangs without closing its connections.
func (s *SSHD) Freeze() { s.signalSessions(syscall.SIGSTOP) }

// Thaw resumes the sessions Freeze stopped.
func (s *SSHD) Thaw() { s.signalSessions(syscall.SIGCONT) }

func (s *SSHD) signalSessions(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, sig)
	}
}

// Restart starts sshd again on the same port with the same keys, after
// Stop: the host came back.
func (s *SSHD) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// descendants lists the processes below pid (sshd's per-connection
// processes and the commands they run), found in /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		var child int
		if _, err := fmt.Sscanf(e.Name(), "%d", &child); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The parent pid is the second field after the parenthesised name.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid int
		if _, err := fmt.Sscanf(string(data[i+1:]), " %s %d", &state, &ppid); err != nil {
			continue
		}
		if ppid == pid {
			out = append(out, descendants(child)...)
			out = append(out, child)
		}
	}
	return out
}

// Log returns what sshd wrote so far, for failure messages.
func (s *SSHD) Log() string {
	return s.log.String()
}
