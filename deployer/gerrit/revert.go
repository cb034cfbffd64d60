package gerrit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// rollbackTag marks the bot's comment on a rolled-back change, so a second
// RevertUpstream (after a crash) does not comment twice.
const rollbackTag = reviewTag + ":rollback"

// RevertUpstream opens a revert change for each of d's Gerrit changes,
// newest first, with the reason and the failing verdict's numbers in its
// message, and comments on the original change with the revert's link.
// A revert that already exists (not abandoned) is reused, so calling it
// again after a crash makes nothing twice. The reverts are left for people
// to review and merge: until one merges, the runner keeps refusing to ship
// the change again. Commits that came along unrequested (not changes of
// this deployment's request) are named for a person to judge.
func (s *Source) RevertUpstream(ctx context.Context, d *deployer.Deployment, reason string) ([]string, map[string]string, error) {
	log := s.log.With("deployment", d.ID)
	ctx = deployer.WithLogger(ctx, log) // for internal
	reverts := map[string]string{}
	var lines []string
	var others []string
	for i := len(d.Changes) - 1; i >= 0; i-- {
		c := d.Changes[i]
		n, err := strconv.Atoi(c.ID)
		if err != nil {
			others = append(others, fmt.Sprintf("%.10s (%s)", c.Commit, c.Subject))
			continue
		}
		rv, created, err := s.revertOf(ctx, d, c, n, reason)
		if err != nil {
			return lines, reverts, err
		}
		link := s.link(rv)
		reverts[c.ID] = link
		verb := "opened"
		if !created {
			verb = "found"
		}
		lines = append(lines, fmt.Sprintf("%s revert change %d for change %d (%s): %s; it must merge before change %d can be deployed again",
			verb, rv.Number, n, c.Subject, link, n))
		log.Info("gerrit: revert change", "change", n, "revert", rv.Number, "created", created)
		if err := s.commentRollback(ctx, d, n, reason, link); err != nil {
			log.Warn("gerrit: commenting on the rolled-back change failed", "change", n, "err", err)
			lines = append(lines, fmt.Sprintf("(could not comment on change %d; the bot's log has the details)", n))
		}
	}
	if len(others) > 0 {
		lines = append(lines, fmt.Sprintf("also rolled back, and not reverted upstream by me: %s; revert them by hand if they are at fault", strings.Join(others, ", ")))
	}
	return lines, reverts, nil
}

// revertOf finds an open or merged revert of change n, or creates one.
func (s *Source) revertOf(ctx context.Context, d *deployer.Deployment, c deployer.Change, n int, reason string) (*ChangeInfo, bool, error) {
	existing, err := s.api.query(ctx, "revertof:"+strconv.Itoa(n))
	if err != nil {
		return nil, false, s.internal(ctx, "looking for an existing revert", err, n)
	}
	for i := range existing {
		if existing[i].Status != StatusAbandoned {
			return &existing[i], false, nil
		}
	}
	// The revert is opened with the change's project in its id
	// (<project>~<number>): Gerrit makes it a change of the same project
	// and branch, the one the reverted change merged into.
	ci, err := s.api.change(ctx, n)
	if err != nil {
		return nil, false, s.internal(ctx, "looking up the change to revert", err, n)
	}
	rv, err := s.api.revert(ctx, ci.Project, n, revertMessage(d, c, reason))
	if err != nil {
		return nil, false, s.internal(ctx, "creating a revert change", err, n)
	}
	return rv, true, nil
}

