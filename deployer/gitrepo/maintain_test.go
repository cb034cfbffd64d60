package gitrepo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// deployHistory is what a run of deployments left in a staging repo: the
// upstream commits fetched and the staging commits made for them.
type deployHistory struct {
	upstream []plumbing.Hash
	staged   []string
	tip      plumbing.Hash // upstream main
}

// newStaging makes an upstream with one commit on main and a staging repo
// that fetched it.
func newStaging(t testing.TB) (*upstream, *Repo, *deployHistory) {
	t.Helper()
	u := newUpstream(t)
	h := &deployHistory{tip: u.commit(tree{"index.php": reg("<?php\n")}, "Initial", "Alice")}
	h.upstream = append(h.upstream, h.tip)
	u.branch("main", h.tip)
	return u, u.open(), h
}

// deployments runs n deployments the way the pipeline does: upstream gets
// a commit, the staging repo fetches it (one pack) and stages it (one
// loose commit). Every tree holds a regular file, an executable, a
// symlink and a gitlink, which go-git's own repack cannot walk.
func deployments(t testing.TB, u *upstream, r *Repo, h *deployHistory, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		id := len(h.staged) + 1
		files := tree{
			"index.php":                      reg(fmt.Sprintf("<?php echo %d;\n", id)),
			"lib/util.php":                   reg("<?php function util() {}\n"),
			fmt.Sprintf("lib/d%03d.php", id): reg(strings.Repeat(fmt.Sprintf("deployment %d\n", id), 50)),
			"bin/run":                        exe("#!/bin/sh\n"),
			"current":                        link("index.php"),
			"vendor/mod":                     gitlink("0123456789012345678901234567890123456789"),
		}
		var parents []plumbing.Hash
		if !h.tip.IsZero() {
			parents = []plumbing.Hash{h.tip}
		}
		h.tip = u.commit(files, fmt.Sprintf("Change %d", id), "Alice", parents...)
		u.branch("main", h.tip)
		if err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
		d := &deployer.Deployment{ID: int64(id), Requester: "carol", Changes: []deployer.Change{{ID: h.tip.String(), Subject: fmt.Sprintf("Change %d", id)}}}
		s, err := r.Commit(ctx, d, h.tip.String())
		if err != nil {
			t.Fatal(err)
		}
		h.upstream = append(h.upstream, h.tip)
		h.staged = append(h.staged, s)
	}
}

// snapshot reads every file of every commit of h, contents included, and
// walks the deploy branch from its tip: what must read the same after
// Maintain.
func snapshot(t testing.TB, r *Repo, h *deployHistory) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, c := range append(append([]string(nil), h.staged...), hashStrings(h.upstream)...) {
		fcs, err := r.Files(ctx, c)
		if err != nil {
			t.Fatalf("Files(%s): %v", c, err)
		}
		for _, fc := range fcs {
			line := fmt.Sprintf("%s %o %s", fc.Path, fc.Mode, fc.Hash)
			if fc.Open != nil {
				line += " " + readAll(t, fc)
			}
			out[c] = append(out[c], line)
		}
	}
	// The deploy branch, tip to root, and each commit's recorded upstream.
	commit, _, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for commit != "" {
		c, err := r.LookupCommit(ctx, commit)
		if err != nil {
			t.Fatalf("deploy branch commit %s: %v", commit, err)
		}
		up := trailer(c.Message, upstreamTrailer)
		if _, err := r.LookupCommit(ctx, up); err != nil {
			t.Fatalf("upstream commit %s of %s: %v", up, commit, err)
		}
		out["deploy"] = append(out["deploy"], commit+" "+up)
		commit = ""
		if len(c.Parents) > 0 {
			commit = c.Parents[0]
		}
	}
	// A diff between two old deployments, as a host sync asks for it.
	if len(h.staged) >= 7 {
		fcs, err := r.Diff(ctx, h.staged[2], h.staged[6])
		if err != nil {
			t.Fatalf("Diff: %v", err)
		}
		for _, fc := range fcs {
			line := fmt.Sprintf("%s %v", fc.Path, fc.Delete)
			if fc.Open != nil {
				line += " " + readAll(t, fc)
			}
			out["diff"] = append(out["diff"], line)
		}
	}
	return out
}

