package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mwRepos is a MediaWiki-shaped set of upstream repositories made with the
// git command: the configuration repository (branch master), mediawiki/core
// on release branch wmf/1 with extension Foo as a real submodule (relative
// URL ../extensions/Foo), and Foo itself on wmf/1. Each is a work tree, so
// tests commit to it as a developer (or Gerrit on merge) would.
type mwRepos struct {
	t                 tb // a *testing.T, or a *rapid.T in the model (model_composite_test.go)
	base              string
	config, core, ext string
}

func newMWRepos(t testing.TB) *mwRepos {
	t.Helper()
	return newMWReposIn(t, t.TempDir())
}

// newMWReposIn makes the repositories under base, for a test that is not
// a testing.TB (the model's rapid.T), which removes base itself.
func newMWReposIn(t tb, base string) *mwRepos {
	t.Helper()
	r := &mwRepos{t: t, base: base,
		config: filepath.Join(base, "repos", "operations", "mediawiki-config"),
		core:   filepath.Join(base, "repos", "mediawiki", "core"),
		ext:    filepath.Join(base, "repos", "mediawiki", "extensions", "Foo")}
	r.git(base, "init", "-q", "-b", "wmf/1", r.ext)
	r.commit(r.ext, "Foo: first", map[string]string{"Foo.php": "<?php // Foo 1\n", "i18n/en.json": "{}\n"})
	r.git(base, "init", "-q", "-b", "wmf/1", r.core)
	r.commit(r.core, "core: first", map[string]string{"index.php": "<?php // core 1\n", "includes/Setup.php": "<?php\n"})
	r.git(r.core, "submodule", "add", "-q", "../extensions/Foo", "extensions/Foo")
	r.git(r.core, "commit", "-q", "-m", "Add extension Foo")
	r.git(base, "init", "-q", "-b", "master", r.config)
	r.commit(r.config, "config: first", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 1\n", "README": "config\n"})
	for _, d := range []string{r.config, r.core, r.ext} {
		// push_reverts pushes to the checked-out branch: let it update the tree.
		r.git(d, "config", "receive.denyCurrentBranch", "updateInstead")
	}
	return r
}

func (r *mwRepos) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "protocol.file.allow=always"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Bob Submitter", "GIT_AUTHOR_EMAIL=bob@example.org",
		"GIT_COMMITTER_NAME=Bob Submitter", "GIT_COMMITTER_EMAIL=bob@example.org", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path -> content; "" removes the file) into a work
// tree, commits them and returns the commit.
func (r *mwRepos) commit(dir, msg string, files map[string]string) string {
	r.t.Helper()
	for p, data := range files {
		if data == "" {
			r.git(dir, "rm", "-q", p)
			continue
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.git(dir, "add", p)
	}
	r.git(dir, "commit", "-q", "-m", msg)
	return r.git(dir, "rev-parse", "HEAD")
}

// bump points core's extensions/Foo at commit, as Gerrit's superproject
// subscription does on merge, and returns core's new commit.
func (r *mwRepos) bump(commit string) string {
	r.t.Helper()
	r.git(r.core, "update-index", "--cacheinfo", "160000,"+commit+",extensions/Foo")
	r.git(r.core, "commit", "-q", "-m", "Update git submodules\n\n* Update extensions/Foo")
	return r.git(r.core, "rev-parse", "HEAD")
}

// composed is git's own view of the deploy tree the components make at
// their branch tips: the config repository at the root, core under dir,
// Foo's files in place of its gitlink (path -> content). It is what every
// host must serve, computed without deploybot's code.
func (r *mwRepos) composed(dirs map[string]string) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	r.files(r.config, "HEAD", "", out)
	for dir, branch := range dirs {
		r.files(r.core, branch, dir+"/", out)
	}
	return out
}

// files adds repository dir's tree at rev under prefix, following
// gitlinks into their repositories (only Foo here).
func (r *mwRepos) files(dir, rev, prefix string, out map[string]string) {
	r.t.Helper()
	for _, line := range strings.Split(r.git(dir, "ls-tree", "-r", rev), "\n") {
		if line == "" {
			continue
		}
		meta, p, _ := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		if f[1] == "commit" {
			r.files(r.ext, f[2], prefix+p+"/", out)
			continue
		}
		out[prefix+p] = r.git(dir, "cat-file", "blob", f[2]) + "\n" // every fixture file ends in one newline
	}
}

// configYAML is a whole configuration around a source section, with
// local hosts under dir.
func configYAML(dir, source string) string {
	return `bot: {name: deploybot, prefix: "!"}
store: {path: ` + dir + `/deploybot.db, open_timeout: 5s}
staging: {path: ` + dir + `/staging.git}
` + source + `hosts:
  stages:
    testservers: [{name: t1, root: ` + dir + `/t1}]
    canaries: [{name: c1, root: ` + dir + `/c1}]
    production: [{name: p1, root: ` + dir + `/p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`
}
