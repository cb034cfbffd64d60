package gitrepo

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// This file stages part of a batch (deployer.Subsetter): the base tree
// with some of the batch's upstream commits applied file by file. The
// pipeline only asks for parts closed under "touches a file another
// change touches", so a file's content in a part is the content the last
// change of the part that touches it left there: no merge is needed.
//
// Paths are deploy paths. A change of a composite source belongs to a
// component or submodule placed at Change.Component: its commit's files
// go under that path. A commit that moves a submodule pointer deploys no
// file of its own (the submodule's commits carry the content), but it is
// grouped with them: its ChangeFiles are the files the pointer move
// changes under the submodule's path.
//
// Invariant (CheckSubset): applying every change of a batch to its base
// this way gives exactly the batch's staged tree. The pipeline bisects a
// batch only when that holds, so every part it stages is the base plus
// whole changes, and the union of the parts is what was verified.

var _ deployer.Subsetter = (*Repo)(nil)

// contentFiles lists the deploy paths whose content change c's commit
// sets (against its first parent; a root commit: all of its files), and
// the commit. Gitlinks are not files. The caller holds mu.
func (r *Repo) contentFiles(ctx context.Context, c deployer.Change) ([]string, *object.Commit, error) {
	co, err := r.commit(c.Commit)
	if err != nil {
		return nil, nil, err
	}
	d := &differ{ctx: ctx, r: r}
	var from plumbing.Hash
	if len(co.ParentHashes) > 0 {
		p, err := object.GetCommit(r.repo.Storer, co.ParentHashes[0])
		if err != nil {
			return nil, nil, fmt.Errorf("gitrepo: parent of %s: %w", co.Hash, err)
		}
		from = p.TreeHash
	}
	if err := d.trees("", from, co.TreeHash); err != nil {
		return nil, nil, err
	}
	out := make([]string, len(d.out))
	for i, fc := range d.out {
		out[i] = joinPath(c.Component, fc.Path)
	}
	sort.Strings(out)
	return out, co, nil
}

// ChangeFiles implements deployer.Subsetter: the deploy paths change c
// sets, and for each submodule pointer it moves, the paths that move
// changes under the submodule (when both of its commits are in the object
// database; a submodule nobody fetched deploys nothing).
func (r *Repo) ChangeFiles(ctx context.Context, c deployer.Change) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files, co, err := r.contentFiles(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(co.ParentHashes) == 0 {
		return files, nil
	}
	p, err := object.GetCommit(r.repo.Storer, co.ParentHashes[0])
	if err != nil {
		return nil, fmt.Errorf("gitrepo: parent of %s: %w", co.Hash, err)
	}
	var moves []linkMove
	if err := r.linkMoves("", p.TreeHash, co.TreeHash, &moves); err != nil {
		return nil, err
	}
	for _, m := range moves {
		a, errA := object.GetCommit(r.repo.Storer, m.from)
		b, errB := object.GetCommit(r.repo.Storer, m.to)
		if errA != nil || errB != nil {
			continue
		}
		d := &differ{ctx: ctx, r: r}
		if err := d.trees("", a.TreeHash, b.TreeHash); err != nil {
			return nil, err
		}
		for _, fc := range d.out {
			files = append(files, joinPath(joinPath(c.Component, m.path), fc.Path))
		}
	}
	sort.Strings(files)
	return files, nil
}

// linkMove is a gitlink whose commit changes between two trees.
type linkMove struct {
	path     string
	from, to plumbing.Hash
}

