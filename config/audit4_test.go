package config

import (
	"strings"
	"testing"
)

// TestSASLWithoutTLSIsWarnedOf (fourth audit): SASL PLAIN sends the
// services password as base64 text; without TLS anyone on the way to the
// IRC server reads it. check-config said nothing about it.
func TestSASLWithoutTLSIsWarnedOf(t *testing.T) {
	t.Setenv("DEPLOYBOT_TEST_SET", "s3cret")
	irc := func(server, tls string) string {
		return edit(t, 0, "  irc:\n    server: "+server+"\n    channel: \"#d\"\n"+tls+"    sasl: {user: bot, password_env: DEPLOYBOT_TEST_SET}")
	}
	for _, tc := range []struct {
		name, src string
		warned    bool
	}{
		{"a remote server without tls", irc("irc.example.org", ""), true},
		{"a remote server with tls", irc("irc.example.org", "    tls: true\n"), false},
		{"a server on this machine", irc("127.0.0.1", ""), false},
		{"localhost", irc("localhost", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			ws := c.Warnings().Error()
			got := strings.Contains(ws, "line 22: chat.irc.sasl: without chat.irc.tls the SASL password goes to")
			if got != tc.warned {
				t.Errorf("warned %v, want %v:\n%s", got, tc.warned, ws)
			}
			if strings.Contains(ws, "s3cret") {
				t.Errorf("a warning shows the password:\n%s", ws)
			}
		})
	}
}
