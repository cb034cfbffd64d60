package bot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/store"
)

// newStoreBot is a bot on a real bbolt file whose runner never starts.
func newStoreBot(t *testing.T) (*Bot, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &Bot{Name: "deploybot", Prefix: "!", Store: st, Runner: deployer.NewRunner(deployer.Config{}, deployer.Deps{Store: st}),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Dashboard: "http://dash.example/",
		Dir: &Directory{Deployers: []string{"console:alice"}}}
	return b, st
}

// finish stores a deployment that ended in state at end.
func finish(t *testing.T, st *store.Store, subject string, state deployer.State, end time.Time) int64 {
	t.Helper()
	id, err := st.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "Alice Deployer",
		Changes: []deployer.Change{{ID: "0123456789abcdef0123456789abcdef01234567", Subject: subject}}})
	if err != nil {
		t.Fatal(err)
	}
	path := map[deployer.State][]deployer.State{
		deployer.StateDone: {deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
			deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateSyncingProduction, deployer.StateDone},
		deployer.StateRolledBack:           {deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateRollingBack, deployer.StateRolledBack},
		deployer.StateRollbackFailed:       {deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateRollingBack, deployer.StateRollbackFailed},
		deployer.StateCancelled:            {deployer.StateCancelled},
		deployer.StateFailed:               {deployer.StatePreparing, deployer.StateFailed},
		deployer.StateAwaitingVerification: {deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification},
	}[state]
	from := deployer.StateQueued
	for _, to := range path {
		if _, err := st.Transition(id, from, to, deployer.Event{Deployment: id, Time: end, Kind: "state"},
			func(d *deployer.Deployment) { d.StartedAt, d.EndedAt = end.Add(-time.Minute), end }); err != nil {
			t.Fatal(err)
		}
		from = to
	}
	return id
}

func ask(b *Bot, who, text string, private bool) []string {
	var out []string
	b.Handle(Message{Sender: Sender{Adapter: "console", Keys: []string{"console:" + who}, Nick: who}, Text: text, Private: private,
		Reply: func(lines ...string) { out = append(out, lines...) }})
	return out
}

func TestLongAnswersAreCutInTheChannelAndWholeInPrivate(t *testing.T) {
	b, st := newStoreBot(t)
	now := time.Now()
	for i := 1; i <= 12; i++ {
		finish(t, st, fmt.Sprintf("change %d", i), deployer.StateDone, now)
	}
	for _, tc := range []struct {
		text    string
		private bool
		lines   int
		last    string
	}{
		{"!history", false, 6, "... 6 more line(s): ask me in private (/msg deploybot !history) or see http://dash.example/history"},
		{"!history", true, 11, "#3 done: "},
		{"!history 3", false, 4, "#10 done: "},
		{"!help", false, 1, "What each does and who may use it: /msg deploybot !help"},
		{"!help", true, len(helpOrder) + 1, "!help"},
		{"!queue", true, 1, "In private I answer only !status, !history, !whoami and !help; say !queue in the deployment channel."},
	} {
		got := ask(b, "alice", tc.text, tc.private)
		if len(got) != tc.lines || !strings.Contains(got[len(got)-1], tc.last) {
			t.Errorf("%s (private %v): %d lines ending %q, want %d ending with %q", tc.text, tc.private, len(got), got[len(got)-1], tc.lines, tc.last)
		}
	}
	// On Slack, private is a direct message: /msg means nothing there.
	var slackOut []string
	b.Handle(Message{Sender: Sender{Adapter: "slack", Keys: []string{"slack:U1"}, Nick: "alice"}, Text: "!history",
		Reply: func(lines ...string) { slackOut = append(slackOut, lines...) }})
	if len(slackOut) != 6 || !strings.HasSuffix(slackOut[5], "ask me in private (send me `!history` in a direct message) or see http://dash.example/history") {
		t.Errorf("!history on Slack: %q", slackOut)
	}
	if got := ask(b, "alice", "!help", false)[0]; !strings.Contains(got, "!backport, !window, !add, !drop, verified, !abort,") || !strings.Contains(got, "!whoami, !help.") {
		t.Errorf("the channel's help does not list every command: %s", got)
	}
}

