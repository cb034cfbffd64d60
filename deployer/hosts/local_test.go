package hosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

func newHost(t testing.TB) *Local {
	t.Helper()
	return NewLocal("web1", filepath.Join(t.TempDir(), "host"))
}

// syncOK syncs h to commit, then checks that the host serves commit and
// that its active slot is exactly commit's tree.
func syncOK(t testing.TB, h *Local, src deployer.TreeSource, commit string) SyncResult {
	t.Helper()
	ctx := context.Background()
	res, err := h.SyncReport(ctx, commit, src)
	if err != nil {
		t.Fatalf("sync %s: %v", commit, err)
	}
	checkServes(t, h, src, commit)
	return res
}

// syncCounted is syncOK that also returns how many Diff and Open calls the
// sync itself made (not counting the checks).
func syncCounted(t testing.TB, h *Local, src *memSource, commit string) (res SyncResult, diffs, opens int64) {
	t.Helper()
	src.resetCounts()
	res, err := h.SyncReport(context.Background(), commit, src)
	if err != nil {
		t.Fatalf("sync %s: %v", commit, err)
	}
	diffs, opens = src.diffs.Load(), src.opens.Load()
	checkServes(t, h, src, commit)
	return res, diffs, opens
}

// checkServes checks that h serves commit, exactly.
func checkServes(t testing.TB, h *Local, src deployer.TreeSource, commit string) {
	t.Helper()
	ctx := context.Background()
	if got, err := h.Current(ctx); err != nil || got != commit {
		t.Fatalf("after sync %s: Current = %q, %v", commit, got, err)
	}
	if err := VerifyHost(ctx, h, src); err != nil {
		t.Fatalf("after sync %s: %v", commit, err)
	}
	if _, err := os.Lstat(filepath.Join(h.Root(), "slots", "tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after sync %s: slots/tmp left behind (%v)", commit, err)
	}
}

func slotPath(h *Local, slot string, p ...string) string {
	return filepath.Join(append([]string{h.Root(), "slots", slot}, p...)...)
}

