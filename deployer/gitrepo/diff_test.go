package gitrepo

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// fc is what a test expects of one FileChange: "path", "-path" for a
// delete, and for a write its mode and contents.
type fc struct {
	path string
	mode deployer.FileMode
	data string
}

func del(path string) fc { return fc{path: "-" + path} }

func TestDiff(t *testing.T) {
	const sub = "0123456789abcdef0123456789abcdef01234567"
	deprecated := entry{data: "same", mode: filemode.Deprecated}
	tests := []struct {
		name     string
		from, to tree
		want     []fc
	}{
		{"identical", tree{"a": reg("1"), "d/b": exe("2")}, tree{"a": reg("1"), "d/b": exe("2")}, nil},
		{"add", tree{"a": reg("1")}, tree{"a": reg("1"), "b": reg("2")}, []fc{{"b", deployer.ModeRegular, "2"}}},
		{"modify", tree{"a": reg("1")}, tree{"a": reg("one")}, []fc{{"a", deployer.ModeRegular, "one"}}},
		{"delete", tree{"a": reg("1"), "b": reg("2")}, tree{"a": reg("1")}, []fc{del("b")}},
		{"rename", tree{"old/name.php": reg("x")}, tree{"new/name.php": reg("x")},
			[]fc{{"new/name.php", deployer.ModeRegular, "x"}, del("old/name.php")}},
		{"made executable", tree{"run": reg("#!")}, tree{"run": exe("#!")}, []fc{{"run", deployer.ModeExecutable, "#!"}}},
		{"made regular", tree{"run": exe("#!")}, tree{"run": reg("#!")}, []fc{{"run", deployer.ModeRegular, "#!"}}},
		{"deprecated mode is regular", tree{"f": deprecated}, tree{"f": reg("same")}, nil},
		{"add symlink", tree{}, tree{"cur": link("releases/1.2")}, []fc{{"cur", deployer.ModeSymlink, "releases/1.2"}}},
		{"retarget symlink", tree{"cur": link("a")}, tree{"cur": link("b")}, []fc{{"cur", deployer.ModeSymlink, "b"}}},
		{"file becomes symlink", tree{"f": reg("a")}, tree{"f": link("a")}, []fc{{"f", deployer.ModeSymlink, "a"}}},
		{"nested", tree{"a/b/c/d.txt": reg("1"), "a/b/e.txt": reg("x")}, tree{"a/b/c/d.txt": reg("2"), "a/b/e.txt": reg("x")},
			[]fc{{"a/b/c/d.txt", deployer.ModeRegular, "2"}}},
		{"unicode", tree{"données/été.txt": reg("1")}, tree{"données/été.txt": reg("2"), "日本/文件.txt": reg("3")},
			[]fc{{"données/été.txt", deployer.ModeRegular, "2"}, {"日本/文件.txt", deployer.ModeRegular, "3"}}},
		{"file replaced by directory", tree{"x": reg("file"), "y": reg("1")}, tree{"x/inner": reg("in"), "x/deep/er": exe("er"), "y": reg("1")},
			[]fc{del("x"), {"x/deep/er", deployer.ModeExecutable, "er"}, {"x/inner", deployer.ModeRegular, "in"}}},
		{"directory replaced by file", tree{"x/inner": reg("in"), "x/deep/er": reg("er")}, tree{"x": reg("file")},
			[]fc{{"x", deployer.ModeRegular, "file"}, del("x/deep/er"), del("x/inner")}},
		{"directory deleted", tree{"d/a": reg("1"), "d/e/b": reg("2"), "k": reg("k")}, tree{"k": reg("k")},
			[]fc{del("d/a"), del("d/e/b")}},
		{"sorted by path", tree{}, tree{"a.txt": reg("1"), "a/b": reg("2"), "a-b": reg("3"), "A": reg("4")},
			[]fc{{"A", 0, "4"}, {"a-b", 0, "3"}, {"a.txt", 0, "1"}, {"a/b", 0, "2"}}},
		{"submodules are skipped", tree{"a": reg("1")}, tree{"a": reg("1"), "vendor/lib": gitlink(sub)}, nil},
		{"submodule replaced by directory", tree{"lib": gitlink(sub)}, tree{"lib/x": reg("x")},
			[]fc{{"lib/x", deployer.ModeRegular, "x"}}},
		{"empty file", tree{}, tree{"empty": reg("")}, []fc{{"empty", deployer.ModeRegular, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t)
			from := u.commit(tt.from, "from", "A")
			to := u.commit(tt.to, "to", "A", from)
			u.branch("main", to)
			r := u.open()
			got, err := r.Diff(context.Background(), from.String(), to.String())
			if err != nil {
				t.Fatal(err)
			}
			checkChanges(t, got, tt.want)

			var paths []string
			for _, w := range tt.want {
				paths = append(paths, strings.TrimPrefix(w.path, "-"))
			}
			changed, err := r.Changed(context.Background(), from.String(), to.String())
			if err != nil {
				t.Fatal(err)
			}
			if len(changed) != 0 || len(paths) != 0 {
				if !reflect.DeepEqual(changed, paths) {
					t.Errorf("Changed = %q, want %q", changed, paths)
				}
			}
		})
	}
}

