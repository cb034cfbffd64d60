package gitrepo

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// benchTree writes dirs x per files named under prefix into mem and
// returns the tree's entries (one per directory).
func benchTree(b *testing.B, mem storer.EncodedObjectStorer, tag string, dirs, per int) []object.TreeEntry {
	out := make([]object.TreeEntry, dirs)
	for d := range out {
		files := make([]object.TreeEntry, per)
		for f := range files {
			files[f] = object.TreeEntry{Name: fmt.Sprintf("f%03d.php", f), Mode: filemode.Regular,
				Hash: writeBlob(b, mem, fmt.Sprintf("<?php // %s d%03d f%03d\n", tag, d, f))}
		}
		out[d] = object.TreeEntry{Name: fmt.Sprintf("d%03d", d), Mode: filemode.Dir, Hash: writeObject(b, mem, &object.Tree{Entries: files})}
	}
	return out
}

// oneFileChain commits n commits on top of a tree whose first directory's
// first file changes at every commit, and returns them oldest first.
func oneFileChain(b *testing.B, mem storer.EncodedObjectStorer, entries []object.TreeEntry, extra []object.TreeEntry, tag string, n int) []plumbing.Hash {
	first, err := readTree(mem, entries[0].Hash)
	if err != nil {
		b.Fatal(err)
	}
	var out []plumbing.Hash
	var parent []plumbing.Hash
	when := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		files := append([]object.TreeEntry(nil), first...)
		files[0].Hash = writeBlob(b, mem, fmt.Sprintf("<?php // %s generation %d\n", tag, i))
		root := append([]object.TreeEntry(nil), entries...)
		root[0].Hash = writeObject(b, mem, &object.Tree{Entries: files})
		root = append(root, extra...)
		sort.Sort(object.TreeEntrySorter(root))
		sig := object.Signature{Name: "Bench", Email: "bench@example.org", When: when.Add(time.Duration(i) * time.Minute)}
		c := writeObject(b, mem, &object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("%s %d\n", tag, i),
			TreeHash: writeObject(b, mem, &object.Tree{Entries: root}), ParentHashes: parent})
		parent = []plumbing.Hash{c}
		out = append(out, c)
	}
	return out
}

// packInto writes every object of mem as one pack into a new bare
// repository at dir, with branch pointing at tip.
func packInto(b *testing.B, dir string, mem *memory.Storage, branch string, tip plumbing.Hash) {
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		b.Fatal(err)
	}
	pw, err := repo.Storer.(storer.PackfileWriter).PackfileWriter()
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
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), tip)); err != nil {
		b.Fatal(err)
	}
}

