package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoScenario runs `deploybot demo --scenario` as a person would and
// holds it to its promise: exit 0 only when the good change is on all seven
// hosts and the bad one was rolled back before production.
func TestDemoScenario(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := realMain([]string{"demo", "--dir", t.TempDir(), "--scenario"}, strings.NewReader(""), &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "SCENARIO PASSED") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"<alice> !backport good-change", "<alice> !backport php-1.46.0-wmf.3/extensions/Foo:", "<bob> verified", "canary check FAIL", "rolled back", "check: all 7 hosts serve",
		// The story it tells: the bad change passes a look on the
		// testserver (the scenario really loads the page) and fails in
		// traffic; the ping says where to look.
		"--- 3. a bad change: it turns on search_v2. Its pages load", "200 OK, the page looks right",
		"Test it there (http://127.0.0.1:",
		// The backport window (README, "Backport windows and batches").
		"the evening backport window is open", "queued the window's 5 changes as batch #4",
		"bisection round 1: testing", "bisection done in", "check after round 1: every host serves exactly its commit's tree"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("scenario output lacks %q", want)
		}
	}
	checkReadmeTranscript(t, out.String())
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := realMain([]string{"check-config", "--offline", "--config", "../../config.example.yaml"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("example config: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "is valid: 5 hosts in 3 stages") {
		t.Errorf("output: %s", out.String())
	}
	// The unchanged example is valid, but not silently: it names what this
	// machine lacks (config/warnings_test.go has every case).
	if !strings.Contains(out.String(), "the local repository /srv/upstream/mediawiki/core.git does not exist here") ||
		!strings.Contains(out.String(), "warning(s) above") {
		t.Errorf("the example's check says nothing of what is missing: %s", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("source: {git: {url: /x}}\nhosts:\n  stages:\n    testservers: [{name: t, root: /t}]\n    canaries: [{name: t, root: /c}]\npipeline: {verify_timeout: soon}\naccess: {deployers: []}\nchat: {console: {user: a}}\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"check-config", "--config", bad}, nil, &out, &errOut); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	for _, want := range []string{"4 problem(s)", `line 5: host "t" is listed twice (first at line 4)`, `line 6: "soon" is not a duration`, "line 7: access.deployers is empty", "line 3: stage production has no hosts"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, errOut.String())
		}
	}

	errOut.Reset()
	if code := realMain([]string{"check-config", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "no such file") {
		t.Errorf("missing file: exit %d, %s", code, errOut.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := realMain([]string{"version"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "deploybot ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	if code := realMain([]string{"deploy-everything"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "deploy-everything"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut.String())
	}
	// Help asked for is no error: the usage, exit 0.
	for _, args := range [][]string{{"run", "--help"}, {"check-config", "-h"}, {"demo", "--help"}, {"judge", "replay", "--help"}} {
		errOut.Reset()
		if code := realMain(args, nil, &out, &errOut); code != 0 || !strings.Contains(strings.ToLower(errOut.String()), "usage") || strings.Contains(errOut.String(), "help requested") {
			t.Errorf("%v: exit %d, %q", args, code, errOut.String())
		}
	}
	errOut.Reset()
	if code := realMain([]string{"run", "--config", filepath.Join(t.TempDir(), "none.yaml")}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "reading the configuration") {
		t.Errorf("run with a missing config: exit %d, %q", code, errOut.String())
	}
}

// TestDemoStopsWhenItsInputEnds: `deploybot demo < /dev/null` (or a piped
// script) must not run on for ever with nobody able to reach the bot; it
// answers what it was given, says why it stops, and exits 0.
func TestDemoStopsWhenItsInputEnds(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- realMain([]string{"demo", "--dir", t.TempDir()}, strings.NewReader("!status\n"), &out, &errOut)
	}()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "nothing is deploying right now") || !strings.Contains(out.String(), "The input ended, so nobody can talk to the bot: the demo stops.") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo still runs 2 minutes after its input ended")
	}
}
