package hosts

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// gitBuilder writes trees and commits as git objects in memory, then packs
// them into a bare repository that gitrepo opens: the tests and benchmarks
// of the ssh transport sync from real git, as the bot does.
type gitBuilder struct {
	mem   *memory.Storage
	blobs map[string]plumbing.Hash // by contents, so big trees share them
}

func newGitBuilder() *gitBuilder {
	return &gitBuilder{mem: memory.NewStorage(), blobs: map[string]plumbing.Hash{}}
}

func (g *gitBuilder) put(t testing.TB, o interface {
	Encode(plumbing.EncodedObject) error
}) plumbing.Hash {
	obj := g.mem.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := g.mem.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (g *gitBuilder) blob(t testing.TB, data string) plumbing.Hash {
	if h, ok := g.blobs[data]; ok {
		return h
	}
	obj := g.mem.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(data))
	w.Close()
	h, err := g.mem.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	g.blobs[data] = h
	return h
}

// tree writes a flat path map as nested git trees and returns the root's
// hash. Entries are in git's order: a directory sorts as its name + "/".
func (g *gitBuilder) tree(t testing.TB, files tree) plumbing.Hash {
	subs := map[string]tree{}
	var entries []object.TreeEntry
	for p, f := range files {
		if i := strings.IndexByte(p, '/'); i >= 0 {
			if subs[p[:i]] == nil {
				subs[p[:i]] = tree{}
			}
			subs[p[:i]][p[i+1:]] = f
			continue
		}
		mode := filemode.Regular
		switch f.mode {
		case deployer.ModeExecutable:
			mode = filemode.Executable
		case deployer.ModeSymlink:
			mode = filemode.Symlink
		}
		entries = append(entries, object.TreeEntry{Name: p, Mode: mode, Hash: g.blob(t, f.data)})
	}
	for name, st := range subs {
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: g.tree(t, st)})
	}
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	return g.put(t, &object.Tree{Entries: entries})
}

// commit writes a commit of files with parent (zero for none).
func (g *gitBuilder) commit(t testing.TB, files tree, parent plumbing.Hash, msg string) plumbing.Hash {
	c := &object.Commit{Message: msg + "\n", TreeHash: g.tree(t, files)}
	c.Author.Name, c.Author.Email = "test", "test@example.org"
	c.Committer = c.Author
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	return g.put(t, c)
}

// open packs every object into a new bare repository at dir and opens it
// with gitrepo.
func (g *gitBuilder) open(t testing.TB, dir string) *gitrepo.Repo {
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := repo.Storer.(storer.PackfileWriter).PackfileWriter()
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([]plumbing.Hash, 0, len(g.mem.ObjectStorage.Objects))
	for h := range g.mem.ObjectStorage.Objects {
		hashes = append(hashes, h)
	}
	if _, err := packfile.NewEncoder(pw, g.mem, false).Encode(hashes, 10); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	return openRepo(t, dir)
}

func openRepo(t testing.TB, dir string) *gitrepo.Repo {
	r, err := gitrepo.Open(dir, gitrepo.Upstream{URL: "/nonexistent-upstream", Branch: "main"})
	if err != nil {
		t.Fatalf("opening %s: %v", dir, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// gitCommits builds a repository holding one commit per tree, each the
// parent of the next, and returns it with the commits' hashes.
func gitCommits(t testing.TB, trees ...tree) (*gitrepo.Repo, []string) {
	t.Helper()
	g := newGitBuilder()
	var parent plumbing.Hash
	var out []string
	for i, tr := range trees {
		parent = g.commit(t, tr, parent, fmt.Sprintf("commit %d", i))
		out = append(out, parent.String())
	}
	return g.open(t, t.TempDir()+"/staging.git"), out
}
