package deployer

// State is where a deployment stands in the pipeline. The value is stored in
// bbolt and shown to people, so it is a readable word, never a number.
type State string

// The pipeline's states. A deployment moves forward through them one at a
// time; DESIGN.md draws the graph and the transitions map below is its only
// authoritative copy.
const (
	StateQueued               State = "queued"
	StatePreparing            State = "preparing"
	StateSyncingTestservers   State = "syncing-testservers"
	StateAwaitingVerification State = "awaiting-verification"
	// StateAwaitingMetrics: verified, but a canary's metrics cannot be
	// read, so the canary check could only be inconclusive; deployers
	// decide before the canaries are synced.
	StateAwaitingMetrics    State = "awaiting-metrics"
	StateSyncingCanaries    State = "syncing-canaries"
	StateCheckingCanaries   State = "checking-canaries"
	StateAwaitingPromotion  State = "awaiting-promotion"
	StateSyncingProduction  State = "syncing-production"
	StateCheckingProduction State = "checking-production"
	StateDone               State = "done"
	StateRollingBack        State = "rolling-back"
	StateRolledBack         State = "rolled-back"
	// StateRollbackFailed ends a rollback that could not restore every
	// host after its bounded tries: FailedHosts says, host by host, what
	// each one serves (read back), and the bot locks deployments until a
	// deployer has looked. A deployer's rollback of it tries again.
	StateRollbackFailed State = "rollback-failed"
	StateFailed         State = "failed"
	StateCancelled      State = "cancelled"
	// StateBisecting searches a batch that failed its canary check for
	// the guilty change(s), one canary window per round (bisect.go).
	StateBisecting State = "bisecting"
)

// transitions lists, for every state, the states it may move to.
//
// Invariants kept here:
//   - failed and cancelled are reached only before any host was touched
//     (queued, preparing); once a sync has begun, the only way out other than
//     forward is rolling-back, so no failure can leave a host half-deployed.
//   - done may move to rolling-back: that is a deployer's rollback of the latest
//     finished deployment. The runner refuses it for older ones.
//   - rolling-back ends in rolled-back when every touched host was read back
//     on the base (a host that could not be restored but was depooled counts
//     as handled: it takes no traffic), or, after a bounded number of tries,
//     in rollback-failed, which records what each host serves and locks the
//     deployments. rollback-failed may go back to rolling-back: a deployer's
//     `rollback` after fixing the cause.
//   - A batch (batch.go) may go back from awaiting-verification to
//     syncing-testservers: its unverified changes dropped and the rest
//     restaged as a new commit, stored with the transition before any
//     host is synced; when every change left is verified, syncing the
//     testservers leads straight to syncing-canaries.
//   - bisecting (bisect.go) is entered only from checking-canaries when a
//     batch of two or more units fails the canary check. The canaries are
//     put back on the base before the first round; each round's staging
//     commit and the units it tests are stored before the canaries are
//     synced to it, and its outcome before the next round is staged, so a
//     restart redoes at most the round under way (a new window). It ends
//     in syncing-production with the innocent changes (a commit whose
//     exact tree passed a round, with testservers and canaries already on
//     it; the guilty blocked and reverted upstream first), or in
//     rolling-back (every unit guilty, rounds exhausted, or a person's
//     rollback), which restores every touched host to the base.
var transitions = map[State][]State{
	StateQueued:               {StatePreparing, StateCancelled},
	StatePreparing:            {StateSyncingTestservers, StateFailed, StateCancelled},
	StateSyncingTestservers:   {StateAwaitingVerification, StateSyncingCanaries, StateRollingBack},
	StateAwaitingVerification: {StateSyncingCanaries, StateSyncingTestservers, StateAwaitingMetrics, StateRollingBack},
	StateAwaitingMetrics:      {StateSyncingCanaries, StateRollingBack},
	StateSyncingCanaries:      {StateCheckingCanaries, StateRollingBack},
	StateCheckingCanaries:     {StateSyncingProduction, StateAwaitingPromotion, StateRollingBack, StateBisecting},
	StateBisecting:            {StateSyncingProduction, StateRollingBack},
	StateAwaitingPromotion:    {StateSyncingProduction, StateRollingBack},
	StateSyncingProduction:    {StateCheckingProduction, StateDone, StateRollingBack},
	StateCheckingProduction:   {StateDone, StateRollingBack},
	StateDone:                 {StateRollingBack},
	StateRollingBack:          {StateRolledBack, StateRollbackFailed},
	StateRollbackFailed:       {StateRollingBack},
}

// CanTransition reports whether a deployment in state from may move to to.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Finished reports whether the pipeline has nothing more to do for a
// deployment in this state. A done deployment is finished even though a
// manual rollback may still move it on.
func (s State) Finished() bool {
	switch s {
	case StateDone, StateRolledBack, StateRollbackFailed, StateFailed, StateCancelled:
		return true
	}
	return false
}

// Landed reports whether a deployment entering this state decides what
// the fleet serves: its commit (done) or its base (rolled back, or the
// base that a failed rollback was restoring).
func (s State) Landed() bool {
	return s == StateDone || s == StateRolledBack || s == StateRollbackFailed
}

// Active reports whether the deployment holds the pipeline: it has left the
// queue and is not finished.
func (s State) Active() bool { return s != StateQueued && !s.Finished() }

// Valid reports whether s is one of the pipeline's states.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok || s.Finished()
}
