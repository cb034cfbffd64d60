package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// This file exports the read-only views of upstream history that other
// change sources (deployer/gerrit) build on: one commit, ancestry, a range,
// and revert detection. Each takes mu like every other method, so a source
// wrapping a *Repo never races its staging work.

// UpstreamCommit describes one upstream commit.
type UpstreamCommit struct {
	Hash        string
	Parents     []string
	Subject     string
	Message     string
	Author      string
	AuthorEmail string
}

func toUpstreamCommit(c *object.Commit) UpstreamCommit {
	ps := make([]string, len(c.ParentHashes))
	for i, p := range c.ParentHashes {
		ps[i] = p.String()
	}
	return UpstreamCommit{
		Hash:        c.Hash.String(),
		Parents:     ps,
		Subject:     firstLine(c.Message),
		Message:     c.Message,
		Author:      c.Author.Name,
		AuthorEmail: c.Author.Email,
	}
}

// Branch returns the upstream branch deployments are taken from.
func (r *Repo) Branch() string { return r.upstream.Branch }

// URL returns the upstream repository the staging repo fetches from.
func (r *Repo) URL() string { return r.upstream.URL }

// LookupCommit returns a commit of the staging repo's object database by its
// full id. It does not fetch.
func (r *Repo) LookupCommit(ctx context.Context, id string) (*UpstreamCommit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.commit(id)
	if err != nil {
		return nil, err
	}
	uc := toUpstreamCommit(c)
	return &uc, nil
}

// HasCommit reports whether the object database holds commit id, so callers
// can tell "not fetched yet" apart from other errors.
func (r *Repo) HasCommit(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.commit(id)
	return err == nil
}

// IsAncestor reports whether commit ancestor is reachable from commit
// descendant (a commit is its own ancestor). Both must have been fetched.
func (r *Repo) IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error) {
	a, err := parseHash(ancestor)
	if err != nil {
		return false, err
	}
	d, err := parseHash(descendant)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range []plumbing.Hash{a, d} {
		if _, err := object.GetCommit(r.repo.Storer, h); err != nil {
			return false, fmt.Errorf("gitrepo: commit %s: %w", h, err)
		}
	}
	ok, err := reaches(ctx, r.repo.Storer, []plumbing.Hash{d}, a)
	if errors.Is(err, errTooFar) {
		return false, deployer.Errorf(deployer.EInvalid, "%s and %s are too far apart (more than %d commits) to check", short(a), short(d), maxWalk)
	}
	return ok, err
}

// Range lists the commits reachable from to but not from from (git's
// from..to), oldest first, parents before children. from == "" lists
// nothing but to itself: with nothing deployed there is no range.
func (r *Repo) Range(ctx context.Context, from, to string) ([]UpstreamCommit, error) {
	t, err := parseHash(to)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if from == "" {
		c, err := object.GetCommit(r.repo.Storer, t)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: commit %s: %w", t, err)
		}
		return []UpstreamCommit{toUpstreamCommit(c)}, nil
	}
	f, err := parseHash(from)
	if err != nil {
		return nil, err
	}
	return r.rangeLocked(ctx, f, t)
}

// rangeLocked is Range for the caller holding mu.
func (r *Repo) rangeLocked(ctx context.Context, from, to plumbing.Hash) ([]UpstreamCommit, error) {
	w := newWalk(ctx, r.repo.Storer)
	if err := w.run([]plumbing.Hash{to}, []plumbing.Hash{from}); err != nil {
		if errors.Is(err, errTooFar) {
			return nil, deployer.Errorf(deployer.EInvalid, "%s is too far from %s (more than %d commits apart)", short(to), short(from), maxWalk)
		}
		return nil, err
	}
	cs := oldestFirst(w.below(to))
	out := make([]UpstreamCommit, len(cs))
	for i, c := range cs {
		out[i] = toUpstreamCommit(c)
	}
	return out, nil
}

// revertLine is the line `git revert` and Gerrit's revert button write
// into a revert's message.
var revertLine = regexp.MustCompile(`(?m)^\s*This reverts commit ([0-9a-f]{40})\b`)

// RevertsOf returns the commits a message says it reverts.
func RevertsOf(message string) []string {
	var out []string
	for _, m := range revertLine.FindAllStringSubmatch(message, -1) {
		out = append(out, m[1])
	}
	return out
}

// RevertedIn returns the commit in commit..upstream that reverts commit
// and is not itself reverted there ("" when there is none): a revert of a
// revert re-lands the change, so it ships again.
func (r *Repo) RevertedIn(ctx context.Context, upstream, commit string) (string, error) {
	u, err := parseHash(upstream)
	if err != nil {
		return "", err
	}
	c, err := parseHash(commit)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if u == c {
		return "", nil
	}
	cs, err := r.rangeLocked(ctx, c, u)
	if err != nil {
		return "", err
	}
	revertedBy := map[string][]string{} // commit -> commits reverting it
	for _, rc := range cs {
		for _, target := range RevertsOf(rc.Message) {
			revertedBy[target] = append(revertedBy[target], rc.Hash)
		}
	}
	var live func(h string, depth int) string
	live = func(h string, depth int) string {
		if depth > 20 {
			return ""
		}
		for _, rv := range revertedBy[h] {
			if live(rv, depth+1) == "" {
				return rv
			}
		}
		return ""
	}
	return live(c.String(), 0), nil
}

// StillShips implements half of deployer.Reverter for the git source:
// deploying upstream ships the blocked change c again when c's commit is in
// upstream's history and no live revert of it is. Reverter adds the other
// half.
func (r *Repo) StillShips(ctx context.Context, upstream string, c deployer.Change) (bool, error) {
	commit := c.Commit
	if commit == "" {
		commit = c.ID
	}
	if _, err := parseHash(commit); err != nil {
		// Not a commit this source made: it cannot be in upstream's
		// history under this id.
		return false, nil
	}
	if !r.HasCommit(commit) {
		return false, nil
	}
	in, err := r.IsAncestor(ctx, commit, upstream)
	if err != nil || !in {
		return false, err
	}
	rv, err := r.RevertedIn(ctx, upstream, commit)
	if err != nil {
		return false, err
	}
	return rv == "", nil
}

// ChangeIDOf returns the Change-Id footer of a commit message ("" when
// none), the key Gerrit uses to find a change whatever commit it merged as.
func ChangeIDOf(message string) string {
	id := ""
	for _, line := range strings.Split(message, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Change-Id:"); ok {
			id = strings.TrimSpace(v)
		}
	}
	return id
}

// Bugs returns the values of a message's "Bug:" lines, in order and without
// repeats (see the git source's Change.Bugs).
func Bugs(message string) []string { return bugs(message) }