func readMarker(t testing.TB, h *Local, slot string) *Marker {
	t.Helper()
	m, err := h.core().marker(slot)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeFile(t testing.TB, name, data string, perm fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

// identity is what tells whether a sync rewrote a file: a rewrite renames a
// new inode into place.
type identity struct {
	ino   uint64
	mtime time.Time
}

func identities(t testing.TB, dir string) map[string]identity {
	t.Helper()
	out := map[string]identity{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = identity{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var site = tree{
	"index.html":        file("<h1>hello</h1>\n"),
	"bin/deploy-hook":   exe("#!/bin/sh\necho ok\n"),
	"lib/a/b/c.php":     file("<?php echo 'c';\n"),
	"lib/a/d.php":       file("<?php echo 'd';\n"),
	"static/style.css":  file("body{}\n"),
	"static/logo.svg":   file("<svg/>"),
	"latest":            link("static/style.css"),
	"docs/README":       file("read me\n"),
	"config/empty.conf": file(""),
}

func TestSyncEmptyHostGetsFullTree(t *testing.T) {
	src := newSource(map[string]tree{"c1": site})
	h := newHost(t)
	if got, err := h.Current(context.Background()); err != nil || got != "" {
		t.Fatalf("fresh host: Current = %q, %v; want \"\", nil", got, err)
	}
	if _, err := h.ActiveDir(); err == nil {
		t.Fatal("fresh host: ActiveDir succeeded")
	}

	res := syncOK(t, h, src, "c1")
	if res.Action != SyncRebuild || res.Slot != "a" || res.Written != len(site) || res.Deleted != 0 {
		t.Errorf("result = %+v; want a rebuild of slot a writing %d files", res, len(site))
	}
	if target, err := os.Readlink(filepath.Join(h.Root(), "current")); err != nil || target != "slots/a" {
		t.Errorf("current -> %q, %v; want slots/a", target, err)
	}
	if dir, err := h.ActiveDir(); err != nil || dir != slotPath(h, "a") {
		t.Errorf("ActiveDir = %q, %v", dir, err)
	}
	active, inactive, err := h.Slots()
	if err != nil {
		t.Fatal(err)
	}
	if active.Name != "a" || !active.Marker.Holds("c1") || active.Dir != slotPath(h, "a") {
		t.Errorf("active = %+v", active)
	}
	if inactive.Name != "b" || inactive.Marker != nil {
		t.Errorf("inactive = %+v", inactive)
	}
	data, err := os.ReadFile(filepath.Join(h.Root(), "current", "index.html"))
	if err != nil || string(data) != site["index.html"].data {
		t.Errorf("current/index.html = %q, %v", data, err)
	}
}

func TestSyncIncrementalWritesOnlyChanges(t *testing.T) {
	c1 := tree{}
	for i := range 40 {
		c1[fmt.Sprintf("dir%d/file%d.txt", i%5, i)] = file(fmt.Sprintf("file %d\n", i))
	}
	c2 := c1.with(tree{"dir0/file0.txt": file("changed in c2\n")})
	c3 := c2.with(tree{
		"dir1/file1.txt":  file("changed in c3\n"),
		"dir2/file2.txt":  exe("file 2\n"), // mode only
		"dir3/file3.txt":  {},              // deleted
		"new/sub/new.txt": file("added\n"),
	})
	src := newSource(map[string]tree{"c1": c1, "c2": c2, "c3": c3})
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")

	// Slot a holds c1; c3 differs from it in c2's change and c3's four.
	before := identities(t, slotPath(h, "a"))
	res, diffs, opens := syncCounted(t, h, src, "c3")
	if res.Action != SyncIncremental || res.Slot != "a" || res.Written != 4 || res.Deleted != 1 {
		t.Errorf("result = %+v; want incremental into a, 4 written, 1 deleted", res)
	}
	if diffs != 1 || opens != 4 {
		t.Errorf("sync made %d diffs and read %d files from the source; want 1 and 4", diffs, opens)
	}
	changed := map[string]bool{"dir0/file0.txt": true, "dir1/file1.txt": true, "dir2/file2.txt": true, "dir3/file3.txt": true}
	after := identities(t, slotPath(h, "a"))
	for p, id := range before {
		if changed[p] {
			continue
		}
		if after[p] != id {
			t.Errorf("%s was rewritten (%v -> %v) though it did not change", p, id, after[p])
		}
	}
	if m := readMarker(t, h, "a"); !m.Holds("c3") {
		t.Errorf("marker a = %+v", m)
	}
}

func TestSyncDeletionPrunesEmptyDirs(t *testing.T) {
	c1 := tree{"a/b/c/f": file("f"), "a/keep": file("k"), "x/y/z": file("z"), "top": file("t")}
	c2 := tree{"a/keep": file("k"), "top": file("t")}
	src := newSource(map[string]tree{"c1": c1, "c2": c2, "filler": {"filler": file("x")}})
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "filler")
	res := syncOK(t, h, src, "c2") // into slot a, from c1
	if res.Action != SyncIncremental || res.Deleted != 2 {
		t.Errorf("result = %+v", res)
	}
	for _, gone := range []string{"a/b", "x"} {
		if _, err := os.Lstat(slotPath(h, "a", gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
	if fi, err := os.Lstat(slotPath(h, "a", "a")); err != nil || !fi.IsDir() {
		t.Errorf("a/ should stay: %v", err)
	}
}

// TestSyncTransitions syncs a slot from one tree to another and back, for
// every kind of change a tree can go through. Each case runs as
// [from, filler, to] so that the last sync is an incremental write into
// the slot that holds from; syncOK verifies the tree after every step.
func TestSyncTransitions(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16)
	cases := []struct {
		name     string
		from, to tree
	}{
		{"exec bit", tree{"run.sh": file("echo\n")}, tree{"run.sh": exe("echo\n")}},
		{"content", tree{"a": file("one")}, tree{"a": file("two")}},
		{"empty and large files", tree{"e": file("x"), "big": file("small")}, tree{"e": file(""), "big": file(big)}},
		{"symlinks to file, dir, nowhere",
			tree{"a.txt": file("A"), "d/x": file("X")},
			tree{"a.txt": file("A"), "d/x": file("X"), "l-file": link("a.txt"), "l-dir": link("d"),
				"l-dangling": link("nowhere/at/all"), "d/up": link("../a.txt"), "l-abs": link("/etc/hostname")}},
		{"symlink retargeted", tree{"l": link("a"), "a": file("a"), "b": file("b")}, tree{"l": link("b"), "a": file("a"), "b": file("b")}},
		{"file becomes symlink", tree{"p": file("x"), "q": file("q")}, tree{"p": link("q"), "q": file("q")}},
		{"file becomes dir", tree{"x": file("x"), "y": file("y")}, tree{"x/y": file("xy"), "x/z/w": exe("w"), "y": file("y")}},
		{"dir becomes symlink", tree{"d/f": file("f"), "d/g/h": file("h"), "e/f": file("f")}, tree{"d": link("e"), "e/f": file("f")}},
		{"rename", tree{"old/dir/name.txt": file("same"), "old/other": file("o")}, tree{"new/place/name.txt": file("same"), "old/other": file("o")}},
		{"deep nesting", tree{"top": file("t")}, tree{"top": file("t"), "1/2/3/4/5/6/7/8/9/10/11/12/f": file("deep")}},
		{"everything replaced", tree{"a/b/c": file("c"), "d": file("d")}, tree{"only": file("o")}},
		{"awkward names", tree{"plain": file("p")}, tree{
			"plain":               file("p"),
			"ü/日本語.txt":           file("unicode"),
			"a b/c d.txt":         file("spaces"),
			`q"uo'te`:             file("quotes"),
			"new\nline":           file("newline"),
			"-rf":                 file("dash"),
			"--/--help":           exe("dashes"),
			".hidden/.x":          file("dot"),
			`back\slash`:          file("backslash"),
			"tab\there":           file("tab"),
			"star*?[x]":           file("glob"),
			"link with space":     link("a b/c d.txt"),
			"$(rm -rf)/`x`;&|<>!": file("shell"),
		}},
	}
	for _, tc := range cases {
		for _, dir := range []string{"forward", "backward"} {
			t.Run(tc.name+"/"+dir, func(t *testing.T) {
				from, to := tc.from, tc.to
				if dir == "backward" {
					from, to = to, from
				}
				src := newSource(map[string]tree{"from": from, "to": to, "filler": {"filler": file("f")}})
				h := newHost(t)
				syncOK(t, h, src, "from")
				syncOK(t, h, src, "filler")
				writes := int64(0)
				for _, c := range mustDiff(t, src, "from", "to") {
					if !c.Delete {
						writes++
					}
				}
				res, _, opens := syncCounted(t, h, src, "to")
				if res.Action != SyncIncremental || res.Slot != "a" || opens != writes {
					t.Errorf("result = %+v, %d files read; want incremental into a reading %d", res, opens, writes)
				}
				// Rolling back and forth is flips only.
				for _, c := range []string{"filler", "to"} {
					if res, d, o := syncCounted(t, h, src, c); res.Action != SyncFlip || d != 0 || o != 0 {
						t.Errorf("sync %s: %+v, %d diffs, %d opens; want a flip only", c, res, d, o)
					}
				}
			})
		}
	}
}

func TestSyncNeverWritesThroughSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "f"), "outside\n", 0o644)
	check := func(t *testing.T) {
		t.Helper()
		entries, _ := os.ReadDir(outside)
		data, err := os.ReadFile(filepath.Join(outside, "f"))
		if len(entries) != 1 || err != nil || string(data) != "outside\n" {
			t.Errorf("the directory outside the slot changed: %d entries, f = %q, %v", len(entries), data, err)
		}
	}

	t.Run("a tree replaces a symlink with a directory", func(t *testing.T) {
		src := newSource(map[string]tree{
			"c1":     {"d": link(outside)},
			"c2":     {"d/f": file("inside\n"), "d/g": file("g")},
			"filler": {"x": file("x")},
		})
		h := newHost(t)
		syncOK(t, h, src, "c1")
		syncOK(t, h, src, "filler")
		syncOK(t, h, src, "c2")
		check(t)
	})

	// Drift: someone replaced a directory of the inactive slot with a
	// symlink out of it. Neither deleting nor writing under it may follow.
	for _, tc := range []struct {
		name string
		next tree
	}{
		{"delete under it", tree{"other": file("o")}},
		{"write under it", tree{"d/f": file("new\n"), "other": file("o")}},
	} {
		t.Run("drift/"+tc.name, func(t *testing.T) {
			src := newSource(map[string]tree{
				"c1":     {"d/f": file("inside\n"), "other": file("o")},
				"filler": {"x": file("x")},
				"next":   tc.next,
			})
			h := newHost(t)
			syncOK(t, h, src, "c1")
			syncOK(t, h, src, "filler")
			if err := os.RemoveAll(slotPath(h, "a", "d")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, slotPath(h, "a", "d")); err != nil {
				t.Fatal(err)
			}
			res, err := h.SyncReport(context.Background(), "next", src)
			if err != nil {
				t.Fatal(err)
			}
			check(t)
			// The delete case leaves the planted link: the marker vouched for
			// the slot, and only VerifyTree (drift detection) can tell.
			if tc.name == "write under it" {
				if err := VerifyHost(context.Background(), h, src); err != nil {
					t.Errorf("%+v: %v", res, err)
				}
			}
		})
	}
}

func TestRollbackIsAFlip(t *testing.T) {
	src := newSource(map[string]tree{"c1": site, "c2": site.with(tree{"index.html": file("v2")})})
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")
	for _, want := range []struct{ commit, slot string }{{"c1", "a"}, {"c2", "b"}, {"c1", "a"}} {
		res, d, o := syncCounted(t, h, src, want.commit)
		if res.Action != SyncFlip || res.Slot != want.slot || res.Written != 0 || d != 0 || o != 0 {
			t.Errorf("sync %s: %+v, %d diffs, %d opens; want a flip to %s only", want.commit, res, d, o, want.slot)
		}
	}
}

func TestSyncIsIdempotent(t *testing.T) {
	src := newSource(map[string]tree{"c1": site, "c2": site.with(tree{"index.html": file("v2")})})
	h := newHost(t)
	for _, c := range []string{"c1", "c2"} {
		syncOK(t, h, src, c)
		marker := filepath.Join(h.Root(), "slots", "a.state")
		before, _ := os.Stat(marker)
		src.resetCounts()
		for range 2 {
			res, err := h.SyncReport(context.Background(), c, src)
			if err != nil || res.Action != SyncNone {
				t.Fatalf("second sync %s: %+v, %v; want nothing done", c, res, err)
			}
		}
		if o, d := src.opens.Load(), src.diffs.Load(); o != 0 || d != 0 {
			t.Errorf("no-op syncs read the source: %d opens, %d diffs", o, d)
		}
		after, _ := os.Stat(marker)
		if !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("no-op sync rewrote a marker")
		}
	}
}

// Trees for the interrupted-sync tests. c3 differs from c1 in many ways;
// c4 differs from both, and puts some of c3's changes back to c1's
// version, so only the pending union finds them.
var (
	crashC1 = tree{
		"a.txt": file("a1"), "b.txt": file("b1"), "c.txt": file("c1"), "keep/k.txt": file("k"),
		"mode.sh": file("echo"), "swap": file("a file"), "gone/one": file("1"), "gone/two": file("2"),
		"l": link("a.txt"),
	}
	crashC2 = crashC1.with(tree{"a.txt": file("a2")})
	crashC3 = crashC1.with(tree{
		"a.txt": file("a3"), "b.txt": file("b3"), "c.txt": file("c3"), "mode.sh": exe("echo"),
		"swap": {}, "swap/inner": file("now a dir"), "gone/one": {}, "gone/two": {},
		"new/deep/dir/file": file("new in c3"), "new/other": file("other"), "l": link("b.txt"),
	})
	crashC4 = crashC1.with(tree{
		"c.txt": file("c4"), "d.txt": file("d4"), "gone/two": {},
	})
)

func crashSource() *memSource {
	return newSource(map[string]tree{"c1": crashC1, "c2": crashC2, "c3": crashC3, "c4": crashC4, "c5": crashC3.with(tree{"z": file("z")})})
}

func TestSyncInterrupted(t *testing.T) {
	writes := 0
	for _, c := range mustDiff(t, crashSource(), "c1", "c3") {
		if !c.Delete {
			writes++
		}
	}
	for n := 0; n <= writes; n++ {
		for _, retry := range []string{"c3", "c4", "c1"} {
			t.Run(fmt.Sprintf("fail after %d files, retry towards %s", n, retry), func(t *testing.T) {
				ctx := context.Background()
				src := crashSource()
				h := newHost(t)
				syncOK(t, h, src, "c1")
				syncOK(t, h, src, "c2")

				bad := &flaky{src: src, after: int64(n)}
				err := h.Sync(ctx, "c3", bad)
				if n == writes {
					// Every write succeeded: the sync completes.
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				var oe *OpError
				if !errors.As(err, &oe) || !errors.Is(err, errFlaky) || oe.Host != "web1" || !strings.HasPrefix(oe.Path, "slots/a/") {
					t.Fatalf("interrupted sync: %v; want an OpError naming host web1 and a path in slots/a", err)
				}
				if !strings.Contains(err.Error(), "web1") || !strings.Contains(err.Error(), oe.Path) {
					t.Errorf("message %q does not name the host and path", err)
				}
				// Still serving c2, untouched.
				if got, err := h.Current(ctx); err != nil || got != "c2" {
					t.Fatalf("after interrupted sync: Current = %q, %v", got, err)
				}
				if err := VerifyHost(ctx, h, src); err != nil {
					t.Fatal(err)
				}
				if m := readMarker(t, h, "a"); m == nil || m.Commit != "c1" || !slices.Equal(m.Pending, []string{"c3"}) {
					t.Errorf("marker a = %+v; want c1 pending c3", m)
				}

				res := syncOK(t, h, src, retry)
				if res.Action != SyncIncremental {
					t.Errorf("retry: %+v", res)
				}
				if m := readMarker(t, h, "a"); !m.Holds(retry) {
					t.Errorf("marker a = %+v", m)
				}
			})
		}
	}
}

func TestSyncInterruptedTwice(t *testing.T) {
	ctx := context.Background()
	src := crashSource()
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")
	if err := h.Sync(ctx, "c3", &flaky{src: src, after: 3}); err == nil {
		t.Fatal("want an error")
	}
	if err := h.Sync(ctx, "c4", &flaky{src: src, after: 1}); err == nil {
		t.Fatal("want an error")
	}
	if m := readMarker(t, h, "a"); m == nil || m.Commit != "c1" || !slices.Equal(m.Pending, []string{"c3", "c4"}) {
		t.Errorf("marker a = %+v; want c1 pending c3, c4", m)
	}
	syncOK(t, h, src, "c5")
	syncOK(t, h, src, "c2") // a flip back
	syncOK(t, h, src, "c4") // into slot a again, from c5
}

// TestSyncAfterCrash plants what a process killed mid-sync leaves behind:
// a pending marker, some files of the new commit, an empty directory made
// for a file never written, a staged file, a temporary marker and a
// temporary current link.
func TestSyncAfterCrash(t *testing.T) {
	src := crashSource()
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")
	root := h.Root()
	writeFile(t, filepath.Join(root, "slots", "a.state"), `{"commit":"c1","pending":["c3"]}`, 0o644)
	writeFile(t, filepath.Join(root, "slots", "a.state.tmp"), `{"comm`, 0o644)
	writeFile(t, slotPath(h, "a", "a.txt"), "a3", 0o644)
	writeFile(t, slotPath(h, "a", "new", "other"), "other", 0o644)
	if err := os.MkdirAll(slotPath(h, "a", "new", "deep", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(slotPath(h, "a", "gone", "one")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "slots", "tmp", "7"), "staged", 0o644)
	if err := os.Symlink("slots/a", filepath.Join(root, "current.tmp.XYZ")); err != nil {
		t.Fatal(err)
	}

	syncOK(t, h, src, "c4")
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"current", "slots"}) {
		t.Errorf("root holds %q; want current and slots only", names)
	}
	entries, _ = os.ReadDir(filepath.Join(root, "slots"))
	names = nil
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"a", "a.state", "b", "b.state"}) {
		t.Errorf("slots/ holds %q; want the two slots and their markers only", names)
	}
}

