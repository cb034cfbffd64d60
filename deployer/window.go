package deployer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file holds backport windows: the schedule (a weekly pattern in a
// time zone plus one-off windows, from the configuration or an iCalendar
// file), the list of changes people put on the next window, and the rule
// that a backport outside a window needs a stated emergency.
//
// With no schedule configured (Config.Schedule nil) none of this applies
// and the bot deploys at any time, as it always did.

// BackportWindow is one backport window: a span of time in which deployers ship
// the changes on its list.
type BackportWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Name is what the schedule calls it ("" for none), e.g. "UTC late
	// backport window".
	Name string `json:"name,omitempty"`
	// Deployers names who may deploy in it (none: every deployer).
	Deployers []string `json:"deployers,omitempty"`
}

// Key is the window's identity in the store: its start, in UTC.
func (w BackportWindow) Key() string { return w.Start.UTC().Format(time.RFC3339) }

// Span says the window in words: "Mon 13:00–14:00 UTC".
func (w BackportWindow) Span() string {
	loc := w.Start.Location()
	return w.Start.Format("Mon 2 Jan 15:04") + "–" + w.End.In(loc).Format("15:04 MST")
}

// Open reports whether the window is open at t.
func (w BackportWindow) Open(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// Clock is a time of day.
type Clock struct{ Hour, Minute int }

// WeeklyWindow is a window that recurs on some days of every week at some
// times of day, in a time zone.
type WeeklyWindow struct {
	Days      []time.Weekday
	At        []Clock
	Duration  time.Duration
	Location  *time.Location
	Name      string
	Deployers []string
	// Until, when set, is when the pattern stops (RRULE UNTIL).
	Until time.Time
}

// Schedule is every backport window: weekly patterns and one-off windows.
type Schedule struct {
	Weekly []WeeklyWindow
	OneOff []BackportWindow
}

// Empty reports whether the schedule has no window at all.
func (s *Schedule) Empty() bool { return s == nil || (len(s.Weekly) == 0 && len(s.OneOff) == 0) }

// Between returns the windows that overlap [from, to), by start.
func (s *Schedule) Between(from, to time.Time) []BackportWindow {
	if s == nil {
		return nil
	}
	var out []BackportWindow
	for _, ww := range s.Weekly {
		loc := ww.Location
		if loc == nil {
			loc = time.UTC
		}
		// Start a day early so a window that began before from and is
		// still open is found; stop a day late for the same reason.
		f := from.In(loc).Add(-24*time.Hour - ww.Duration)
		day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
		for ; day.Before(to.Add(24 * time.Hour)); day = day.AddDate(0, 0, 1) {
			if !hasDay(ww.Days, day.Weekday()) {
				continue
			}
			for _, at := range ww.At {
				st := time.Date(day.Year(), day.Month(), day.Day(), at.Hour, at.Minute, 0, 0, loc)
				if !ww.Until.IsZero() && st.After(ww.Until) {
					continue
				}
				w := BackportWindow{Start: st, End: st.Add(ww.Duration), Name: ww.Name, Deployers: ww.Deployers}
				if w.End.After(from) && w.Start.Before(to) {
					out = append(out, w)
				}
			}
		}
	}
	for _, w := range s.OneOff {
		if w.End.After(from) && w.Start.Before(to) {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	// Two patterns may name the same start; keep one.
	var dedup []BackportWindow
	for _, w := range out {
		if len(dedup) > 0 && dedup[len(dedup)-1].Start.Equal(w.Start) {
			continue
		}
		dedup = append(dedup, w)
	}
	return dedup
}

func hasDay(days []time.Weekday, d time.Weekday) bool {
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}

// Current returns the window open at now, or nil.
func (s *Schedule) Current(now time.Time) *BackportWindow {
	for _, w := range s.Between(now, now.Add(time.Nanosecond)) {
		if w.Open(now) {
			return &w
		}
	}
	return nil
}

// Next returns the first window that starts after now (looking a year
// ahead), or nil.
func (s *Schedule) Next(now time.Time) *BackportWindow {
	for _, w := range s.Between(now, now.AddDate(1, 0, 0)) {
		if w.Start.After(now) {
			return &w
		}
	}
	return nil
}

// CurrentOrNext is the window a change added now goes on: the open one,
// else the next.
func (s *Schedule) CurrentOrNext(now time.Time) *BackportWindow {
	if w := s.Current(now); w != nil {
		return w
	}
	return s.Next(now)
}

// WindowItem is one change on a window's list.
type WindowItem struct {
	Ref       string    `json:"ref"`    // as typed
	Change    Change    `json:"change"` // as the source describes it
	Submitter string    `json:"submitter"`
	AddedBy   string    `json:"added_by"`
	Added     time.Time `json:"added"`
	// Deployment is set once the item was deployed (by window go).
	Deployment int64 `json:"deployment,omitempty"`
}

// WindowStore keeps the windows' lists and which openings were announced.
// Implementations: store (bbolt).
type WindowStore interface {
	// WindowList returns the list of the window with this key, in the
	// order the changes were added.
	WindowList(key string) ([]WindowItem, error)
	// UpdateWindowList replaces the list with what mutate returns, in one
	// transaction; mutate's error aborts it.
	UpdateWindowList(key string, mutate func([]WindowItem) ([]WindowItem, error)) error
	// MarkWindowOpened records that the opening of window key was
	// announced; it returns false when it already was.
	MarkWindowOpened(key string) (bool, error)
}

// ChangeDescriber is implemented by change sources that can say what a
// ref names (its subject and author) before it is deployed, so `add` can
// check who may add it and ping its submitter when the window opens.
type ChangeDescriber interface {
	Describe(ref string) (Change, error)
}

// windows reports whether a schedule is configured.
func (r *Runner) windows() bool { return !r.cfg.Schedule.Empty() }

// WindowView is what `window` shows.
type WindowView struct {
	Window *BackportWindow // the open window, else the next (nil: none scheduled)
	Open   bool
	Items  []WindowItem
}

// WindowStatus returns the open or next window and its list.
func (r *Runner) WindowStatus() (WindowView, error) {
	if !r.windows() {
		return WindowView{}, Errorf(EInvalid, "no backport windows are configured: deployments may start at any time")
	}
	now := r.Now()
	w := r.cfg.Schedule.CurrentOrNext(now)
	if w == nil {
		return WindowView{}, nil
	}
	v := WindowView{Window: w, Open: w.Open(now)}
	if r.Windows != nil {
		items, err := r.Windows.WindowList(w.Key())
		if err != nil {
			return v, err
		}
		v.Items = items
	}
	return v, nil
}

// AddToWindow puts the change ref names on the open or next window's
// list. Its submitter may add it, and so may a deployer (deployer true).
func (r *Runner) AddToWindow(ref, who string, deployer bool) (*BackportWindow, WindowItem, error) {
	if !r.windows() || r.Windows == nil {
		return nil, WindowItem{}, Errorf(EInvalid, "no backport windows are configured: ask a deployer to deploy it at any time")
	}
	if err := r.checkRef(ref); err != nil {
		return nil, WindowItem{}, err
	}
	w := r.cfg.Schedule.CurrentOrNext(r.Now())
	if w == nil {
		return nil, WindowItem{}, Errorf(ENotFound, "no backport window is scheduled in the next year")
	}
	item := WindowItem{Ref: ref, Change: Change{ID: ref}, AddedBy: who, Added: r.Now()}
	if d, ok := r.Source.(ChangeDescriber); ok {
		c, err := d.Describe(ref)
		if err != nil {
			return nil, WindowItem{}, err
		}
		item.Change = c
	}
	if r.Submitter != nil {
		item.Submitter = r.Submitter([]Change{item.Change})
	}
	if item.Submitter == "" {
		item.Submitter = who
	}
	if !deployer && item.Submitter != who {
		return nil, WindowItem{}, Errorf(EConflict, "%s is %s's change: only its submitter or a deployer may put it on the window", ShortID(item.Change.ID), item.Submitter)
	}
	// A rolled-back change cannot ship: on the list it would only make
	// the window's batch fail as a whole.
	if blocks, err := r.Store.Blocks(); err == nil {
		for _, b := range blocks {
			if SameChange(b.Change, item.Change) {
				return nil, WindowItem{}, Errorf(EConflict, "%s (%s) was rolled back in #%d and is blocked from shipping again, so it cannot go on a window: put its fix on the list instead", ShortID(item.Change.ID), item.Change.Subject, b.Deployment)
			}
		}
	}
	err := r.Windows.UpdateWindowList(w.Key(), func(items []WindowItem) ([]WindowItem, error) {
		for i, it := range items {
			if it.Change.ID != item.Change.ID {
				continue
			}
			if it.Deployment != 0 {
				// It went out already: it may go on the list again
				// only when that deployment will not ship it (it was
				// dropped from its batch, or the deployment ended
				// without shipping).
				if d, err := r.Store.Get(it.Deployment); err == nil && !r.mayShip(d, it) {
					items[i] = item
					return items, nil
				}
				return nil, Errorf(EConflict, "%s is on the %s window's list already (added by %s) and went out in #%d", ShortID(it.Change.ID), w.Span(), it.AddedBy, it.Deployment)
			}
			return nil, Errorf(EConflict, "%s is on the %s window's list already (added by %s)", ShortID(it.Change.ID), w.Span(), it.AddedBy)
		}
		return append(items, item), nil
	})
	if err != nil {
		return nil, WindowItem{}, err
	}
	r.log.Info("change added to a window", "window", w.Key(), "change", item.Change.ID, "who", who)
	return w, item, nil
}

// DropFromWindow takes a change off the open or next window's list: its
// submitter, whoever added it, or a deployer may.
func (r *Runner) DropFromWindow(ref, who string, deployer bool) (*BackportWindow, WindowItem, error) {
	if !r.windows() || r.Windows == nil {
		return nil, WindowItem{}, Errorf(EInvalid, "no backport windows are configured")
	}
	w := r.cfg.Schedule.CurrentOrNext(r.Now())
	if w == nil {
		return nil, WindowItem{}, Errorf(ENotFound, "no backport window is scheduled")
	}
	matches := func(it WindowItem, ref string) bool {
		return ref != "" && (it.Ref == ref || it.Change.ID == ref || (len(ref) >= 7 && strings.HasPrefix(it.Change.ID, ref)))
	}
	// A change may be named otherwise than it was added (its link rather
	// than its number, a branch rather than a commit id): when the text
	// names nothing on the list, ask the source what it names.
	var alt string
	if items, err := r.Windows.WindowList(w.Key()); err == nil {
		found := false
		for _, it := range items {
			found = found || matches(it, ref)
		}
		if d, ok := r.Source.(ChangeDescriber); ok && !found && r.checkRef(ref) == nil {
			if c, err := d.Describe(ref); err == nil {
				alt = c.ID
			}
		}
	}
	var dropped WindowItem
	err := r.Windows.UpdateWindowList(w.Key(), func(items []WindowItem) ([]WindowItem, error) {
		for i, it := range items {
			if matches(it, ref) || (alt != "" && it.Change.ID == alt) {
				if !deployer && who != it.Submitter && who != it.AddedBy {
					return nil, Errorf(EConflict, "only %s (its submitter), whoever added it or a deployer may take %s off the list", it.Submitter, ShortID(it.Change.ID))
				}
				if it.Deployment != 0 {
					// Taking it off the list would not stop the
					// deployment that carries it: say so.
					if d, err := r.Store.Get(it.Deployment); err == nil && !d.State.Finished() && r.mayShip(d, it) {
						return nil, Errorf(EConflict, "%s went out in #%d, which is %s: taking it off the list would not stop it", ShortID(it.Change.ID), d.ID, d.State).
							Or(Do(VerbAbort, d.ID, "roll the deployment back"))
					}
				}
				dropped = it
				return append(items[:i:i], items[i+1:]...), nil
			}
		}
		return nil, Errorf(ENotFound, "%s is not on the %s window's list", ref, w.Span())
	})
	if err != nil {
		return nil, WindowItem{}, err
	}
	return w, dropped, nil
}

// checkWindow enforces the emergency rule on a request: with windows
// configured, a backport outside a window must give an emergency reason.
func (r *Runner) checkWindow(req Request) error {
	if !r.windows() || req.Emergency != "" {
		return nil
	}
	now := r.Now()
	if w := r.cfg.Schedule.Current(now); w != nil {
		if err := w.mayDeploy(req.Requester); err != nil {
			return Errorf(EConflict, "%s; or, if it cannot wait, say why with --emergency <reason>", ErrorMessage(err))
		}
		return nil
	}
	msg := "no backport window is open now"
	if n := r.cfg.Schedule.Next(now); n != nil {
		msg += fmt.Sprintf("; the next is %s (in %s)", n.Span(), n.Start.Sub(now).Round(time.Minute))
	}
	return Errorf(EConflict, "%s. Add the change to its list, or, if it cannot wait, say why with --emergency <reason>", msg).
		Or(DoWith(VerbAdd, "put it on the next window", req.Refs...))
}

// mayDeploy refuses who when the window names its deployers and who is
// not one of them (by the name the bot knows them by, as !whoami shows).
func (w *BackportWindow) mayDeploy(who string) error {
	if len(w.Deployers) == 0 {
		return nil
	}
	for _, d := range w.Deployers {
		if strings.EqualFold(strings.TrimSpace(d), who) {
			return nil
		}
	}
	return Errorf(EConflict, "the %s window is for %s to deploy in, and you are %s: ask one of them", w.Span(), strings.Join(w.Deployers, ", "), who)
}

// announceEmergency records and tells the channel that a deployment goes
// out outside any window (or in one whose deployers do not include its
// requester), and why.
func (r *Runner) announceEmergency(d *Deployment) {
	where := "outside the backport windows"
	if w := r.cfg.Schedule.Current(r.Now()); w != nil {
		where = fmt.Sprintf("in the %s window", w.Span())
	}
	msg := fmt.Sprintf("EMERGENCY backport #%d %s, by %s: %s", d.ID, where, d.Requester, d.Emergency)
	_ = r.Store.AppendEvent(Event{Deployment: d.ID, Time: r.Now(), Actor: d.Requester, Kind: "emergency", Message: msg})
	r.log.Warn("emergency backport outside the windows", "deployment", d.ID, "who", d.Requester, "reason", d.Emergency)
	r.say(d, NoticeInfo, msg)
}

// CheckWindows announces the opening of the window open now, once per
// window (the store remembers across restarts): it pings every submitter
// on its list and says who may deploy. The runner calls it every
// WindowPoll; tests with their own clock call it directly.
func (r *Runner) CheckWindows() error {
	if !r.windows() || r.Windows == nil {
		return nil
	}
	if err := r.carryOver(); err != nil {
		return err
	}
	w := r.cfg.Schedule.Current(r.Now())
	if w == nil {
		return nil
	}
	first, err := r.Windows.MarkWindowOpened(w.Key())
	if err != nil || !first {
		return err
	}
	items, err := r.Windows.WindowList(w.Key())
	if err != nil {
		return err
	}
	who := "any deployer"
	if len(w.Deployers) > 0 {
		who = strings.Join(w.Deployers, ", ")
	}
	text := fmt.Sprintf("%s is open (%s); %s may deploy. ", w.Title(), w.Span(), who)
	var mention []string
	var next []Choice
	if len(items) == 0 {
		text += "Nothing is on its list."
	} else {
		var parts []string
		parts, mention = describeItems(items)
		text += fmt.Sprintf("On its list (%d): %s. Submitters, be around to test your change when you are pinged", len(items), strings.Join(parts, ", "))
		next = []Choice{DoWith(VerbWindow, "deploy the list", "go")}
	}
	_ = r.Store.AppendEvent(Event{Time: r.Now(), Actor: bot, Kind: "window", Message: fmt.Sprintf("window %s opened with %d change(s)", w.Span(), len(items))})
	r.log.Info("backport window opened", "window", w.Key(), "changes", len(items))
	r.Announcer.Announce(Notice{Kind: NoticeWindow, Text: text, Mention: mention, Next: next})
	return nil
}

// WindowGo deploys the open window's list: as one batch when batches are
// on, else one deployment per change, in the order they were added. It
// returns the deployments queued.
func (r *Runner) WindowGo(who string) ([]*Deployment, error) {
	if !r.windows() || r.Windows == nil {
		return nil, Errorf(EInvalid, "no backport windows are configured")
	}
	now := r.Now()
	w := r.cfg.Schedule.Current(now)
	if w == nil {
		msg := "no backport window is open now, so its list cannot be deployed yet"
		if n := r.cfg.Schedule.Next(now); n != nil {
			msg = fmt.Sprintf("no backport window is open now; the next is %s (in %s): deploy its list once it opens. A change that cannot wait goes out on its own with --emergency <reason>", n.Span(), n.Start.Sub(now).Round(time.Minute))
		}
		return nil, Errorf(EConflict, "%s", msg)
	}
	if err := w.mayDeploy(who); err != nil {
		return nil, err
	}
	items, err := r.Windows.WindowList(w.Key())
	if err != nil {
		return nil, err
	}
	// Left to deploy: what has not gone out, and what went out in a
	// deployment that ended before it synced anything (cancelled while
	// queued, or refused while preparing).
	var refs []string
	var unshipped []string // went out, that deployment will not ship it, and it is not blocked
	blocks, err := r.Store.Blocks()
	if err != nil {
		return nil, err
	}
	again := map[string]bool{}
	// A change deployed (or deploying) by another deployment, such as a
	// !backport in the window, is not deployed twice: the source would
	// refuse the whole batch as "already deployed".
	recent, _ := r.Store.List(0, 100)
	elsewhere := map[string]int64{}
	for _, it := range items {
		if it.Deployment != 0 {
			if d, err := r.Store.Get(it.Deployment); err != nil || (d.State != StateCancelled && d.State != StateFailed) {
				if err == nil && !r.mayShip(d, it) && !blockedItem(it, blocks) {
					unshipped = append(unshipped, ShortID(it.Change.ID))
				}
				continue
			}
		}
		if d := carrier(it, recent); d != nil {
			elsewhere[it.Change.ID] = d.ID
			continue
		}
		refs = append(refs, it.Change.ID)
		if it.Deployment != 0 {
			again[it.Change.ID] = true
		}
	}
	if len(elsewhere) > 0 {
		if err := r.Windows.UpdateWindowList(w.Key(), func(items []WindowItem) ([]WindowItem, error) {
			for i := range items {
				if id := elsewhere[items[i].Change.ID]; id != 0 {
					items[i].Deployment = id
				}
			}
			return items, nil
		}); err != nil {
			return nil, err
		}
	}
	if len(refs) == 0 && len(unshipped) > 0 {
		// Dropped unverified, or rolled back: what brings one back is
		// its verification, and !add is how a person says so.
		return nil, Errorf(EConflict, "nothing on the %s window's list is left to deploy: %s went out and did not ship (dropped or rolled back); put %s back on the list once verified, then deploy the list again",
			w.Span(), strings.Join(unshipped, ", "), map[bool]string{true: "it", false: "each"}[len(unshipped) == 1]).
			Or(DoWith(VerbAdd, "put it back on the list", unshipped...))
	}
	if len(refs) == 0 {
		return nil, Errorf(EConflict, "nothing on the %s window's list is left to deploy", w.Span())
	}
	if n := r.cfg.Batch.maxChanges(); r.cfg.Batch.Enabled && len(refs) > n {
		return nil, Errorf(EConflict, "the %s window's list holds %d changes left to deploy, and a batch holds at most %d (pipeline.batch.max_changes): take %d off the list (they can go on a later window), then deploy the list again",
			w.Span(), len(refs), n, len(refs)-n).Or(DoWith(VerbDrop, "take the last one off the list", ShortID(refs[len(refs)-1])))
	}
	var out []*Deployment
	if r.cfg.Batch.Enabled && len(refs) > 1 {
		d, _, err := r.Submit(Request{Refs: refs, Requester: who, Batch: true, Window: w.Key()})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	} else {
		for _, ref := range refs {
			d, _, err := r.Submit(Request{Refs: []string{ref}, Requester: who, Window: w.Key()})
			if err != nil {
				return out, err
			}
			out = append(out, d)
		}
	}
	ids := map[string]int64{}
	for i, ref := range refs {
		ids[ref] = out[min(i, len(out)-1)].ID
	}
	err = r.Windows.UpdateWindowList(w.Key(), func(items []WindowItem) ([]WindowItem, error) {
		for i := range items {
			if id := ids[items[i].Change.ID]; id != 0 && (items[i].Deployment == 0 || again[items[i].Change.ID]) {
				items[i].Deployment = id
			}
		}
		return items, nil
	})
	return out, err
}

// The verbs and notice of windows.
const (
	VerbAdd    Verb = "add"
	VerbDrop   Verb = "drop"
	VerbWindow Verb = "window"
	// NoticeWindow announces a window's opening, pinging its submitters.
	NoticeWindow NoticeKind = "window"
)

// windowPoll is how often the runner looks whether a window has opened.
const windowPoll = time.Second

// pollWindows announces each window's opening until ctx ends.
func (r *Runner) pollWindows(ctx context.Context) {
	if !r.windows() || r.Windows == nil {
		return
	}
	t := time.NewTicker(windowPoll)
	defer t.Stop()
	for {
		if err := r.CheckWindows(); err != nil {
			r.log.Error("checking the backport windows failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mayShip reports whether deployment d shipped, or may still ship, window
// item it: it is not among d's dropped changes, and d did not end
// without shipping.
func (r *Runner) mayShip(d *Deployment, it WindowItem) bool {
	for _, dc := range d.Dropped {
		if SameChange(dc.Change, it.Change) {
			return false
		}
	}
	return !d.State.Finished() || d.State == StateDone
}

// SameChangeID reports whether two change ids name the same change:
// equal, or, past any component prefix ("php-1:"), one a prefix (at
// least 7 digits) of the other, a full commit id.
func SameChangeID(a, b string) bool {
	if a == b {
		return true
	}
	cut := func(id string) string {
		if i := strings.LastIndexAny(id, ":@"); i >= 0 {
			return id[i+1:]
		}
		return id
	}
	a, b = cut(a), cut(b)
	if len(a) > len(b) {
		a, b = b, a
	}
	// Only a full commit id has prefixes that name it: Gerrit change
	// numbers (1234567, 12345678) are not prefixes of each other.
	full := (len(b) == 40 || len(b) == 64) && strings.Trim(b, "0123456789abcdef") == ""
	return full && len(a) >= 7 && strings.HasPrefix(b, a)
}

// carrier returns the deployment among ds (newest first) other than
// it.Deployment that shipped window item it or may still ship it: done
// with it among its changes, or queued or running with it among its
// changes or, before its changes are known, its refs.
func carrier(it WindowItem, ds []*Deployment) *Deployment {
	same := func(c Change) bool {
		return SameChange(c, it.Change)
	}
	for _, d := range ds {
		if d.ID == it.Deployment || !(d.State == StateDone || d.State == StateQueued || d.State.Active()) {
			continue
		}
		for _, c := range d.Changes {
			if same(c) {
				return d
			}
		}
		if len(d.Changes) == 0 {
			for _, ref := range d.Refs {
				if SameChangeID(ref, it.Change.ID) {
					return d
				}
			}
		}
	}
	return nil
}

// carryOver moves the changes a window closed without deploying (never
// sent, or sent in a deployment cancelled or refused before it synced
// anything) to the next window's list, once per window, and tells the
// channel, pinging their submitters. Windows that ended in the last week
// are looked at, so a bot that was down when one closed catches up.
func (r *Runner) carryOver() error {
	now := r.Now()
	for _, w := range r.cfg.Schedule.Between(now.AddDate(0, 0, -7), now) {
		if w.End.After(now) {
			continue
		}
		items, err := r.Windows.WindowList(w.Key())
		if err != nil {
			return err
		}
		blocks, err := r.Store.Blocks()
		if err != nil {
			return err
		}
		recent, err := r.Store.List(0, 100)
		if err != nil {
			return err
		}
		var left []WindowItem
		for _, it := range items {
			if carrier(it, recent) != nil {
				// Another deployment shipped it (a !backport in
				// the window) or may still ship it.
				continue
			}
			if it.Deployment == 0 {
				left = append(left, it)
			} else if d, err := r.Store.Get(it.Deployment); err == nil && (d.State == StateCancelled || d.State == StateFailed ||
				(!r.mayShip(d, it) && d.State != StateRollbackFailed && !blockedItem(it, blocks))) {
				// Dropped from its batch unverified, or rolled back
				// without blame (a timeout, a restart), it was not
				// deployed either. A blamed one is blocked: the block
				// says what to do; after a failed rollback nobody
				// knows what the hosts serve.
				it.Deployment = 0
				left = append(left, it)
			}
		}
		if len(left) == 0 {
			continue
		}
		if first, err := r.Windows.MarkWindowOpened("closed " + w.Key()); err != nil || !first {
			if err != nil {
				return err
			}
			continue
		}
		parts, mention := describeItems(left)
		text := fmt.Sprintf("%s (%s) closed with %s on its list not deployed: %s", w.Title(), w.Span(), plural(len(left), "change"), strings.Join(parts, ", "))
		next := r.cfg.Schedule.Next(w.End.Add(-time.Nanosecond))
		for next != nil && !next.Start.After(w.Start) {
			next = r.cfg.Schedule.Next(next.Start)
		}
		if next == nil {
			text += "; no later window is scheduled, so they are not on any list now"
		} else {
			if err := r.Windows.UpdateWindowList(next.Key(), func(items []WindowItem) ([]WindowItem, error) {
				for _, it := range left {
					dup := false
					for _, x := range items {
						dup = dup || x.Change.ID == it.Change.ID
					}
					if !dup {
						items = append(items, it)
					}
				}
				return items, nil
			}); err != nil {
				return err
			}
			text += fmt.Sprintf("; they are on the list of the next one, %s, now", next.Span())
		}
		_ = r.Store.AppendEvent(Event{Time: now, Actor: bot, Kind: "window", Message: text})
		r.log.Info("backport window closed with changes left", "window", w.Key(), "changes", len(left))
		r.Announcer.Announce(Notice{Kind: NoticeWindow, Text: text, Mention: mention})
	}
	return nil
}

// blockedItem reports whether window item it is a blocked change.
func blockedItem(it WindowItem, blocks []Block) bool {
	for _, b := range blocks {
		if SameChange(b.Change, it.Change) {
			return true
		}
	}
	return false
}

// Title is the window's name for chat: "the evening backport window", or
// "the backport window" when it has none.
func (w *BackportWindow) Title() string {
	if w.Name == "" {
		return "the backport window"
	}
	return "the " + strings.TrimPrefix(w.Name, "the ")
}

// describeItems says each item of a window's list for chat, "id (subject,
// submitter)", and returns the submitters to ping, each once.
func describeItems(items []WindowItem) (parts, mention []string) {
	seen := map[string]bool{}
	for _, it := range items {
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", ShortID(it.Change.ID), it.Change.Subject, it.Submitter))
		if !seen[it.Submitter] {
			seen[it.Submitter] = true
			mention = append(mention, it.Submitter)
		}
	}
	return parts, mention
}
