// Package testparts starts the real programs deploybot's tests talk to
// (ngircd, sshd, prometheus, chromium) on 127.0.0.1 with temporary
// configurations. A missing program fails the test with the command that
// installs it; it never skips, so CI cannot pass without the real part.
package testparts

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// Need returns the path of a program the test needs, or fails the test
// naming the Debian package that provides it.
func Need(t testing.TB, program, debianPackage string) string {
	t.Helper()
	for _, p := range []string{program, "/usr/sbin/" + program, "/usr/bin/" + program} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("this test needs %s, which is not installed: run `make deps` (or as root: apt-get update && apt-get install -y %s)", program, debianPackage)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
