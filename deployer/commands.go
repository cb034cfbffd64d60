package deployer

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file holds what people ask of the runner from chat. Each method may
// be called from any goroutine; those that need the pipeline send it a
// signal, and the rest change the store in one transaction.

// RefChecker is implemented by change sources that can tell, from its
// text alone, whether a ref could name something they deploy. Submit asks
// it, so that junk is refused when it is typed, not minutes later.
type RefChecker interface {
	// CheckRef returns an *Error saying what is wrong with ref, or nil.
	CheckRef(ref string) error
}

// maxRefLen bounds one ref as typed: a long Gerrit URL fits.
const maxRefLen = 300

// checkRef refuses what no source could deploy: empty, over-long, not
// UTF-8, control characters, or shell syntax. Nothing typed reaches a
// shell anyway; refusing it early spends no deployment id on it.
func (r *Runner) checkRef(ref string) error {
	show := ref
	if len(show) > 40 || !utf8.ValidString(show) {
		show = strings.ToValidUTF8(show, "?")
		if len(show) > 40 {
			show = show[:40] + "…"
		}
	}
	switch {
	case ref == "":
		return Errorf(EInvalid, "an empty ref names nothing")
	case len(ref) > maxRefLen:
		return Errorf(EInvalid, "%q is %d characters long; a commit id, branch or change is at most %d", show, len(ref), maxRefLen)
	case !utf8.ValidString(ref):
		return Errorf(EInvalid, "%q is not valid UTF-8 text", show)
	}
	for _, c := range ref {
		if c < 0x21 || c == 0x7f || strings.ContainsRune(";$`'\"\\|&<>(){}*?![]", c) {
			return Errorf(EInvalid, "%q holds %q, which no commit id, branch or change has", show, c)
		}
	}
	if rc, ok := r.Source.(RefChecker); ok {
		return rc.CheckRef(ref)
	}
	return nil
}

// Submit queues a request after checking the syntax of its refs. It
// returns the queued deployment and its position in the queue (1 = next
// to run). A refused request spends no id.
func (r *Runner) Submit(req Request) (*Deployment, int, error) {
	if len(req.Refs) == 0 {
		return nil, 0, Errorf(EInvalid, "what should I deploy? Name a commit id, a branch or a change")
	}
	var problems []string
	for _, ref := range req.Refs {
		if err := r.checkRef(ref); err != nil {
			problems = append(problems, ErrorMessage(err))
		}
	}
	if len(problems) > 0 {
		return nil, 0, Errorf(EInvalid, "nothing was queued: %s", strings.Join(problems, "; "))
	}
	if err := r.checkBatch(req); err != nil { // batch.go
		return nil, 0, err
	}
	if err := r.checkWindow(req); err != nil { // window.go
		return nil, 0, err
	}
	d := &Deployment{
		State:             StateQueued,
		Requester:         req.Requester,
		Refs:              req.Refs,
		IncludeUnexpected: req.IncludeUnexpected,
		Batch:             req.Batch,
		Emergency:         req.Emergency,
		Window:            req.Window,
		CreatedAt:         r.Now(),
	}
	id, err := r.Store.Create(d)
	if err != nil {
		return nil, 0, err
	}
	d.ID = id
	pos := 0
	unf, err := r.Store.Unfinished()
	if err == nil {
		for _, u := range unf {
			if u.State == StateQueued && u.ID <= id {
				pos++
			}
		}
	}
	r.log.Info("deployment queued", "deployment", id, "requester", req.Requester, "refs", strings.Join(req.Refs, " "), "position", pos)
	if d.Emergency != "" && r.windows() {
		r.announceEmergency(d)
	}
	r.poke()
	return d, pos, nil
}

// Verify records that who has tested deployment id on the testservers.
func (r *Runner) Verify(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	if d.State != StateAwaitingVerification && d.VerifiedBy != "" {
		return Errorf(EConflict, "#%d was already verified by %s; it is %s now", id, d.VerifiedBy, d.State)
	}
	return r.signal(d, sigVerify, who, StateAwaitingVerification)
}