func benchMedian(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func benchRunsEnv() int {
	if n, err := strconv.Atoi(os.Getenv("DEPLOYBOT_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 9
}

// BenchmarkComposite measures a composite deploy tree of 50,000 files: a
// root repository (9,000 files) and one release-branch component (core,
// 21,000 files) with 20 extension submodules of 1,000 files each. A
// one-file change inside one extension (the extension commit and core's
// pointer update) is composed and synced to a local host, side by side
// with a one-file change in a plain 50,000-file tree, medians of
// DEPLOYBOT_BENCH_RUNS runs; and it prints what composing read.
func BenchmarkComposite(b *testing.B) {
	requireGit(b)
	runs := benchRunsEnv()
	n := runs + 2
	ctx := context.Background()
	base := b.TempDir()
	start := time.Now()

	// Upstream repositories.
	cfgMem := memory.NewStorage()
	cfg := oneFileChain(b, cfgMem, benchTree(b, cfgMem, "config", 90, 100), nil, "config", 1)
	packInto(b, filepath.Join(base, "config.git"), cfgMem, "master", cfg[0])

	var gitmodules strings.Builder
	var extTips []plumbing.Hash
	var chain []plumbing.Hash // extension 00's one-file chain
	for e := 0; e < 20; e++ {
		mem := memory.NewStorage()
		k := 1
		if e == 0 {
			k = n
		}
		cs := oneFileChain(b, mem, benchTree(b, mem, fmt.Sprintf("ext%02d", e), 10, 100), nil, fmt.Sprintf("ext%02d", e), k)
		packInto(b, filepath.Join(base, "extensions", fmt.Sprintf("Ext%02d.git", e)), mem, "wmf/1", cs[len(cs)-1])
		if e == 0 {
			chain = cs
		}
		extTips = append(extTips, cs[0])
		fmt.Fprintf(&gitmodules, "[submodule \"extensions/Ext%02d\"]\n\tpath = extensions/Ext%02d\n\turl = ../extensions/Ext%02d.git\n", e, e, e)
	}
	coreMem := memory.NewStorage()
	coreDirs := benchTree(b, coreMem, "core", 210, 100)
	var coreCommits []plumbing.Hash
	var parent []plumbing.Hash
	for i := 0; i < n; i++ {
		links := make([]object.TreeEntry, 20)
		for e := range links {
			h := extTips[e]
			if e == 0 {
				h = chain[i]
			}
			links[e] = object.TreeEntry{Name: fmt.Sprintf("Ext%02d", e), Mode: filemode.Submodule, Hash: h}
		}
		root := append([]object.TreeEntry(nil), coreDirs...)
		root = append(root,
			object.TreeEntry{Name: "extensions", Mode: filemode.Dir, Hash: writeObject(b, coreMem, &object.Tree{Entries: links})},
			object.TreeEntry{Name: ".gitmodules", Mode: filemode.Regular, Hash: writeBlob(b, coreMem, gitmodules.String())})
		sort.Sort(object.TreeEntrySorter(root))
		sig := object.Signature{Name: "Bench", Email: "bench@example.org", When: time.Date(2024, 1, 2, 0, i, 0, 0, time.UTC)}
		c := writeObject(b, coreMem, &object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("Update git submodules %d\n", i),
			TreeHash: writeObject(b, coreMem, &object.Tree{Entries: root}), ParentHashes: parent})
		parent = []plumbing.Hash{c}
		coreCommits = append(coreCommits, c)
	}
	packInto(b, filepath.Join(base, "core.git"), coreMem, "wmf/1", coreCommits[0])

	plainMem := memory.NewStorage()
	plain := oneFileChain(b, plainMem, benchTree(b, plainMem, "plain", 500, 100), nil, "plain", n)
	packInto(b, filepath.Join(base, "plain.git"), plainMem, "main", plain[len(plain)-1])
	built := time.Since(start)

	// The composite staging repo: baseline, then one extension change per run.
	staging, err := Open(filepath.Join(base, "staging"), Upstream{URL: filepath.Join(base, "config.git"), Branch: "master"})
	if err != nil {
		b.Fatal(err)
	}
	defer staging.Close()
	comp, err := NewComposite(staging, []Component{
		{Path: "", URL: filepath.Join(base, "config.git"), Branch: "master"},
		{Path: "php-1", URL: filepath.Join(base, "core.git"), Branch: "wmf/1", Submodules: true},
	})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	up, err := comp.Baseline(ctx)
	if err != nil {
		b.Fatal(err)
	}
	baseline := time.Since(t0)
	baseReads := comp.LastReads
	d := &deployer.Deployment{ID: 1, Refs: []string{"baseline"}}
	var compCommits []string
	c0, err := staging.Commit(ctx, d, up)
	if err != nil {
		b.Fatal(err)
	}
	compCommits = append(compCommits, c0)
	var composeTimes []time.Duration
	var reads ReadCounts
	coreRepo, err := git.PlainOpen(filepath.Join(base, "core.git"))
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < n; i++ {
		if err := coreRepo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("wmf/1"), coreCommits[i])); err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		p, err := comp.Prepare(ctx, deployer.Request{Refs: []string{"php-1/extensions/Ext00:" + chain[i].String()}, Deployment: int64(i + 1)}, up, nil)
		if err != nil {
			b.Fatal(err)
		}
		composeTimes = append(composeTimes, time.Since(t))
		reads = comp.LastReads
		up = p.Upstream
		sc, err := staging.Commit(ctx, &deployer.Deployment{ID: int64(i + 1), Refs: []string{"x"}}, up)
		if err != nil {
			b.Fatal(err)
		}
		compCommits = append(compCommits, sc)
	}
	// A root-only change reads no file (and no tree) of core or its
	// extensions.
	cfgRepo, err := git.PlainOpen(filepath.Join(base, "config.git"))
	if err != nil {
		b.Fatal(err)
	}
	cfgCommit, err := object.GetCommit(cfgRepo.Storer, cfg[0])
	if err != nil {
		b.Fatal(err)
	}
	newTree, err := setPath(cfgRepo.Storer, cfgCommit.TreeHash, "d001/f001.php", filemode.Regular, writeBlob(b, cfgRepo.Storer, "<?php // changed\n"))
	if err != nil {
		b.Fatal(err)
	}
	sig := object.Signature{Name: "Bench", Email: "bench@example.org", When: time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC)}
	cfg2 := writeObject(b, cfgRepo.Storer, &object.Commit{Author: sig, Committer: sig, Message: "config change\n", TreeHash: newTree, ParentHashes: []plumbing.Hash{cfg[0]}})
	if err := cfgRepo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("master"), cfg2)); err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	if _, err := comp.Prepare(ctx, deployer.Request{Refs: []string{"root:" + cfg2.String()}, Deployment: 99}, up, nil); err != nil {
		b.Fatal(err)
	}
	rootTime := time.Since(t1)
	rootOnly := comp.LastReads

	// The plain staging repo.
	plainRepo, err := Open(filepath.Join(base, "plain-staging"), Upstream{URL: filepath.Join(base, "plain.git"), Branch: "main"})
	if err != nil {
		b.Fatal(err)
	}
	defer plainRepo.Close()
	if err := plainRepo.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	var plainCommits []string
	for _, h := range plain {
		plainCommits = append(plainCommits, h.String())
	}

	// syncPair syncs two chains side by side, each to a fresh local host:
	// the first two commits of each unmeasured (the first writes the
	// whole tree), then commit i of one chain and commit i of the other,
	// in turns (which goes first alternates), so a slow spell of this
	// shared machine falls on both columns alike.
	syncPair := func(a deployer.TreeSource, ca []string, bsrc deployer.TreeSource, cb []string) (da, db []time.Duration, wa, wb int) {
		ha := hosts.NewLocal("bench-a", filepath.Join(b.TempDir(), "host"))
		hb := hosts.NewLocal("bench-b", filepath.Join(b.TempDir(), "host"))
		one := func(h *hosts.Local, src deployer.TreeSource, c string) (time.Duration, int) {
			t := time.Now()
			res, err := h.SyncReport(ctx, c, src)
			if err != nil {
				b.Fatal(err)
			}
			return time.Since(t), res.Written
		}
		for i := range ca {
			first, second := func() {
				d, w := one(ha, a, ca[i])
				if i >= 2 {
					da, wa = append(da, d), w
				}
			}, func() {
				d, w := one(hb, bsrc, cb[i])
				if i >= 2 {
					db, wb = append(db, d), w
				}
			}
			if i%2 == 1 {
				first, second = second, first
			}
			first()
			second()
		}
		return da, db, wa, wb
	}
	compSync, plainSync1, compWritten, plainWritten := syncPair(staging, compCommits, plainRepo, plainCommits)
	packs, _ := listPacks(staging.dir)
	loose, _ := listLoose(staging.dir)
	plainPacks, _ := listPacks(plainRepo.dir)
	plainLoose, _ := listLoose(plainRepo.dir)
	// The same again on fresh hosts, once the staging repository is
	// repacked into one pack (what the runner's idle maintenance does).
	rep, err := staging.Maintain(ctx)
	if err != nil {
		b.Fatal(err)
	}
	repackedSync, plainSync2, repackedWritten, _ := syncPair(staging, compCommits, plainRepo, plainCommits)

	fmt.Printf("\ndeploybot composite bench: %d CPUs, %s, %s; medians of %d runs (fixtures built in %v)\n\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runs, built.Round(time.Millisecond))
	fmt.Printf("composite tree: root 9,000 files + php-1 (core 21,000 files + 20 submodules x 1,000) = 50,000 files\n")
	fmt.Printf("  baseline composition (every part flattened):  %v, read %d commits, %d trees, %d blobs\n",
		baseline.Round(time.Millisecond), baseReads.Commits, baseReads.Trees, baseReads.Blobs)
	fmt.Printf("  one-file change in extensions/Ext00 (+ core's pointer update), Prepare: %v median, composing read %d commits, %d trees, %d blobs\n",
		benchMedian(composeTimes).Round(time.Microsecond), reads.Commits, reads.Trees, reads.Blobs)
	fmt.Printf("    (the blob is core's .gitmodules; no file of the root or of the 19 unchanged extensions is read)\n")
	fmt.Printf("  one-file change in the root repository, Prepare: %v, composing read %d commits, %d trees, %d blobs\n\n",
		rootTime.Round(time.Microsecond), rootOnly.Commits, rootOnly.Trees, rootOnly.Blobs)
	fmt.Printf("one-file change synced to a local host, each column in turns with the plain tree\n")
	fmt.Printf("                                           composite      composite, repacked  plain 50,000-file tree\n")
	fmt.Printf("  sync (median)                            %-14v %-20v %v, %v\n", benchMedian(compSync).Round(time.Microsecond), benchMedian(repackedSync).Round(time.Microsecond),
		benchMedian(plainSync1).Round(time.Microsecond), benchMedian(plainSync2).Round(time.Microsecond))
	fmt.Printf("  vs the plain tree (median of ratios)     %-14s %-20s 1\n", fmt.Sprintf("%.2f", medianRatio(compSync, plainSync1)), fmt.Sprintf("%.2f", medianRatio(repackedSync, plainSync2)))
	fmt.Printf("  files written per sync                   %-14d %-20d %d\n", compWritten, repackedWritten, plainWritten)
	fmt.Printf("  staging repository: packs, loose objects %-14s %-20s %s\n", fmt.Sprintf("%d, %d", len(packs), len(loose)),
		fmt.Sprintf("%d, %d", rep.PacksAfter, rep.LooseAfter), fmt.Sprintf("%d, %d", len(plainPacks), len(plainLoose)))
	fmt.Printf("  (repack: %s)\n", rep)
}

// medianRatio is the median of a[i]/b[i]: the ratio of two columns
// measured in turns, run by run.
func medianRatio(a, b []time.Duration) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		rs = append(rs, float64(a[i])/float64(b[i]))
	}
	sort.Float64s(rs)
	if len(rs) == 0 {
		return math.NaN()
	}
	return rs[len(rs)/2]
}
