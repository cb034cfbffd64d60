package gerrit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// RevertUpstream opens a Gerrit revert for each of d's Gerrit changes in
// the change's own project and branch (Source.RevertUpstream, which calls
// POST /changes/<project>~<number>/revert), and hands the other commits
// d shipped (unrequested ones, component:ref ones, subscription
// updates) to the git composite, which reverts them in their component
// as push_reverts allows or says what to revert by hand.
func (c *Composite) RevertUpstream(ctx context.Context, d *deployer.Deployment, reason string) ([]string, map[string]string, error) {
	changes, commits := *d, *d
	changes.Changes, commits.Changes = nil, nil
	var pointers []string
	for _, ch := range d.Changes {
		if _, err := strconv.Atoi(ch.ID); err == nil {
			changes.Changes = append(changes.Changes, ch)
		} else if isPointerUpdate(ch) {
			pointers = append(pointers, fmt.Sprintf("%.10s in %s", ch.Commit, ch.Component))
		} else {
			commits.Changes = append(commits.Changes, ch)
		}
	}
	var lines []string
	if len(pointers) > 0 {
		lines = append(lines, fmt.Sprintf("left Gerrit's submodule pointer update(s) %s alone: the superproject subscription moves the pointer again when the reverts merge", strings.Join(pointers, ", ")))
	}
	reverts := map[string]string{}
	if len(changes.Changes) > 0 {
		ls, rs, err := c.src.RevertUpstream(ctx, &changes, reason)
		lines = append(lines, ls...)
		for k, v := range rs {
			reverts[k] = v
		}
		if err != nil {
			return lines, reverts, err
		}
	}
	if len(commits.Changes) > 0 {
		ls, rs, err := c.git.RevertUpstream(ctx, &commits, reason)
		lines = append(lines, ls...)
		for k, v := range rs {
			reverts[k] = v
		}
		if err != nil {
			return lines, reverts, err
		}
	}
	return lines, reverts, nil
}

// StillShips reports whether the composition upstream ships change ch
// again: its merged commit is in what the composition holds at the
// change's component or submodule, and no revert of it is there (a
// Gerrit revert's "This reverts commit" line counts, as for any commit).
//
// A submodule pointer update Gerrit's subscription made ships nothing of
// its own (the submodule's commits are judged by their own blocks), so it
// never blocks: it stays in the superproject's history for good, and
// blocking it would refuse every later backport.
func (c *Composite) StillShips(ctx context.Context, upstream string, ch deployer.Change) (bool, error) {
	if isPointerUpdate(ch) {
		return false, nil
	}
	return c.git.StillShips(ctx, upstream, ch)
}

// isPointerUpdate reports whether a shipped commit is a superproject
// subscription's gitlink update: not a Gerrit change, with the subject
// Gerrit gives those commits.
func isPointerUpdate(ch deployer.Change) bool {
	_, err := strconv.Atoi(ch.ID)
	return err != nil && strings.HasPrefix(ch.Subject, "Update git submodules")
}

// Gone reports whether upstream no longer holds the blocked change ch
// (deployer.GoneChecker): the git composite's answer, on the branches the
// change's project and branch land in.
func (c *Composite) Gone(ctx context.Context, ch deployer.Change) (bool, error) {
	return c.git.Gone(ctx, ch)
}
