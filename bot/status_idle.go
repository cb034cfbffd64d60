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
	var last, after *deployer.Deployment
	// Newest first, page by page, as far back as the last done one: any
	// number of failed attempts may have come since.
	const page = 100
	for off := 0; last == nil; off += page {
		ds, err := b.Store.List(off, page)
		if err != nil {
			b.Log.Warn("reading the history for !status failed", "err", err)
			return line
		}
		for _, d := range ds {
			if d.State == deployer.StateDone {
				last = d
				break
			}
			if after == nil && d.State.Landed() {
				after = d // rolled back, or its rollback failed
			}
		}
		if len(ds) < page {
			break
		}
	}
	fate := func(d *deployer.Deployment) string {
		if d.State == deployer.StateRollbackFailed {
			return "was rolled back only in part (some hosts could not be restored) " + when(d.EndedAt, now)
		}
		return "was rolled back " + when(d.EndedAt, now)
	}
	switch {
	case last != nil:
		line += fmt.Sprintf("; last deployed: #%d %s by %s, done %s", last.ID, last.Title(), last.Requester, when(last.EndedAt, now))
		if after != nil {
			line += fmt.Sprintf("; since then #%d %s %s", after.ID, after.Title(), fate(after))
		}
	case after != nil:
		// "Nothing was deployed" would be untrue of a deployment that
		// reached hosts before it was rolled back.
		line += fmt.Sprintf("; no deployment of mine ended done: the last, #%d %s, %s", after.ID, after.Title(), fate(after))
	default:
		line += "; nothing was deployed through me yet"
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
