package deployer

import (
	"context"
	"time"
)

// Smoker runs a stage's smoke checks (HTTP requests with expected answers)
// against hosts that were just synced, before anyone is asked to test them
// and before the canary window opens. Implementations: deployer/judge.
type Smoker interface {
	// Smoke returns one human line per failed check ("mwdebug1001 GET /
	// answered 500, want 200"); none means every check passed.
	Smoke(ctx context.Context, stage Stage, hosts []string) []string
	// Checks returns how many checks the stage has (0: none configured),
	// so that nobody is told "every smoke check passed" when none ran.
	Checks(stage Stage) int
}

// Block is a change that was rolled back and must not ship again until
// upstream no longer contains it (its revert is merged), or a deployer
// lifts the block by hand.
type Block struct {
	Change     Change    `json:"change"`
	Deployment int64     `json:"deployment"`
	Reason     string    `json:"reason"`
	Revert     string    `json:"revert,omitempty"` // link to the revert change or commit, when one was made
	Since      time.Time `json:"since"`
}

// Reverter is implemented by change sources that can undo a change
// upstream after a rollback: a revert change in Gerrit, or a pushed revert
// commit for git. The runner calls it only for rollbacks that blame the
// change (a failed check, or a person's rollback or abort), not for a
// verification timeout or a host that failed to sync. It is given only the
// suspects (see Suspects): never a revert, which would ship what it
// reverted again.
type Reverter interface {
	// RevertUpstream reverts each of d's changes upstream, or explains what
	// must be reverted by hand. It returns lines for chat and, per change
	// id, the link to its revert. It must be safe to call again after a
	// crash (a second call finds the existing revert rather than making
	// another).
	RevertUpstream(ctx context.Context, d *Deployment, reason string) (lines []string, reverts map[string]string, err error)
	// StillShips reports whether deploying the upstream commit would ship
	// the blocked change again: the change is in upstream's history and
	// no revert of it is.
	StillShips(ctx context.Context, upstream string, c Change) (bool, error)
}

// GoneChecker is implemented by sources where a deployment may leave the
// part of the tree a blocked change belongs to where it was (a composite,
// whose unnamed components stay at their deployed commits). There
// StillShips being false says only that this deployment does not ship the
// change; Gone says whether upstream no longer holds it (its branch does
// not contain it, or contains a revert of it), which is what lifts the
// block. Without it, a deployment not shipping a blocked change lifts its
// block (one repository: every deployment takes the branch as it is).
type GoneChecker interface {
	Gone(ctx context.Context, c Change) (bool, error)
}

// Pool takes hosts out of service and puts them back (for example with
// conftool). The runner depools a host whose rollback failed or that could
// not be reached during one, so that it stops taking traffic.
// Implementations: deployer/hosts (configured commands).
type Pool interface {
	Depool(ctx context.Context, host string) error
	Repool(ctx context.Context, host string) error
}

// Blocks is the part of a Store that keeps blocked changes, by change id.
type Blocks interface {
	Blocks() ([]Block, error)
	SetBlock(b Block) error
	// Unblock removes the block of a change id; it returns ErrNotFound
	// when there is none.
	Unblock(changeID string) error
}
