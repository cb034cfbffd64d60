package gitrepo

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// bigRepo is a staging repo holding two commits of a 500 dirs x 100 files
// tree that differ in one file, packed (with deltas) the way a fetched
// upstream is.
func bigRepo(b *testing.B) (r *Repo, from, to string) {
	b.Helper()
	r, err := Open(filepath.Join(b.TempDir(), "staging"), Upstream{URL: "/nonexistent", Branch: "main"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })

	mem := memory.NewStorage()
	dirs := make([]object.TreeEntry, 500)
	subtrees := make([][]object.TreeEntry, 500)
	for d := range dirs {
		files := make([]object.TreeEntry, 100)
		for f := range files {
			files[f] = object.TreeEntry{
				Name: fmt.Sprintf("file%03d.php", f),
				Mode: filemode.Regular,
				Hash: writeBlob(b, mem, fmt.Sprintf("<?php // dir %d, file %d\n", d, f)),
			}
		}
		subtrees[d] = files
		dirs[d] = object.TreeEntry{
			Name: fmt.Sprintf("dir%03d", d),
			Mode: filemode.Dir,
			Hash: writeObject(b, mem, &object.Tree{Entries: files}),
		}
	}
	c0 := writeObject(b, mem, &object.Commit{Message: "big\n", TreeHash: writeObject(b, mem, &object.Tree{Entries: dirs})})

	changed := append([]object.TreeEntry(nil), subtrees[250]...)
	changed[50].Hash = writeBlob(b, mem, "<?php // changed\n")
	dirs2 := append([]object.TreeEntry(nil), dirs...)
	dirs2[250].Hash = writeObject(b, mem, &object.Tree{Entries: changed})
	c1 := writeObject(b, mem, &object.Commit{Message: "one file\n", TreeHash: writeObject(b, mem, &object.Tree{Entries: dirs2}), ParentHashes: []plumbing.Hash{c0}})

	pw, err := r.repo.Storer.(storer.PackfileWriter).PackfileWriter()
	if err != nil {
		b.Fatal(err)
	}
	hashes := make([]plumbing.Hash, 0, len(mem.ObjectStorage.Objects))
	for h := range mem.ObjectStorage.Objects {
		hashes = append(hashes, h)
	}
	if _, err := packfile.NewEncoder(pw, mem, false).Encode(hashes, 10); err != nil {
		b.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	return r, c0.String(), c1.String()
}

// BenchmarkDiffOneFileIn50k is the cost of a one-file sync's Diff in a
// 50,000-file tree: it must be the cost of the change, not of the tree.
func BenchmarkDiffOneFileIn50k(b *testing.B) {
	r, from, to := bigRepo(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got, err := r.Diff(ctx, from, to)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 1 || got[0].Path != "dir250/file050.php" {
			b.Fatalf("got %d changes", len(got))
		}
	}
}

// BenchmarkFiles50k is, for comparison, a first sync: every file listed.
func BenchmarkFiles50k(b *testing.B) {
	r, _, to := bigRepo(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got, err := r.Files(ctx, to)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 50000 {
			b.Fatalf("got %d files", len(got))
		}
	}
}