// Promote continues deployment id to production after an inconclusive
// canary verdict.
func (r *Runner) Promote(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	if d.State == StateAwaitingMetrics {
		return r.signal(d, sigPromote, who, StateAwaitingMetrics)
	}
	return r.signal(d, sigPromote, who, StateAwaitingPromotion)
}

// Abort stops deployment id and rolls back whatever it synced.
func (r *Runner) Abort(id int64, who string) error {
	return r.Rollback(id, who)
}

// Rollback undoes deployment id: an in-flight one is stopped and what it
// synced restored; the latest finished one is rolled back on every host; a
// rollback that failed is tried again.
func (r *Runner) Rollback(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	switch {
	case d.State == StateQueued:
		return Errorf(EConflict, "deployment #%d has not started; take it off the queue instead", id).Or(Do(VerbCancel, id, "take it off the queue"))
	case d.State == StateRollingBack:
		return Errorf(EConflict, "deployment #%d is already rolling back", id)
	case d.State.Active():
		return r.signal(d, sigRollback, who, "")
	case d.State == StateDone, d.State == StateRollbackFailed:
		return r.rollbackFinished(d, who)
	default:
		return Errorf(EConflict, "deployment #%d is %s; there is nothing to roll back", id, d.State)
	}
}

// rollbackFinished starts the rollback of a done deployment, or the retry
// of a failed rollback. Only the latest deployment that reached the hosts
// may be rolled back, and only while no other deployment runs: otherwise
// the hosts no longer serve what it replaced, and the later ones stand in
// the way.
func (r *Runner) rollbackFinished(d *Deployment, who string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != 0 {
		return Errorf(EConflict, "deployment #%d is running now; roll that back first", r.active).Or(Do(VerbRollback, r.active, "roll it back"))
	}
	if r.busy {
		return Errorf(EConflict, "a fleet sync is running; try again when it has finished")
	}
	later, err := r.laterDeployments(d.ID)
	if err != nil {
		return err
	}
	if len(later) > 0 {
		ids := make([]string, len(later))
		for i, l := range later {
			ids[i] = fmt.Sprintf("#%d (%s)", l.ID, l.State)
		}
		return Errorf(EConflict, "cannot roll back #%d: later deployments stand in the way: %s. Roll those back first, newest first.", d.ID, strings.Join(ids, ", ")).
			Or(Do(VerbRollback, later[0].ID, "roll back the newest"))
	}
	from := d.State
	_, err = r.Store.Transition(d.ID, from, StateRollingBack, Event{Actor: who, Message: "rollback requested by " + who}, func(d *Deployment) {
		if from == StateDone {
			d.Reason = "rolled back by " + who
			d.Blame = true
			d.Touched = hostNames(r.Fleet.Hosts())
		}
		// A deployer's retry of a failed rollback gets fresh tries.
		d.RollbackTries = 0
	})
	if errors.Is(err, ErrConflict) {
		return Errorf(EConflict, "deployment #%d changed state meanwhile; try again", d.ID)
	}
	if err != nil {
		return err
	}
	if r.ours == nil {
		r.ours = map[int64]bool{}
	}
	r.ours[d.ID] = true
	r.poke()
	return nil
}

// laterDeployments lists deployments after id that reached hosts and were
// not rolled back: those whose trees the hosts may serve now. It reads
// only the deployments newer than id.
func (r *Runner) laterDeployments(id int64) ([]*Deployment, error) {
	var out []*Deployment
	for off := 0; ; off += 100 {
		ds, err := r.Store.List(off, 100)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.ID <= id {
				return out, nil
			}
			if d.State == StateDone || d.State == StateRollbackFailed || d.State.Active() {
				out = append(out, d)
			}
		}
		if len(ds) < 100 {
			return out, nil
		}
	}
}