func TestStatusWhenIdleSaysWhatWasDeployedLast(t *testing.T) {
	b, st := newStoreBot(t)
	if got := b.idleStatus(time.Now()); got != "nothing is deploying right now; nothing was deployed through me yet" {
		t.Errorf("empty store: %q", got)
	}
	end := time.Date(2026, 5, 1, 14, 2, 0, 0, time.UTC)
	finish(t, st, "first try", deployer.StateRolledBack, end.Add(-time.Minute))
	want := "nothing is deploying right now; no deployment of mine ended done: the last, #1 0123456789 (first try), was rolled back 2026-05-01 14:01 UTC (1m0s ago)"
	if got := b.idleStatus(end); got != want {
		t.Errorf("only a rolled-back deployment:\n got %s\nwant %s", got, want)
	}
	finish(t, st, "good change", deployer.StateDone, end)
	finish(t, st, "bad change", deployer.StateRolledBack, end.Add(5*time.Minute))
	finish(t, st, "never started", deployer.StateCancelled, end.Add(6*time.Minute))
	got := b.idleStatus(end.Add(10 * time.Minute))
	want = "nothing is deploying right now; last deployed: #2 0123456789 (good change) by Alice Deployer, done 2026-05-01 14:02 UTC (10m0s ago); " +
		"since then #3 0123456789 (bad change) was rolled back 2026-05-01 14:07 UTC (5m0s ago)"
	if got != want {
		t.Errorf("idle status:\n got %s\nwant %s", got, want)
	}
	finish(t, st, "stuck", deployer.StateRollbackFailed, end.Add(8*time.Minute))
	want = "nothing is deploying right now; last deployed: #2 0123456789 (good change) by Alice Deployer, done 2026-05-01 14:02 UTC (10m0s ago); " +
		"since then #5 0123456789 (stuck) was rolled back only in part (some hosts could not be restored) 2026-05-01 14:10 UTC (2m0s ago)"
	if got := b.idleStatus(end.Add(10 * time.Minute)); got != want {
		t.Errorf("after a failed rollback:\n got %s\nwant %s", got, want)
	}
	// However many attempts failed since (refused, nothing synced), the
	// last deployment that shipped is still found.
	for range 120 {
		finish(t, st, "refused", deployer.StateFailed, end.Add(9*time.Minute))
	}
	if got := b.idleStatus(end.Add(10 * time.Minute)); got != want {
		t.Errorf("after 120 failed attempts:\n got %s\nwant %s", got, want)
	}
}

func TestAnsweredRemindersAreNotAnnounced(t *testing.T) {
	b, st := newStoreBot(t)
	rec := &recorder{}
	b.AddAdapter(rec)
	id := finish(t, st, "x", deployer.StateAwaitingVerification, time.Now())
	reminder := deployer.Notice{Deployment: id, Kind: deployer.NoticeReminder, State: deployer.StateAwaitingVerification, Text: "reminder"}
	b.Announce(reminder)
	if _, err := st.Transition(id, deployer.StateAwaitingVerification, deployer.StateSyncingCanaries, deployer.Event{Deployment: id, Kind: "state"}, nil); err != nil {
		t.Fatal(err)
	}
	if !b.Outdated(reminder) {
		t.Error("a reminder about a wait that ended is not outdated")
	}
	b.Announce(reminder)
	b.Announce(deployer.Notice{Deployment: id, Kind: deployer.NoticeVerified, State: deployer.StateSyncingCanaries, Text: "verified"})
	if got := strings.Join(rec.texts, "|"); got != "reminder|verified" {
		t.Errorf("announced %q, want the first reminder and the verified notice only", got)
	}
}

type recorder struct{ texts []string }

func (r *recorder) Name() string                             { return "rec" }
func (r *recorder) Run(context.Context, func(Message)) error { return nil }
func (r *recorder) Announce(n deployer.Notice, _ []string)   { r.texts = append(r.texts, n.Text) }

// TestStatusRightAfterAStartDoesNotAdviseSync: before the runner has read
// its hosts back, a host not read yet is not "off the fleet's commit", and
// !sync is no advice for it; a host known to be off is still named.
func TestStatusRightAfterAStartDoesNotAdviseSync(t *testing.T) {
	b, _ := newStoreBot(t) // its runner has not started: not ready
	v := deployer.FleetView{Commit: "0123456789abcdef0123456789abcdef01234567", Hosts: []deployer.HostView{
		{Stage: deployer.Testservers, Record: deployer.HostRecord{Name: "ts1", Unknown: true}, OffFleet: "not read back yet: what it serves is unknown"},
		{Stage: deployer.Canaries, Record: deployer.HostRecord{Name: "can1", Unknown: true}, OffFleet: "not read back yet: what it serves is unknown"},
		{Stage: deployer.Production, Record: deployer.HostRecord{Name: "mw1", Commit: "ffff"}, OffFleet: "serves ffff, not the fleet's 0123456789"},
	}}
	got := strings.Join(b.fleetLines(v, nil), "\n")
	if strings.Contains(got, "ts1") || strings.Contains(got, "can1") || !strings.Contains(got, "hosts not on the fleet's commit: mw1 (serves ffff") ||
		!strings.Contains(got, "I have just started and am still reading back what 2 hosts serve; ask again in a moment") {
		t.Errorf("fleet lines before the hosts were read back:\n%s", got)
	}
}