func hashStrings(hs []plumbing.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

func readAll(t testing.TB, fc deployer.FileChange) string {
	t.Helper()
	rc, err := fc.Open()
	if err != nil {
		t.Fatalf("open %s: %v", fc.Path, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", fc.Path, err)
	}
	return string(b)
}

func openFDs(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// gitFsck runs the real git's strictest check on the staging repo.
func gitFsck(t testing.TB, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "fsck", "--full", "--strict", "--no-dangling").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

func TestMaintainFoldsFortyDeploymentsIntoOnePack(t *testing.T) {
	ctx := context.Background()
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 40)

	packs, _ := listPacks(r.dir)
	loose, _ := listLoose(r.dir)
	if len(packs) < 40 || len(loose) < 40 {
		t.Fatalf("40 deployments left %d packs and %d loose objects; the test needs one of each per deployment", len(packs), len(loose))
	}
	before := snapshot(t, r, h)
	fdsBefore := openFDs(t)
	// A FileChange handed out before Maintain is opened after it, as a
	// host sync that started earlier would.
	early, err := r.Files(ctx, h.staged[0])
	if err != nil {
		t.Fatal(err)
	}

	rep, err := r.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("40 deployments: %s; open fds %d before", rep, fdsBefore)
	if !rep.Repacked || rep.PacksBefore != len(packs) || rep.LooseBefore != len(loose) {
		t.Errorf("report %+v, want a repack of %d packs and %d loose objects", rep, len(packs), len(loose))
	}
	if rep.PacksAfter != 1 || rep.LooseAfter != 0 {
		t.Errorf("after Maintain: %d packs, %d loose objects; want 1 and 0", rep.PacksAfter, rep.LooseAfter)
	}
	if packs, _ := listPacks(r.dir); len(packs) != 1 {
		t.Errorf("%d packs on disk", len(packs))
	}
	for _, fc := range early {
		if fc.Open != nil {
			readAll(t, fc)
		}
	}
	if after := snapshot(t, r, h); !reflect.DeepEqual(before, after) {
		t.Errorf("the repository reads differently after Maintain")
	}
	fdsAfter := openFDs(t)
	t.Logf("open fds: %d with %d packs, %d with one", fdsBefore, len(packs), fdsAfter)
	if fdsBefore-fdsAfter < 30 {
		t.Errorf("open fds %d before Maintain, %d after: the old packs are still open", fdsBefore, fdsAfter)
	}

	// The Repo goes on working, and a fresh process reads the same.
	deployments(t, u, r, h, 1)
	if _, err := r.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, r, h)
	r2, err := Open(r.dir, Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := snapshot(t, r2, h); !reflect.DeepEqual(want, got) {
		t.Error("a fresh Open reads differently")
	}
	gitFsck(t, r.dir)
}

// TestMaintainKeepsDescriptorsBounded runs deployments with a Maintain
// after each, as the runner does when it is idle: packs and open files
// stop growing.
func TestMaintainKeepsDescriptorsBounded(t *testing.T) {
	ctx := context.Background()
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 5)
	if _, err := r.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	snapshot(t, r, h)
	start := openFDs(t)
	most, mostPacks := 0, 0
	for i := 0; i < 40; i++ {
		deployments(t, u, r, h, 1)
		if _, err := r.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
		snapshot(t, r, h) // opens whatever packs there are
		most = max(most, openFDs(t))
		packs, _ := listPacks(r.dir)
		mostPacks = max(mostPacks, len(packs))
	}
	t.Logf("open fds over 40 deployments with Maintain: %d at the start, at most %d; at most %d packs", start, most, mostPacks)
	if mostPacks > maintainPacks+1 {
		t.Errorf("up to %d packs, want at most %d", mostPacks, maintainPacks+1)
	}
	if most > start+maintainPacks+1 {
		t.Errorf("open fds grew from %d to %d", start, most)
	}
}

// TestMaintainBelowThresholdOnlyCounts checks that a healthy repository is
// left alone.
func TestMaintainBelowThresholdOnlyCounts(t *testing.T) {
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 2)
	rep, err := r.Maintain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repacked || rep.PacksAfter != rep.PacksBefore || rep.LooseAfter != 2 {
		t.Errorf("report %+v, want nothing repacked", rep)
	}
}

// TestMaintainStagingForTheRunner: the method deployer's optional
// Maintainer interface names returns the report as a slog group.
func TestMaintainStagingForTheRunner(t *testing.T) {
	var _ interface {
		MaintainStaging(context.Context) (slog.Value, error)
	} = (*Repo)(nil)
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 6)
	v, err := r.MaintainStaging(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("staging repo maintained", "maintain", v)
	for _, want := range []string{"maintain.repacked=true", "maintain.packs_before=7", "maintain.packs_after=1", "maintain.loose_after=0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log line %q lacks %q", b.String(), want)
		}
	}
}