// RollbackTarget is what a rollback without an id undoes: the running
// deployment, else the latest one the fleet serves when it is done or its
// rollback failed; nil when there is nothing to undo.
func (r *Runner) RollbackTarget() (*Deployment, error) {
	if d, err := r.Active(); err != nil || d != nil {
		return d, err
	}
	d, err := r.Store.Landed()
	if err == nil {
		d, err = r.Serving(d)
	}
	if err != nil || d == nil {
		return nil, err
	}
	if d.State == StateDone || d.State == StateRollbackFailed {
		return d, nil
	}
	return nil, nil
}

// Cancel takes a queued deployment off the queue, or stops one that is
// still preparing (nothing synced yet).
func (r *Runner) Cancel(id int64, who string) error {
	d, err := r.Store.Get(id)
	if err != nil {
		return err
	}
	switch d.State {
	case StateQueued:
		_, err := r.Store.Transition(id, StateQueued, StateCancelled, Event{Actor: who, Message: "cancelled by " + who}, func(d *Deployment) {
			d.Reason = "cancelled by " + who
		})
		if errors.Is(err, ErrConflict) {
			return Errorf(EConflict, "deployment #%d has just started; roll it back instead", id).Or(Do(VerbRollback, id, "stop it and undo what it synced"))
		}
		if err == nil {
			r.say(d, NoticeCancelled, fmt.Sprintf("%s cancelled deployment #%d before it started", who, id))
		}
		return err
	case StatePreparing:
		return r.signal(d, sigAbort, who, StatePreparing)
	}
	if d.State.Active() {
		return Errorf(EConflict, "deployment #%d is %s; roll it back to stop it and undo what it synced", id, d.State).Or(Do(VerbRollback, id, "stop it and undo what it synced"))
	}
	return Errorf(EConflict, "deployment #%d is %s already", id, d.State)
}

