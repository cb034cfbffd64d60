package gitrepo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// gitFixture is a MediaWiki-shaped set of upstream repositories made with
// the git command: a config repository (branch master), mediawiki/core on
// a release branch with an extension as a real submodule (relative URL
// ../extensions/Foo), and the extension, whose branch is the release
// branch too.
type gitFixture struct {
	t                 testing.TB
	base              string
	config, core, ext string
	clock             int
}

func (f *gitFixture) git(dir string, args ...string) string {
	f.t.Helper()
	f.clock++
	cmd := exec.Command("git", append([]string{"-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	date := "2024-01-01T12:00:00Z"
	if f.clock > 0 {
		date = "2024-01-01T12:" + twoDigits(f.clock/60%60) + ":" + twoDigits(f.clock%60) + "Z"
	}
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Bob", "GIT_AUTHOR_EMAIL=bob@example.org",
		"GIT_COMMITTER_NAME=Bob", "GIT_COMMITTER_EMAIL=bob@example.org",
		"GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date, "GIT_CONFIG_NOSYSTEM=1", "HOME="+f.base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func twoDigits(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

// write writes files (path -> content) into a work tree and commits them.
func (f *gitFixture) commit(dir, msg string, files map[string]string) string {
	f.t.Helper()
	for p, data := range files {
		full := filepath.Join(dir, p)
		if data == "" {
			f.git(dir, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			f.t.Fatal(err)
		}
		f.git(dir, "add", p)
	}
	f.git(dir, "commit", "-q", "-m", msg)
	return f.git(dir, "rev-parse", "HEAD")
}

// bump points core's extensions/Foo at commit, as Gerrit's superproject
// subscription does, and returns core's new commit.
func (f *gitFixture) bump(commit string) string {
	f.t.Helper()
	f.git(f.core, "update-index", "--cacheinfo", "160000,"+commit+",extensions/Foo")
	f.git(f.core, "commit", "-q", "-m", "Update git submodules\n\n* Update extensions/Foo")
	return f.git(f.core, "rev-parse", "HEAD")
}

func newGitFixture(t testing.TB) *gitFixture {
	t.Helper()
	requireGit(t)
	base := t.TempDir()
	f := &gitFixture{t: t, base: base,
		config: filepath.Join(base, "repos", "config"),
		core:   filepath.Join(base, "repos", "core"),
		ext:    filepath.Join(base, "repos", "extensions", "Foo")}
	for _, d := range []string{f.config, f.core, f.ext} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.git(f.ext, "init", "-q", "-b", "wmf/1")
	f.commit(f.ext, "Foo: first", map[string]string{"Foo.php": "<?php // Foo 1\n", "i18n/en.json": "{}\n"})
	f.git(f.core, "init", "-q", "-b", "wmf/1")
	f.commit(f.core, "core: first", map[string]string{"index.php": "<?php // core 1\n", "includes/Setup.php": "<?php\n"})
	f.git(f.core, "submodule", "add", "-q", "../extensions/Foo", "extensions/Foo")
	f.git(f.core, "commit", "-q", "-m", "Add extension Foo")
	f.git(f.config, "init", "-q", "-b", "master")
	f.commit(f.config, "config: first", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 1\n", "README": "config\n"})
	return f
}

func (f *gitFixture) components() []Component {
	return []Component{
		{Path: "", URL: f.config, Branch: "master"},
		{Path: "php-1", URL: f.core, Branch: "wmf/1", Submodules: true},
	}
}

// open opens a staging repo and a composite source over comps.
func (f *gitFixture) open(comps []Component) (*Repo, *Composite) {
	f.t.Helper()
	r, err := Open(filepath.Join(f.t.TempDir(), "staging"), Upstream{URL: f.config, Branch: "master"})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { r.Close() })
	c, err := NewComposite(r, comps)
	if err != nil {
		f.t.Fatal(err)
	}
	return r, c
}

// files lists a commit's deployable files as path -> content.
func files(t testing.TB, r *Repo, commit string) map[string]string {
	t.Helper()
	fcs, err := r.Files(context.Background(), commit)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, fc := range fcs {
		rd, err := fc.Open()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := rd.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		rd.Close()
		out[fc.Path] = b.String()
	}
	return out
}

// worktreeFiles is what a checkout of dir at HEAD holds, with submodules
// under prefix: git's own view of the composed tree.
func (f *gitFixture) gitFiles(dir, rev, prefix string, out map[string]string) {
	f.t.Helper()
	for _, l := range strings.Split(f.git(dir, "ls-tree", "-r", rev), "\n") {
		meta, p, _ := strings.Cut(l, "\t")
		fs := strings.Fields(meta)
		if fs[1] == "commit" {
			sub := filepath.Join(f.base, "repos", "extensions", filepath.Base(p))
			f.gitFiles(sub, fs[2], prefix+p+"/", out)
			continue
		}
		out[prefix+p] = f.git(dir, "cat-file", "blob", fs[2]) + "\n"
	}
}

func (f *gitFixture) want(configRev, coreRev string) map[string]string {
	out := map[string]string{}
	f.gitFiles(f.config, configRev, "", out)
	f.gitFiles(f.core, coreRev, "php-1/", out)
	// git's output loses the trailing newline the fixture files have; the
	// fixture writes every file with exactly one.
	return out
}

func sameFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		var gk, wk []string
		for k := range got {
			gk = append(gk, k)
		}
		for k := range want {
			wk = append(wk, k)
		}
		sort.Strings(gk)
		sort.Strings(wk)
		t.Fatalf("composed files differ from git's:\n got %v\nwant %v", gk, wk)
	}
}

func TestCompositeBaselineFlattensSubmodules(t *testing.T) {
	f := newGitFixture(t)
	r, c := f.open(f.components())
	ctx := context.Background()
	up, err := c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := files(t, r, up)
	sameFiles(t, got, f.want("master", "wmf/1"))
	if got["php-1/extensions/Foo/Foo.php"] != "<?php // Foo 1\n" {
		t.Errorf("the submodule's file is missing: %v", got)
	}
	// The staging commit records every part.
	d := &deployer.Deployment{ID: 1, Requester: "console:alice", Refs: []string{"baseline"}}
	sc, err := r.Commit(ctx, d, up)
	if err != nil {
		t.Fatal(err)
	}
	msg := f.git(r.Dir(), "log", "-1", "--format=%B", sc)
	for _, want := range []string{
		"Component: . " + f.git(f.config, "rev-parse", "master"),
		"Component: php-1 " + f.git(f.core, "rev-parse", "wmf/1"),
		"Submodule: php-1/extensions/Foo " + f.git(f.ext, "rev-parse", "wmf/1"),
		"Upstream: " + up,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("staging commit message lacks %q:\n%s", want, msg)
		}
	}
	// git itself sees files, not a gitlink, in the staging commit.
	if out := f.git(r.Dir(), "ls-tree", "-r", sc, "php-1/extensions"); strings.Contains(out, "commit ") {
		t.Errorf("staging commit holds a gitlink:\n%s", out)
	}
}

func TestResolveSubmoduleURL(t *testing.T) {
	for _, tc := range []struct{ super, rel, want string }{
		{"https://gerrit.example.org/r/mediawiki/core", "../extensions/Foo", "https://gerrit.example.org/r/mediawiki/extensions/Foo"},
		{"https://gerrit.example.org/r/mediawiki/core.git", "../../other/x", "https://gerrit.example.org/r/other/x"},
		{"https://gerrit.example.org/r/mediawiki/core/", "./sub", "https://gerrit.example.org/r/mediawiki/core/sub"},
		{"https://example.org/core", "../../x", "https://example.org/x"},
		{"/srv/repos/core", "../extensions/Foo", "/srv/repos/extensions/Foo"},
		{"git@example.org:mediawiki/core", "../extensions/Foo", "git@example.org:mediawiki/extensions/Foo"},
		{"git@example.org:core", "../Foo", "git@example.org:Foo"},
		{"/srv/core", "https://example.org/abs", "https://example.org/abs"},
	} {
		if got := ResolveSubmoduleURL(tc.super, tc.rel); got != tc.want {
			t.Errorf("ResolveSubmoduleURL(%q, %q) = %q, want %q", tc.super, tc.rel, got, tc.want)
		}
	}
}

// deployed is a composite source with its baseline staged, as the runner
// leaves it before the first backport.
type deployed struct {
	f     *gitFixture
	r     *Repo
	c     *Composite
	up    string // the composition deployed now
	lines []string
}

func newDeployed(t *testing.T, comps func(*gitFixture) []Component) *deployed {
	f := newGitFixture(t)
	if comps == nil {
		comps = (*gitFixture).components
	}
	r, c := f.open(comps(f))
	up, err := c.Baseline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &deployed{f: f, r: r, c: c, up: up}
}

func (d *deployed) prepare(include bool, refs ...string) (*deployer.Prepared, error) {
	d.lines = nil
	return d.c.Prepare(context.Background(), deployer.Request{Refs: refs, IncludeUnexpected: include, Deployment: 7}, d.up,
		func(l string) { d.lines = append(d.lines, l) })
}

func changeIDs(p *deployer.Prepared) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, displayPath(c.Component)+":"+c.Subject)
	}
	return out
}