// linkMoves appends the gitlinks that point elsewhere in tree b than in
// tree a (both sides gitlinks), under prefix. Equal subtrees are skipped.
// The caller holds mu.
func (r *Repo) linkMoves(prefix string, a, b plumbing.Hash, out *[]linkMove) error {
	if a == b {
		return nil
	}
	ea, err := readTree(r.repo.Storer, a)
	if err != nil {
		return err
	}
	eb, err := readTree(r.repo.Storer, b)
	if err != nil {
		return err
	}
	old := map[string]object.TreeEntry{}
	for _, e := range ea {
		old[e.Name] = e
	}
	for _, e := range eb {
		o, ok := old[e.Name]
		if !ok || o.Hash == e.Hash {
			continue
		}
		switch {
		case o.Mode == filemode.Submodule && e.Mode == filemode.Submodule:
			*out = append(*out, linkMove{path: prefix + e.Name, from: o.Hash, to: e.Hash})
		case o.Mode == filemode.Dir && e.Mode == filemode.Dir:
			if err := r.linkMoves(prefix+e.Name+"/", o.Hash, e.Hash, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// subsetTree returns base's tree with changes applied file by file, in
// order: each path takes its content from the last change that sets it.
// The caller holds mu.
func (r *Repo) subsetTree(ctx context.Context, base string, changes []deployer.Change) (plumbing.Hash, error) {
	type source struct {
		tree plumbing.Hash
		rel  string
	}
	last := map[string]source{}
	for _, c := range changes {
		files, co, err := r.contentFiles(ctx, c)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		for _, f := range files {
			rel := f
			if c.Component != "" {
				rel = strings.TrimPrefix(f, c.Component+"/")
			}
			last[f] = source{tree: co.TreeHash, rel: rel}
		}
	}
	paths := make([]string, 0, len(last))
	for p := range last {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if err := ctx.Err(); err != nil {
		return plumbing.ZeroHash, err
	}
	b, err := r.commit(base)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree := b.TreeHash
	s := r.repo.Storer
	for _, p := range paths {
		src := last[p]
		e, err := entryAt(s, src.tree, src.rel)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		mode, h := filemode.Regular, plumbing.ZeroHash
		if e != nil && e.Mode != filemode.Dir && e.Mode != filemode.Submodule {
			mode, h = e.Mode, e.Hash
		}
		if tree, err = setPath(s, tree, p, mode, h); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	if tree.IsZero() {
		if tree, err = writeTreeEntries(s, nil); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	return tree, nil
}

// CheckSubset implements deployer.Subsetter: it reports, as an error
// naming the first path that differs, when applying every change of the
// batch to base file by file does not give commit's tree (a component
// new in the configuration ships whole, a submodule pointer moved
// backwards or to a submodule of a submodule, a merge that resolved a
// file its way: parts of such a batch cannot be staged faithfully).
func (r *Repo) CheckSubset(ctx context.Context, base, commit string, changes []deployer.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tree, err := r.subsetTree(ctx, base, changes)
	if err != nil {
		return err
	}
	want, err := r.commit(commit)
	if err != nil {
		return err
	}
	if tree == want.TreeHash {
		return nil
	}
	d := &differ{ctx: ctx, r: r}
	if err := d.trees("", tree, want.TreeHash); err != nil {
		return err
	}
	what := "a tree entry"
	if len(d.out) > 0 {
		what = d.out[0].Path
	}
	return fmt.Errorf("the batch's changes applied file by file to %.10s differ from its staged commit %.10s at %s (%d path(s))", base, commit, what, len(d.out))
}

// CommitSubset implements deployer.Subsetter. The commit records the
// batch's upstream commit in its Upstream trailer, and each change left
// out in a Without line, so the deploy branch says exactly what the part
// holds.
func (r *Repo) CommitSubset(ctx context.Context, d *deployer.Deployment, label, base string, changes, without []deployer.Change) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tree, err := r.subsetTree(ctx, base, changes)
	if err != nil {
		return "", err
	}
	tip, err := r.tip()
	if err != nil {
		return "", err
	}
	subject := fmt.Sprintf("Deployment #%d (%s): ", d.ID, oneLine(label))
	if tip != nil && tip.TreeHash == tree && strings.HasPrefix(tip.Message, subject) {
		return tip.Hash.String(), nil
	}
	var m strings.Builder
	part := *d
	part.Changes = changes
	fmt.Fprintf(&m, "%s%s\n\n", subject, oneLine(part.Title()))
	fmt.Fprintf(&m, "Requested-by: %s\n", oneLine(d.Requester))
	for _, c := range changes {
		fmt.Fprintf(&m, "Change: %s %s\n", oneLine(c.ID), oneLine(c.Subject))
	}
	for _, c := range without {
		fmt.Fprintf(&m, "Without: %s %s\n", oneLine(c.ID), oneLine(c.Subject))
	}
	fmt.Fprintf(&m, "%s%s\n", upstreamTrailer, d.Upstream)
	return r.addCommit(tip, tree, m.String())
}

// Describe implements deployer.ChangeDescriber: what a ref names, after
// fetching upstream, for a window's list.
func (r *Repo) Describe(ref string) (deployer.Change, error) {
	if !hexRef.MatchString(ref) && !validBranch(ref) {
		return deployer.Change{}, deployer.Errorf(deployer.EInvalid, "%q is neither a commit id (7 to 40 hex digits) nor a branch name", ref)
	}
	ctx := context.Background()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return deployer.Change{}, err
	}
	heads, err := r.upstreamHeads()
	if err != nil {
		return deployer.Change{}, err
	}
	h, err := r.resolve(ctx, ref, heads)
	if err != nil {
		return deployer.Change{}, err
	}
	c, err := r.commit(h.String())
	if err != nil {
		return deployer.Change{}, err
	}
	return change(c), nil
}
