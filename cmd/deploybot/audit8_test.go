package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestSubcommandsRefuseStrayArguments: a word after a subcommand's flags was
// silently dropped (the flag package stops there), so `deploybot
// check-config prod.yaml` checked ./deploybot.yaml, and with --config given
// first, `check-config --config ok.yaml other.yaml` said ok.yaml "is valid"
// without a word about other.yaml. `demo DIR` made a temporary directory
// instead. Each is now refused with exit status 2, naming the word and
// --config.
func TestSubcommandsRefuseStrayArguments(t *testing.T) {
	t.Parallel()
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check-config", "prod.yaml"}, `unexpected "prod.yaml" (name the configuration with --config FILE`},
		{[]string{"check-config", "--offline", "--config", "../../config.example.yaml", "prod.yaml"}, `unexpected "prod.yaml"`},
		{[]string{"run", "prod.yaml"}, `deploybot run: unexpected "prod.yaml" (name the configuration with --config FILE`},
		{[]string{"demo", sandbox}, `deploybot demo: unexpected "` + sandbox + `" (flags go before anything else)`},
	} {
		var out, errOut bytes.Buffer
		code := realMain(tc.args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("deploybot %s: exit %d, stderr %q, stdout %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errOut.String(), out.String(), tc.want)
		}
		if strings.Contains(out.String(), "is valid") {
			t.Errorf("deploybot %s called a configuration valid: %s", strings.Join(tc.args, " "), out.String())
		}
	}
}