func TestSyncUnknownSlotRebuilds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		marker *string // nil: no marker
	}{
		{"no marker", nil},
		{"corrupt marker", ptr(`{"commit": "c1"`)},
		{"marker names an unknown commit", ptr(`{"commit": "f00d"}`)},
		{"marker names an unknown pending commit", ptr(`{"commit": "c1", "pending": ["f00d"]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := crashSource()
			h := newHost(t)
			syncOK(t, h, src, "c1")
			syncOK(t, h, src, "c2")
			// Junk of every kind, and tracked files made wrong.
			writeFile(t, slotPath(h, "a", "junk.txt"), "junk", 0o644)
			writeFile(t, slotPath(h, "a", "junkdir", "x", "y"), "junk", 0o644)
			writeFile(t, slotPath(h, "a", "keep", "junk"), "junk", 0o644)
			os.MkdirAll(slotPath(h, "a", "empty", "dirs"), 0o755)
			os.Symlink("/etc", slotPath(h, "a", "junklink"))
			os.Remove(slotPath(h, "a", "b.txt"))
			os.Mkdir(slotPath(h, "a", "b.txt"), 0o755)
			writeFile(t, slotPath(h, "a", "c.txt"), "tampered", 0o755)
			os.Remove(slotPath(h, "a", "l"))
			writeFile(t, slotPath(h, "a", "l"), "not a link", 0o644)
			markerFile := filepath.Join(h.Root(), "slots", "a.state")
			if tc.marker == nil {
				os.Remove(markerFile)
			} else {
				writeFile(t, markerFile, *tc.marker, 0o644)
			}

			res := syncOK(t, h, src, "c4")
			if res.Action != SyncRebuild || res.Reason == "" || res.Written != len(crashC4) {
				t.Errorf("result = %+v; want a rebuild writing %d files, with a reason", res, len(crashC4))
			}
			t.Logf("reason: %s", res.Reason)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSyncCancelled(t *testing.T) {
	src := crashSource()
	h := newHost(t)
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Sync(ctx, "c3", src); !errors.Is(err, context.Canceled) {
		t.Errorf("sync with a cancelled context: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err := h.Sync(ctx, "c3", &flaky{src: src, after: 2, hook: cancel})
	var oe *OpError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &oe) || oe.Path == "" {
		t.Errorf("sync cancelled midway: %v; want context.Canceled naming a path", err)
	}
	if got, _ := h.Current(context.Background()); got != "c2" {
		t.Errorf("Current = %q after a cancelled sync", got)
	}
	syncOK(t, h, src, "c3")
}

func TestSyncRefusesPathsOutsideTheTree(t *testing.T) {
	for _, p := range []string{"../evil", "a/../../evil", "/abs", "a//b", "./a", "a/.", ""} {
		t.Run(fmt.Sprintf("%q", p), func(t *testing.T) {
			src := newSource(map[string]tree{"c1": site, "bad": {p: file("evil"), "ok": file("ok")}})
			h := newHost(t)
			syncOK(t, h, src, "c1")
			if err := h.Sync(context.Background(), "bad", src); err == nil {
				t.Fatal("sync succeeded")
			}
			if _, err := os.Lstat(filepath.Join(h.Root(), "slots", "evil")); err == nil {
				t.Error("wrote outside the slot")
			}
			if _, err := os.Lstat(slotPath(h, "b", "ok")); err == nil {
				t.Error("started writing a tree it refused")
			}
			if got, _ := h.Current(context.Background()); got != "c1" {
				t.Errorf("Current = %q", got)
			}
		})
	}
}

func TestCurrentAndLayoutErrors(t *testing.T) {
	ctx := context.Background()
	src := newSource(map[string]tree{"c1": site, "c2": site.with(tree{"x": file("x")})})

	setup := func(t *testing.T) *Local {
		h := newHost(t)
		syncOK(t, h, src, "c1")
		return h
	}
	relink := func(t *testing.T, h *Local, target string) {
		cur := filepath.Join(h.Root(), "current")
		os.Remove(cur)
		if err := os.Symlink(target, cur); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		break_  func(t *testing.T, h *Local)
		syncErr bool // Sync must refuse too
	}{
		{"current points outside the slots", func(t *testing.T, h *Local) { relink(t, h, t.TempDir()) }, true},
		{"current points at slots/", func(t *testing.T, h *Local) { relink(t, h, "slots") }, true},
		{"current points at a sibling", func(t *testing.T, h *Local) { relink(t, h, "slots/a/../../elsewhere") }, true},
		{"current is a directory", func(t *testing.T, h *Local) {
			cur := filepath.Join(h.Root(), "current")
			os.Remove(cur)
			os.Mkdir(cur, 0o755)
		}, true},
		{"marker missing", func(t *testing.T, h *Local) { os.Remove(filepath.Join(h.Root(), "slots", "a.state")) }, false},
		{"marker pending", func(t *testing.T, h *Local) {
			writeFile(t, filepath.Join(h.Root(), "slots", "a.state"), `{"commit":"c1","pending":["c2"]}`, 0o644)
		}, false},
		{"marker corrupt", func(t *testing.T, h *Local) {
			writeFile(t, filepath.Join(h.Root(), "slots", "a.state"), `not json`, 0o644)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t)
			tc.break_(t, h)
			got, err := h.Current(ctx)
			if err == nil {
				t.Fatalf("Current = %q, nil; want an error", got)
			}
			if !strings.Contains(err.Error(), "web1") {
				t.Errorf("error %q does not name the host", err)
			}
			if err := VerifyHost(ctx, h, src); err == nil {
				t.Error("VerifyHost succeeded")
			}
			err = h.Sync(ctx, "c2", src)
			if tc.syncErr != (err != nil) {
				t.Errorf("Sync: %v (want error: %v)", err, tc.syncErr)
			}
		})
	}

	t.Run("a slot is a symlink", func(t *testing.T) {
		h := setup(t)
		os.Remove(slotPath(h, "b"))
		os.Symlink(t.TempDir(), slotPath(h, "b"))
		if err := h.Sync(ctx, "c2", src); err == nil {
			t.Error("Sync wrote through a symlinked slot")
		}
	})
	t.Run("no commit", func(t *testing.T) {
		if err := newHost(t).Sync(ctx, "", src); err == nil {
			t.Error("Sync to no commit succeeded")
		}
	})
	t.Run("inactive slot holds the commit but no current", func(t *testing.T) {
		// A crash between the final marker and the first flip.
		h := newHost(t)
		syncOK(t, h, src, "c1")
		os.Remove(filepath.Join(h.Root(), "current"))
		res := syncOK(t, h, src, "c1")
		if res.Action != SyncFlip {
			t.Errorf("%+v; want a flip", res)
		}
	})
}

// TestConcurrentReadersSeeWholeTrees runs readers that resolve current once
// and read two files that change together, while syncs write the inactive
// slot and flip, over and over. No reader may see a mismatched pair.
//
// A reader that holds a slot across two syncs could see the second one
// write it: that is the limit of a two-slot design (requests are far
// shorter than the time between deployments). The syncer therefore waits,
// after each flip, until every reader has started a fresh read.
func TestConcurrentReadersSeeWholeTrees(t *testing.T) {
	const syncs, readers = 40, 4
	src := newSource(map[string]tree{})
	filler := tree{}
	for i := range 50 {
		filler[fmt.Sprintf("filler/%d/f", i%7)+fmt.Sprint(i)] = file(fmt.Sprint(i))
	}
	for i := range syncs {
		g := fmt.Sprintf("generation %d\n", i)
		src.add(fmt.Sprintf("g%d", i), filler.with(tree{
			"pair/x":                     file(g),
			"deep/er/pair-y":             file(g),
			fmt.Sprintf("only/in/%d", i): file(g), // dirs come and go too
		}))
	}
	h := newHost(t)
	syncOK(t, h, src, "g0")

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		progress [readers]atomic.Int64
		reads    atomic.Int64
	)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				target, err := os.Readlink(filepath.Join(h.Root(), "current"))
				if err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				dir := filepath.Join(h.Root(), target)
				x, errX := os.ReadFile(filepath.Join(dir, "pair", "x"))
				y, errY := os.ReadFile(filepath.Join(dir, "deep", "er", "pair-y"))
				if errX != nil || errY != nil || string(x) != string(y) {
					t.Errorf("reader saw a half-written tree in %s: x=%q (%v) y=%q (%v)", target, x, errX, y, errY)
					return
				}
				reads.Add(1)
				progress[r].Add(1)
			}
		}()
	}
	ctx := context.Background()
	for i := 1; i < syncs; i++ {
		if err := h.Sync(ctx, fmt.Sprintf("g%d", i), src); err != nil {
			t.Fatal(err)
		}
		var marks [readers]int64
		for r := range readers {
			marks[r] = progress[r].Load()
		}
		deadline := time.Now().Add(10 * time.Second)
		for r := range readers {
			for progress[r].Load() < marks[r]+2 && time.Now().Before(deadline) && !t.Failed() {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := VerifyHost(ctx, h, src); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d consistent reads across %d syncs", reads.Load(), syncs-1)
}

func mustDiff(t testing.TB, src deployer.TreeSource, from, to string) []deployer.FileChange {
	t.Helper()
	d, err := src.Diff(context.Background(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSyncLogs(t *testing.T) {
	var buf strings.Builder
	src := newSource(map[string]tree{"c1": site, "c2": site.with(tree{"x": file("x")})})
	h := newHost(t)
	h.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	if h.Name() != "web1" {
		t.Errorf("Name = %q", h.Name())
	}
	syncOK(t, h, src, "c1")
	syncOK(t, h, src, "c2")
	syncOK(t, h, src, "c1")
	h.Sync(context.Background(), "nope", src)
	out := buf.String()
	for _, want := range []string{
		`msg="synced by rebuilding the slot in full" host=web1 commit=c1 action=rebuild slot=a written=9`,
		`reason="slot a has no marker, so its contents are unknown"`,
		`msg=synced host=web1 commit=c1 action=flip slot=a written=0 deleted=0`,
		`msg="sync failed" host=web1 commit=nope`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestSyncLogsWithTheContextLogger: a sync made for a deployment logs on
// the logger the context carries (with deployment=<id>), as SSH does, not
// on the host's own.
func TestSyncLogsWithTheContextLogger(t *testing.T) {
	var own, dep strings.Builder
	src := newSource(map[string]tree{"c1": site})
	h := newHost(t)
	h.Logger = slog.New(slog.NewTextHandler(&own, nil))
	ctx := deployer.WithLogger(context.Background(), slog.New(slog.NewTextHandler(&dep, nil)).With("deployment", 42))
	if _, err := h.SyncReport(ctx, "c1", src); err != nil {
		t.Fatal(err)
	}
	if want := `deployment=42 host=web1 commit=c1 action=rebuild`; !strings.Contains(dep.String(), want) {
		t.Errorf("the deployment's log lacks %q:\n%s", want, dep.String())
	}
	if own.Len() != 0 {
		t.Errorf("the host's own logger got the deployment's line:\n%s", own.String())
	}
	// Without a logger of its own, the host still logs for a deployment.
	h2, dep2 := newHost(t), &strings.Builder{}
	ctx = deployer.WithLogger(context.Background(), slog.New(slog.NewTextHandler(dep2, nil)))
	if _, err := h2.SyncReport(ctx, "c1", src); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dep2.String(), `msg="synced by rebuilding the slot in full" host=web1`) {
		t.Errorf("a host without a logger logged nothing for the deployment:\n%s", dep2.String())
	}
}