// revertMessage is the revert change's commit message: Gerrit's own
// first lines (so tools that look for "This reverts commit" find it), then
// why, with the verdict's numbers. Gerrit adds the Change-Id.
func revertMessage(d *deployer.Deployment, c deployer.Change, reason string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Revert %q\n\n", oneLine(c.Subject))
	if c.Commit != "" {
		fmt.Fprintf(&b, "This reverts commit %s.\n\n", c.Commit)
	}
	fmt.Fprintf(&b, "Deployment #%d was rolled back: %s\n", d.ID, oneLine(reason))
	if v := blamingVerdict(d); v != nil {
		fmt.Fprintf(&b, "\n%s check %s: %s\n", v.Stage, v.Outcome, oneLine(v.Reason))
		for _, h := range v.Hosts {
			fmt.Fprintf(&b, "  %s: %.0f errors / %.0f requests (%.1f%%), threshold %.1f%%: %s\n",
				h.Host, h.Errors, h.Requests, 100*h.Rate, 100*h.Threshold, h.Outcome)
		}
		if v.Baseline.Requests > 0 {
			fmt.Fprintf(&b, "  baseline: %.0f errors / %.0f requests (%.1f%%) from %s\n",
				v.Baseline.Errors, v.Baseline.Requests, 100*v.Baseline.Rate, v.Baseline.Source)
		}
	}
	for _, bug := range c.Bugs {
		fmt.Fprintf(&b, "\nBug: %s", bug)
	}
	if len(c.Bugs) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// blamingVerdict returns the deployment's last failing verdict, or nil.
func blamingVerdict(d *deployer.Deployment) *deployer.Verdict {
	for i := len(d.Verdicts) - 1; i >= 0; i-- {
		if d.Verdicts[i].Outcome == deployer.Fail {
			return &d.Verdicts[i]
		}
	}
	return nil
}

// commentRollback tells the change's reviewers that it was rolled back,
// once per deployment.
func (s *Source) commentRollback(ctx context.Context, d *deployer.Deployment, n int, reason, revertLink string) error {
	marker := fmt.Sprintf("deployment #%d", d.ID)
	msgs, err := s.api.messages(ctx, n)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Tag == rollbackTag && strings.Contains(m.Message, marker) {
			return nil
		}
	}
	msg := fmt.Sprintf("deploybot rolled this change back in %s: %s\n\nRevert: %s\nIt will not be deployed again until the revert merges (or a deployer lifts the block of change %d in the deployment channel).",
		marker, oneLine(reason), revertLink, n)
	return s.api.review(ctx, n, "current", ReviewInput{Message: msg, Tag: rollbackTag})
}

// StillShips reports whether deploying upstream would ship change c
// again: its merged commit is in upstream's history, no commit there
// reverts it ("This reverts commit <hash>"), and no merged revert change
// of it is there either (a revert whose message was rewritten). Commits
// that are not Gerrit changes are judged by the git rules alone.
func (s *Source) StillShips(ctx context.Context, upstream string, c deployer.Change) (bool, error) {
	n, err := strconv.Atoi(c.ID)
	if err != nil {
		return s.repo.StillShips(ctx, upstream, c)
	}
	commit := c.Commit
	if commit == "" {
		ci, err := s.api.change(ctx, n)
		if err != nil {
			return false, s.internal(ctx, "looking up a blocked change", err, n)
		}
		commit = ci.CurrentRevision
	}
	if !s.repo.HasCommit(commit) {
		return false, nil
	}
	in, err := s.repo.IsAncestor(ctx, commit, upstream)
	if err != nil || !in {
		return false, err
	}
	if rv, err := s.repo.RevertedIn(ctx, upstream, commit); err != nil || rv != "" {
		return false, err
	}
	reverts, err := s.api.query(ctx, "revertof:"+strconv.Itoa(n)+" status:merged")
	if err != nil {
		return false, s.internal(ctx, "looking for a merged revert", err, n)
	}
	for _, r := range reverts {
		for _, h := range s.revertCommits(ctx, r, commit, upstream) {
			if in, err := s.repo.IsAncestor(ctx, h, upstream); err == nil && in {
				return false, nil
			}
		}
	}
	return true, nil
}

// revertCommits returns the commits a merged revert change may have
// landed as: its current revision, and a commit after the reverted one
// carrying its Change-Id (a rebase on submit).
func (s *Source) revertCommits(ctx context.Context, r ChangeInfo, commit, upstream string) []string {
	var out []string
	if r.CurrentRevision != "" && s.repo.HasCommit(r.CurrentRevision) {
		out = append(out, r.CurrentRevision)
	}
	cs, err := s.repo.Range(ctx, commit, upstream)
	if err != nil {
		return out
	}
	for _, c := range cs {
		if gitrepo.ChangeIDOf(c.Message) == r.ChangeID {
			out = append(out, c.Hash)
		}
	}
	return out
}
