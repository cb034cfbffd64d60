package gitrepo

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/deploybot/deploybot/deployer"
)

// This file stages part of a batch (deployer.Subsetter): the base tree
// with some of the batch's upstream commits applied file by file. The
// pipeline only asks for parts closed under "touches a file another
// change touches", so a file's content in a part is the content the last
// change of the part that touches it left there: no merge is needed.

var _ deployer.Subsetter = (*Repo)(nil)

// ChangeFiles lists the paths commit changes against its first parent (a
// root commit: all of its files).
func (r *Repo) ChangeFiles(ctx context.Context, commit string) ([]string, error) {
	r.mu.Lock()
	c, err := r.commit(commit)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	from := ""
	if len(c.ParentHashes) > 0 {
		from = c.ParentHashes[0].String()
	}
	return r.Changed(ctx, from, commit)
}

// CommitSubset implements deployer.Subsetter. The commit records the
// batch's upstream commit in its Upstream trailer, and each change left
// out in a Without line, so the deploy branch says exactly what the part
// holds.
func (r *Repo) CommitSubset(ctx context.Context, d *deployer.Deployment, label, base string, changes, without []deployer.Change) (string, error) {
	// Which change last touches each path, in upstream order.
	last := map[string]string{}
	for _, c := range changes {
		files, err := r.ChangeFiles(ctx, c.Commit)
		if err != nil {
			return "", err
		}
		for _, f := range files {
			last[f] = c.Commit
		}
	}
	paths := make([]string, 0, len(last))
	for p := range last {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b, err := r.commit(base)
	if err != nil {
		return "", err
	}
	tree := b.TreeHash
	s := r.repo.Storer
	for _, p := range paths {
		c, err := r.commit(last[p])
		if err != nil {
			return "", err
		}
		e, err := entryAt(s, c.TreeHash, p)
		if err != nil {
			return "", err
		}
		mode, h := filemode.Regular, plumbing.ZeroHash
		if e != nil && e.Mode != filemode.Dir {
			mode, h = e.Mode, e.Hash
		}
		if tree, err = setPath(s, tree, p, mode, h); err != nil {
			return "", err
		}
	}
	if tree.IsZero() {
		if tree, err = writeTreeEntries(s, nil); err != nil {
			return "", err
		}
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
