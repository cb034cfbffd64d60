package bot

import (
	"strconv"

	"github.com/deploybot/deploybot/deployer"
)

// An answer that names no deployment ("verified", "!abort", "!rollback")
// is about the one running now (for !rollback, else the last one). Two
// things can show that the person meant another one; the answer is then
// refused, with how to name the deployment:
//   - it was delivered late (Slack redelivers an event whose first
//     delivery was lost, a minute or more later) and was sent before
//     that deployment started, so it answered an earlier one;
//   - it was written in another deployment's thread (Slack), about that
//     one.

// answers are the commands whose target, when they name none, is the
// deployment running now (or, for !rollback, the last one).
var answers = map[string]bool{"verified": true, "abort": true, "promote": true, "rollback": true}

// notMeant returns why m, an answer naming no deployment, cannot be taken
// for the deployment it would act on, or nil (also when m names an id or
// is no answer: the command says what is wrong, if anything).
func (b *Bot) notMeant(m Message, name string, args []string) error {
	if (m.Sent.IsZero() && m.Thread == 0) || !answers[name] || len(args) > 0 {
		return nil
	}
	var d *deployer.Deployment
	var err error
	if name == "rollback" {
		d, err = b.Runner.RollbackTarget()
	} else {
		d, err = b.Runner.Active()
	}
	if err != nil || d == nil {
		return nil
	}
	said := b.Prefix + name
	if name == "verified" {
		said = "verified"
	}
	with := func(id int64) string { return "`" + said + " " + strconv.FormatInt(id, 10) + "`" }
	switch {
	case m.Thread != 0 && m.Thread != d.ID:
		return deployer.Errorf(deployer.EConflict, "you wrote `%s` in #%d's thread, but without an id it is about #%d; say %s or %s",
			said, m.Thread, d.ID, with(m.Thread), with(d.ID))
	case !m.Sent.IsZero() && !d.StartedAt.IsZero() && d.StartedAt.After(m.Sent):
		return deployer.Errorf(deployer.EConflict, "your `%s` was sent at %s, before #%d started, and reached me only now, so it was not about #%d; if you mean #%d, say %s",
			said, m.Sent.UTC().Format("15:04:05 MST"), d.ID, d.ID, d.ID, with(d.ID))
	}
	return nil
}
