package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testparts"
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

// TestDemoSaysHowToCarryOn: the demo told a newcomer to carry on with
// `deploybot run --config DIR/deploybot.yaml`, which starts none of the
// hosts' web servers and no traffic: the testserver link it pings bob with
// was dead, and the canary check found every canary's metrics unreadable
// ("connection refused"). It now says `deploybot demo --dir DIR`, and that
// resumes the deployment with the hosts answering.
func TestDemoSaysHowToCarryOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	play := func(lines string, waitFor *regexp.Regexp, during func(m []string)) string {
		t.Helper()
		in, feed := io.Pipe()
		defer feed.Close()
		var out, errOut testparts.Buffer
		done := make(chan int, 1)
		go func() { done <- realMain([]string{"demo", "--dir", dir}, in, &out, &errOut) }()
		if _, err := io.WriteString(feed, lines); err != nil {
			t.Fatal(err)
		}
		var m []string
		deadline := time.Now().Add(90 * time.Second)
		for m == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			m = waitFor.FindStringSubmatch(out.String())
		}
		if m == nil {
			feed.Close()
			<-done
			t.Fatalf("the demo never said %v\nstdout:\n%s\nstderr:\n%s", waitFor, out.String(), errOut.String())
		}
		if during != nil {
			during(m)
		}
		feed.Close()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
			}
		case <-time.After(time.Minute):
			t.Fatal("the demo still runs a minute after its input ended")
		}
		return out.String()
	}
	testLink := regexp.MustCompile(`Test it there \((http://127\.0\.0\.1:\d+/)\)`)
	out := play("!backport good-change\n", testLink, nil)
	carryOn := "deploybot demo --dir " + dir
	if !strings.Contains(out, "run the same sandbox later, hosts and traffic too, with:\n  "+carryOn) ||
		!strings.Contains(out, "resumes where it stopped with\n  "+carryOn) || strings.Contains(out, "deploybot run --config") {
		t.Errorf("the demo should tell how to carry on with %q, and never with `deploybot run`:\n%s", carryOn, out)
	}
	if cfg, err := os.ReadFile(filepath.Join(dir, "deploybot.yaml")); err != nil || !strings.Contains(string(cfg), "#   "+carryOn+"\n") {
		t.Errorf("the sandbox's deploybot.yaml should name %q (%v):\n%s", carryOn, err, cfg)
	}

	// What it says works: the deployment resumes, and the testserver it
	// links answers.
	play("", regexp.MustCompile(`still waiting for you \(the bot restarted\).*`+testLink.String()), func(m []string) {
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatalf("the resumed demo's test link %s: %v", m[1], err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the resumed demo's test link %s answered %s", m[1], resp.Status)
		}
	})
}