// TestMaintainPrunesOnlyOldUnreachable: objects no ref reaches survive two
// weeks (a deployment in flight may need them), then go.
func TestMaintainPrunesOnlyOldUnreachable(t *testing.T) {
	ctx := context.Background()
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 3)

	// A feature branch is fetched, then deleted upstream: its commit and
	// blob stay in the fetch's pack, reachable from nothing. The blob was
	// also written loose here a month ago: it is as young as the pack.
	month := time.Now().Add(-30 * 24 * time.Hour)
	r.mu.Lock()
	featureBlob := writeBlob(t, r.repo.Storer, "feature only")
	r.mu.Unlock()
	if err := os.Chtimes(loosePath(r.dir, featureBlob), month, month); err != nil {
		t.Fatal(err)
	}
	feature := u.commit(tree{"feature.php": reg("feature only")}, "Feature", "Bob", h.tip)
	u.branch("feature", feature)
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	u.deleteBranch("feature")
	// Upstream main is force-pushed back past the first deployment: the
	// deployed upstream commits are reachable only through the deploy
	// branch's records of them.
	u.branch("main", h.upstream[0])
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	// A loose object nothing reaches, written a month ago.
	r.mu.Lock()
	stray := writeBlob(t, r.repo.Storer, "stray")
	r.mu.Unlock()
	if err := os.Chtimes(loosePath(r.dir, stray), month, month); err != nil {
		t.Fatal(err)
	}
	deployments(t, u, r, h, 3)
	before := snapshot(t, r, h)

	o := defaultMaintainOptions()
	o.maxPacks = 0
	rep, err := r.maintain(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	blobErr := r.repo.Storer.HasEncodedObject(featureBlob)
	r.mu.Unlock()
	if !r.HasCommit(feature.String()) || blobErr != nil {
		t.Errorf("a recently fetched unreachable object was deleted (blob: %v)", blobErr)
	}
	if r.HasCommit(stray.String()) || rep.Pruned != 1 {
		t.Errorf("the month-old stray object was not pruned (report %+v)", rep)
	}
	if rep.Loosened != 2 { // the feature commit and its tree; the blob was loose
		t.Errorf("loosened %d objects, want 2 (report %+v)", rep.Loosened, rep)
	}
	if after := snapshot(t, r, h); !reflect.DeepEqual(before, after) {
		t.Error("the repository reads differently after Maintain")
	}

	// Two weeks later the feature branch's objects go too.
	o.now = time.Now().Add(15 * 24 * time.Hour)
	rep, err = r.maintain(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasCommit(feature.String()) || rep.Pruned != 3 || rep.LooseAfter != 0 || rep.PacksAfter != 1 {
		t.Errorf("two weeks on, the feature commit is still there (report %+v)", rep)
	}
	if after := snapshot(t, r, h); !reflect.DeepEqual(before, after) {
		t.Error("the repository reads differently after pruning")
	}
	gitFsck(t, r.dir)
}

// TestLeftoversRemoved: a fetch killed mid-way leaves a tmp_pack_ file;
// Open removes it whatever its age, Maintain once it is an hour old, and
// lock files only then.
func TestLeftoversRemoved(t *testing.T) {
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 1)
	r.Close()

	old := time.Now().Add(-2 * time.Hour)
	plant := func(path string, when time.Time) string {
		t.Helper()
		path = filepath.Join(r.dir, path)
		if err := os.WriteFile(path, []byte("PACK partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, when, when); err != nil {
			t.Fatal(err)
		}
		return path
	}
	exists := func(path string) bool { _, err := os.Lstat(path); return err == nil }

	tmpNew := plant("objects/pack/tmp_pack_123456", time.Now())
	tmpObj := plant("objects/pack/tmp_obj_654321", old)
	lockNew := plant("refs/heads/deploy.lock", time.Now())
	lockOld := plant("packed-refs.lock", old)
	r2, err := Open(r.dir, Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if exists(tmpNew) || exists(tmpObj) {
		t.Error("Open left a temporary file behind")
	}
	if exists(lockOld) {
		t.Error("Open left a two-hour-old lock file")
	}
	if !exists(lockNew) {
		t.Error("Open removed a fresh lock file someone may hold")
	}
	snapshot(t, r2, h)

	tmpNew = plant("objects/pack/tmp_pack_abcdef", time.Now())
	tmpOld := plant("objects/pack/tmp_pack_fedcba", old)
	orphan := plant("objects/pack/pack-"+strings.Repeat("ab", 20)+".idx", old)
	rep, err := r2.Maintain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if exists(tmpOld) || exists(orphan) || !exists(tmpNew) || rep.Leftovers != 2 {
		t.Errorf("Maintain: old tmp removed %v, orphan index removed %v, fresh tmp kept %v, report %+v",
			!exists(tmpOld), !exists(orphan), exists(tmpNew), rep)
	}
}

// crashSteps are the points of Maintain a kill -9 is tried at.
var crashSteps = []string{"pack-written", "pack-synced", "loosened", "pack-removed", "loose-removed"}

// TestMaintainSurvivesKill kills a process running Maintain (SIGKILL, from
// inside, at each step in turn) and checks that the repository still reads
// everything, passes git fsck, and that the next Maintain finishes the job.
func TestMaintainSurvivesKill(t *testing.T) {
	ctx := context.Background()
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 10)
	// Something for the loosening step to do.
	feature := u.commit(tree{"feature.php": reg("feature only")}, "Feature", "Bob", h.tip)
	u.branch("feature", feature)
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	u.deleteBranch("feature")
	deployments(t, u, r, h, 2)
	want := snapshot(t, r, h)
	r.Close()

	for _, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "staging")
			if out, err := exec.Command("cp", "-a", r.dir, dir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestMaintainCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "GITREPO_CRASH_DIR="+dir, "GITREPO_CRASH_UPSTREAM="+u.dir, "GITREPO_CRASH_STEP="+step)
			out, err := cmd.CombinedOutput()
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at %s: %v\n%s", step, err, out)
			}
			packs, _ := listPacks(dir)
			loose, _ := listLoose(dir)
			t.Logf("killed after %s: %d packs, %d loose objects", step, len(packs), len(loose))

			gitFsck(t, dir)
			r2, err := Open(dir, Upstream{URL: u.dir, Branch: "main"})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			if got := snapshot(t, r2, h); !reflect.DeepEqual(want, got) {
				t.Fatal("the repository reads differently after the kill")
			}
			if !r2.HasCommit(feature.String()) {
				t.Error("the recent unreachable commit was lost")
			}
			rep, err := r2.Maintain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if packs, _ := listPacks(dir); len(packs) != 1 {
				t.Errorf("the next Maintain left %d packs (report %+v)", len(packs), rep)
			}
			if got := snapshot(t, r2, h); !reflect.DeepEqual(want, got) {
				t.Error("the repository reads differently after the next Maintain")
			}
			gitFsck(t, dir)
		})
	}
}

