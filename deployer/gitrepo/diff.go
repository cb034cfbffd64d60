package gitrepo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

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

// kindOf maps a canonical tree mode (see parseTree) to what a host sees.
func kindOf(m filemode.FileMode) (kind, deployer.FileMode) {
	switch m {
	case filemode.Dir:
		return dir, 0
	case filemode.Executable:
		return file, deployer.ModeExecutable
	case filemode.Symlink:
		return file, deployer.ModeSymlink
	case filemode.Regular:
		return file, deployer.ModeRegular
	}
	return absent, 0 // a gitlink: nothing to deploy
}

// trees appends the differences between trees a and b (zero hash: empty)
// found under prefix, which is "" or ends in "/".
//
// Both trees are walked side by side in git's own entry order, so the
// comparison allocates nothing for the entries that are equal, which is
// nearly all of them in a big tree.
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
	for ta.ok || tb.ok {
		var ea, eb rawEntry
		var pa, pb *rawEntry
		switch c := compareIters(ta, tb); {
		case c < 0:
			ea, pa = ta.cur, &ea
		case c > 0:
			eb, pb = tb.cur, &eb
		default:
			ea, eb, pa, pb = ta.cur, tb.cur, &ea, &eb
		}
		if pa != nil {
			if err := ta.next(); err != nil {
				return fmt.Errorf("gitrepo: tree %s: %w", a, err)
			}
		}
		if pb != nil {
			if err := tb.next(); err != nil {
				return fmt.Errorf("gitrepo: tree %s: %w", b, err)
			}
		}
		if pa != nil && pb != nil && ea.hash == eb.hash && ea.mode == eb.mode {
			continue
		}
		if err := d.entry(prefix, pa, pb); err != nil {
			return err
		}
	}
	return nil
}

// compareIters orders the current entries of two tree walks; a finished
// walk sorts last.
func compareIters(a, b *treeIter) int {
	switch {
	case !b.ok:
		return -1
	case !a.ok:
		return 1
	}
	return compareEntries(&a.cur, &b.cur)
}

// entry compares one name of a tree on both sides (nil: absent). A file
// and a directory of the same name come here separately: git orders a
// directory as if its name ended in "/".
func (d *differ) entry(prefix string, a, b *rawEntry) error {
	e := a
	if e == nil {
		e = b
	}
	if err := checkName(e.name); err != nil {
		return fmt.Errorf("gitrepo: %s%s: %w", prefix, e.name, err)
	}
	path := prefix + string(e.name)
	ka, ma := kindOfEntry(a)
	kb, mb := kindOfEntry(b)
	switch {
	case ka == dir && kb == dir:
		return d.trees(path+"/", a.hash, b.hash)
	case ka == file && kb == file:
		if a.hash != b.hash || ma != mb {
			return d.write(path, b.hash, mb)
		}
		return nil
	}
	// The kinds differ (or one side is absent): remove the old, add the new.
	switch ka {
	case dir:
		if err := d.trees(path+"/", a.hash, plumbing.ZeroHash); err != nil {
			return err
		}
	case file:
		d.out = append(d.out, deployer.FileChange{Path: path, Delete: true})
	}
	switch kb {
	case dir:
		return d.trees(path+"/", plumbing.ZeroHash, b.hash)
	case file:
		return d.write(path, b.hash, mb)
	}
	return nil
}

func kindOfEntry(e *rawEntry) (kind, deployer.FileMode) {
	if e == nil {
		return absent, 0
	}
	return kindOf(e.mode)
}

// checkName refuses tree entries that would let a crafted upstream commit
// write outside a host's slot. Git itself refuses to check these out.
func checkName(name []byte) error {
	switch {
	case len(name) == 0, string(name) == ".", string(name) == "..":
		return fmt.Errorf("unsafe name %q in tree", name)
	case bytes.IndexByte(name, '/') >= 0:
		return fmt.Errorf("unsafe name %q in tree", name)
	case strings.EqualFold(string(name), ".git"):
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

// rawEntry is one entry of a tree object, its name pointing into the
// object's bytes.
type rawEntry struct {
	mode filemode.FileMode
	name []byte
	hash plumbing.Hash
}

// tree starts a walk over tree h's entries (none for the zero hash).
func (d *differ) tree(h plumbing.Hash) (*treeIter, error) {
	it := &treeIter{}
	if h.IsZero() {
		return it, nil
	}
	obj, err := d.r.repo.Storer.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	defer rd.Close()
	it.data = make([]byte, obj.Size())
	if _, err := io.ReadFull(rd, it.data); err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	if err := it.next(); err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	return it, nil
}

// treeIter walks a tree object ("<octal mode> <name>\0<20-byte id>",
// repeated) entry by entry without copying names, canonicalising modes as
// git does (any regular file is 644 or 755). It insists on git's order
// without repeats, which the side-by-side walk in trees relies on; git's
// fsck insists on it too.
type treeIter struct {
	data []byte
	cur  rawEntry // valid while ok
	ok   bool
}

// next moves to the following entry; ok turns false at the end.
func (it *treeIter) next() error {
	prev, hadPrev := it.cur, it.ok
	it.ok = false
	data := it.data
	if len(data) == 0 {
		return nil
	}
	sp := bytes.IndexByte(data, ' ')
	if sp <= 0 {
		return errMalformedTree
	}
	var mode uint32
	for _, c := range data[:sp] {
		if c < '0' || c > '7' {
			return errMalformedTree
		}
		mode = mode<<3 | uint32(c-'0')
	}
	data = data[sp+1:]
	nul := bytes.IndexByte(data, 0)
	if nul < 0 || len(data) < nul+1+len(plumbing.ZeroHash) {
		return errMalformedTree
	}
	e := rawEntry{mode: canonicalMode(mode), name: data[:nul:nul]}
	copy(e.hash[:], data[nul+1:])
	it.data = data[nul+1+len(plumbing.ZeroHash):]
	if e.mode == filemode.Empty {
		return fmt.Errorf("entry %q has the unknown mode %o", e.name, mode)
	}
	if hadPrev && compareEntries(&prev, &e) >= 0 {
		return fmt.Errorf("entries out of order at %q", e.name)
	}
	it.cur, it.ok = e, true
	return nil
}

var errMalformedTree = fmt.Errorf("malformed tree object")

func canonicalMode(m uint32) filemode.FileMode {
	switch m & 0o170000 {
	case 0o040000:
		return filemode.Dir
	case 0o100000:
		if m&0o111 != 0 {
			return filemode.Executable
		}
		return filemode.Regular
	case 0o120000:
		return filemode.Symlink
	case 0o160000:
		return filemode.Submodule
	}
	return filemode.Empty
}

// compareEntries orders entries as git does: by name, a directory's name
// compared as if it ended in "/".
func compareEntries(a, b *rawEntry) int {
	n := min(len(a.name), len(b.name))
	if c := bytes.Compare(a.name[:n], b.name[:n]); c != 0 {
		return c
	}
	ca, cb := nextByte(a, n), nextByte(b, n)
	switch {
	case ca < cb:
		return -1
	case ca > cb:
		return 1
	}
	return 0
}

func nextByte(e *rawEntry, i int) byte {
	if i < len(e.name) {
		return e.name[i]
	}
	if e.mode == filemode.Dir {
		return '/'
	}
	return 0
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
