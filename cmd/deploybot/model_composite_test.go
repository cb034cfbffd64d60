package main

// The composite mode of the model (TestModelPipelineComposite): the same
// operations and invariants as TestModelPipeline, over a composite deploy
// tree. Upstream is the MediaWiki-shaped repositories of mwRepos
// (composite_fixture_test.go): the configuration repository at the root,
// mediawiki/core on release branch wmf/1 at php-1.46.0-wmf.3 following its
// submodules, and extension Foo as a real submodule of core. Every change
// goes to a component rapid draws: the root, core, or Foo (committed in
// Foo's repository, then core's pointer moved, as Gerrit's superproject
// subscription does; now and then that lags until a superproject-update
// step), and is backported with the component ref syntax.
// The hosts read change files wherever the flattened tree puts them.
//
// On top of the model's invariants, after every step: every staging
// commit a host serves (and the staging tip) holds exactly the composition
// of the upstream commits its message records, per component and followed
// submodule, computed here with git from the upstream repositories; a
// rollback commit holds the tree of the commit it restored.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const (
	compRelease = "php-1.46.0-wmf.3"              // the release branch's directory
	compExt     = compRelease + "/extensions/Foo" // its followed submodule
)

// compUpstream is the composite upstream of a world.
type compUpstream struct {
	w       *world
	r       *mwRepos
	checked map[string]bool // staging commits whose composition holds
}

func newCompUpstream(w *world) *compUpstream {
	if err := os.MkdirAll(w.upstream, 0o755); err != nil {
		w.t.Fatal(err)
	}
	return &compUpstream{w: w, r: newMWReposIn(w.t, w.upstream), checked: map[string]bool{}}
}

// source is the configuration's source section.
func (u *compUpstream) source(pushReverts bool) string {
	return fmt.Sprintf(`source:
  type: git
  git: {push_reverts: %v}
  components:
    - {path: "", url: %s, branch: master}
    - {path: %s, url: %s, branch: wmf/1, submodules: true}
`, pushReverts, u.r.config, compRelease, u.r.core)
}

// changeDirs are where change files lie in the flattened tree.
func (u *compUpstream) changeDirs() []string {
	return []string{"changes", compRelease + "/changes", compExt + "/changes"}
}

// where a component's changes go: its work tree, its deploy path, and
// the name refs give it.
func (u *compUpstream) where(comp string) (dir, at string) {
	switch comp {
	case "root":
		return u.r.config, ""
	case "core":
		return u.r.core, compRelease
	default:
		return u.r.ext, compExt
	}
}

func joinDeploy(at, p string) string {
	if at == "" {
		return p
	}
	return at + "/" + p
}

// commit adds a change of kind to a component rapid draws, and names it
// with the component ref syntax (now and then, outside Foo, as a bare
// commit).
func (u *compUpstream) commit(rt *rapid.T, kind, author string) *modelChange {
	comp := rapid.SampledFrom([]string{"root", "core", "ext"}).Draw(rt, "component")
	lags := comp == "ext" && rapid.IntRange(0, 4).Draw(rt, "pointer-lags") == 0
	bare := comp != "ext" && rapid.IntRange(0, 4).Draw(rt, "bare-ref") == 0
	return u.commitAtBy(comp, kind, author, lags, bare)
}

// commitAt adds a change of kind to component comp ("root", "core" or
// "ext"); lags leaves core's pointer where it was for an extension change,
// bare names it by its commit alone (not for Foo: a bare ref is looked up
// in the components, not in their submodules).
func (u *compUpstream) commitAt(comp, kind string, lags, bare bool) *modelChange {
	return u.commitAtBy(comp, kind, "bob", lags, bare)
}

// commitAtBy is commitAt for a change written by author (bob or dan).
func (u *compUpstream) commitAtBy(comp, kind, author string, lags, bare bool) *modelChange {
	w := u.w
	c := &modelChange{n: len(w.changes) + 1, kind: kind, comp: comp, author: author}
	dir, at := u.where(comp)
	rel := fmt.Sprintf("changes/c%d.txt", c.n)
	c.path = joinDeploy(at, rel)
	c.commit = u.r.commit(dir, fmt.Sprintf("change %d (%s)", c.n, kind), map[string]string{rel: fmt.Sprintf("%s\nchange %d\n", kind, c.n)})
	if author == "dan" {
		u.r.git(dir, "commit", "-q", "--amend", "--no-edit", "--author=Dan Submitter <dan@example.org>")
		c.commit = u.r.git(dir, "rev-parse", "HEAD")
	}
	bump := ""
	if comp == "ext" {
		// Now and then Gerrit's superproject subscription lags: core's
		// pointer moves at a later superproject-update or Foo change.
		if lags {
			bump = " (core's pointer not moved yet)"
		} else {
			bump = " (core's pointer moved: " + u.r.bump(c.commit)[:10] + ")"
		}
	}
	name := comp
	if comp != "root" {
		name = at
	}
	c.ref = name + ":" + c.commit[:10]
	if bare && comp != "ext" {
		c.ref = c.commit[:10]
	}
	w.changes = append(w.changes, c)
	w.byCommit[c.commit] = c
	w.log = append(w.log, fmt.Sprintf("upstream: change %d (%s) by %s in %s %.10s%s", c.n, kind, author, comp, c.commit, bump))
	return c
}