// TestFetchKilledLeavesNothingAfterOpen kills a process in the middle of a
// fetch of 8 MB: go-git leaves its tmp_pack_ file behind, and the next
// Open removes it and reads what was there before.
func TestFetchKilledLeavesNothingAfterOpen(t *testing.T) {
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 2)
	want := snapshot(t, r, h)
	r.Close()
	big := tree{}
	rnd := rand.NewChaCha8([32]byte{1})
	for i := 0; i < 128; i++ {
		b := make([]byte, 64<<10)
		rnd.Read(b)
		big[fmt.Sprintf("assets/%03d.bin", i)] = reg(string(b))
	}
	u.branch("main", u.commit(big, "Big assets", "Alice", h.tip))

	cmd := exec.Command(os.Args[0], "-test.run=^TestMaintainCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GITREPO_CRASH_DIR="+r.dir, "GITREPO_CRASH_UPSTREAM="+u.dir, "GITREPO_CRASH_STEP=fetch")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tmp := ""
	for deadline := time.Now().Add(time.Minute); tmp == "" && time.Now().Before(deadline); {
		m, _ := filepath.Glob(filepath.Join(r.dir, "objects", "pack", "tmp_pack_*"))
		if len(m) > 0 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
				tmp = m[0]
			}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if tmp == "" {
		t.Fatal("the fetch never wrote a tmp_pack_ file")
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the killed fetch left no tmp_pack_ file: %v", err)
	}
	r2, err := Open(r.dir, Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if m, _ := filepath.Glob(filepath.Join(r.dir, "objects", "pack", "tmp_*")); len(m) > 0 {
		t.Errorf("Open left %v", m)
	}
	if got := snapshot(t, r2, h); !reflect.DeepEqual(want, got) {
		t.Error("the repository reads differently after the killed fetch")
	}
	gitFsck(t, r.dir)
}