// signal delivers a person's answer to the running deployment d. want,
// when set, is the state the deployment must be in for the answer to make
// sense.
func (r *Runner) signal(d *Deployment, kind signalKind, who string, want State) error {
	id := d.ID
	if want != "" && d.State != want {
		switch kind {
		case sigVerify:
			return Errorf(EConflict, "deployment #%d is not waiting for verification (it is %s)", id, d.State)
		case sigPromote:
			return Errorf(EConflict, "deployment #%d is not waiting for a promote decision (it is %s)", id, d.State)
		}
		return Errorf(EConflict, "deployment #%d is %s", id, d.State)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A deployment in a running state while the runner holds none (it is
	// resuming after a restart and reads its hosts back first, or a
	// finished one was just sent back to roll back) is the one it picks
	// up next: the answer waits for it in the buffer rather than be lost.
	if r.active != id && !(r.active == 0 && d.State.Active()) {
		return Errorf(EConflict, "deployment #%d is not running right now (it is %s)", id, d.State)
	}
	select {
	case r.sigs <- signal{id: id, kind: kind, who: who}:
	default:
		return Errorf(EConflict, "too many answers at once; try again in a moment")
	}
	if (kind == sigRollback || kind == sigAbort) && r.stepCancel != nil {
		// A rollback must reach a pipeline that is busy preparing or
		// syncing too: interrupt that step; the pipeline reads the signal
		// as soon as the step returns.
		r.stepCancel()
	}
	return nil
}

// Lock freezes deployments: new backports queue but do not start.
func (r *Runner) Lock(who, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return Errorf(EInvalid, "say why deployments are locked (a reason after the command)")
	}
	l, err := r.Store.Lock()
	if err != nil {
		return err
	}
	if l != nil {
		return Errorf(EConflict, "already locked by %s since %s: %s", l.By, l.Since.UTC().Format("15:04 MST"), l.Reason)
	}
	return r.Store.SetLock(&Lock{By: who, Reason: reason, Since: r.Now()})
}

// Unlock lifts the freeze and starts the queue again.
func (r *Runner) Unlock(who string) error {
	l, err := r.Store.Lock()
	if err != nil {
		return err
	}
	if l == nil {
		return Errorf(EConflict, "deployments are not locked")
	}
	if l.By != bot {
		// A person's lock stood when a rollback failed, so the bot set
		// none of its own; it told the channel deployments stay locked
		// until every host is restored. Lifting the person's lock leaves
		// the bot's in its place (a second unlock lifts that one). A
		// lock set after the failure was set once the bot's was lifted.
		d, err := r.Store.Landed()
		if err != nil {
			return err
		}
		if d != nil && d.State == StateRollbackFailed && l.Since.Before(d.EndedAt) {
			if err := r.Store.SetLock(r.rollbackLock(d.ID)); err != nil {
				return err
			}
			r.log.Info("deployments unlocked; the bot's lock replaces it", "who", who, "was", l.Reason, "deployment", d.ID)
			return Errorf(EConflict, "%s's lock is lifted, but deployments stay locked: the rollback of #%d failed and the fleet is not in a known state. Once a rollback restores every host the lock is lifted; unlock again to deploy onto the fleet as it is", l.By, d.ID).
				Or(Do(VerbRollback, d.ID, "try the rollback again"))
		}
	}
	if err := r.Store.SetLock(nil); err != nil {
		return err
	}
	r.log.Info("deployments unlocked", "who", who, "was", l.Reason)
	r.poke()
	return nil
}

// Queue returns the queued deployments, first to run first.
func (r *Runner) Queue() ([]*Deployment, error) {
	unf, err := r.Store.Unfinished()
	if err != nil {
		return nil, err
	}
	var q []*Deployment
	for _, d := range unf {
		if d.State == StateQueued {
			q = append(q, d)
		}
	}
	return q, nil
}

// Active returns the deployment the pipeline is working on, or nil.
func (r *Runner) Active() (*Deployment, error) {
	unf, err := r.Store.Unfinished()
	if err != nil {
		return nil, err
	}
	for _, d := range unf {
		if d.State.Active() {
			return d, nil
		}
	}
	return nil, nil
}

// Unblock lifts the block on a rolled-back change, named by its id or an
// unambiguous prefix of it (at least 4 characters), so it may ship again.
func (r *Runner) Unblock(change, who string) (*Block, error) {
	blocks, err := r.Store.Blocks()
	if err != nil {
		return nil, err
	}
	var match []Block
	for _, b := range blocks {
		if b.Change.ID == change || (len(change) >= 4 && strings.HasPrefix(b.Change.ID, change)) {
			match = append(match, b)
		}
	}
	switch len(match) {
	case 0:
		return nil, Errorf(ENotFound, "no blocked change matches %q; the status lists what is blocked", change).Or(Choice{Verb: VerbStatus})
	case 1:
	default:
		return nil, Errorf(EInvalid, "%q matches %d blocked changes; give more of its id", change, len(match))
	}
	b := match[0]
	if err := r.Store.Unblock(b.Change.ID); err != nil {
		return nil, err
	}
	_ = r.Store.AppendEvent(Event{Deployment: b.Deployment, Time: r.Now(), Actor: who, Kind: "block",
		Message: fmt.Sprintf("block on %s lifted by %s", ShortID(b.Change.ID), who)})
	r.log.Info("block lifted", "deployment", b.Deployment, "change", b.Change.ID, "who", who)
	return &b, nil
}

// NobodyCanAnswer is called when no person can reach the bot any more (its
// last chat connection stopped for good). A deployment waiting for people
// is rolled back without blame rather than left waiting on a connection
// that is gone, and deployments are locked so that none starts that nobody
// could answer. why is said in the reason and the lock.
func (r *Runner) NobodyCanAnswer(why string) {
	if l, err := r.Store.Lock(); err == nil && l == nil {
		if err := r.Store.SetLock(&Lock{By: bot, Reason: "nobody can answer the bot: " + why, Since: r.Now()}); err != nil {
			r.log.Error("locking deployments failed", "err", err)
		}
	}
	d, err := r.Active()
	if err != nil || d == nil {
		return
	}
	switch d.State {
	case StateAwaitingVerification, StateAwaitingPromotion, StateAwaitingMetrics:
		if err := r.signal(d, sigGone, why, d.State); err != nil {
			r.log.Warn("could not stop a deployment waiting for people", "deployment", d.ID, "err", err)
		}
	}
}
