package gitrepo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// TestCompositeRetiredComponentGivesItsSubmoduleBack: a component
// configured on a submodule's path (php-1/extensions/Foo, tracking the
// extension's branch directly) replaces that submodule in the tree. Once
// it is no longer configured, the deploy tree must hold what core points
// the submodule at, exactly as a fresh composition does; reusing core's
// recorded tree (in which the submodule was left a gitlink, since the
// component stood there) would leave the directory empty on every host.
func TestCompositeRetiredComponentGivesItsSubmoduleBack(t *testing.T) {
	f := newGitFixture(t)
	ctx := context.Background()
	withFoo := append(f.components(), Component{Path: "php-1/extensions/Foo", URL: f.ext, Branch: "wmf/1"})
	r, c := f.open(withFoo)
	d := &deployed{f: f, r: r, c: c}
	var err error
	if d.up, err = c.Baseline(ctx); err != nil {
		t.Fatal(err)
	}
	direct := f.commit(f.ext, "Foo: direct", map[string]string{"Foo.php": "<?php // Foo direct\n"})
	p, err := d.prepare(false, "php-1/extensions/Foo:"+direct[:8])
	if err != nil {
		t.Fatal(err)
	}
	d.up = p.Upstream

	// Foo is retired as a component: core's submodule is back in charge.
	if d.c, err = NewComposite(r, f.components()); err != nil {
		t.Fatal(err)
	}
	cfg := f.commit(f.config, "config: retire the Foo component", map[string]string{"README": "config 2\n"})
	p, err = d.prepare(false, "root:"+cfg[:8])
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, r, p.Upstream), f.want(cfg, "wmf/1"))
	foo := f.git(f.core, "rev-parse", "wmf/1:extensions/Foo")
	if len(d.lines) != 1 || !strings.Contains(d.lines[0], "puts back submodule extensions/Foo of php-1 there, at "+foo[:10]) {
		t.Errorf("announced %q, want the submodule put back", d.lines)
	}

	// And the same from scratch, with nothing reused, agrees.
	fresh, err := d.c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, r, fresh), f.want(cfg, "wmf/1"))
}

// hostView is a tree as a host must serve it: path -> mode and content
// (a symlink's content is its target).
type hostView map[string]string

// checkoutFiles is git's own view of a deploy tree: the config repository
// checked out at configRev at the root and core at coreRev in php-1, with
// every submodule checked out recursively by git itself.
func (f *gitFixture) checkoutFiles(configRev, coreRev string) hostView {
	f.t.Helper()
	dir := filepath.Join(f.t.TempDir(), "checkout")
	f.git(f.base, "clone", "-q", "--no-checkout", f.config, dir)
	f.git(dir, "checkout", "-q", "--detach", configRev)
	f.git(f.base, "clone", "-q", "--no-checkout", f.core, filepath.Join(dir, "php-1"))
	f.git(filepath.Join(dir, "php-1"), "checkout", "-q", "--detach", coreRev)
	f.git(filepath.Join(dir, "php-1"), "submodule", "update", "-q", "--init", "--recursive")
	out := hostView{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Name() == ".git" {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil // a submodule's gitfile
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "link " + target
			return err
		case fi.Mode()&0o111 != 0:
			data, err := os.ReadFile(p)
			out[filepath.ToSlash(rel)] = "exec " + string(data)
			return err
		default:
			data, err := os.ReadFile(p)
			out[filepath.ToSlash(rel)] = "file " + string(data)
			return err
		}
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// composedFiles is what the staging repository would put on a host.
func composedFiles(t *testing.T, r *Repo, commit string) hostView {
	t.Helper()
	fcs, err := r.Files(context.Background(), commit)
	if err != nil {
		t.Fatal(err)
	}
	out := hostView{}
	for _, fc := range fcs {
		rd, err := fc.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		kind := map[deployer.FileMode]string{deployer.ModeRegular: "file ", deployer.ModeExecutable: "exec ", deployer.ModeSymlink: "link "}[fc.Mode]
		out[fc.Path] = kind + string(data)
	}
	return out
}

func sameSnapshot(t *testing.T, step string, got, want hostView) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing "+p)
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: %.40q, want %.40q", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: the composed tree is not git's checkout:\n%s", step, strings.Join(diffs, "\n"))
	}
}