// TestMaintainCrashChild is not a test on its own: TestMaintainSurvivesKill
// and TestFetchKilledLeavesNothingAfterOpen run it in a child process,
// which is killed inside Maintain or Fetch.
func TestMaintainCrashChild(t *testing.T) {
	dir, step := os.Getenv("GITREPO_CRASH_DIR"), os.Getenv("GITREPO_CRASH_STEP")
	if dir == "" {
		return
	}
	r, err := Open(dir, Upstream{URL: os.Getenv("GITREPO_CRASH_UPSTREAM"), Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if step == "fetch" {
		err := r.Fetch(context.Background())
		t.Fatalf("the fetch finished before it was killed: %v", err)
	}
	o := defaultMaintainOptions()
	o.afterStep = func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	rep, err := r.maintain(context.Background(), o)
	t.Fatalf("Maintain finished without reaching %s: %+v, %v", step, rep, err)
}

// TestMaintainStepsSeparately simulates, in one process, a crash between
// writing the new pack and deleting the old ones: the staging repo opened
// afresh reads everything from the old packs and the new one together.
func TestMaintainStepsSeparately(t *testing.T) {
	ctx := context.Background()
	u, r, h := newStaging(t)
	deployments(t, u, r, h, 8)
	want := snapshot(t, r, h)

	r.mu.Lock()
	need, err := reachable(ctx, r.repo.Storer)
	if err == nil {
		var p plumbing.Hash
		if p, err = r.writePack(need); err == nil {
			err = syncPack(r.dir, p)
		}
	}
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the crash

	r2, err := Open(r.dir, Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	packs, _ := listPacks(r2.dir)
	if len(packs) != len(h.upstream)+1 {
		t.Errorf("%d packs, want one per fetch and the new one", len(packs))
	}
	if got := snapshot(t, r2, h); !reflect.DeepEqual(want, got) {
		t.Error("the repository reads differently with the extra pack")
	}
	if c, err := object.GetCommit(r2.repo.Storer, plumbing.NewHash(h.staged[0])); err != nil || c.NumParents() != 0 {
		t.Errorf("first staging commit: %v", err)
	}
}

// BenchmarkMaintain40Deployments prints what Maintain does to the staging
// repo 40 deployments leave: packs, loose objects and open descriptors
// before and after, and the median time of five runs on copies of it.
//
//	go test -run '^$' -bench Maintain40 -benchtime 1x ./deployer/gitrepo
func BenchmarkMaintain40Deployments(b *testing.B) {
	u, r, h := newStaging(b)
	deployments(b, u, r, h, 40)
	r.Close()
	const runs = 5
	var took []time.Duration
	var first MaintainReport
	var fdsBefore, fdsAfter int
	for b.Loop() {
		took = took[:0]
		for i := 0; i < runs; i++ {
			dir := filepath.Join(b.TempDir(), "staging")
			if out, err := exec.Command("cp", "-a", r.dir, dir).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v\n%s", err, out)
			}
			rc, err := Open(dir, Upstream{URL: u.dir, Branch: "main"})
			if err != nil {
				b.Fatal(err)
			}
			snapshot(b, rc, h)
			fdsBefore = openFDs(b)
			rep, err := rc.Maintain(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			snapshot(b, rc, h)
			fdsAfter = openFDs(b)
			rc.Close()
			took = append(took, rep.Took)
			first = rep
		}
	}
	slices.Sort(took)
	fmt.Printf("\nMaintain after 40 deployments: packs %d -> %d, loose objects %d -> %d, open fds %d -> %d, %d objects; median of %d runs %s (%v)\n",
		first.PacksBefore, first.PacksAfter, first.LooseBefore, first.LooseAfter, fdsBefore, fdsAfter, first.Objects,
		runs, took[runs/2].Round(time.Microsecond), took)
}

// BenchmarkMaintain50k prints how long Maintain holds a staging repo whose
// tree has 50,000 files (bigRepo's two commits) when it repacks it.
func BenchmarkMaintain50k(b *testing.B) {
	r, _, to := bigRepo(b)
	ctx := context.Background()
	d := &deployer.Deployment{ID: 1, Requester: "carol"}
	if _, err := r.Commit(ctx, d, to); err != nil {
		b.Fatal(err)
	}
	o := defaultMaintainOptions()
	o.maxPacks = 0 // repack every time
	var took []time.Duration
	var rep MaintainReport
	for b.Loop() {
		var err error
		if rep, err = r.maintain(ctx, o); err != nil {
			b.Fatal(err)
		}
		took = append(took, rep.Took)
	}
	slices.Sort(took)
	fmt.Printf("\nMaintain of a 50,000-file repo: %s; median of %d runs %s\n", rep, len(took), took[len(took)/2].Round(time.Millisecond))
}