func TestCompositeExtensionChange(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	fix := f.commit(f.ext, "Foo: fix the frobnicator", map[string]string{"Foo.php": "<?php // Foo 2\n"})

	// Merged in the extension, but core does not point at it yet.
	_, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:8])
	wantCode(t, err, deployer.EConflict, "php-1", "does not point extensions/Foo at "+fix[:8], "superproject")

	coreBump := f.bump(fix)
	p, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:8])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"php-1:Update git submodules", "php-1/extensions/Foo:Foo: fix the frobnicator"}
	if got := changeIDs(p); !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	sameFiles(t, files(t, d.r, p.Upstream), f.want("master", coreBump))
	changed, err := d.r.Changed(context.Background(), d.up, p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(changed, []string{"php-1/extensions/Foo/Foo.php"}) {
		t.Errorf("changed = %v, want the one file", changed)
	}
	// Only core changed: its .gitmodules is the one file composing read.
	if d.c.LastReads.Blobs != 1 {
		t.Errorf("composing read %d blobs, want 1 (core's .gitmodules)", d.c.LastReads.Blobs)
	}
	if got, _ := d.c.ComposedCommit(p.Upstream, "php-1/extensions/Foo"); got != fix {
		t.Errorf("composition holds Foo at %s, want %s", got, fix)
	}
}