// TestCompositeTreeIsGitsCheckout composes a deploy tree through a series
// of awkward upstream changes and compares it, file by file with modes and
// symlink targets, to what git itself checks out (clone, then submodule
// update --init --recursive): a nested submodule, executable bits,
// symlinks (one pointing out of the tree), names with spaces, unicode and
// a leading dash, a large binary, a case-only rename, a submodule moved to
// another URL, one removed and one added.
func TestCompositeTreeIsGitsCheckout(t *testing.T) {
	f := newGitFixture(t)
	ctx := context.Background()
	bar := f.addBar()

	// The config repository's awkward files.
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	f.commit(f.config, "config: odd files", map[string]string{
		"bin/run.sh":                 "#!/bin/sh\necho run\n",
		"docs/with space.txt":        "space\n",
		"docs/ünïcödé-名前.txt":        "unicode\n",
		"docs/-rf":                   "dash\n",
		"static/blob.bin":            string(big),
		"README.md":                  "readme\n",
		"w/empty-dir-keeps/.gitkeep": "\n",
	})
	f.git(f.config, "update-index", "--chmod=+x", "bin/run.sh")
	if err := os.Symlink("../../outside/secret", filepath.Join(f.config, "docs", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("README.md", filepath.Join(f.config, "readme-link")); err != nil {
		t.Fatal(err)
	}
	f.git(f.config, "add", "docs/escape", "readme-link")
	f.git(f.config, "commit", "-q", "-m", "config: exec bit and links")

	r, c := f.open(f.components())
	d := &deployed{f: f, r: r, c: c}
	var err error
	if d.up, err = c.Baseline(ctx); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, "baseline", composedFiles(t, r, d.up), f.checkoutFiles("master", "wmf/1"))

	step := func(name string, include bool, refs ...string) *deployer.Prepared {
		t.Helper()
		p, err := d.prepare(include, refs...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d.up = p.Upstream
		sameSnapshot(t, name, composedFiles(t, r, p.Upstream), f.checkoutFiles("master", "wmf/1"))
		return p
	}

	// Root: the executable bit goes, a case-only rename, a symlink retargeted.
	f.git(f.config, "update-index", "--chmod=-x", "bin/run.sh")
	f.git(f.config, "mv", "README.md", "readme.md")
	os.Remove(filepath.Join(f.config, "readme-link"))
	if err := os.Symlink("readme.md", filepath.Join(f.config, "readme-link")); err != nil {
		t.Fatal(err)
	}
	f.git(f.config, "add", "readme-link")
	f.git(f.config, "commit", "-q", "-m", "config: rename and chmod")
	step("root modes and renames", false, "root:"+f.git(f.config, "rev-parse", "master")[:10])

	// A change to the root and to an extension in one deployment.
	fix := f.commit(f.ext, "Foo: fix", map[string]string{"Foo.php": "<?php // Foo 2\n"})
	f.bump(fix)
	cfg := f.commit(f.config, "config: with Foo", map[string]string{"docs/-rf": "dash 2\n"})
	step("root and submodule", false, "root:"+cfg[:10], "php-1/extensions/Foo:"+fix[:10])

	// The nested submodule moves.
	f.commit(bar, "Bar: two", map[string]string{"Bar.php": "<?php // Bar 2\n"})
	f.git(filepath.Join(f.base, "repos", "extensions", "Foo"), "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init", "--remote", "lib/Bar")
	f.git(f.ext, "add", "lib/Bar")
	f.git(f.ext, "commit", "-q", "-m", "Foo: update lib/Bar")
	f.bump(f.git(f.ext, "rev-parse", "HEAD"))
	step("nested submodule moves", true, "php-1:"+f.git(f.core, "rev-parse", "wmf/1")[:10])

	// Foo moves to another repository at the same path.
	foo2 := filepath.Join(f.base, "repos", "extensions", "Foo2")
	if err := os.MkdirAll(foo2, 0o755); err != nil {
		t.Fatal(err)
	}
	f.git(foo2, "init", "-q", "-b", "wmf/1")
	foo2c := f.commit(foo2, "Foo2: first", map[string]string{"Foo2.php": "<?php // Foo2\n"})
	f.git(f.core, "config", "-f", ".gitmodules", "submodule.extensions/Foo.url", "../extensions/Foo2")
	f.git(f.core, "add", ".gitmodules")
	f.git(f.core, "update-index", "--cacheinfo", "160000,"+foo2c+",extensions/Foo")
	f.git(f.core, "commit", "-q", "-m", "core: Foo moved")
	step("submodule URL change", true, "php-1:"+f.git(f.core, "rev-parse", "wmf/1")[:10])

	// Foo is removed, and Bar added straight to core.
	f.git(f.core, "rm", "-q", "-f", "extensions/Foo")
	f.git(f.core, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../extensions/Bar", "extensions/Bar")
	f.git(f.core, "commit", "-q", "-m", "core: Foo out, Bar in")
	step("submodule removed and added", true, "php-1:"+f.git(f.core, "rev-parse", "wmf/1")[:10])
}

// addBar gives the extension Foo a submodule of its own, lib/Bar (a real
// repository at ../Bar), and points core at it; it returns Bar's work tree.
func (f *gitFixture) addBar() string {
	f.t.Helper()
	bar := filepath.Join(f.base, "repos", "extensions", "Bar")
	if err := os.MkdirAll(bar, 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.git(bar, "init", "-q", "-b", "wmf/1")
	f.commit(bar, "Bar: first", map[string]string{"Bar.php": "<?php // Bar 1\n"})
	f.git(f.ext, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../Bar", "lib/Bar")
	f.git(f.ext, "commit", "-q", "-m", "Foo: add lib/Bar")
	f.bump(f.git(f.ext, "rev-parse", "HEAD"))
	return bar
}

// TestCompositeNestedSubmoduleCommitsAreNamed: Foo's commit that only
// moves its own submodule lib/Bar ships Bar's commits. Naming Foo's commit
// names none of Bar's, so they are unexpected, listed with their path, and
// on the deployment's record once included; they used to go out silently
// and unrecorded.
func TestCompositeNestedSubmoduleCommitsAreNamed(t *testing.T) {
	f := newGitFixture(t)
	bar := f.addBar()
	r, c := f.open(f.components())
	d := &deployed{f: f, r: r, c: c}
	var err error
	if d.up, err = c.Baseline(context.Background()); err != nil {
		t.Fatal(err)
	}
	sneaky := f.commit(bar, "Bar: sneaky", map[string]string{"Bar.php": "<?php // Bar sneaky\n"})
	f.git(f.ext, "-c", "protocol.file.allow=always", "submodule", "update", "-q", "--init", "--remote", "lib/Bar")
	f.git(f.ext, "add", "lib/Bar")
	f.git(f.ext, "commit", "-q", "-m", "Foo: update lib/Bar")
	fooBump := f.git(f.ext, "rev-parse", "HEAD")
	f.bump(fooBump)

	_, err = d.prepare(false, "php-1/extensions/Foo:"+fooBump[:10])
	wantCode(t, err, deployer.EConflict, "would also ship 1 commit", "in php-1/extensions/Foo/lib/Bar: "+sneaky[:10]+" Bar: sneaky (Bob)")

	p, err := d.prepare(true, "php-1/extensions/Foo:"+fooBump[:10])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ch := range p.Changes {
		if ch.Commit == sneaky {
			found = ch.Component == "php-1/extensions/Foo/lib/Bar" && ch.Unexpected
		}
	}
	if !found {
		t.Errorf("Bar's commit is not on the record as an unexpected change of php-1/extensions/Foo/lib/Bar: %v", changeIDs(p))
	}
}

// TestCompositeShadowedSubmoduleShipsNothing: where a component of its own
// stands on core's submodule path, core's pointer there deploys nothing,
// so the commits it jumps over are neither unexpected nor on the record.
// The bot used to refuse a plain core change for them, and to record them
// as shipped with --include-unexpected.
func TestCompositeShadowedSubmoduleShipsNothing(t *testing.T) {
	f := newGitFixture(t)
	r, c := f.open(append(f.components(), Component{Path: "php-1/extensions/Foo", URL: f.ext, Branch: "wmf/1"}))
	d := &deployed{f: f, r: r, c: c}
	var err error
	if d.up, err = c.Baseline(context.Background()); err != nil {
		t.Fatal(err)
	}
	x := f.commit(f.ext, "Foo: x", map[string]string{"Foo.php": "<?php // Foo x\n"})
	f.bump(x)
	core := f.commit(f.core, "core: change", map[string]string{"index.php": "<?php // core 2\n"})
	p, err := d.prepare(false, "php-1:"+core[:10])
	if err != nil {
		t.Fatalf("a core change was refused for a commit it does not ship: %v", err)
	}
	for _, ch := range p.Changes {
		if ch.Commit == x {
			t.Errorf("Foo: x is on the record, but the Foo component did not move: %v", changeIDs(p))
		}
	}
	if got := files(t, r, p.Upstream)["php-1/extensions/Foo/Foo.php"]; got != "<?php // Foo 1\n" {
		t.Errorf("Foo.php = %q, want the Foo component's deployed version", got)
	}
}

// TestCompositeUndeployedSkipsShadowedSubmodule: the check a Gerrit
// deployment makes before approving anything agrees with staging: core's
// pointer at a path where a component of its own stands ships nothing, so
// the commits it jumps over are not "merged but not deployed" there.
func TestCompositeUndeployedSkipsShadowedSubmodule(t *testing.T) {
	f := newGitFixture(t)
	_, c := f.open(append(f.components(), Component{Path: "php-1/extensions/Foo", URL: f.ext, Branch: "wmf/1"}))
	ctx := context.Background()
	up, err := c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x := f.commit(f.ext, "Foo: x", map[string]string{"Foo.php": "<?php // Foo x\n"})
	f.bump(x)
	un, err := c.Undeployed(ctx, up, []string{"php-1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range un {
		if u.Where == "php-1/extensions/Foo" {
			t.Errorf("core's pointer move is listed as undeployed commits of the Foo component's path: %+v", u)
		}
	}
}

// TestCompositeRecordKeepsUnicodeSpacedPaths: the composition record must
// read back every part it wrote. A submodule path holding a no-break
// space (git allows it; the record's own separator is a plain space) was
// written, then dropped on reading, so the bot forgot what it deployed
// there: a blocked change in it was no longer seen to ship again.
func TestCompositeRecordKeepsUnicodeSpacedPaths(t *testing.T) {
	f := newGitFixture(t)
	ctx := context.Background()
	odd := "extensions/Foo\u00a0Bar"
	f.git(f.core, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../extensions/Foo", odd)
	f.git(f.core, "commit", "-q", "-m", "Add Foo again, oddly named")
	r, c := f.open(f.components())
	up, err := c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := f.git(f.core, "rev-parse", "wmf/1:"+odd)
	if got, err := c.ComposedCommit(up, "php-1/"+odd); err != nil || got != want {
		t.Errorf("the record holds %q at php-1/%s (%v), want %s", got, odd, err, want)
	}
	co, err := r.commit(up)
	if err != nil {
		t.Fatal(err)
	}
	if wrote, read := len(compositionLines(co.Message)), len(parseComposition(co.Message).parts); wrote != read {
		t.Errorf("the record has %d lines but reads back %d parts", wrote, read)
	}
	blocked := deployer.Change{ID: want, Commit: want, Component: "php-1/" + odd}
	if ships, err := c.StillShips(ctx, up, blocked); err != nil || !ships {
		t.Errorf("StillShips = %v, %v for the commit the tree holds there; want true", ships, err)
	}
}

// TestCompositeHugeGitmodulesIsNotCut: a .gitmodules past the size the
// bot reads must be refused, not cut: cutting it dropped the submodules
// listed after the cut from the deploy tree without a word.
func TestCompositeHugeGitmodulesIsNotCut(t *testing.T) {
	f := newGitFixture(t)
	mods := filepath.Join(f.core, ".gitmodules")
	old, err := os.ReadFile(mods)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("# "+strings.Repeat("x", 98)+"\n", 11000) // 1.1 MB of comments
	if err := os.WriteFile(mods, []byte(pad+string(old)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.git(f.core, "add", ".gitmodules")
	f.git(f.core, "commit", "-q", "-m", "core: a long .gitmodules")
	_, c := f.open(f.components())
	up, err := c.Baseline(context.Background())
	if err == nil {
		if got, _ := c.ComposedCommit(up, "php-1/extensions/Foo"); got == "" {
			t.Fatal("the deploy tree silently lost php-1/extensions/Foo")
		}
		return
	}
	wantCode(t, err, deployer.EConflict, ".gitmodules", "too large")
}

// TestCompositeNewComponentHonoursSubmoduleRefs: a release branch new in
// the configuration goes out whole at its tip; a submodule ref named for
// it must be in that tree. It was ignored: the deployment succeeded with
// no change listed, and the extension fix the person named did not ship.
func TestCompositeNewComponentHonoursSubmoduleRefs(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	f.git(f.core, "branch", "wmf/2")
	var err error
	if d.c, err = NewComposite(d.r, append(f.components(), Component{Path: "php-2", URL: f.core, Branch: "wmf/2", Submodules: true})); err != nil {
		t.Fatal(err)
	}
	fix := f.commit(f.ext, "Foo: fix", map[string]string{"Foo.php": "<?php // Foo 2\n"})

	// wmf/2 does not point Foo at the fix: refused, as for a deployed branch.
	_, err = d.prepare(false, "php-2/extensions/Foo:"+fix[:10])
	wantCode(t, err, deployer.EConflict, "does not point extensions/Foo at "+fix[:10])

	// Once it does, the fix ships and is on the record.
	f.git(f.core, "checkout", "-q", "wmf/2")
	bump := f.bump(fix)
	f.git(f.core, "checkout", "-q", "wmf/1")
	p, err := d.prepare(false, "php-2/extensions/Foo:"+fix[:10])
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := d.c.ComposedCommit(p.Upstream, "php-2/extensions/Foo"); got != fix {
		t.Errorf("php-2/extensions/Foo is at %.10s, want the fix %.10s", got, fix)
	}
	if got, _ := d.c.ComposedCommit(p.Upstream, "php-2"); got != bump {
		t.Errorf("php-2 is at %.10s, want %.10s", got, bump)
	}
	found := false
	for _, ch := range p.Changes {
		found = found || (ch.Commit == fix && ch.Component == "php-2/extensions/Foo")
	}
	if !found {
		t.Errorf("the fix is not on the record: %v", changeIDs(p))
	}
}

// TestCompositeSubmoduleRefAlreadyDeployed: naming a submodule commit the
// deployed pointer already holds is refused as already deployed, as a
// component's own ref is. It used to look for the next commit of core
// "pointing at it" and offer to ship core's next, unrelated commit.
func TestCompositeSubmoduleRefAlreadyDeployed(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	fix := f.commit(f.ext, "Foo: fix", map[string]string{"Foo.php": "<?php // Foo 2\n"})
	f.bump(fix)
	p, err := d.prepare(false, "php-1/extensions/Foo:"+fix[:10])
	if err != nil {
		t.Fatal(err)
	}
	d.up = p.Upstream
	f.commit(f.core, "core: later", map[string]string{"index.php": "<?php // core 2\n"})
	for _, include := range []bool{false, true} {
		_, err = d.prepare(include, "php-1/extensions/Foo:"+fix[:10])
		wantCode(t, err, deployer.EConflict, "php-1/extensions/Foo:"+fix[:10]+" is already deployed")
	}
}
