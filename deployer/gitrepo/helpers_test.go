package gitrepo

import (
	"context"
	"errors"
	"github.com/deploybot/deploybot/internal/testparts"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/deploybot/deploybot/deployer"
)

// entry is one path of a test tree.
type entry struct {
	data string
	mode filemode.FileMode
	hash plumbing.Hash // for gitlinks
}

func reg(s string) entry  { return entry{data: s, mode: filemode.Regular} }
func exe(s string) entry  { return entry{data: s, mode: filemode.Executable} }
func link(s string) entry { return entry{data: s, mode: filemode.Symlink} }
func gitlink(h string) entry {
	return entry{mode: filemode.Submodule, hash: plumbing.NewHash(h)}
}

// tree is a test tree: slash-separated paths to entries.
type tree map[string]entry

// writeObject stores o's encoding in s.
func writeObject(t testing.TB, s storer.EncodedObjectStorer, o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	t.Helper()
	obj := s.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func writeBlob(t testing.TB, s storer.EncodedObjectStorer, data string) plumbing.Hash {
	t.Helper()
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatal(err)
	}
	w.Close()
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// writeTree stores files as nested tree objects and returns the root.
func writeTree(t testing.TB, s storer.EncodedObjectStorer, files tree) plumbing.Hash {
	t.Helper()
	sub := map[string]tree{}
	var entries []object.TreeEntry
	for p, e := range files {
		if first, rest, ok := strings.Cut(p, "/"); ok {
			if sub[first] == nil {
				sub[first] = tree{}
			}
			sub[first][rest] = e
			continue
		}
		h := e.hash
		if e.mode != filemode.Submodule {
			h = writeBlob(t, s, e.data)
		}
		entries = append(entries, object.TreeEntry{Name: p, Mode: e.mode, Hash: h})
	}
	for name, files := range sub {
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: writeTree(t, s, files)})
	}
	sort.Sort(object.TreeEntrySorter(entries))
	return writeObject(t, s, &object.Tree{Entries: entries})
}

// upstream is a test upstream repository, built object by object so each
// test controls modes, dates and history shape exactly.
type upstream struct {
	t     testing.TB
	dir   string
	repo  *git.Repository
	clock time.Time
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	requireGit(t)
	dir := filepath.Join(t.TempDir(), "upstream.git")
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{t: t, dir: dir, repo: repo, clock: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)}
}

// requireGit fails tests that fetch when git is missing: go-git fetches
// from a local path by running git-upload-pack.
func requireGit(t testing.TB) {
	t.Helper()
	testparts.Need(t, "git", "git")
}

// commit writes a commit of files on parents, dated one minute after the
// previous one, and returns it.
func (u *upstream) commit(files tree, msg, author string, parents ...plumbing.Hash) plumbing.Hash {
	u.t.Helper()
	u.clock = u.clock.Add(time.Minute)
	return u.commitAt(u.clock, files, msg, author, parents...)
}

func (u *upstream) commitAt(when time.Time, files tree, msg, author string, parents ...plumbing.Hash) plumbing.Hash {
	u.t.Helper()
	s := u.repo.Storer
	sig := object.Signature{Name: author, Email: strings.ToLower(author) + "@example.org", When: when}
	return writeObject(u.t, s, &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      msg,
		TreeHash:     writeTree(u.t, s, files),
		ParentHashes: parents,
	})
}

func (u *upstream) branch(name string, h plumbing.Hash) {
	u.t.Helper()
	if err := u.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(name), h)); err != nil {
		u.t.Fatal(err)
	}
}

func (u *upstream) deleteBranch(name string) {
	u.t.Helper()
	if err := u.repo.Storer.RemoveReference(plumbing.NewBranchReferenceName(name)); err != nil {
		u.t.Fatal(err)
	}
}

// chain commits n commits on parent, each adding one file, and returns
// them oldest first.
func (u *upstream) chain(parent plumbing.Hash, n int, prefix string) []plumbing.Hash {
	u.t.Helper()
	var out []plumbing.Hash
	for i := 0; i < n; i++ {
		parent = u.commit(tree{prefix + "/" + string(rune('a'+i%26)) + strings.Repeat("x", i/26): reg(prefix)},
			prefix+" "+string(rune('A'+i%26)), "Author"+prefix, parent)
		out = append(out, parent)
	}
	return out
}

// open opens a staging repo on u's "main" branch and fetches.
func (u *upstream) open() *Repo {
	u.t.Helper()
	r, err := Open(filepath.Join(u.t.TempDir(), "staging"), Upstream{URL: u.dir, Branch: "main"})
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { r.Close() })
	if err := r.Fetch(context.Background()); err != nil {
		u.t.Fatal(err)
	}
	return r
}

// wantCode fails unless err is a *deployer.Error with code and a message
// containing every one of parts.
func wantCode(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	var de *deployer.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *deployer.Error with code %s", err, err, code)
	}
	if de.Code != code {
		t.Errorf("code = %s, want %s (message %q)", de.Code, code, de.Message)
	}
	for _, p := range parts {
		if !strings.Contains(de.Message, p) {
			t.Errorf("message %q does not contain %q", de.Message, p)
		}
	}
	if strings.Contains(de.Message, "\n") {
		t.Errorf("message %q is not one line", de.Message)
	}
}