func TestCompositeRootChangeReadsNoFile(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	c1 := f.commit(f.config, "Raise the limit", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 2\n"})
	p, err := d.prepare(false, c1[:7]) // a bare id is found in the one component that has it
	if err != nil {
		t.Fatal(err)
	}
	if got := changeIDs(p); !reflect.DeepEqual(got, []string{".:Raise the limit"}) {
		t.Errorf("changes = %v", got)
	}
	sameFiles(t, files(t, d.r, p.Upstream), f.want(c1, "wmf/1"))
	if d.c.LastReads.Blobs != 0 {
		t.Errorf("composing a root change read %d blobs; core and Foo did not change, so it must read none", d.c.LastReads.Blobs)
	}
	// The root's new tree, and the one tree on the path php-1 is spliced
	// into: nothing of core or Foo.
	if d.c.LastReads.Trees > 2 {
		t.Errorf("composing read %d trees, want at most 2", d.c.LastReads.Trees)
	}
}

func TestCompositeUnexpectedPerComponentAndSubmodule(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	other := f.commit(f.ext, "Foo: someone else's change", map[string]string{"i18n/en.json": "{\"x\":1}\n"})
	f.bump(other)
	coreOther := f.commit(f.core, "core: unrelated", map[string]string{"index.php": "<?php // core 2\n"})
	fix := f.commit(f.ext, "Foo: the fix", map[string]string{"Foo.php": "<?php // Foo 2\n"})
	f.bump(fix)
	f.commit(f.core, "core: after the fix", map[string]string{"index.php": "<?php // core 3\n"})
	cfg := f.commit(f.config, "config: wanted", map[string]string{"README": "config 2\n"})

	// The oldest core commit pointing Foo at the fix is taken; the pointer
	// jumps over someone else's Foo change, and core holds an unrelated
	// commit before it. Pointer-only commits are not listed themselves.
	_, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:8], "root:"+cfg[:8])
	wantCode(t, err, deployer.EConflict, "would also ship 2 commits",
		"in php-1: "+coreOther[:10]+" core: unrelated (Bob)",
		"in php-1/extensions/Foo: "+other[:10]+" Foo: someone else's change (Bob)")

	p, err := d.prepare(true, "php-1/extensions/Foo:"+fix[:8], "root:"+cfg[:8])
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, d.r, p.Upstream), f.want(cfg, f.git(f.core, "rev-parse", "wmf/1~1")))
	if n := len(p.Changes); n != 6 {
		t.Errorf("%d changes, want 6 (3 core, 2 Foo, 1 config): %v", n, changeIDs(p))
	}
}

func TestCompositeRefusals(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	head := f.git(f.core, "rev-parse", "wmf/1")
	for _, tc := range []struct {
		refs  []string
		code  string
		parts []string
	}{
		{[]string{"php-1:" + head[:8]}, deployer.EConflict, []string{"already deployed"}},
		{[]string{"nope:abc1234"}, deployer.ENotFound, []string{"nope", "components: root, php-1"}},
		{[]string{"php-1/extensions/Bar:abc1234"}, deployer.ENotFound, []string{"no submodule at extensions/Bar"}},
		{[]string{"deadbeef"}, deployer.ENotFound, []string{"no component has"}},
		{[]string{"php-1:x;rm"}, deployer.EInvalid, []string{"neither a commit id"}},
		{[]string{"../x:abc1234"}, deployer.EInvalid, []string{"does not name a component"}},
	} {
		_, err := d.prepare(false, tc.refs...)
		wantCode(t, err, tc.code, tc.parts...)
	}
}

