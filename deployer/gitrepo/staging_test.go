package gitrepo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

func TestCommitRevertHead(t *testing.T) {
	ctx := context.Background()
	u := newUpstream(t)
	c0 := u.commit(tree{"index.php": reg("v0"), "bin/run": exe("#!/bin/sh")}, "Initial", "Alice")
	c1 := u.commit(tree{"index.php": reg("v1"), "bin/run": exe("#!/bin/sh")}, "Fix the index\n\nBug: T1", "Bob", c0)
	u.branch("main", c1)
	r := u.open()

	if commit, up, err := r.Head(ctx); err != nil || commit != "" || up != "" {
		t.Fatalf("Head of a new repo = %q, %q, %v; want empty", commit, up, err)
	}

	d1 := &deployer.Deployment{ID: 1, Requester: "carol", Changes: []deployer.Change{{ID: c0.String(), Subject: "Initial"}}}
	s1, err := r.Commit(ctx, d1, c0.String())
	if err != nil {
		t.Fatal(err)
	}
	d2 := &deployer.Deployment{ID: 2, Requester: "dave\nUpstream: forged", Changes: []deployer.Change{
		{ID: c1.String(), Subject: "Fix the index"},
		{ID: "12345", Subject: "Another change"},
	}}
	s2, err := r.Commit(ctx, d2, c1.String())
	if err != nil {
		t.Fatal(err)
	}
	if commit, up, err := r.Head(ctx); err != nil || commit != s2 || up != c1.String() {
		t.Fatalf("Head = %q, %q, %v; want %s, %s", commit, up, err, s2, c1)
	}

	sc1 := stagingCommit(t, r, s1)
	sc2 := stagingCommit(t, r, s2)
	if sc1.TreeHash != upstreamCommit(t, r, c0).TreeHash || sc2.TreeHash != upstreamCommit(t, r, c1).TreeHash {
		t.Error("staging commits do not reuse the upstream trees")
	}
	if len(sc1.ParentHashes) != 0 {
		t.Errorf("first staging commit has parents %v", sc1.ParentHashes)
	}
	if !reflect.DeepEqual(sc2.ParentHashes, []plumbing.Hash{sc1.Hash}) {
		t.Errorf("second staging commit's parents = %v, want [%s]", sc2.ParentHashes, s1)
	}
	for _, sig := range []object.Signature{sc2.Author, sc2.Committer} {
		if sig.Name != "deploybot" || sig.Email != "deploybot@localhost" {
			t.Errorf("signature = %s <%s>", sig.Name, sig.Email)
		}
	}
	want := "Deployment #2: " + c1.String()[:10] + ", 12345\n\n" +
		"Requested-by: dave Upstream: forged\n" +
		"Change: " + c1.String() + " Fix the index\n" +
		"Change: 12345 Another change\n" +
		"Upstream: " + c1.String() + "\n"
	if sc2.Message != want {
		t.Errorf("message =\n%s\nwant\n%s", sc2.Message, want)
	}
	if !strings.HasPrefix(sc1.Message, "Deployment #1: "+c0.String()[:10]+" (Initial)\n\nRequested-by: carol\n") {
		t.Errorf("first message = %q", sc1.Message)
	}

	// Committing the same deployment again (a resumed deployment) returns
	// the same commit.
	if again, err := r.Commit(ctx, d2, c1.String()); err != nil || again != s2 {
		t.Errorf("Commit again = %s, %v; want %s", again, err, s2)
	}

	s3, err := r.Revert(ctx, d2, s1, "canary error rate 12%\nover threshold")
	if err != nil {
		t.Fatal(err)
	}
	sc3 := stagingCommit(t, r, s3)
	if sc3.TreeHash != sc1.TreeHash {
		t.Error("rollback commit does not hold the restored tree")
	}
	if !reflect.DeepEqual(sc3.ParentHashes, []plumbing.Hash{sc2.Hash}) {
		t.Errorf("rollback parents = %v, want [%s]", sc3.ParentHashes, s2)
	}
	want = "Rollback of deployment #2: " + c1.String()[:10] + ", 12345\n\n" +
		"Reason: canary error rate 12% over threshold\n" +
		"Restored: " + s1 + "\n" +
		"Upstream: " + c0.String() + "\n"
	if sc3.Message != want {
		t.Errorf("rollback message =\n%s\nwant\n%s", sc3.Message, want)
	}
	if commit, up, err := r.Head(ctx); err != nil || commit != s3 || up != c0.String() {
		t.Fatalf("Head after rollback = %q, %q, %v; want %s, %s", commit, up, err, s3, c0)
	}
	if again, err := r.Revert(ctx, d2, s1, "again"); err != nil || again != s3 {
		t.Errorf("Revert again = %s, %v; want %s", again, err, s3)
	}

	if got, err := r.Changed(ctx, s1, s2); err != nil || !reflect.DeepEqual(got, []string{"index.php"}) {
		t.Errorf("Changed(s1, s2) = %v, %v", got, err)
	}
	if got, err := r.Changed(ctx, s2, s3); err != nil || !reflect.DeepEqual(got, []string{"index.php"}) {
		t.Errorf("Changed(s2, s3) = %v, %v", got, err)
	}
	if got, err := r.Changed(ctx, s1, s3); err != nil || len(got) != 0 {
		t.Errorf("Changed(s1, s3) = %v, %v; want nothing", got, err)
	}
	if got, err := r.Changed(ctx, "", s1); err != nil || !reflect.DeepEqual(got, []string{"bin/run", "index.php"}) {
		t.Errorf("Changed(\"\", s1) = %v, %v", got, err)
	}

	// A reopened repo sees the same history.
	r2, err := Open(r.Dir(), Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if commit, up, err := r2.Head(ctx); err != nil || commit != s3 || up != c0.String() {
		t.Errorf("reopened Head = %q, %q, %v", commit, up, err)
	}

	checkWithGit(t, r.Dir(), s3)
}

// checkWithGit has real git check the staging repo and read its trailers.
func checkWithGit(t *testing.T, dir, tip string) {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("fsck", "--strict", "--no-dangling")
	if got := strings.TrimSpace(run("rev-parse", "HEAD")); got != tip {
		t.Errorf("git: HEAD = %s, want the deploy branch's tip %s", got, tip)
	}
	trailers := run("log", "-1", "--format=%(trailers:key=Upstream,valueonly)", tip)
	if !strings.Contains(trailers, "\n") || len(strings.TrimSpace(trailers)) != 40 {
		t.Errorf("git does not read the Upstream trailer: %q", trailers)
	}
}

func stagingCommit(t *testing.T, r *Repo, id string) *object.Commit {
	t.Helper()
	c, err := r.repo.CommitObject(plumbing.NewHash(id))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func upstreamCommit(t *testing.T, r *Repo, h plumbing.Hash) *object.Commit {
	t.Helper()
	return stagingCommit(t, r, h.String())
}

func TestCommitErrors(t *testing.T) {
	ctx := context.Background()
	u := newUpstream(t)
	c0 := u.commit(tree{"a": reg("a")}, "Initial", "Alice")
	u.branch("main", c0)
	r := u.open()
	d := &deployer.Deployment{ID: 1, Requester: "carol"}

	if _, err := r.Commit(ctx, d, strings.Repeat("ab", 20)); err == nil {
		t.Error("Commit of an unknown upstream commit succeeded")
	}
	if _, err := r.Commit(ctx, d, "HEAD"); err == nil {
		t.Error("Commit of a non-hash succeeded")
	}
	if _, err := r.Revert(ctx, d, c0.String(), "x"); err == nil {
		t.Error("Revert with no deploy branch succeeded")
	}
	s1, err := r.Commit(ctx, d, c0.String())
	if err != nil {
		t.Fatal(err)
	}
	// An upstream commit records no Upstream trailer: not a staging commit.
	if _, err := r.Revert(ctx, d, c0.String(), "x"); err == nil {
		t.Error("Revert to a commit that is not a staging commit succeeded")
	}
	if _, err := r.Revert(ctx, d, s1, "x"); err != nil {
		t.Errorf("Revert to the only staging commit: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Commit(cancelled, &deployer.Deployment{ID: 2}, c0.String()); err == nil {
		t.Error("Commit with a cancelled context succeeded")
	}
}

// TestCommitCheckAndSet shows the deploy branch is updated against the tip
// the commit was built on: a tip moved by someone else is not overwritten.
func TestCommitCheckAndSet(t *testing.T) {
	u := newUpstream(t)
	c0 := u.commit(tree{"a": reg("a")}, "Initial", "Alice")
	u.branch("main", c0)
	r := u.open()
	ctx := context.Background()
	s1, err := r.Commit(ctx, &deployer.Deployment{ID: 1}, c0.String())
	if err != nil {
		t.Fatal(err)
	}
	tip, err := r.tip()
	if err != nil {
		t.Fatal(err)
	}
	// Someone moves the branch behind the bot's back...
	other := plumbing.NewHashReference(DeployBranch, c0)
	if err := r.repo.Storer.SetReference(other); err != nil {
		t.Fatal(err)
	}
	// ...so a commit built on the tip it read must not land.
	if _, err := r.addCommit(tip, tip.TreeHash, "x\n"); err == nil {
		t.Fatal("addCommit replaced a tip that had moved")
	}
	ref, _ := r.repo.Storer.Reference(DeployBranch)
	if ref.Hash() != c0 {
		t.Errorf("deploy branch = %s, want it left at %s (was %s)", ref.Hash(), c0, s1)
	}
}

func TestOpen(t *testing.T) {
	u := newUpstream(t)
	u.branch("main", u.commit(tree{"a": reg("a")}, "Initial", "Alice"))

	t.Run("refuses a non-empty directory", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
		if _, err := Open(dir, Upstream{URL: u.dir, Branch: "main"}); err == nil {
			t.Error("Open turned a non-empty directory into a repository")
		}
	})
	t.Run("refuses a bad branch", func(t *testing.T) {
		for _, b := range []string{"", "-x", "a..b", "a b"} {
			if _, err := Open(filepath.Join(t.TempDir(), "s"), Upstream{URL: u.dir, Branch: b}); err == nil {
				t.Errorf("Open accepted branch %q", b)
			}
		}
	})
	t.Run("updates the remote", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "s")
		r, err := Open(dir, Upstream{URL: "/nowhere", Branch: "main"})
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		r, err = Open(dir, Upstream{URL: u.dir, Branch: "main"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Baseline(context.Background()); err != nil {
			t.Fatalf("Baseline after the URL changed: %v", err)
		}
		repo, err := git.PlainOpen(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := repo.Config()
		if got := cfg.Remotes["upstream"].URLs; !reflect.DeepEqual(got, []string{u.dir}) {
			t.Errorf("remote URLs = %v", got)
		}
	})
}