// revert reverts c in its component; in Foo, core's pointer then moves.
func (u *compUpstream) revert(c *modelChange) *modelChange {
	w := u.w
	dir, at := u.where(c.comp)
	u.r.git(dir, "revert", "--no-edit", c.commit)
	r := &modelChange{n: len(w.changes) + 1, kind: kindRevert, of: c.commit, comp: c.comp}
	r.commit = u.r.git(dir, "rev-parse", "HEAD")
	r.path = joinDeploy(at, fmt.Sprintf("changes/c%d.txt", c.n))
	bump := ""
	if c.comp == "ext" {
		bump = " (core's pointer moved: " + u.r.bump(r.commit)[:10] + ")"
	}
	w.changes = append(w.changes, r)
	w.byCommit[r.commit] = r
	w.log = append(w.log, fmt.Sprintf("upstream: revert of change %d in %s: %.10s%s", c.n, c.comp, r.commit, bump))
	return r
}

// pointerLags reports whether core's pointer is behind Foo's branch.
func (u *compUpstream) pointerLags() bool {
	f := strings.Fields(u.r.git(u.r.core, "ls-tree", "HEAD", "extensions/Foo"))
	return len(f) < 3 || f[2] != u.r.git(u.r.ext, "rev-parse", "HEAD")
}

// actions are the model's operations with those of a composite upstream.
func (u *compUpstream) actions() map[string]func(*rapid.T) {
	w := u.w
	acts := w.actions()
	acts["superproject-update"] = func(*rapid.T) {
		// With core's pointer already at Foo's tip the subscription has
		// nothing to do: the step is taken, and changes nothing upstream.
		if !u.pointerLags() {
			w.log = append(w.log, "upstream: core's pointer is already at Foo's tip")
			return
		}
		head := u.r.git(u.r.ext, "rev-parse", "HEAD")
		w.log = append(w.log, fmt.Sprintf("upstream: core's pointer moved to Foo's %.10s: %.10s", head, u.r.bump(head)))
	}
	return acts
}

// onUpstream reports whether c's file is on its component's branch.
func (u *compUpstream) onUpstream(c *modelChange) bool {
	dir, _ := u.where(c.comp)
	_, err := os.Stat(filepath.Join(dir, "changes", fmt.Sprintf("c%d.txt", c.n)))
	return err == nil
}

// tipRef names a component's (or Foo's) branch tip.
func (u *compUpstream) tipRef(rt *rapid.T) string {
	return rapid.SampledFrom([]string{"root:master", compRelease + ":wmf/1", compExt + ":wmf/1"}).Draw(rt, "tip")
}

// check asserts the composite invariant for every staging commit a host
// serves and for the staging tip.
func (u *compUpstream) check(serving map[string]string, head string) {
	commits := []string{head}
	for _, c := range serving {
		commits = append(commits, c)
	}
	for _, c := range commits {
		if c != "" {
			u.verify(c, 0)
		}
	}
}

func (u *compUpstream) staging(args ...string) string {
	return u.r.git(filepath.Join(u.w.dir, "staging.git"), args...)
}

// verify asserts that staging commit s holds the composition its message
// records: a deployment's commit records, per component and followed
// submodule, the upstream commit whose tree it holds (copied from its
// composition commit, named by its Upstream trailer), and its tree is
// git's own composition of those commits, file by file; a rollback
// commit's tree is the tree of the commit it restored, which must hold
// too. Part of a bisected batch (a Without line) is a tree no upstream
// composition holds: only its Upstream trailer is checked.
func (u *compUpstream) verify(s string, depth int) {
	t := u.w.t
	t.Helper()
	if u.checked[s] {
		return
	}
	msg := u.staging("log", "-1", "--format=%B", s)
	upstream := msgTrailer(msg, "Upstream: ")
	if upstream == "" {
		t.Fatalf("staging commit %.10s records no upstream:\n%s", s, msg)
	}
	upMsg := u.staging("log", "-1", "--format=%B", upstream)
	if !strings.HasPrefix(upMsg, "Composition: ") {
		t.Fatalf("staging commit %.10s names upstream %.10s, which is no composition:\n%s", s, upstream, upMsg)
	}
	switch {
	case strings.HasPrefix(msg, "Rollback of deployment"):
		restored := msgTrailer(msg, "Restored: ")
		if depth > 50 || restored == "" {
			t.Fatalf("rollback commit %.10s restores nothing I can follow:\n%s", s, msg)
		}
		if a, b := u.staging("rev-parse", s+"^{tree}"), u.staging("rev-parse", restored+"^{tree}"); a != b {
			t.Fatalf("rollback commit %.10s holds tree %.10s, not the tree %.10s of the commit %.10s it says it restored", s, a, b, restored)
		}
		u.verify(restored, depth+1)
	case strings.Contains(msg, "\nWithout: "):
		// A part of a batch: base plus some changes, no composition.
	default:
		lines := partLines(msg)
		if want := partLines(upMsg); strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("staging commit %.10s records parts\n  %s\nbut its composition %.10s records\n  %s", s, strings.Join(lines, "\n  "), upstream, strings.Join(want, "\n  "))
		}
		want := u.composed(s, lines)
		got := u.treeOf(u.staging("ls-tree", "-r", "--full-tree", s), "")
		if d := diffTrees(got, want); d != "" {
			t.Fatalf("staging commit %.10s does not hold the composition it records:\n  %s\n%s", s, strings.Join(lines, "\n  "), d)
		}
	}
	u.checked[s] = true
	compositionsChecked.Add(1)
}

