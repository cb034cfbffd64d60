package gitrepo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// Diff lists the files whose content, mode or existence differs between
// commits from and to (from == "" is the empty tree), sorted by path. Both
// may be any commit in the repository, staging or upstream.
//
// Git has no renames, only paths: a moved file is a delete of the old path
// and a write of the new one, which is exactly what a host must do.
// Submodules (gitlinks) have no content here and are left out.
//
// Cost: the two trees are compared level by level and a subtree whose hash
// is equal on both sides is skipped unopened, so Diff reads only the trees
// on the paths to changed files. File contents are never read; Open reads a
// blob when the host asks for it.
func (r *Repo) Diff(ctx context.Context, from, to string) ([]deployer.FileChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &differ{ctx: ctx, r: r, withBlobs: true}
	if err := d.commits(from, to); err != nil {
		return nil, err
	}
	sort.Slice(d.out, func(i, j int) bool { return d.out[i].Path < d.out[j].Path })
	return d.out, nil
}

// Files lists every file of commit, as Diff from the empty tree does.
func (r *Repo) Files(ctx context.Context, commit string) ([]deployer.FileChange, error) {
	return r.Diff(ctx, "", commit)
}

// Changed lists the paths that differ between two commits, sorted. It is
// Diff without the blob sizes.
func (r *Repo) Changed(ctx context.Context, from, to string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &differ{ctx: ctx, r: r}
	if err := d.commits(from, to); err != nil {
		return nil, err
	}
	paths := make([]string, len(d.out))
	for i, c := range d.out {
		paths[i] = c.Path
	}
	sort.Strings(paths)
	return paths, nil
}

// differ compares two trees. The caller holds r.mu throughout.
type differ struct {
	ctx       context.Context
	r         *Repo
	withBlobs bool // fill in Size and Open
	out       []deployer.FileChange
}

func (d *differ) commits(from, to string) error {
	var fromTree plumbing.Hash
	if from != "" {
		c, err := d.r.commit(from)
		if err != nil {
			return err
		}
		fromTree = c.TreeHash
	}
	c, err := d.r.commit(to)
	if err != nil {
		return err
	}
	return d.trees("", fromTree, c.TreeHash)
}

// kind sorts tree entries into what a host sees.
type kind int

const (
	absent kind = iota // not there, or a gitlink (nothing to deploy)
	dir
	file
)

func kindOf(m filemode.FileMode) (kind, deployer.FileMode, error) {
	switch m {
	case filemode.Dir:
		return dir, 0, nil
	case filemode.Regular, filemode.Deprecated:
		return file, deployer.ModeRegular, nil
	case filemode.Executable:
		return file, deployer.ModeExecutable, nil
	case filemode.Symlink:
		return file, deployer.ModeSymlink, nil
	case filemode.Submodule:
		return absent, 0, nil
	}
	return absent, 0, fmt.Errorf("gitrepo: unknown file mode %o", uint32(m))
}

// trees appends the differences between trees a and b (zero hash: empty)
// found under prefix, which is "" or ends in "/".
func (d *differ) trees(prefix string, a, b plumbing.Hash) error {
	if a == b {
		return nil
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	ta, err := d.tree(a)
	if err != nil {
		return err
	}
	tb, err := d.tree(b)
	if err != nil {
		return err
	}
	old := make(map[string]*object.TreeEntry, len(ta))
	for i := range ta {
		old[ta[i].Name] = &ta[i]
	}
	for i := range tb {
		eb := &tb[i]
		ea := old[eb.Name]
		delete(old, eb.Name)
		if err := d.entry(prefix, eb.Name, ea, eb); err != nil {
			return err
		}
	}
	for i := range ta { // what is left was deleted; walk in tree order
		if ea, ok := old[ta[i].Name]; ok {
			if err := d.entry(prefix, ea.Name, ea, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry compares one name of a tree on both sides (nil: absent).
func (d *differ) entry(prefix, name string, a, b *object.TreeEntry) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("gitrepo: %s%s: %w", prefix, name, err)
	}
	path := prefix + name
	ka, ma, err := kindOfEntry(a)
	if err != nil {
		return err
	}
	kb, mb, err := kindOfEntry(b)
	if err != nil {
		return err
	}
	switch {
	case ka == dir && kb == dir:
		return d.trees(path+"/", a.Hash, b.Hash)
	case ka == file && kb == file:
		if a.Hash != b.Hash || ma != mb {
			return d.write(path, b.Hash, mb)
		}
		return nil
	}
	// The kinds differ (or one side is absent): remove the old, add the new.
	switch ka {
	case dir:
		if err := d.trees(path+"/", a.Hash, plumbing.ZeroHash); err != nil {
			return err
		}
	case file:
		d.out = append(d.out, deployer.FileChange{Path: path, Delete: true})
	}
	switch kb {
	case dir:
		return d.trees(path+"/", plumbing.ZeroHash, b.Hash)
	case file:
		return d.write(path, b.Hash, mb)
	}
	return nil
}

func kindOfEntry(e *object.TreeEntry) (kind, deployer.FileMode, error) {
	if e == nil {
		return absent, 0, nil
	}
	return kindOf(e.Mode)
}

// checkName refuses tree entries that would let a crafted upstream commit
// write outside a host's slot. Git itself refuses to check these out.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("unsafe name %q in tree", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("unsafe name %q in tree", name)
	case strings.EqualFold(name, ".git"):
		return fmt.Errorf("tree holds a %q entry", name)
	}
	return nil
}

func (d *differ) write(path string, h plumbing.Hash, mode deployer.FileMode) error {
	fc := deployer.FileChange{Path: path, Mode: mode, Hash: h.String()}
	if d.withBlobs {
		size, err := d.r.repo.Storer.EncodedObjectSize(h)
		if err != nil {
			return fmt.Errorf("gitrepo: blob %s of %s: %w", h, path, err)
		}
		fc.Size = size
		fc.Open = d.r.opener(h)
	}
	d.out = append(d.out, fc)
	return nil
}

func (d *differ) tree(h plumbing.Hash) ([]object.TreeEntry, error) {
	if h.IsZero() {
		return nil, nil
	}
	t, err := object.GetTree(d.r.repo.Storer, h)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	return t.Entries, nil
}

// opener reads a blob when called, not when Diff runs, so a Diff of a big
// change costs no memory until a host copies the files one by one.
func (r *Repo) opener(h plumbing.Hash) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		obj, err := r.repo.Storer.EncodedObject(plumbing.BlobObject, h)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: blob %s: %w", h, err)
		}
		// go-git hands back blobs decoded in memory (no large-object
		// threshold is set), so the reader stays valid after mu is released.
		return obj.Reader()
	}
}
