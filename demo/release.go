package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// The sandbox's deploy tree has the MediaWiki shape: the upstream
// repository (the configuration repository, with the sample app) at the
// root, and one live release branch at ReleaseDir: mediawiki/core at
// ReleaseBranch, holding the extension Foo as a git submodule (relative
// URL ../extensions/Foo.git), which the bot follows and deploys as files.
const (
	// ReleaseDir is the release branch's directory in the deploy tree.
	ReleaseDir = "php-1.46.0-wmf.3"
	// ReleaseBranch is core's and Foo's branch for that release.
	ReleaseBranch = "wmf/1.46.0-wmf.3"
	// ExtensionPath is Foo's submodule path inside core.
	ExtensionPath = "extensions/Foo"
	// ExtensionSubject is the subject of the extension change
	// MergeExtensionChange makes.
	ExtensionSubject = "Foo: say hello in the sidebar"
)

// releaseTime dates the release repositories' first commits.
var releaseTime = time.Date(2025, 3, 3, 8, 0, 0, 0, time.UTC)

// openOrCreateRelease makes the bare repositories core.git and
// extensions/Foo.git under dir, unless core.git exists already.
func openOrCreateRelease(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "core.git")); err == nil {
		return nil
	}
	ext, err := git.PlainInit(filepath.Join(dir, "extensions", "Foo.git"), true)
	if err != nil {
		return fmt.Errorf("init extension: %w", err)
	}
	extTree, err := writeTree(ext.Storer, map[string]string{
		"extension.json":     "{\n  \"name\": \"Foo\",\n  \"version\": \"1.0.0\"\n}\n",
		"includes/Hooks.php": "<?php\n// Foo's hooks.\n",
		"i18n/en.json":       "{\n  \"foo-sidebar\": \"Foo\"\n}\n",
	}, nil)
	if err != nil {
		return err
	}
	extCommit, err := writeCommit(ext.Storer, "Foo: first release", upstreamAuthor, releaseTime, extTree, nil)
	if err != nil {
		return err
	}
	if err := setBranch(ext.Storer, ReleaseBranch, extCommit); err != nil {
		return err
	}
	core, err := git.PlainInit(filepath.Join(dir, "core.git"), true)
	if err != nil {
		return fmt.Errorf("init core: %w", err)
	}
	coreTree, err := writeTree(core.Storer, map[string]string{
		"index.php":             "<?php\n// MediaWiki's entry point.\nrequire __DIR__ . '/includes/WebStart.php';\n",
		"includes/WebStart.php": "<?php\n// Sets up the request.\n",
		".gitmodules":           "[submodule \"" + ExtensionPath + "\"]\n\tpath = " + ExtensionPath + "\n\turl = ../extensions/Foo.git\n\tbranch = " + ReleaseBranch + "\n",
	}, map[string]plumbing.Hash{ExtensionPath: extCommit})
	if err != nil {
		return err
	}
	coreCommit, err := writeCommit(core.Storer, "Branch "+ReleaseBranch, upstreamAuthor, releaseTime, coreTree, nil)
	if err != nil {
		return err
	}
	return setBranch(core.Storer, ReleaseBranch, coreCommit)
}

// MergeExtensionChange adds a commit by Bob to Foo's release branch (a
// new message in the sidebar) and, as Gerrit's superproject subscription
// does on merge, a commit to core's release branch moving Foo's pointer to
// it. It returns Foo's new commit.
func (e *Env) MergeExtensionChange() (string, error) {
	ext, err := git.PlainOpen(e.Extension)
	if err != nil {
		return "", err
	}
	tip, err := ext.Reference(plumbing.NewBranchReferenceName(ReleaseBranch), true)
	if err != nil {
		return "", err
	}
	prev, err := object.GetCommit(ext.Storer, tip.Hash())
	if err != nil {
		return "", err
	}
	msg, err := writeBlobString(ext.Storer, "{\n  \"foo-sidebar\": \"Foo\",\n  \"foo-hello\": \"Hello from Foo\"\n}\n")
	if err != nil {
		return "", err
	}
	tree, err := replaceFile(ext.Storer, prev.TreeHash, "i18n", "en.json", msg)
	if err != nil {
		return "", err
	}
	extCommit, err := writeCommit(ext.Storer, ExtensionSubject+"\n\nShows a greeting under the sidebar's Foo link.\n", submitterAuthor, branchTime, tree, []plumbing.Hash{prev.Hash})
	if err != nil {
		return "", err
	}
	if err := setBranch(ext.Storer, ReleaseBranch, extCommit); err != nil {
		return "", err
	}
	if _, err := e.movePointer(extCommit, ExtensionSubject, object.Signature{Name: "Gerrit Code Review", Email: "gerrit@example.org"}); err != nil {
		return "", err
	}
	return extCommit.String(), nil
}

// movePointer adds a commit to core's release branch pointing Foo at
// extCommit, as Gerrit's superproject subscription does, and returns it.
func (e *Env) movePointer(extCommit plumbing.Hash, subject string, author object.Signature) (plumbing.Hash, error) {
	core, err := git.PlainOpen(e.Release)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ctip, err := core.Reference(plumbing.NewBranchReferenceName(ReleaseBranch), true)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	cprev, err := object.GetCommit(core.Storer, ctip.Hash())
	if err != nil {
		return plumbing.ZeroHash, err
	}
	dir, name, _ := strings.Cut(ExtensionPath, "/")
	ctree, err := replaceEntry(core.Storer, cprev.TreeHash, dir, object.TreeEntry{Name: name, Mode: filemode.Submodule, Hash: extCommit})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	bump, err := writeCommit(core.Storer, "Update git submodules\n\n* Update "+ExtensionPath+" from branch '"+ReleaseBranch+"'\n  to "+extCommit.String()+"\n  - "+subject+"\n",
		author, branchTime, ctree, []plumbing.Hash{cprev.Hash})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return bump, setBranch(core.Storer, ReleaseBranch, bump)
}

