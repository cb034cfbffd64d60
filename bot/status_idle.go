package bot

import (
	"fmt"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// idleStatus is !status's first line when nothing is deploying: what the
// fleet got last and when, and any later deployment that did not ship
// (rolled back, failed), so nobody has to ask for !history.
func (b *Bot) idleStatus(now time.Time) string {
	line := "nothing is deploying right now"
	ds, err := b.Store.List(0, 50)
	if err != nil {
		b.Log.Warn("reading the history for !status failed", "err", err)
		return line
	}
	var last, after *deployer.Deployment
	for _, d := range ds {
		if !d.State.Finished() || d.State == deployer.StateCancelled {
			continue
		}
		if d.State == deployer.StateDone {
			last = d
			break
		}
		if after == nil && d.State == deployer.StateRolledBack {
			after = d
		}
	}
	if last != nil {
		line += fmt.Sprintf("; last deployed: #%d %s by %s, done %s", last.ID, last.Title(), last.Requester, when(last.EndedAt, now))
	} else {
		line += "; nothing was deployed through me yet"
	}
	if after != nil {
		since := "since then "
		if last == nil {
			since = ""
		}
		line += fmt.Sprintf("; %s#%d %s was rolled back %s", since, after.ID, after.Title(), when(after.EndedAt, now))
	}
	return line
}

// when is a moment for chat: "14:02 UTC (3m0s ago)".
func when(t, now time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format("2006-01-02 15:04 MST"), now.Sub(t).Round(time.Second))
}