// checkChanges compares a Diff with what a test expects, reading every
// written file through Open and checking Hash and Size against it.
func checkChanges(t *testing.T, got []deployer.FileChange, want []fc) {
	t.Helper()
	if len(got) != len(want) {
		var paths []string
		for _, g := range got {
			paths = append(paths, g.Path)
		}
		t.Fatalf("got %d changes %q, want %d %v", len(got), paths, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if p, ok := strings.CutPrefix(w.path, "-"); ok {
			if g.Path != p || !g.Delete {
				t.Errorf("change %d = %s (delete %v), want delete of %s", i, g.Path, g.Delete, p)
			}
			continue
		}
		if g.Path != w.path || g.Delete || g.Mode != w.mode {
			t.Errorf("change %d = %s delete=%v mode=%d, want %s mode=%d", i, g.Path, g.Delete, g.Mode, w.path, w.mode)
			continue
		}
		rc, err := g.Open()
		if err != nil {
			t.Fatalf("%s: Open: %v", g.Path, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != w.data {
			t.Errorf("%s contents = %q, want %q", g.Path, data, w.data)
		}
		if g.Size != int64(len(w.data)) {
			t.Errorf("%s size = %d, want %d", g.Path, g.Size, len(w.data))
		}
		if h := plumbing.ComputeHash(plumbing.BlobObject, []byte(w.data)).String(); g.Hash != h {
			t.Errorf("%s hash = %s, want the blob hash %s", g.Path, g.Hash, h)
		}
	}
}

func TestFilesAndCrossDiff(t *testing.T) {
	ctx := context.Background()
	u := newUpstream(t)
	c0 := u.commit(tree{"index.php": reg("<?php"), "bin/run": exe("#!"), "cur": link("bin"), "lib": gitlink(strings.Repeat("1", 40))}, "c0", "A")
	c1 := u.commit(tree{"index.php": reg("<?php 2"), "bin/run": exe("#!"), "cur": link("bin")}, "c1", "A", c0)
	u.branch("main", c1)
	r := u.open()

	files, err := r.Files(ctx, c0.String())
	if err != nil {
		t.Fatal(err)
	}
	checkChanges(t, files, []fc{
		{"bin/run", deployer.ModeExecutable, "#!"},
		{"cur", deployer.ModeSymlink, "bin"},
		{"index.php", deployer.ModeRegular, "<?php"},
	})

	// A staging commit and an upstream commit can be compared directly.
	s0, err := r.Commit(ctx, &deployer.Deployment{ID: 1}, c0.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Diff(ctx, s0, c1.String())
	if err != nil {
		t.Fatal(err)
	}
	checkChanges(t, got, []fc{{"index.php", deployer.ModeRegular, "<?php 2"}})
	if got, err := r.Diff(ctx, c0.String(), s0); err != nil || len(got) != 0 {
		t.Errorf("Diff(upstream, its staging commit) = %v, %v; want nothing", got, err)
	}

	// Open works after Diff returned, and concurrently.
	all, err := r.Files(ctx, c1.String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for i := 0; i < 8; i++ {
		go func() {
			for _, f := range all {
				rc, err := f.Open()
				if err != nil {
					done <- err
					return
				}
				io.Copy(io.Discard, rc)
				rc.Close()
			}
			_, err := r.Diff(ctx, c0.String(), c1.String())
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestDiffErrors(t *testing.T) {
	ctx := context.Background()
	u := newUpstream(t)
	c0 := u.commit(tree{"a": reg("a")}, "c0", "A")
	u.branch("main", c0)
	r := u.open()

	tree0, err := r.repo.CommitObject(c0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to string }{
		{"", strings.Repeat("ab", 20)},                   // unknown commit
		{strings.Repeat("cd", 20), c0.String()},          // unknown from
		{"", "HEAD"},                                     // not a hash
		{"", c0.String()[:10]},                           // abbreviated
		{"", tree0.TreeHash.String()},                    // a tree, not a commit
		{"", strings.Repeat("z", 40)},                    // not hex
		{c0.String(), c0.String() + "\n"},                // trailing junk
		{"--upload-pack=x", c0.String()},                 // junk from
		{"", "0000000000000000000000000000000000000000"}, // zero hash
	} {
		if _, err := r.Diff(ctx, tc.from, tc.to); err == nil {
			t.Errorf("Diff(%q, %q) succeeded", tc.from, tc.to)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Diff(cancelled, "", c0.String()); err == nil {
		t.Error("Diff with a cancelled context succeeded")
	}
}

// TestDiffRefusesUnsafeNames: a crafted upstream tree must not make a host
// write outside its slot.
func TestDiffRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"..", ".", ".git", ".GIT"} {
		t.Run(name, func(t *testing.T) {
			u := newUpstream(t)
			s := u.repo.Storer
			blob := writeBlob(t, s, "evil")
			inner := writeObject(t, s, &object.Tree{Entries: []object.TreeEntry{{Name: "x", Mode: filemode.Regular, Hash: blob}}})
			root := writeObject(t, s, &object.Tree{Entries: []object.TreeEntry{{Name: name, Mode: filemode.Dir, Hash: inner}}})
			c := writeObject(t, s, &object.Commit{Message: "evil", TreeHash: root})
			u.branch("main", c)
			r, err := Open(t.TempDir(), Upstream{URL: u.dir, Branch: "main"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// git-upload-pack may refuse to serve such a tree: then it
			// never reaches the staging repo, which protects as well.
			if err := r.Fetch(context.Background()); err != nil {
				t.Logf("fetch refused the tree: %v", err)
				return
			}
			if got, err := r.Files(context.Background(), c.String()); err == nil {
				t.Errorf("Files of a tree with %q = %v, want an error", name, got)
			}
		})
	}
}

func TestDiffLargeChange(t *testing.T) {
	u := newUpstream(t)
	from, to := tree{}, tree{}
	for i := 0; i < 300; i++ {
		p := fmt.Sprintf("d%02d/f%03d", i%7, i)
		from[p] = reg(p)
		if i%3 != 0 {
			to[p] = reg(p + " changed")
		} else {
			to[p] = reg(p)
		}
	}
	c0 := u.commit(from, "c0", "A")
	c1 := u.commit(to, "c1", "A", c0)
	u.branch("main", c1)
	r := u.open()
	got, err := r.Diff(context.Background(), c0.String(), c1.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 {
		t.Fatalf("got %d changes, want 200", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Path >= got[i].Path {
			t.Fatalf("not sorted: %s before %s", got[i-1].Path, got[i].Path)
		}
	}
}

// rawTree writes a tree object from raw entries, bypassing go-git's
// checks, as a hostile or broken upstream could.
func rawTree(t *testing.T, u *upstream, entries ...string) plumbing.Hash {
	t.Helper()
	blob := writeBlob(t, u.repo.Storer, "x")
	var data []byte
	for _, e := range entries {
		data = append(data, e...)
		data = append(data, 0)
		data = append(data, blob[:]...)
	}
	obj := u.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.TreeObject)
	w, _ := obj.Writer()
	w.Write(data)
	w.Close()
	h, err := u.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDiffRefusesMalformedTrees(t *testing.T) {
	for name, entries := range map[string][]string{
		"out of order": {"100644 b", "100644 a"},
		"repeated":     {"100644 a", "100644 a"},
		"unknown mode": {"010644 a"},
		"bad mode":     {"10064x a"},
		"no mode":      {" a"},
	} {
		t.Run(name, func(t *testing.T) {
			u := newUpstream(t)
			c := writeObject(t, u.repo.Storer, &object.Commit{Message: "bad", TreeHash: rawTree(t, u, entries...)})
			u.branch("main", c)
			r, err := Open(t.TempDir(), Upstream{URL: u.dir, Branch: "main"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Fetch(context.Background()); err != nil {
				t.Logf("fetch refused the tree, so it never reaches the staging repo: %v", err)
				return
			}
			if got, err := r.Files(context.Background(), c.String()); err == nil {
				t.Errorf("Files = %v, want an error", got)
			}
		})
	}
}

// TestCompareEntriesMatchesGit checks the side-by-side walk's order
// against go-git's (which is git's) on every pair of a set of awkward
// names.
func TestCompareEntriesMatchesGit(t *testing.T) {
	names := []string{"a", "a-b", "a.txt", "a0", "ab", "b", "A", "a b", "é", "z", "a.", "aa"}
	var all []object.TreeEntry
	for _, n := range names {
		all = append(all, object.TreeEntry{Name: n, Mode: filemode.Regular}, object.TreeEntry{Name: n, Mode: filemode.Dir})
	}
	for _, x := range all {
		for _, y := range all {
			want := 0
			sorter := object.TreeEntrySorter{x, y}
			switch {
			case sorter.Less(0, 1):
				want = -1
			case sorter.Less(1, 0):
				want = 1
			}
			a := rawEntry{name: []byte(x.Name), mode: x.Mode}
			b := rawEntry{name: []byte(y.Name), mode: y.Mode}
			if got := compareEntries(&a, &b); got != want && !(x == y && got == 0) {
				t.Errorf("compare(%q %o, %q %o) = %d, want %d", x.Name, x.Mode, y.Name, y.Mode, got, want)
			}
		}
	}
}

// TestTreeIterMalformed feeds the tree parser what a fetch would already
// refuse, in case a repository on disk holds it anyway.
func TestTreeIterMalformed(t *testing.T) {
	id := strings.Repeat("\x01", 20)
	for _, data := range []string{
		"10064x a\x00" + id,
		" a\x00" + id,
		"100644 a" + id,                           // no NUL
		"100644 a\x00" + id[:5],                   // short id
		"100644 b\x00" + id + "100644 a\x00" + id, // out of order
		"40000 a\x00" + id + "100644 a\x00" + id,  // dir "a" sorts after file "a"
		"100644 a\x00" + id + "100644 a\x00" + id, // repeated
		"0 a\x00" + id,
	} {
		it := &treeIter{data: []byte(data)}
		var err error
		for err = it.next(); err == nil && it.ok; err = it.next() {
		}
		if err == nil {
			t.Errorf("%q parsed without error", data)
		}
	}
	// And a good one, with a directory sorted as git sorts it.
	it := &treeIter{data: []byte("100644 a\x00" + id + "100644 a.b\x00" + id + "40000 a\x00" + id + "160000 a0\x00" + id)}
	var got []string
	for {
		if err := it.next(); err != nil {
			t.Fatal(err)
		}
		if !it.ok {
			break
		}
		got = append(got, fmt.Sprintf("%s %o", it.cur.name, it.cur.mode))
	}
	if want := []string{"a 100644", "a.b 100644", "a 40000", "a0 160000"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
}