// The release branch changes MergeWindowChanges makes.
const (
	CoreWindowSubject = "Log requests slower than two seconds"
	ExtWindowSubject  = "Foo: link the help page from the sidebar"
)

// MergeWindowChanges merges two changes on the release branch for a
// backport window: one by Erin to core itself, then one by Dana to
// extension Foo, with core's pointer moved to it. Gerrit's superproject
// subscription authors that pointer commit as the extension commit's
// author when there is one, so Dana verifies both. It returns core's and
// Foo's new commits.
func (e *Env) MergeWindowChanges() (core, ext string, err error) {
	cr, err := git.PlainOpen(e.Release)
	if err != nil {
		return "", "", err
	}
	coreCommit, err := commitFile(cr, "includes", "WebStart.php",
		"<?php\n// Sets up the request.\n// Logs requests slower than two seconds.\n", CoreWindowSubject+"\n\nFor the latency investigation.\n", erinAuthor)
	if err != nil {
		return "", "", err
	}
	er, err := git.PlainOpen(e.Extension)
	if err != nil {
		return "", "", err
	}
	extCommit, err := commitFile(er, "includes", "Hooks.php",
		"<?php\n// Foo's hooks.\n// SidebarBeforeOutput: adds a link to Help:Foo.\n", ExtWindowSubject+"\n", danaAuthor)
	if err != nil {
		return "", "", err
	}
	if _, err := e.movePointer(extCommit, ExtWindowSubject, danaAuthor); err != nil {
		return "", "", err
	}
	return coreCommit.String(), extCommit.String(), nil
}

// commitFile adds a commit to repo's release branch setting file
// dir/name to content.
func commitFile(repo *git.Repository, dir, name, content, msg string, author object.Signature) (plumbing.Hash, error) {
	tip, err := repo.Reference(plumbing.NewBranchReferenceName(ReleaseBranch), true)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	prev, err := object.GetCommit(repo.Storer, tip.Hash())
	if err != nil {
		return plumbing.ZeroHash, err
	}
	blob, err := writeBlobString(repo.Storer, content)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree, err := replaceFile(repo.Storer, prev.TreeHash, dir, name, blob)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c, err := writeCommit(repo.Storer, msg, author, branchTime, tree, []plumbing.Hash{prev.Hash})
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return c, setBranch(repo.Storer, ReleaseBranch, c)
}

func writeBlobString(s storer.EncodedObjectStorer, content string) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write([]byte(content)); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func writeObject(s storer.EncodedObjectStorer, o encoder) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// writeTree writes files (slash paths, at most one directory deep) and
// gitlinks into a tree.
func writeTree(s storer.EncodedObjectStorer, files map[string]string, links map[string]plumbing.Hash) (plumbing.Hash, error) {
	sub := map[string][]object.TreeEntry{}
	var top []object.TreeEntry
	add := func(p string, e object.TreeEntry) {
		if dir, name, ok := strings.Cut(p, "/"); ok {
			e.Name = name
			sub[dir] = append(sub[dir], e)
			return
		}
		e.Name = p
		top = append(top, e)
	}
	for p, content := range files {
		h, err := writeBlobString(s, content)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		add(p, object.TreeEntry{Mode: filemode.Regular, Hash: h})
	}
	for p, h := range links {
		add(p, object.TreeEntry{Mode: filemode.Submodule, Hash: h})
	}
	for dir, es := range sub {
		sort.Sort(object.TreeEntrySorter(es))
		h, err := writeObject(s, &object.Tree{Entries: es})
		if err != nil {
			return plumbing.ZeroHash, err
		}
		top = append(top, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h})
	}
	sort.Sort(object.TreeEntrySorter(top))
	return writeObject(s, &object.Tree{Entries: top})
}

// replaceFile returns root with file dir/name set to blob.
func replaceFile(s storer.EncodedObjectStorer, root plumbing.Hash, dir, name string, blob plumbing.Hash) (plumbing.Hash, error) {
	return replaceEntry(s, root, dir, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob})
}

// replaceEntry returns root with entry e set in its subdirectory dir.
func replaceEntry(s storer.EncodedObjectStorer, root plumbing.Hash, dir string, e object.TreeEntry) (plumbing.Hash, error) {
	t, err := object.GetTree(s, root)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	for i, de := range t.Entries {
		if de.Name != dir {
			continue
		}
		st, err := object.GetTree(s, de.Hash)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		es := append([]object.TreeEntry(nil), st.Entries...)
		found := false
		for j := range es {
			if es[j].Name == e.Name {
				es[j], found = e, true
			}
		}
		if !found {
			es = append(es, e)
			sort.Sort(object.TreeEntrySorter(es))
		}
		h, err := writeObject(s, &object.Tree{Entries: es})
		if err != nil {
			return plumbing.ZeroHash, err
		}
		top := append([]object.TreeEntry(nil), t.Entries...)
		top[i].Hash = h
		return writeObject(s, &object.Tree{Entries: top})
	}
	return plumbing.ZeroHash, fmt.Errorf("demo: no directory %s", dir)
}

func writeCommit(s storer.EncodedObjectStorer, msg string, who object.Signature, when time.Time, tree plumbing.Hash, parents []plumbing.Hash) (plumbing.Hash, error) {
	who.When = when
	return writeObject(s, &object.Commit{Author: who, Committer: who, Message: msg, TreeHash: tree, ParentHashes: parents})
}

func setBranch(s storer.ReferenceStorer, branch string, h plumbing.Hash) error {
	return s.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), h))
}
