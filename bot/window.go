package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// This file holds the backport window commands: window, add, drop.

func (b *Bot) window(m Message, who string, args []string) ([]string, error) {
	if len(args) > 0 {
		if !strings.EqualFold(args[0], "go") || len(args) > 1 {
			return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", strings.ReplaceAll(commands["window"].usage, "!", b.Prefix))
		}
		if !b.Dir.IsDeployer(m.Sender) {
			return nil, deployer.Errorf(deployer.EConflict, "only deployers may deploy the window's list")
		}
		ds, err := b.Runner.WindowGo(who)
		if err != nil {
			return nil, err
		}
		if len(ds) == 1 && ds[0].Batch {
			return []string{fmt.Sprintf("%s: queued the window's %d changes as batch #%d", m.Sender.Nick, len(ds[0].Refs), ds[0].ID)}, nil
		}
		if len(ds) == 1 {
			return []string{fmt.Sprintf("%s: queued the window's change %s as #%d", m.Sender.Nick, short(ds[0].Refs[0]), ds[0].ID)}, nil
		}
		var ids []string
		for _, d := range ds {
			ids = append(ids, fmt.Sprintf("#%d", d.ID))
		}
		return []string{fmt.Sprintf("%s: queued the window's changes one by one: %s", m.Sender.Nick, strings.Join(ids, ", "))}, nil
	}
	v, err := b.Runner.WindowStatus()
	if err != nil {
		return nil, err
	}
	if v.Window == nil {
		return []string{"no backport window is scheduled in the next year"}, nil
	}
	w := v.Window
	name := "backport window"
	if w.Name != "" {
		name = strings.TrimPrefix(w.Name, "the ")
	}
	now := b.Runner.Now()
	var head string
	if v.Open {
		head = fmt.Sprintf("the %s is OPEN: %s (%s left)", name, w.Span(), w.End.Sub(now).Round(time.Minute))
	} else {
		head = fmt.Sprintf("the next %s: %s (in %s)", name, w.Span(), w.Start.Sub(now).Round(time.Minute))
	}
	if len(w.Deployers) > 0 {
		head += "; deployers: " + strings.Join(w.Deployers, ", ")
	}
	lines := []string{head}
	if len(v.Items) == 0 {
		lines = append(lines, fmt.Sprintf("its list is empty; %sadd <change> puts yours on it", b.Prefix))
	}
	for i, it := range v.Items {
		line := fmt.Sprintf("%d. %s (%s) by %s, added by %s", i+1, short(it.Change.ID), it.Change.Subject, it.Submitter, it.AddedBy)
		if it.Deployment != 0 {
			line += "; " + b.itemFate(it)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

func short(id string) string { return deployer.ShortID(id) }

// add puts one or more changes on the window's list, in order (the bot
// advises `!add a b` for a refused batch). It stops at the first change
// that cannot go on it: the changes before it are on the list, and the
// reply says so before saying why.
func (b *Bot) add(m Message, who string, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", strings.ReplaceAll(commands["add"].usage, "!", b.Prefix))
	}
	var lines []string
	for _, ref := range args {
		w, it, err := b.Runner.AddToWindow(ref, who, b.Dir.IsDeployer(m.Sender))
		if err != nil {
			if len(lines) == 0 {
				return nil, err
			}
			line := fmt.Sprintf("%s: not %s: %s", m.Sender.Nick, ref, deployer.ErrorMessage(err))
			if next := b.RenderNext(deployer.ErrorNext(err)); next != "" {
				line += " " + next
			}
			return append(lines, line), nil
		}
		if w.Open(b.Runner.Now()) {
			lines = append(lines, fmt.Sprintf("%s: added %s (%s) to the open window %s; %s will be pinged to test it once it is on the testservers (%swindow go deploys the list)", m.Sender.Nick, short(it.Change.ID), it.Change.Subject, w.Span(), it.Submitter, b.Prefix))
		} else {
			lines = append(lines, fmt.Sprintf("%s: added %s (%s) to the window %s; %s will be pinged to test it when it opens", m.Sender.Nick, short(it.Change.ID), it.Change.Subject, w.Span(), it.Submitter))
		}
	}
	return lines, nil
}

func (b *Bot) drop(m Message, who string, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", strings.ReplaceAll(commands["drop"].usage, "!", b.Prefix))
	}
	w, it, err := b.Runner.DropFromWindow(args[0], who, b.Dir.IsDeployer(m.Sender))
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%s: took %s (%s) off the window %s", m.Sender.Nick, short(it.Change.ID), it.Change.Subject, w.Span())}, nil
}

// itemFate says what became of a window item that went out in a
// deployment, as that deployment's record says now: still deploying,
// shipped, dropped from its batch (and why), or rolled back with it.
func (b *Bot) itemFate(it deployer.WindowItem) string {
	n := it.Deployment
	d, err := b.Store.Get(n)
	if err != nil {
		return fmt.Sprintf("went out in #%d", n)
	}
	for _, dc := range d.Dropped {
		if deployer.SameChangeID(dc.Change.ID, it.Change.ID) {
			if dc.Guilty {
				return fmt.Sprintf("rolled back in #%d: it broke the canaries, and is blocked", n)
			}
			return fmt.Sprintf("dropped from #%d: %s", n, dc.Why)
		}
	}
	switch {
	case d.State == deployer.StateDone:
		return fmt.Sprintf("shipped in #%d", n)
	case d.State == deployer.StateQueued:
		return fmt.Sprintf("queued as #%d", n)
	case d.State.Finished():
		return fmt.Sprintf("went out in #%d, which ended %s", n, d.State)
	}
	return fmt.Sprintf("deploying in #%d (%s)", n, d.State)
}