// compositionsChecked counts the staging commits verify found to hold
// their composition, so a run that never checks one is seen.
var compositionsChecked atomic.Int64

// composed is git's own composition of the parts lines record: each
// component's files at its commit under its path, each followed
// submodule's files at the commit core's gitlink names (which must be the
// one recorded), path -> "mode blob".
func (u *compUpstream) composed(s string, lines []string) map[string]string {
	t := u.w.t
	subs := map[string]string{}
	comps := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("staging commit %.10s: unreadable part line %q", s, l)
		}
		if f[0] == "Submodule:" {
			subs[f[1]] = f[2]
		} else {
			comps[f[1]] = f[2]
		}
	}
	if len(comps) != 2 || comps["."] == "" || comps[compRelease] == "" || len(subs) != 1 {
		t.Fatalf("staging commit %.10s records parts %v, submodules %v; want the root, %s and %s", s, comps, subs, compRelease, compExt)
	}
	out := map[string]string{}
	for p, v := range u.treeOf(u.r.git(u.r.config, "ls-tree", "-r", comps["."]), "") {
		out[p] = v
	}
	for p, v := range u.treeOf(u.r.git(u.r.core, "ls-tree", "-r", comps[compRelease]), compRelease+"/") {
		if !strings.HasPrefix(v, "160000 ") {
			out[p] = v
			continue
		}
		link := strings.Fields(v)[1]
		if p != compExt || subs[p] != link {
			t.Fatalf("staging commit %.10s: core %.10s points %s at %.10s, the commit records %q", s, comps[compRelease], p, link, subs[p])
		}
		for q, v := range u.treeOf(u.r.git(u.r.ext, "ls-tree", "-r", link), p+"/") {
			out[q] = v
		}
	}
	return out
}

// treeOf reads ls-tree -r output: path -> "mode object".
func (u *compUpstream) treeOf(ls, prefix string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(ls, "\n") {
		meta, p, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta)
		out[prefix+p] = f[0] + " " + f[2]
	}
	return out
}

func diffTrees(got, want map[string]string) string {
	var d []string
	for p, v := range want {
		if got[p] != v {
			d = append(d, fmt.Sprintf("  %s: holds %q, want %q", p, got[p], v))
		}
	}
	for p, v := range got {
		if _, ok := want[p]; !ok {
			d = append(d, fmt.Sprintf("  %s: holds %q, want nothing", p, v))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func partLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, "Component: ") || strings.HasPrefix(l, "Submodule: ") {
			out = append(out, l)
		}
	}
	return out
}

// msgTrailer is the value of msg's last line starting with key.
func msgTrailer(msg, key string) string {
	lines := strings.Split(msg, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(lines[i], key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func runModelComposite(rt *rapid.T, totals *modelTotals) {
	playModel(rt, totals, worldOptions{composite: true}, func(w *world) map[string]func(*rapid.T) { return w.comp.actions() }, nil)
}

// TestModelPipelineComposite runs the model in composite mode over a
// fixed set of seeds (5 sequences of up to 20 steps by default; the
// -rapid flags and -model.soak as for TestModelPipeline).
func TestModelPipelineComposite(t *testing.T) {
	totals, start := runModelTest(t, "5", runModelComposite)
	msg := fmt.Sprintf("model (composite): %d sequences, %d steps, %d invariant checks (%d staging commits held their composition) in %s; %s", totals.sequences, totals.steps, totals.checks, compositionsChecked.Load(), time.Since(start).Round(time.Second), totals.summary())
	t.Log(msg)
	fmt.Println(msg)
	if totals.steps == 0 || compositionsChecked.Load() == 0 {
		t.Fatal("the model ran no step, or checked no staging commit's composition")
	}
}