func TestCompositeComponentsComeAndGo(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	// A second release branch goes live: core's wmf/2.
	f.git(f.core, "branch", "wmf/2")
	comps := append(f.components(), Component{Path: "php-2", URL: f.core, Branch: "wmf/2", Submodules: true})
	c2, err := NewComposite(d.r, comps)
	if err != nil {
		t.Fatal(err)
	}
	d.c = c2
	cfg := f.commit(f.config, "config: point group0 at php-2", map[string]string{"README": "config 2\n"})
	p, err := d.prepare(false, "root:"+cfg[:8])
	if err != nil {
		t.Fatal(err)
	}
	if len(d.lines) != 1 || !strings.Contains(d.lines[0], "component php-2") || !strings.Contains(d.lines[0], "adds its whole tree") {
		t.Errorf("announced %q, want the new component", d.lines)
	}
	got := files(t, d.r, p.Upstream)
	want := f.want(cfg, "wmf/1")
	f.gitFiles(f.core, "wmf/2", "php-2/", want)
	sameFiles(t, got, want)
	d.up = p.Upstream

	// The old one is retired.
	c3, err := NewComposite(d.r, []Component{comps[0], comps[2]})
	if err != nil {
		t.Fatal(err)
	}
	d.c = c3
	cfg2 := f.commit(f.config, "config: drop php-1", map[string]string{"README": "config 3\n"})
	p, err = d.prepare(false, "root:"+cfg2[:8])
	if err != nil {
		t.Fatal(err)
	}
	if len(d.lines) != 1 || !strings.Contains(d.lines[0], "component php-1") || !strings.Contains(d.lines[0], "removes its whole tree") {
		t.Errorf("announced %q, want the retired component", d.lines)
	}
	want = map[string]string{}
	f.gitFiles(f.config, cfg2, "", want)
	f.gitFiles(f.core, "wmf/2", "php-2/", want)
	sameFiles(t, files(t, d.r, p.Upstream), want)
}

func TestCompositeStillShipsAndReverts(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	fix := f.commit(f.ext, "Foo: bad", map[string]string{"Foo.php": "<?php // Foo broken\n"})
	f.bump(fix)
	p, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:8])
	if err != nil {
		t.Fatal(err)
	}
	bad := p.Changes[1]
	ctx := context.Background()
	if ships, err := d.c.StillShips(ctx, p.Upstream, bad); err != nil || !ships {
		t.Fatalf("StillShips = %v, %v; want true", ships, err)
	}
	dep := &deployer.Deployment{ID: 7, Changes: p.Changes, Upstream: p.Upstream, PrevUpstream: d.up}
	lines, _, err := d.c.RevertUpstream(ctx, dep, "canary errors")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"in php-1/extensions/Foo: revert " + fix[:10], "in php-1: pushing reverts is off"} {
		if !strings.Contains(joined, want) {
			t.Errorf("revert lines %q lack %q", joined, want)
		}
	}
	// Reverted in the extension and the pointer moved: no longer shipped.
	f.git(f.ext, "revert", "--no-edit", fix)
	f.bump(f.git(f.ext, "rev-parse", "HEAD"))
	p2, err := d.prepare(true, "php-1:wmf/1")
	if err == nil {
		if ships, err := d.c.StillShips(ctx, p2.Upstream, bad); err != nil || ships {
			t.Errorf("after the revert StillShips = %v, %v; want false", ships, err)
		}
	} else {
		t.Fatal(err)
	}
}

func TestCompositeCheckRemotes(t *testing.T) {
	f := newGitFixture(t)
	comps := append(f.components(),
		Component{Path: "php-2", URL: filepath.Join(f.base, "nowhere"), Branch: "wmf/2"},
		Component{Path: "php-3", URL: f.core, Branch: "wmf/3"})
	got := CheckRemotes(context.Background(), comps)
	if len(got) != 2 || !strings.Contains(got[0], "php-2: its remote") || !strings.Contains(got[0], "cannot be reached") ||
		!strings.Contains(got[1], "php-3: "+f.core+" has no branch wmf/3") {
		t.Errorf("CheckRemotes = %q", got)
	}
}

