package demo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// The upstream repository's branches.
const (
	// MainBranch holds the sample web app as it is deployed at first.
	MainBranch = "main"
	// GoodBranch holds one harmless commit off main: a typo fix on the front
	// page and a valid config version bump.
	GoodBranch = "good-change"
	// BadBranch holds one commit on top of GoodBranch that turns on the
	// search_v2 feature and a search box that asks /api/suggest as people
	// type. Every page still loads (a quick look on the testserver shows
	// nothing wrong), but the suggestion backend of search_v2 fails: in
	// traffic, where browsers call /api/suggest, about 3 requests in 10
	// answer 500. Like most real regressions, only traffic shows it.
	BadBranch = "bad-change"
	// SlowBranch holds one commit off main that sets config/app.json's
	// extra_error_rate to 0.02: a host serving it fails 2% of requests on
	// top of its own error rate, a regression only statistics can see.
	SlowBranch = "slow-regression"
	// WindowBranches hold the root changes people put on a backport
	// window's list, one commit each, on one line of history off
	// GoodBranch: a new page (Erin), a sidebar cache that fails a quarter
	// of requests under traffic (Bob; the window's bad change), and
	// Spanish interface messages (Dana). No two touch a common file, so a
	// batch of them can be split.
	WindowPrivacy = "window-privacy"
	WindowSidebar = "window-sidebar"
	WindowSpanish = "window-spanish"
)

// Subjects of the two pending commits, for tests that look for them in chat.
const (
	GoodSubject = "Fix typo on the front page"
	BadSubject  = "Enable the new search feature"
	SlowSubject = "Fetch the sidebar from the new backend"
	// The window's changes.
	PrivacySubject = "Add the privacy policy page"
	SidebarSubject = "Read the sidebar from the new cache cluster"
	SpanishSubject = "Add Spanish interface messages"
)

// The authors of the upstream commits: main's, and the pending changes'.
var (
	upstreamAuthor  = object.Signature{Name: "Carol Upstream", Email: "carol@example.org"}
	submitterAuthor = object.Signature{Name: "Bob Submitter", Email: "bob@example.org"}
	// Dana and Erin submit changes to the backport window.
	danaAuthor = object.Signature{Name: "Dana Developer", Email: "dana@example.org"}
	erinAuthor = object.Signature{Name: "Erin Editor", Email: "erin@example.org"}
)

// Commit times are fixed so that every sandbox has the same commit hashes,
// which makes logs and test failures from different runs comparable.
var (
	mainTime   = time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	branchTime = time.Date(2025, 3, 3, 14, 30, 0, 0, time.UTC)
)

// sampleFile is one file of the sample app: its content, or for a symlink
// its target.
type sampleFile struct {
	path    string
	content string
	exec    bool
	symlink bool
}

