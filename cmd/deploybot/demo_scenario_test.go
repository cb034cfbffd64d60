package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's window walkthrough is a captured transcript of `deploybot
// demo --scenario`. checkReadmeTranscript holds it to the scenario's
// output: every chat line of the block after the demo-transcript marker
// must appear in out, its parts between "..." in order within one line.
// Window times, ports and numbers (error rates, request counts, which
// canary failed first) differ between runs and are compared as
// placeholders; upstream commit ids are the same in every sandbox (the
// demo's commits have fixed dates).
func checkReadmeTranscript(t *testing.T, out string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- demo-transcript: TestDemoScenario checks these lines -->\n```\n")
	if !ok {
		t.Fatal("README.md has no demo-transcript block")
	}
	block, _, _ = strings.Cut(block, "```")
	var outLines []string
	for _, l := range strings.Split(out, "\n") {
		outLines = append(outLines, normalizeTranscript(l))
	}
	checked := 0
	for _, line := range strings.Split(block, "\n") {
		if !strings.HasPrefix(line, "<") && !strings.HasPrefix(line, "            ") && !strings.HasPrefix(line, "    check") {
			continue
		}
		line = normalizeTranscript(line)
		var parts []string
		for _, p := range strings.Split(line, "...") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		found := false
		for _, ol := range outLines {
			rest, all := ol, true
			for _, p := range parts {
				i := strings.Index(rest, p)
				if i < 0 {
					all = false
					break
				}
				rest = rest[i+len(p):]
			}
			if all {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the README's transcript line is not in the scenario's output:\n  %s", line)
		}
		checked++
	}
	if checked < 30 {
		t.Errorf("only %d transcript lines checked; the README's block lost its lines", checked)
	}
}

var (
	transcriptSpan = regexp.MustCompile(`[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2} \d\d:\d\d–\d\d:\d\d UTC`)
	transcriptURL  = regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	transcriptNum  = regexp.MustCompile(`\d+(\.\d+)?`)
)

func normalizeTranscript(s string) string {
	s = transcriptSpan.ReplaceAllString(s, "<window>")
	s = transcriptURL.ReplaceAllString(s, "<url>")
	return transcriptNum.ReplaceAllString(s, "0")
}