func TestCompositeNestedComponents(t *testing.T) {
	f := newGitFixture(t)
	// Nested inside the submodule, not on it: refused.
	_, c := f.open(append(f.components(), Component{Path: "php-1/extensions/Foo/lib", URL: f.ext, Branch: "wmf/1"}))
	_, err := c.Baseline(context.Background())
	wantCode(t, err, deployer.EInvalid, "php-1/extensions/Foo/lib lies inside submodule php-1/extensions/Foo of php-1, which it does not own")

	// On the submodule: the component tracks the extension's branch
	// directly and owns that path; a merged change deploys without waiting
	// for core's pointer.
	f2 := newGitFixture(t)
	r, c2 := f2.open(append(f2.components(), Component{Path: "php-1/extensions/Foo", URL: f2.ext, Branch: "wmf/1"}))
	d := &deployed{f: f2, r: r, c: c2}
	if d.up, err = c2.Baseline(context.Background()); err != nil {
		t.Fatal(err)
	}
	fix := f2.commit(f2.ext, "Foo: direct", map[string]string{"Foo.php": "<?php // Foo direct\n"})
	p, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:8])
	if err != nil {
		t.Fatal(err)
	}
	if got := changeIDs(p); !reflect.DeepEqual(got, []string{"php-1/extensions/Foo:Foo: direct"}) {
		t.Errorf("changes = %v", got)
	}
	want := f2.want("master", "wmf/1")
	want["php-1/extensions/Foo/Foo.php"] = "<?php // Foo direct\n"
	sameFiles(t, files(t, r, p.Upstream), want)
}

// TestCompositeGoneIsAboutTheBranch: a blocked root change is not shipped
// by a deployment that moves only core, but that does not make it gone:
// the root's branch still holds it, so Gone says false and its block must
// stay (found by the model's composite mode, where such a deployment lifted
// the block and a later one shipped the bad change again). Once reverted on
// its branch it is gone. The same holds for an extension's change, judged
// on the commit core's branch points the extension at.
func TestCompositeGoneIsAboutTheBranch(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	ctx := context.Background()
	badRoot := f.commit(f.config, "config: bad", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // broken\n"})
	p, err := d.prepare(false, badRoot[:8])
	if err != nil {
		t.Fatal(err)
	}
	blocked := p.Changes[0]

	// A deployment of core alone leaves the root where it was deployed
	// (the baseline, without the bad change): it does not ship it ...
	coreFix := f.commit(f.core, "core: fix", map[string]string{"api.php": "<?php // api\n"})
	pc, err := d.prepare(false, "php-1:"+coreFix[:8])
	if err != nil {
		t.Fatal(err)
	}
	if ships, err := d.c.StillShips(ctx, pc.Upstream, blocked); err != nil || ships {
		t.Fatalf("StillShips on a core-only deployment = %v, %v; want false", ships, err)
	}
	// ... but the root's branch still holds it: not gone.
	if gone, err := d.c.Gone(ctx, blocked); err != nil || gone {
		t.Fatalf("Gone = %v, %v with the bad change still on master; want false", gone, err)
	}
	f.git(f.config, "revert", "--no-edit", badRoot)
	if gone, err := d.c.Gone(ctx, blocked); err != nil || !gone {
		t.Errorf("Gone = %v, %v after master reverted it; want true", gone, err)
	}

	// An extension's change: held while core's branch points Foo at it.
	badExt := f.commit(f.ext, "Foo: bad", map[string]string{"Foo.php": "<?php // Foo broken\n"})
	f.bump(badExt)
	pe, err := d.prepare(true, "php-1/extensions/Foo:"+badExt[:8])
	if err != nil {
		t.Fatal(err)
	}
	var ext deployer.Change
	for _, c := range pe.Changes {
		if strings.HasPrefix(c.Commit, badExt) || c.ID == badExt {
			ext = c
		}
	}
	if ext.Component != "php-1/extensions/Foo" {
		t.Fatalf("the extension change is %+v among %+v", ext, pe.Changes)
	}
	if gone, err := d.c.Gone(ctx, ext); err != nil || gone {
		t.Fatalf("Gone = %v, %v while core's branch points Foo at it; want false", gone, err)
	}
	f.git(f.ext, "revert", "--no-edit", badExt)
	if gone, err := d.c.Gone(ctx, ext); err != nil || gone {
		t.Errorf("Gone = %v, %v with Foo reverted but core's pointer not moved yet; want false", gone, err)
	}
	f.bump(f.git(f.ext, "rev-parse", "HEAD"))
	if gone, err := d.c.Gone(ctx, ext); err != nil || !gone {
		t.Errorf("Gone = %v, %v once core points Foo at the revert; want true", gone, err)
	}
}
