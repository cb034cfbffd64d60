package bot

import (
	"strconv"

	"github.com/deploybot/deploybot/deployer"
)

// An answer that names no deployment ("verified", "!abort") is about the
// one that asked. A chat that delivers a message late (Slack redelivers
// an event whose first delivery was lost, a minute or more later) can
// hand the bot such an answer when another deployment is waiting: it was
// not about that one, so it is refused, with how to say it for that one.

// answers are the commands whose target, when they name none, is the
// deployment running now (or, for !rollback, the last one).
var answers = map[string]bool{"verified": true, "abort": true, "promote": true, "rollback": true}

// late returns why m, an answer naming no deployment, cannot be taken
// for the deployment it would act on: m was sent before that deployment
// started. It returns nil when m was not delivered late (Sent is zero),
// names an id, or is no answer.
func (b *Bot) late(m Message, name string, args []string) error {
	if m.Sent.IsZero() || !answers[name] || len(args) > 0 {
		return nil
	}
	var d *deployer.Deployment
	var err error
	if name == "rollback" {
		d, err = b.Runner.RollbackTarget()
	} else {
		d, err = b.Runner.Active()
	}
	if err != nil || d == nil || d.StartedAt.IsZero() || !d.StartedAt.After(m.Sent) {
		return nil // the command says what is wrong, if anything
	}
	said, again := b.Prefix+name, b.Prefix+name+" "+strconv.FormatInt(d.ID, 10)
	if name == "verified" {
		said, again = "verified", "verified "+strconv.FormatInt(d.ID, 10)
	}
	return deployer.Errorf(deployer.EConflict, "your `%s` was sent at %s, before #%d started, and reached me only now, so it was not about #%d; if you mean #%d, say `%s`",
		said, m.Sent.UTC().Format("15:04:05 MST"), d.ID, d.ID, d.ID, again)
}
