package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// The identity staging commits are made as.
const (
	botName  = "deploybot"
	botEmail = "deploybot@localhost"
)

// upstreamTrailer is the last line of every staging commit: the upstream
// commit whose tree it holds. Head and Revert read it back, so the staging
// repo alone says what upstream state the fleet serves.
const upstreamTrailer = "Upstream: "

// Head returns the deploy branch's tip and the upstream commit recorded in
// it, or "", "" when nothing was deployed yet.
func (r *Repo) Head(ctx context.Context) (commit, upstream string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tip, err := r.tip()
	if err != nil || tip == nil {
		return "", "", err
	}
	return tip.Hash.String(), trailer(tip.Message, upstreamTrailer), nil
}

// tip returns the deploy branch's tip commit, nil when the branch does not
// exist. The caller holds mu.
func (r *Repo) tip() (*object.Commit, error) {
	ref, err := r.repo.Storer.Reference(DeployBranch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gitrepo: read %s: %w", DeployBranch, err)
	}
	c, err := object.GetCommit(r.repo.Storer, ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("gitrepo: deploy branch tip %s: %w", ref.Hash(), err)
	}
	return c, nil
}

// Commit adds deployment d's commit to the deploy branch: the tree of
// upstream commit upstream, on top of the current tip.
//
// If the tip already is d's commit for that upstream commit, Commit returns
// it instead of adding another: a deployment resumed after a crash between
// committing and recording the commit must not stage itself twice.
func (r *Repo) Commit(ctx context.Context, d *deployer.Deployment, upstream string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	up, err := r.commit(upstream)
	if err != nil {
		return "", err
	}
	tip, err := r.tip()
	if err != nil {
		return "", err
	}
	if tip != nil && strings.HasPrefix(tip.Message, fmt.Sprintf("Deployment #%d: ", d.ID)) &&
		trailer(tip.Message, upstreamTrailer) == up.Hash.String() {
		return tip.Hash.String(), nil
	}
	return r.addCommit(tip, up.TreeHash, deployMessage(d, up))
}

// Revert adds a rollback commit for deployment d to the deploy branch: the
// tree of staging commit to, which is what the hosts were restored to, with
// the reason and the upstream commit to records.
//
// As with Commit, a tip that already is d's rollback to that tree is
// returned rather than repeated.
func (r *Repo) Revert(ctx context.Context, d *deployer.Deployment, to string, reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	restored, err := r.commit(to)
	if err != nil {
		return "", err
	}
	upstream := trailer(restored.Message, upstreamTrailer)
	if upstream == "" {
		return "", fmt.Errorf("gitrepo: staging commit %s records no upstream commit", short(restored.Hash))
	}
	tip, err := r.tip()
	if err != nil {
		return "", err
	}
	if tip == nil {
		return "", errors.New("gitrepo: nothing to roll back: the deploy branch does not exist")
	}
	msg := revertMessage(d, restored.Hash, upstream, reason)
	if tip.TreeHash == restored.TreeHash && strings.HasPrefix(tip.Message, fmt.Sprintf("Rollback of deployment #%d: ", d.ID)) {
		return tip.Hash.String(), nil
	}
	return r.addCommit(tip, restored.TreeHash, msg)
}

// addCommit writes a commit with tree tree on top of parent (nil for the
// first) and moves the deploy branch to it. The ref update is a
// check-and-set on the old tip, so it never silently discards a commit
// someone else added meanwhile. The caller holds mu.
func (r *Repo) addCommit(parent *object.Commit, tree plumbing.Hash, msg string) (string, error) {
	now := time.Now()
	sig := object.Signature{Name: botName, Email: botEmail, When: now}
	c := &object.Commit{
		Author:    sig,
		Committer: sig,
		Message:   msg,
		TreeHash:  tree,
	}
	var old *plumbing.Reference
	if parent != nil {
		c.ParentHashes = []plumbing.Hash{parent.Hash}
		old = plumbing.NewHashReference(DeployBranch, parent.Hash)
	}
	obj := r.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return "", fmt.Errorf("gitrepo: encode commit: %w", err)
	}
	h, err := r.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return "", fmt.Errorf("gitrepo: write commit: %w", err)
	}
	// With old == nil go-git does not check anything; the branch's absence
	// was established under mu, which is as far as one process can see.
	ref := plumbing.NewHashReference(DeployBranch, h)
	if err := r.repo.Storer.CheckAndSetReference(ref, old); err != nil {
		return "", fmt.Errorf("gitrepo: update %s: %w", DeployBranch, err)
	}
	return h.String(), nil
}

// deployMessage is a deployment's staging commit message. Everything after
// the subject is one paragraph of trailers, so `git interpret-trailers`
// and the trailer function below read it the same way.
//
// When upstream is a composition (a composite source's upstream), its
// Component and Submodule lines are copied too, so the deploy branch alone
// says which upstream commit every part of the tree holds.
func deployMessage(d *deployer.Deployment, up *object.Commit) string {
	upstream := up.Hash
	var b strings.Builder
	fmt.Fprintf(&b, "Deployment #%d: %s\n\n", d.ID, oneLine(d.Title()))
	fmt.Fprintf(&b, "Requested-by: %s\n", oneLine(d.Requester))
	for _, c := range d.Changes {
		fmt.Fprintf(&b, "Change: %s %s\n", oneLine(c.ID), oneLine(c.Subject))
	}
	if strings.HasPrefix(up.Message, compositionSubject) {
		for _, l := range compositionLines(up.Message) {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	fmt.Fprintf(&b, "%s%s\n", upstreamTrailer, upstream)
	return b.String()
}

func revertMessage(d *deployer.Deployment, restored plumbing.Hash, upstream, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rollback of deployment #%d: %s\n\n", d.ID, oneLine(d.Title()))
	if reason = oneLine(reason); reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", reason)
	}
	fmt.Fprintf(&b, "Restored: %s\n", restored)
	fmt.Fprintf(&b, "%s%s\n", upstreamTrailer, upstream)
	return b.String()
}

// oneLine folds text onto one line so that nothing a person typed (a
// reason, a chat name) can forge a trailer line in a staging commit.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func firstLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	return strings.TrimSpace(line)
}

// trailer returns the value of the last line of msg that starts with key
// ("" when none). oneLine guarantees no such line comes from user text.
func trailer(msg, key string) string {
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	for i := len(lines) - 1; i > 0; i-- {
		if v, ok := strings.CutPrefix(lines[i], key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