// mainTree is the sample app on branch main: a small static site whose
// config/app.json the host servers parse on every request.
var mainTree = []sampleFile{
	{path: "README.md", content: `# Example Wiki front end

The static front end of the Example Wiki. Hosts serve this tree as is; the
server parses config/app.json on every request and refuses to serve pages
when it is not valid JSON.

See docs/README.md for the layout and docs/DEPLOYING.md for how changes ship.
`},
	{path: "index.html", content: `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Example Wiki</title>
  <link rel="stylesheet" href="/static/style.css">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <header><img src="/static/logo.svg" alt="" width="32" height="32"> Example Wiki</header>
  <main>
    <h1>Wecome to the Example Wiki</h1>
    <p>The free encyclopedia of examples that anyone can edit.</p>
    <p><a href="/about.html">About this site</a></p>
  </main>
</body>
</html>
`},
	{path: "about.html", content: `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>About - Example Wiki</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <main>
    <h1>About</h1>
    <p>Example Wiki is a demonstration site for deploybot.</p>
  </main>
</body>
</html>
`},
	{path: "robots.txt", content: "User-agent: *\nDisallow: /docs/\n"},
	{path: "static/style.css", content: `body {
  font-family: system-ui, sans-serif;
  margin: 0;
  color: #202122;
}
header {
  padding: 0.5em 1em;
  background: #eaecf0;
}
main {
  max-width: 40em;
  margin: 2em auto;
}
`},
	{path: "static/app.js", content: `// Marks external links and loads the configured features.
document.addEventListener("DOMContentLoaded", () => {
  for (const a of document.querySelectorAll("a[href^='http']")) {
    a.classList.add("external");
  }
});
`},
	{path: "static/logo.svg", content: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="14" fill="#36c"/></svg>
`},
	{path: "config/app.json", content: `{
  "site": "Example Wiki",
  "version": 1,
  "features": {
    "search": false,
    "dark_mode": true
  },
  "cache_seconds": 300
}
`},
	{path: "current-config.json", content: "config/app.json", symlink: true},
	{path: "docs/README.md", content: `# Layout

- index.html, about.html: the pages
- static/: stylesheet, script and logo
- config/app.json: site settings, read by the server on every request
- i18n/: interface messages
- bin/healthcheck.sh: what the load balancer runs
`},
	{path: "docs/DEPLOYING.md", content: `# Deploying

Changes are backported with deploybot: ` + "`!backport <commit>`" + ` in the
deployment channel. The bot syncs the test servers, asks the author to verify,
then syncs the canaries and, when their error rate is fine, production.
`},
	{path: "i18n/messages-en.json", content: `{
  "welcome": "Welcome",
  "search": "Search"
}
`},
	{path: "i18n/messages-ü.json", content: `{
  "welcome": "Willkommen",
  "search": "Suche",
  "note": "Übersetzung für Umlaute: ä ö ü ß"
}
`},
	{path: "bin/healthcheck.sh", exec: true, content: `#!/bin/sh
# Exits non-zero when the local app server does not answer its health check.
set -eu
port="${PORT:-8080}"
exec curl -fsS --max-time 2 "http://127.0.0.1:${port}/healthz" >/dev/null
`},
}

// goodChange returns main's tree with the good change applied.
func goodChange() map[string]string {
	return map[string]string{
		"index.html":      strings.Replace(fileContent("index.html"), "Wecome", "Welcome", 1),
		"config/app.json": strings.Replace(fileContent("config/app.json"), `"version": 1`, `"version": 2`, 1),
	}
}

// badChange returns the files the bad change rewrites on top of the good
// change: the search_v2 flag in config/app.json (valid JSON: the pages
// load) and the search box that calls /api/suggest, which search_v2 breaks.
func badChange() map[string]string {
	return map[string]string{
		"config/app.json": strings.Replace(goodChange()["config/app.json"],
			`"dark_mode": true`, `"dark_mode": true,
    "search_v2": true`, 1),
		"static/app.js": fileContent("static/app.js") + `
// The new search box, with suggestions as you type.
document.addEventListener("DOMContentLoaded", () => {
  const box = document.createElement("input");
  box.type = "search";
  box.placeholder = "Search Example Wiki";
  box.addEventListener("input", () => fetch("/api/suggest?q=" + encodeURIComponent(box.value)).catch(() => {}));
  document.querySelector("header")?.append(box);
});
`,
	}
}

// slowChange returns the files the slow regression rewrites on main: the
// demo server reads extra_error_rate from config/app.json and fails that
// share of requests more.
func slowChange() map[string]string {
	return map[string]string{
		"config/app.json": strings.Replace(fileContent("config/app.json"), `"version": 1,`, `"version": 3,
  "extra_error_rate": 0.02,`, 1),
	}
}

// privacyChange adds a page.
func privacyChange() map[string]string {
	return map[string]string{"privacy.html": `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Privacy policy - Example Wiki</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <main>
    <h1>Privacy policy</h1>
    <p>Example Wiki keeps no personal data beyond its access logs, for 90 days.</p>
  </main>
</body>
</html>
`}
}

// sidebarChange is the window's bad change: on top of the good change's
// config, the demo server fails a quarter of requests (extra_error_rate),
// as a sidebar read from an overloaded cache would. Pages load on a quick
// look most of the time; traffic shows it at once.
func sidebarChange() map[string]string {
	return map[string]string{
		"config/app.json": strings.Replace(goodChange()["config/app.json"], `"cache_seconds": 300`, `"cache_seconds": 300,
  "sidebar_cache": "cache-cluster-2",
  "extra_error_rate": 0.25`, 1),
	}
}

// spanishChange adds an interface language.
func spanishChange() map[string]string {
	return map[string]string{"i18n/messages-es.json": `{
  "welcome": "Bienvenido",
  "search": "Buscar"
}
`}
}

func fileContent(path string) string {
	for _, f := range mainTree {
		if f.path == path {
			return f.content
		}
	}
	panic("demo: no sample file " + path)
}

// openOrCreateUpstream returns the upstream repository at dir, creating it
// with its three branches when dir does not exist yet. An existing one is
// reused as it is (a restarted demo keeps what the bot did to it) as long as
// it has the three branches.
func openOrCreateUpstream(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		repo, err := git.PlainOpen(dir)
		if err != nil {
			return fmt.Errorf("open existing upstream: %w", err)
		}
		for _, b := range []string{MainBranch, GoodBranch, BadBranch} {
			if _, err := repo.Reference(plumbing.NewBranchReferenceName(b), true); err != nil {
				return fmt.Errorf("existing upstream %s has no branch %s (remove the sandbox directory to start afresh): %w", dir, b, err)
			}
		}
		return nil
	}
	return createUpstream(dir)
}

// createUpstream makes the upstream repository: main with the sample app,
// the good branch one commit off main, and the bad branch one commit off
// the good one (so the two can be deployed one after the other), then
// leaves main checked out.
func createUpstream(dir string) error {
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(MainBranch)},
	})
	if err != nil {
		return fmt.Errorf("init upstream: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	for _, f := range mainTree {
		if err := writeSample(dir, f); err != nil {
			return err
		}
	}
	if _, err := commitAll(wt, "Add the Example Wiki front end", upstreamAuthor, mainTime); err != nil {
		return fmt.Errorf("commit main: %w", err)
	}
	main := plumbing.NewBranchReferenceName(MainBranch)
	branch := plumbing.NewBranchReferenceName
	branches := []struct {
		name    string
		base    plumbing.ReferenceName
		subject string
		body    string
		files   map[string]string
		author  object.Signature
	}{
		{GoodBranch, main, GoodSubject, "The heading said \"Wecome\". Bump the config version so caches refresh.", goodChange(), submitterAuthor},
		{BadBranch, branch(GoodBranch), BadSubject, "Turns on search_v2 and adds the search box to the header.", badChange(), submitterAuthor},
		{SlowBranch, main, SlowSubject, "The new backend times out now and then.", slowChange(), submitterAuthor},
		{WindowPrivacy, branch(GoodBranch), PrivacySubject, "Legal asked for it before Friday.", privacyChange(), erinAuthor},
		{WindowSidebar, branch(WindowPrivacy), SidebarSubject, "The old cache is being decommissioned.", sidebarChange(), submitterAuthor},
		{WindowSpanish, branch(WindowSidebar), SpanishSubject, "Translated by the community.", spanishChange(), danaAuthor},
	}
	for _, b := range branches {
		if err := wt.Checkout(&git.CheckoutOptions{Branch: b.base}); err != nil {
			return fmt.Errorf("check out %s: %w", b.base.Short(), err)
		}
		ref := plumbing.NewBranchReferenceName(b.name)
		if err := wt.Checkout(&git.CheckoutOptions{Branch: ref, Create: true}); err != nil {
			return fmt.Errorf("create branch %s: %w", b.name, err)
		}
		for path, content := range b.files {
			if err := writeSample(dir, sampleFile{path: path, content: content}); err != nil {
				return err
			}
		}
		if _, err := commitAll(wt, b.subject+"\n\n"+b.body+"\n", b.author, branchTime); err != nil {
			return fmt.Errorf("commit %s: %w", b.name, err)
		}
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: main}); err != nil {
		return fmt.Errorf("check out %s: %w", MainBranch, err)
	}
	return nil
}

// writeSample writes one sample file into the worktree at dir.
func writeSample(dir string, f sampleFile) error {
	p := filepath.Join(dir, filepath.FromSlash(f.path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if f.symlink {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return os.Symlink(f.content, p)
	}
	mode := os.FileMode(0o644)
	if f.exec {
		mode = 0o755
	}
	if err := os.WriteFile(p, []byte(f.content), mode); err != nil {
		return err
	}
	// WriteFile keeps an existing file's mode and the umask trims new ones;
	// git records only the executable bit, so set it exactly.
	return os.Chmod(p, mode)
}

// commitAll stages every change in the worktree and commits it.
func commitAll(wt *git.Worktree, msg string, who object.Signature, when time.Time) (plumbing.Hash, error) {
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return plumbing.ZeroHash, err
	}
	who.When = when
	return wt.Commit(msg, &git.CommitOptions{Author: &who, Committer: &who})
}
