package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// Reverter is the git change source with upstream reverts: everything *Repo
// does as a ChangeSource, plus deployer.Reverter. It is a separate type
// only because the push permission is configuration (source.git.push_reverts)
// that the staging repo itself does not carry.
type Reverter struct {
	*Repo
	// Push allows RevertUpstream to push revert commits to the upstream
	// branch. Without it, RevertUpstream only says what to revert by hand.
	Push bool
	// Log receives the details of a refused push; slog.Default() if nil.
	Log *slog.Logger
}

var (
	_ deployer.ChangeSource = (*Reverter)(nil)
	_ deployer.Reverter     = (*Reverter)(nil)
)

// revertRef is a staging ref that holds a revert commit only for the
// moment of its push: go-git pushes refs, not bare commits.
const revertRef = plumbing.ReferenceName("refs/deploybot/revert")

// RevertUpstream reverts d's commits on the upstream branch, newest first,
// when that is safe to do blindly: the branch tip is still d.Upstream and
// d's changes are the straight line of commits from d.PrevUpstream to it,
// so each revert's tree is exactly its commit's parent's tree. Otherwise,
// or when pushing is not allowed, it returns lines saying what to revert by
// hand. Commits that upstream already reverts (a push before a crash, or a
// person) are reported, not reverted twice.
func (s *Reverter) RevertUpstream(ctx context.Context, d *deployer.Deployment, reason string) ([]string, map[string]string, error) {
	if len(d.Changes) == 0 || d.Upstream == "" {
		return nil, nil, nil
	}
	tip, err := s.Baseline(ctx)
	if err != nil {
		return nil, nil, err
	}
	reverts := map[string]string{}
	var lines []string
	var todo []deployer.Change // newest first
	for i := len(d.Changes) - 1; i >= 0; i-- {
		c := d.Changes[i]
		commit := c.Commit
		if commit == "" {
			commit = c.ID
		}
		if !s.HasCommit(commit) {
			continue
		}
		in, err := s.IsAncestor(ctx, commit, tip)
		if err != nil {
			return nil, nil, err
		}
		if !in {
			lines = append(lines, fmt.Sprintf("%.10s (%s) is not on %s upstream (it was deployed from another branch, or %s was rewritten), so there is nothing to revert there; do not deploy that branch again as it is", commit, c.Subject, s.Branch(), s.Branch()))
			continue
		}
		rv, err := s.RevertedIn(ctx, tip, commit)
		if err != nil {
			return nil, nil, err
		}
		if rv != "" {
			reverts[c.ID] = rv
			lines = append(lines, fmt.Sprintf("%.10s (%s) is already reverted upstream by %.10s", commit, c.Subject, rv))
			continue
		}
		todo = append(todo, c)
	}
	if len(todo) == 0 {
		return lines, reverts, nil
	}
	byHand := func(why string) ([]string, map[string]string, error) {
		var names []string
		for _, c := range todo {
			names = append(names, fmt.Sprintf("%.10s (%s)", commitOf(c), c.Subject))
		}
		lines = append(lines, fmt.Sprintf("%s, so I did not revert upstream: revert %s on %s by hand (newest first, `git revert <commit>`), or the next backport ships it again",
			why, strings.Join(names, ", "), s.Branch()))
		return lines, reverts, nil
	}
	switch {
	case !s.Push:
		return byHand("pushing reverts is off (source.git.push_reverts)")
	case tip != d.Upstream:
		return byHand(fmt.Sprintf("%s has moved on to %.10s since #%d deployed %.10s", s.Branch(), tip, d.ID, d.Upstream))
	case len(todo) != len(d.Changes):
		return byHand("some of its commits are reverted already and some are not")
	}
	pushed, err := s.pushReverts(ctx, d, todo, tip, reason)
	if err != nil {
		log := s.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("pushing the upstream revert failed", "deployment", d.ID, "err", err)
		var de *deployer.Error
		if errors.As(err, &de) {
			return byHand(de.Message)
		}
		return nil, nil, err
	}
	for i, c := range todo {
		reverts[c.ID] = pushed[i]
		lines = append(lines, fmt.Sprintf("pushed %.10s to %s upstream: it reverts %.10s (%s)", pushed[i], s.Branch(), commitOf(c), c.Subject))
	}
	return lines, reverts, nil
}

func commitOf(c deployer.Change) string {
	if c.Commit != "" {
		return c.Commit
	}
	return c.ID
}

