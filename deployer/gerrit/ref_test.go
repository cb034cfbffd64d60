package gerrit_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
)

func TestParseRefAcceptsEveryWebUIForm(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://gerrit.example.org/r")
	for _, tc := range []struct {
		in       string
		number   int
		patchSet int
	}{
		{"123", 123, 0},
		{"1234567", 1234567, 0},
		{"https://gerrit.example.org/r/123", 123, 0},
		{"https://gerrit.example.org/r/123/", 123, 0},
		{"http://gerrit.example.org/r/123", 123, 0},
		{"https://gerrit.example.org/123", 123, 0},
		{"https://gerrit.example.org/r/c/123", 123, 0},
		{"https://gerrit.example.org/r/c/123/", 123, 0},
		{"https://gerrit.example.org/r/c/123/4", 123, 4},
		{"https://gerrit.example.org/c/123", 123, 0},
		{"https://gerrit.example.org/c/mediawiki/core/+/123", 123, 0},
		{"https://gerrit.example.org/c/mediawiki/core/+/123/", 123, 0},
		{"https://gerrit.example.org/r/c/mediawiki/core/+/123", 123, 0},
		{"https://gerrit.example.org/r/c/mediawiki/core/+/123/4", 123, 4},
		{"https://gerrit.example.org/r/c/mediawiki/core/+/123/4/", 123, 4},
		{"https://gerrit.example.org/r/c/app/+/123", 123, 0},
		{"https://gerrit.example.org/r/#/c/123/", 123, 0},
		{"https://gerrit.example.org/r/#/c/123", 123, 0},
		{"https://gerrit.example.org/r/#/c/123/4", 123, 4},
		{"https://gerrit.example.org/#/c/123/", 123, 0},
		{"https://GERRIT.example.org/r/c/123", 123, 0},
	} {
		r, err := gerrit.ParseRef(tc.in, base)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.in, err)
			continue
		}
		if r.Number != tc.number || r.PatchSet != tc.patchSet || r.Text != tc.in {
			t.Errorf("ParseRef(%q) = %+v, want number %d patch set %d", tc.in, r, tc.number, tc.patchSet)
		}
	}
}

func TestParseRefRefusesWithOneLine(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://gerrit.example.org/r")
	for _, tc := range []struct{ in, want string }{
		{"I0123456789abcdef0123456789abcdef01234567", "is a Change-Id"},
		{"https://gerrit.other.org/r/123", "I deploy changes from gerrit.example.org only"},
		{"https://gerrit.example.org:8443/r/123", "I deploy changes from gerrit.example.org only"},
		{"https://gerrit.example.org.evil.org/r/123", "I deploy changes from gerrit.example.org only"},
		{"https://gerrit.example.org/r/q/status:open", "does not link to a change"},
		{"https://gerrit.example.org/r/c/123/abc", "does not link to a change"},
		{"https://gerrit.example.org/r/plugins/gitiles/app/+/main", "does not link to a change"},
		{"https://gerrit.example.org/r/", "does not link to a change"},
		{"ftp://gerrit.example.org/r/123", "is not a Gerrit change"},
		{"gerrit.example.org/r/123", "is not a Gerrit change"},
		{"0", "is not a Gerrit change"},
		{"0123", "is not a Gerrit change"},
		{"-5", "is not a Gerrit change"},
		{"12345678901", "is not a Gerrit change"},
		{"12a", "is not a Gerrit change"},
		{"main", "is not a Gerrit change"},
		{"abcdef1234", "is not a Gerrit change"},
		{"123; rm -rf /", "is not a Gerrit change"},
		{"https://", "is not a URL I can read"},
		{strings.Repeat("x", 500), "…"},
	} {
		_, err := gerrit.ParseRef(tc.in, base)
		if err == nil {
			t.Errorf("ParseRef(%q) accepted it", tc.in)
			continue
		}
		msg := deployer.ErrorMessage(err)
		if deployer.ErrorCode(err) != deployer.EInvalid || !strings.Contains(msg, tc.want) {
			t.Errorf("ParseRef(%q) = %q (%s), want an invalid-input message containing %q", tc.in, msg, deployer.ErrorCode(err), tc.want)
		}
		if strings.Contains(msg, "\n") || len(msg) > 300 {
			t.Errorf("ParseRef(%q): message is not one short line: %q", tc.in, msg)
		}
	}
}
