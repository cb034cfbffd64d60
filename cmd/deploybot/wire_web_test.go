package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// openWithWeb starts a sandbox after edit changed its configuration (once
// the file was checked, so that Open's own checks are what is tested).
func openWithWeb(t *testing.T, edit func(m *Main)) (*sandbox, error) {
	t.Helper()
	sb, err := startSandbox(context.Background(), t.TempDir(), testTimingsWeb, "info", strings.NewReader(""), io.Discard, io.Discard, edit)
	if sb != nil {
		t.Cleanup(sb.Close)
	}
	return sb, err
}

var testTimingsWeb = demoTimings{VerifyTimeout: 60e9, PromoteTimeout: 60e9, BaselineMin: 1e9, Window: 4e9, Interval: 5e8, MinRequests: 40}

// TestDashboardWiring: Open serves no dashboard when it is off, and
// refuses to expose one beyond loopback without a token.
func TestDashboardWiring(t *testing.T) {
	t.Parallel()
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		sb, err := openWithWeb(t, func(m *Main) { m.Config.Web.Listen = "off" })
		if err != nil {
			t.Fatal(err)
		}
		if sb.Main.Web != nil || sb.Main.Bot.Link != nil || sb.Main.dashboardURL() != "" {
			t.Error("web.listen off still opened a dashboard")
		}
	})
	t.Run("public address without a token", func(t *testing.T) {
		t.Parallel()
		_, err := openWithWeb(t, func(m *Main) { m.Config.Web.Listen = "0.0.0.0:0" })
		if err == nil || !strings.Contains(err.Error(), "reachable from other machines, without an access token") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("token variable unset", func(t *testing.T) {
		t.Parallel()
		_, err := openWithWeb(t, func(m *Main) {
			m.Config.Web.Listen, m.Config.Web.TokenEnv = "0.0.0.0:0", "DEPLOYBOT_TEST_NO_SUCH_VARIABLE"
		})
		if err == nil || err.Error() != "web.token_env: the environment variable DEPLOYBOT_TEST_NO_SUCH_VARIABLE is not set or empty" {
			t.Fatalf("Open: %v", err)
		}
	})
}

// TestDashboardToken sets environment variables, so it runs alone.
func TestDashboardToken(t *testing.T) {
	t.Run("token too short", func(t *testing.T) {
		t.Setenv("DEPLOYBOT_TEST_SHORT_TOKEN", "abc")
		_, err := openWithWeb(t, func(m *Main) {
			m.Config.Web.Listen, m.Config.Web.TokenEnv = "0.0.0.0:0", "DEPLOYBOT_TEST_SHORT_TOKEN"
		})
		if err == nil || !strings.Contains(err.Error(), "has 3 characters: use at least 16") || strings.Contains(err.Error(), "abc") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("public address with a token", func(t *testing.T) {
		const tok = "a-long-enough-test-token-123"
		t.Setenv("DEPLOYBOT_TEST_WEB_TOKEN", tok)
		sb, err := openWithWeb(t, func(m *Main) {
			m.Config.Web.Listen, m.Config.Web.TokenEnv = "0.0.0.0:0", "DEPLOYBOT_TEST_WEB_TOKEN"
			m.Config.Web.BaseURL = "https://deploy.example.org"
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := sb.Main.Bot.Link(3); got != "https://deploy.example.org/deployments/3" {
			t.Errorf("chat links to %q", got)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sb.Main.serveWeb(ctx)
		_, port, _ := strings.Cut(sb.Main.Web.Addr(), "]:")
		if port == "" {
			_, port, _ = strings.Cut(sb.Main.Web.Addr(), ":")
		}
		u := "http://127.0.0.1:" + port + "/api/deployments"
		for _, tc := range []struct {
			auth string
			want int
		}{{"", 401}, {"Bearer wrong-token", 401}, {"Bearer " + tok, 200}} {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
			}
		}
	})
}