// pushReverts writes one revert commit per change on top of tip, newest
// change first, and pushes the last one to the upstream branch with a
// check that the branch is still at tip. It returns the revert commits in
// the order of todo. Problems a person must solve are *deployer.Error.
func (s *Reverter) pushReverts(ctx context.Context, d *deployer.Deployment, todo []deployer.Change, tip, reason string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent, err := s.commit(tip)
	if err != nil {
		return nil, err
	}
	var made []string
	expect := parent.Hash // the commit the next revert must undo
	for _, c := range todo {
		orig, err := s.commit(commitOf(c))
		if err != nil {
			return nil, err
		}
		// Only a straight line can be reverted by reusing trees: the
		// commit being reverted must be the current top of the line.
		if orig.Hash != expect {
			return nil, deployer.Errorf(deployer.EConflict, "its commits are not one straight line at the top of %s", s.upstream.Branch)
		}
		if len(orig.ParentHashes) == 0 {
			return nil, deployer.Errorf(deployer.EConflict, "%.10s is the first commit of %s", orig.Hash, s.upstream.Branch)
		}
		expect = orig.ParentHashes[0]
		before, err := object.GetCommit(s.repo.Storer, orig.ParentHashes[0])
		if err != nil {
			return nil, fmt.Errorf("gitrepo: parent of %s: %w", orig.Hash, err)
		}
		h, err := s.writeRevert(parent.Hash, before.TreeHash, revertCommitMessage(d, orig, reason))
		if err != nil {
			return nil, err
		}
		made = append(made, h.String())
		if parent, err = object.GetCommit(s.repo.Storer, h); err != nil {
			return nil, err
		}
	}
	last := plumbing.NewHash(made[len(made)-1])
	if err := s.repo.Storer.SetReference(plumbing.NewHashReference(revertRef, last)); err != nil {
		return nil, fmt.Errorf("gitrepo: %w", err)
	}
	defer s.repo.Storer.RemoveReference(revertRef)
	branch := plumbing.NewBranchReferenceName(s.upstream.Branch)
	err = s.repo.PushContext(ctx, &git.PushOptions{
		RemoteName:        s.remote,
		RefSpecs:          []config.RefSpec{config.RefSpec(revertRef.String() + ":" + branch.String())},
		RequireRemoteRefs: []config.RefSpec{config.RefSpec(tip + ":" + branch.String())},
	})
	if err != nil {
		return nil, pushError{err: err, branch: s.upstream.Branch}
	}
	// Record the new tip the way a fetch would, so StillShips sees the
	// revert at once.
	if err := s.fetch(ctx); err != nil {
		return nil, err
	}
	return made, nil
}

func (s *Reverter) writeRevert(parent, tree plumbing.Hash, msg string) (plumbing.Hash, error) {
	sig := object.Signature{Name: botName, Email: botEmail, When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: []plumbing.Hash{parent}}
	obj := s.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: encode revert: %w", err)
	}
	h, err := s.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: write revert: %w", err)
	}
	return h, nil
}

// revertCommitMessage is git revert's message with the reason added. The
// reason is folded onto one line so that nothing typed in chat can forge
// a trailer.
func revertCommitMessage(d *deployer.Deployment, orig *object.Commit, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Revert %q\n\nThis reverts commit %s.\n\n", firstLine(orig.Message), orig.Hash)
	if reason = oneLine(reason); reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", reason)
	}
	fmt.Fprintf(&b, "Rolled back by deploybot in deployment #%d.\n", d.ID)
	return b.String()
}

// pushError keeps a refused push's own error for the log and offers a
// sentence for chat through As.
type pushError struct {
	err    error
	branch string
}

func (e pushError) Error() string { return "gitrepo: push to " + e.branch + ": " + e.err.Error() }

func (e pushError) As(target any) bool {
	if de, ok := target.(**deployer.Error); ok {
		*de = pushProblem(e.err, e.branch)
		return true
	}
	return false
}

// pushProblem turns a refused push into a sentence for chat.
func pushProblem(err error, branch string) *deployer.Error {
	msg := err.Error()
	switch {
	case errors.Is(err, git.ErrNonFastForwardUpdate) || strings.Contains(msg, "required to be") || strings.Contains(msg, "non-fast-forward"):
		return deployer.Errorf(deployer.EConflict, "%s moved on while I was pushing the revert (the push was not a fast-forward)", branch)
	case strings.Contains(msg, "checked out"):
		return deployer.Errorf(deployer.EConflict, "upstream refused the push because %s is checked out in its working tree (push to a bare repository)", branch)
	case strings.Contains(msg, "authentication") || strings.Contains(msg, "authorization") || strings.Contains(msg, "permission"):
		return deployer.Errorf(deployer.EForbidden, "upstream refused the push: the bot may not push to %s", branch)
	}
	return deployer.Errorf(deployer.EConflict, "pushing the revert to %s failed (the bot's log has the details)", branch)
}
