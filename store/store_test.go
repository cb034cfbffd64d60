package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/deploybot/deploybot/deployer"
)

// openTest opens a store on a fresh file and closes it when the test ends.
func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deploybot.db")
	return openAt(t, path), path
}

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ts is a fixed UTC time with nanoseconds, which JSON must keep exactly.
func ts(sec int) time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC).Add(time.Duration(sec) * time.Second)
}

// fullDeployment returns a queued deployment with every field set.
func fullDeployment() *deployer.Deployment {
	sample := deployer.Sample{Time: ts(1), Hosts: map[string]deployer.Counts{
		"mw1": {Requests: 1000, Errors: 3},
		"mw2": {Requests: 0, Errors: 0, Err: "connection refused"},
	}}
	return &deployer.Deployment{
		ID:                0,
		State:             deployer.StateQueued,
		Requester:         "alice",
		Submitter:         "bob",
		Refs:              []string{"12345", "12346"},
		IncludeUnexpected: true,
		Batch:             true,
		Emergency:         "the site is down",
		Window:            "2025-06-02T13:00:00Z",
		Verified:          map[string]string{"12345": "bob"},
		Dropped:           []deployer.DroppedChange{{Change: deployer.Change{ID: "12346"}, Why: "not verified"}},
		Bisect: &deployer.Bisection{Units: [][]deployer.Change{{{ID: "12345"}}, {{ID: "12346"}}}, Innocent: []int{0}, Guilty: []int{1},
			Round: 1, Rounds: []deployer.BisectRound{{Round: 1, Changes: []string{"12345"}, Of: 2, Outcome: deployer.Pass}}},
		Changes: []deployer.Change{{
			ID: "12345", Commit: strings.Repeat("a", 40), Subject: "Fix the thing",
			Author: "Bob", AuthorEmail: "bob@example.org", Owner: "bob",
			URL: "https://gerrit.example.org/12345", Bugs: []string{"T1", "T2"},
			Reverts: strings.Repeat("f", 40), Unexpected: true, Component: "php-1.46.0-wmf.3",
		}},
		PrevDeployment: 7,
		VerifiedBy:     "bob",
		MetricsWaived:  true,
		RollbackTries:  2,
		Upstream:       strings.Repeat("b", 40),
		PrevUpstream:   strings.Repeat("c", 40),
		Base:           strings.Repeat("d", 40),
		Commit:         strings.Repeat("e", 40),
		Files:          []string{"wmf-config/a.php", "wmf-config/b.php"},
		Touched:        []string{"mw1", "mw2"},
		FailedHosts:    map[string]string{"mw2": "ssh: connection refused"},
		Deadline:       ts(2),
		Reminded:       true,
		Baseline:       &sample,
		WindowStart: &deployer.Sample{Time: ts(8), Hosts: map[string]deployer.Counts{
			"mw1": {Requests: 900, Errors: 2}, "mw9": {Requests: 5000, Errors: 11},
		}},
		Verdicts: []deployer.Verdict{{
			Stage: deployer.Canaries, Outcome: deployer.Fail, Reason: "mw1 errs",
			Baseline: deployer.Baseline{Requests: 10, Errors: 1, Rate: 0.1, Source: "before"},
			Hosts: []deployer.HostResult{{Host: "mw1", Requests: 5, Errors: 4, Rate: 0.8,
				Threshold: 0.2, Outcome: deployer.Fail, Why: "too many"}},
			Start: ts(3), End: ts(4), Samples: []deployer.Sample{sample},
		}},
		Reason:           "because",
		RollbackCommit:   strings.Repeat("f", 40),
		Blame:            true,
		UpstreamReverted: true,
		ProdStart:        &deployer.Sample{Time: ts(300), Hosts: map[string]deployer.Counts{"mw1001": {Requests: 9000, Errors: 4}}},
		Depooled:         []string{"mw1003"},
		CreatedAt:        ts(5),
		StartedAt:        ts(6),
		EndedAt:          ts(7),
	}
}

// TestFullDeploymentSetsEveryField keeps the roundtrip test honest: a field
// added to Deployment must be added to fullDeployment too.
func TestFullDeploymentSetsEveryField(t *testing.T) {
	v := reflect.ValueOf(*fullDeployment())
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if name == "ID" || name == "State" {
			continue // assigned by the store / must be queued
		}
		if v.Field(i).IsZero() {
			t.Errorf("fullDeployment leaves %s zero; set it so the roundtrip covers it", name)
		}
	}
}

func TestCreateGetRoundtrip(t *testing.T) {
	tests := []struct {
		name   string
		in     func() *deployer.Deployment
		wantAt func(t *testing.T, got time.Time, before, after time.Time)
	}{
		{
			name: "every field",
			in:   fullDeployment,
			wantAt: func(t *testing.T, got, _, _ time.Time) {
				if !got.Equal(ts(5)) {
					t.Errorf("CreatedAt = %v, want the one given, %v", got, ts(5))
				}
			},
		},
		{
			name: "zero CreatedAt is set",
			in: func() *deployer.Deployment {
				return &deployer.Deployment{State: deployer.StateQueued, Requester: "alice", Refs: []string{"1"}}
			},
			wantAt: func(t *testing.T, got, before, after time.Time) {
				if got.Before(before) || got.After(after) {
					t.Errorf("CreatedAt = %v, want between %v and %v", got, before, after)
				}
			},
		},
		{
			name: "an ID given is replaced",
			in: func() *deployer.Deployment {
				d := fullDeployment()
				d.ID = 999
				return d
			},
			wantAt: func(*testing.T, time.Time, time.Time, time.Time) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t)
			d := tt.in()
			want := *tt.in()
			before := time.Now()
			id, err := s.Create(d)
			after := time.Now()
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if id != 1 {
				t.Errorf("first id = %d, want 1", id)
			}
			if d.ID != id {
				t.Errorf("Create left d.ID = %d, want %d", d.ID, id)
			}
			tt.wantAt(t, d.CreatedAt, before, after)
			want.ID, want.CreatedAt = id, d.CreatedAt

			got, err := s.Get(id)
			if err != nil {
				t.Fatalf("Get(%d): %v", id, err)
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("Get(%d) =\n%+v\nwant\n%+v", id, got, &want)
			}
			// The caller's value and the stored one must not share memory.
			d.Refs[0] = "changed"
			if got2, _ := s.Get(id); got2.Refs[0] == "changed" {
				t.Errorf("stored deployment aliases the caller's slice")
			}
		})
	}
}

func TestCreateQueuedEvent(t *testing.T) {
	s, _ := openTest(t)
	d := fullDeployment()
	id, err := s.Create(d)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []deployer.Event{{Deployment: id, Time: ts(5), Actor: "alice", Kind: "state",
		Message: "queued " + d.Title(), To: deployer.StateQueued}}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("Events(%d) = %+v, want %+v", id, evs, want)
	}
}

func TestCreateRefusesNonQueued(t *testing.T) {
	for _, st := range []deployer.State{"", "bogus", deployer.StatePreparing, deployer.StateDone, deployer.StateRollingBack} {
		t.Run(string(st), func(t *testing.T) {
			s, _ := openTest(t)
			d := &deployer.Deployment{State: st, Requester: "alice"}
			id, err := s.Create(d)
			if err == nil {
				t.Fatalf("Create with state %q = %d, nil; want an error", st, id)
			}
			if d.ID != 0 || !d.CreatedAt.IsZero() {
				t.Errorf("a refused Create changed d: ID %d, CreatedAt %v", d.ID, d.CreatedAt)
			}
			if ds, _ := s.List(0, 10); len(ds) != 0 {
				t.Errorf("a refused Create stored %d deployments", len(ds))
			}
			if evs, _ := s.Events(0); len(evs) != 0 {
				t.Errorf("a refused Create logged %+v", evs)
			}
		})
	}
}

func TestIDsIncrease(t *testing.T) {
	s, path := openTest(t)
	var last int64
	create := func() {
		t.Helper()
		id, err := s.Create(&deployer.Deployment{State: deployer.StateQueued})
		if err != nil {
			t.Fatal(err)
		}
		if id != last+1 {
			t.Errorf("id = %d after %d, want %d", id, last, last+1)
		}
		last = id
	}
	for range 5 {
		create()
	}
	// A refused Create must not use up an id.
	if _, err := s.Create(&deployer.Deployment{State: deployer.StateDone}); err == nil {
		t.Fatal("Create(done) succeeded")
	}
	create()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	create()
}

func TestGetUnknown(t *testing.T) {
	s, _ := openTest(t)
	if _, err := s.Create(&deployer.Deployment{State: deployer.StateQueued}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{0, -1, 2, 1 << 40} {
		d, err := s.Get(id)
		if !errors.Is(err, deployer.ErrNotFound) {
			t.Errorf("Get(%d) = %v, %v; want ErrNotFound", id, d, err)
		}
		if code := deployer.ErrorCode(err); code != deployer.ENotFound {
			t.Errorf("Get(%d) error code = %q, want %q", id, code, deployer.ENotFound)
		}
	}
}

// snapshot is everything the store says about one deployment.
type snapshot struct {
	D      *deployer.Deployment
	Events []deployer.Event
	Unfin  []*deployer.Deployment
}

func snap(t *testing.T, s *Store, id int64) snapshot {
	t.Helper()
	d, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Unfinished()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{d, evs, u}
}

// drive moves a new deployment along path (which starts at queued).
func drive(t *testing.T, s *Store, path ...deployer.State) int64 {
	t.Helper()
	id, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "alice", CreatedAt: ts(0)})
	if err != nil {
		t.Fatal(err)
	}
	from := deployer.StateQueued
	for i, to := range path {
		if _, err := s.Transition(id, from, to, deployer.Event{Time: ts(i + 1), Actor: "deploybot"}, nil); err != nil {
			t.Fatalf("Transition(%d, %s, %s): %v", id, from, to, err)
		}
		from = to
	}
	return id
}

func TestTransitionConflictChangesNothing(t *testing.T) {
	s, _ := openTest(t)
	id := drive(t, s, deployer.StatePreparing)
	before := snap(t, s, id)

	called := false
	d, err := s.Transition(id, deployer.StateQueued, deployer.StatePreparing,
		deployer.Event{Actor: "bob", Message: "late"},
		func(d *deployer.Deployment) { called = true; d.Reason = "should not be stored" })
	if !errors.Is(err, deployer.ErrConflict) {
		t.Fatalf("Transition from a stale state = %v, %v; want ErrConflict", d, err)
	}
	if deployer.ErrorCode(err) != deployer.EConflict {
		t.Errorf("error code = %q, want %q", deployer.ErrorCode(err), deployer.EConflict)
	}
	if called {
		t.Errorf("mutate ran although the state did not match")
	}
	if after := snap(t, s, id); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused Transition changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	if _, err := s.Transition(99, deployer.StateQueued, deployer.StatePreparing, deployer.Event{}, nil); !errors.Is(err, deployer.ErrNotFound) {
		t.Errorf("Transition of an unknown id = %v, want ErrNotFound", err)
	}
}

func TestTransitionIllegal(t *testing.T) {
	tests := []struct {
		path     []deployer.State // how to get there from queued
		from, to deployer.State
	}{
		{nil, deployer.StateQueued, deployer.StateDone},
		{nil, deployer.StateQueued, deployer.StateQueued},
		{nil, deployer.StateQueued, deployer.StateSyncingTestservers},
		{nil, deployer.StateQueued, deployer.StateRollingBack},
		{nil, deployer.StateQueued, "bogus"},
		// Once preparing, failing is allowed but rolling back is not: nothing was synced.
		{[]deployer.State{deployer.StatePreparing}, deployer.StatePreparing, deployer.StateRollingBack},
		// Once a sync began, failed is no way out.
		{[]deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers},
			deployer.StateSyncingTestservers, deployer.StateFailed},
		{[]deployer.State{deployer.StatePreparing, deployer.StateFailed}, deployer.StateFailed, deployer.StateRollingBack},
		{[]deployer.State{deployer.StatePreparing, deployer.StateCancelled}, deployer.StateCancelled, deployer.StateQueued},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s->%s", tt.from, tt.to), func(t *testing.T) {
			if deployer.CanTransition(tt.from, tt.to) {
				t.Fatalf("test case is legal by deployer.CanTransition")
			}
			s, _ := openTest(t)
			id := drive(t, s, tt.path...)
			before := snap(t, s, id)
			d, err := s.Transition(id, tt.from, tt.to, deployer.Event{}, func(d *deployer.Deployment) { d.Reason = "x" })
			if err == nil {
				t.Fatalf("Transition(%s -> %s) = %+v, nil; want an error", tt.from, tt.to, d)
			}
			if errors.Is(err, deployer.ErrConflict) {
				t.Errorf("illegal transition reported as a conflict: %v", err)
			}
			msg := deployer.ErrorMessage(err)
			if !strings.Contains(msg, string(tt.from)) || !strings.Contains(msg, string(tt.to)) {
				t.Errorf("error %q does not name both %s and %s", msg, tt.from, tt.to)
			}
			if after := snap(t, s, id); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused Transition changed the store:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestTransitionWrites(t *testing.T) {
	s, _ := openTest(t)
	id := drive(t, s)

	// queued -> preparing: mutate applied, StartedAt set from the event,
	// Kind defaulted, Deployment/From/To filled in over what the caller gave.
	d, err := s.Transition(id, deployer.StateQueued, deployer.StatePreparing,
		deployer.Event{Deployment: 77, From: "x", To: "y", Time: ts(10), Actor: "deploybot", Message: "starting"},
		func(d *deployer.Deployment) {
			d.Upstream = "abc"
			d.State = deployer.StateDone // ignored: to wins
			d.ID = 42                    // ignored: the key wins
		})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != deployer.StatePreparing || d.ID != id || d.Upstream != "abc" {
		t.Errorf("after Transition: state %s, id %d, upstream %q", d.State, d.ID, d.Upstream)
	}
	if !d.StartedAt.Equal(ts(10)) || !d.EndedAt.IsZero() {
		t.Errorf("StartedAt %v, EndedAt %v; want %v and zero", d.StartedAt, d.EndedAt, ts(10))
	}
	if got, _ := s.Get(id); !reflect.DeepEqual(got, d) {
		t.Errorf("Transition returned %+v, Get returns %+v", d, got)
	}
	if _, err := s.Get(42); !errors.Is(err, deployer.ErrNotFound) {
		t.Errorf("mutate's id change created deployment 42")
	}

	// preparing -> failed with a zero event time and an explicit kind:
	// EndedAt set to now, StartedAt kept, no longer unfinished.
	before := time.Now()
	d, err = s.Transition(id, deployer.StatePreparing, deployer.StateFailed,
		deployer.Event{Actor: "deploybot", Kind: "refused", Message: "wip"},
		func(d *deployer.Deployment) { d.StartedAt = ts(11) })
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if !d.StartedAt.Equal(ts(11)) {
		t.Errorf("StartedAt = %v, want the %v mutate set (only queued sets it)", d.StartedAt, ts(11))
	}
	if d.EndedAt.Before(before) || d.EndedAt.After(after) {
		t.Errorf("EndedAt = %v, want between %v and %v", d.EndedAt, before, after)
	}
	if u, _ := s.Unfinished(); len(u) != 0 {
		t.Errorf("Unfinished after failing = %+v, want none", u)
	}

	evs, err := s.Events(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []deployer.Event{
		{Deployment: id, Time: ts(0), Actor: "alice", Kind: "state", Message: "queued", To: deployer.StateQueued},
		{Deployment: id, Time: ts(10), Actor: "deploybot", Kind: "state", Message: "starting",
			From: deployer.StateQueued, To: deployer.StatePreparing},
		{Deployment: id, Time: d.EndedAt, Actor: "deploybot", Kind: "refused", Message: "wip",
			From: deployer.StatePreparing, To: deployer.StateFailed},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("Events =\n%+v\nwant\n%+v", evs, want)
	}
	if evs, _ := s.Events(77); len(evs) != 0 {
		t.Errorf("the caller's ev.Deployment got events: %+v", evs)
	}
}

func TestTransitionStartedAtKept(t *testing.T) {
	s, _ := openTest(t)
	id, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, StartedAt: ts(-5)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Transition(id, deployer.StateQueued, deployer.StatePreparing, deployer.Event{Time: ts(1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.StartedAt.Equal(ts(-5)) {
		t.Errorf("StartedAt = %v, want the earlier %v kept", d.StartedAt, ts(-5))
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*deployer.Deployment)
		wantErr bool
		check   func(*deployer.Deployment) bool
	}{
		{"state change refused", func(d *deployer.Deployment) {
			d.Reason = "not stored"
			d.State = deployer.StateDone
		}, true, nil},
		{"state change to the empty state refused", func(d *deployer.Deployment) { d.State = "" }, true, nil},
		{"id change refused", func(d *deployer.Deployment) { d.ID = 9 }, true, nil},
		{"fields stored", func(d *deployer.Deployment) {
			d.Touched = append(d.Touched, "mw3")
			d.Reminded = true
		}, false, func(d *deployer.Deployment) bool {
			return d.Reminded && reflect.DeepEqual(d.Touched, []string{"mw1", "mw3"})
		}},
		{"nil mutate", nil, false, func(d *deployer.Deployment) bool { return !d.Reminded }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t)
			id := drive(t, s, deployer.StatePreparing, deployer.StateSyncingTestservers)
			if _, err := s.Update(id, func(d *deployer.Deployment) { d.Touched = []string{"mw1"} }); err != nil {
				t.Fatal(err)
			}
			before := snap(t, s, id)
			d, err := s.Update(id, tt.mutate)
			after := snap(t, s, id)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Update = %+v, nil; want an error", d)
				}
				if !reflect.DeepEqual(before, after) {
					t.Errorf("a refused Update changed the store:\nbefore %+v\nafter  %+v", before, after)
				}
				if _, err := s.Get(9); !errors.Is(err, deployer.ErrNotFound) {
					t.Errorf("a refused id change stored deployment 9")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(after.D) {
				t.Errorf("stored deployment after Update: %+v", after.D)
			}
			if !reflect.DeepEqual(d, after.D) {
				t.Errorf("Update returned %+v, Get returns %+v", d, after.D)
			}
			if after.D.State != deployer.StateSyncingTestservers {
				t.Errorf("state = %s after Update", after.D.State)
			}
			if !reflect.DeepEqual(before.Events, after.Events) {
				t.Errorf("Update changed the timeline: %+v", after.Events)
			}
		})
	}
	s, _ := openTest(t)
	if _, err := s.Update(1, func(*deployer.Deployment) {}); !errors.Is(err, deployer.ErrNotFound) {
		t.Errorf("Update of an unknown id = %v, want ErrNotFound", err)
	}
}

func ids(ds []*deployer.Deployment) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestList(t *testing.T) {
	s, _ := openTest(t)
	for i := range 7 {
		if _, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: fmt.Sprint("user", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		offset, limit int
		want          []int64
	}{
		{0, 3, []int64{7, 6, 5}},
		{3, 3, []int64{4, 3, 2}},
		{6, 3, []int64{1}},
		{7, 3, []int64{}},
		{100, 1, []int64{}},
		{0, 0, []int64{}},
		{0, 100, []int64{7, 6, 5, 4, 3, 2, 1}},
		{2, 1, []int64{5}},
	}
	for _, tt := range tests {
		ds, err := s.List(tt.offset, tt.limit)
		if err != nil {
			t.Errorf("List(%d, %d): %v", tt.offset, tt.limit, err)
			continue
		}
		if ds == nil {
			t.Errorf("List(%d, %d) = nil, want an empty slice", tt.offset, tt.limit)
		}
		if got := ids(ds); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("List(%d, %d) = ids %v, want %v", tt.offset, tt.limit, got, tt.want)
		}
		for _, d := range ds {
			if d.Requester != fmt.Sprint("user", d.ID) {
				t.Errorf("List returned deployment %d with requester %q", d.ID, d.Requester)
			}
		}
	}
	for _, bad := range [][2]int{{-1, 3}, {0, -1}} {
		if _, err := s.List(bad[0], bad[1]); err == nil {
			t.Errorf("List(%d, %d) succeeded, want an error", bad[0], bad[1])
		}
	}
}

func TestUnfinished(t *testing.T) {
	s, path := openTest(t)
	const (
		p  = deployer.StatePreparing
		st = deployer.StateSyncingTestservers
		av = deployer.StateAwaitingVerification
		rb = deployer.StateRollingBack
		sc = deployer.StateSyncingCanaries
		cc = deployer.StateCheckingCanaries
		sp = deployer.StateSyncingProduction
	)
	paths := [][]deployer.State{
		{p, st, av, sc, cc, sp, deployer.StateDone}, // 1 finished
		nil,                       // 2 queued
		{p, deployer.StateFailed}, // 3 finished
		{p, st, av},               // 4 waiting
		{deployer.StateCancelled}, // 5 finished
		{p, st, av, sc, cc, sp, deployer.StateDone, rb, deployer.StateRolledBack}, // 6 rolled back after done
		{p, st, av, sc, cc, sp, deployer.StateDone, rb},                           // 7 unfinished again
		{p, st, rb}, // 8 rolling back
		nil,         // 9 queued
	}
	for _, path := range paths {
		drive(t, s, path...)
	}
	want := []int64{2, 4, 7, 8, 9}
	check := func(s *Store) {
		t.Helper()
		u, err := s.Unfinished()
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(u); !reflect.DeepEqual(got, want) {
			t.Errorf("Unfinished = ids %v, want %v", got, want)
		}
		// The index must agree with a scan of every deployment.
		all, err := s.List(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var scanned []int64
		for i := len(all) - 1; i >= 0; i-- {
			if !all[i].State.Finished() {
				scanned = append(scanned, all[i].ID)
			}
		}
		if !reflect.DeepEqual(scanned, ids(u)) {
			t.Errorf("Unfinished index %v disagrees with a full scan %v", ids(u), scanned)
		}
		for _, d := range u {
			full, _ := s.Get(d.ID)
			if !reflect.DeepEqual(d, full) {
				t.Errorf("Unfinished returned %+v, Get %+v", d, full)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openAt(t, path))
}

func TestUnfinishedEmpty(t *testing.T) {
	s, _ := openTest(t)
	u, err := s.Unfinished()
	if err != nil || u == nil || len(u) != 0 {
		t.Errorf("Unfinished on an empty store = %v, %v; want an empty slice", u, err)
	}
}

func TestEvents(t *testing.T) {
	s, _ := openTest(t)
	a := drive(t, s)
	b := drive(t, s)

	// 300 events cross a byte boundary in the sequence: a wrong key encoding
	// would put event 256 before event 1.
	var wantA []deployer.Event
	evsA, _ := s.Events(a)
	wantA = append(wantA, evsA...)
	for i := range 300 {
		ev := deployer.Event{Deployment: a, Time: ts(1000 - i), Actor: fmt.Sprint("u", i),
			Kind: "sync", Message: fmt.Sprintf("event %d", i)}
		if err := s.AppendEvent(ev); err != nil {
			t.Fatal(err)
		}
		wantA = append(wantA, ev)
		if i == 150 {
			d, err := s.Transition(a, deployer.StateQueued, deployer.StatePreparing, deployer.Event{Time: ts(5), Actor: "bot"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantA = append(wantA, deployer.Event{Deployment: a, Time: d.StartedAt, Actor: "bot", Kind: "state",
				From: deployer.StateQueued, To: deployer.StatePreparing})
		}
	}
	general := []deployer.Event{
		{Time: ts(1), Actor: "mallory", Kind: "refused", Message: "!backport 1: not allowed"},
		{Time: ts(0), Actor: "alice", Kind: "command", Message: "!lock"},
	}
	for _, ev := range general {
		if err := s.AppendEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	if err := s.AppendEvent(deployer.Event{Deployment: b, Actor: "bob", Kind: "command", Message: "verified"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	got, err := s.Events(a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, wantA) {
		for i := range min(len(got), len(wantA)) {
			if !reflect.DeepEqual(got[i], wantA[i]) {
				t.Errorf("event %d = %+v, want %+v", i, got[i], wantA[i])
				break
			}
		}
		t.Fatalf("Events(%d): %d events, want %d", a, len(got), len(wantA))
	}
	got, err = s.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, general) {
		t.Errorf("Events(0) = %+v, want the general log %+v", got, general)
	}
	got, err = s.Events(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Message != "verified" || got[1].Time.Before(before) || got[1].Time.After(after) {
		t.Errorf("Events(%d) = %+v; want queued, then verified with the time it was appended", b, got)
	}

	for _, id := range []int64{3, -1} {
		if err := s.AppendEvent(deployer.Event{Deployment: id, Message: "x"}); !errors.Is(err, deployer.ErrNotFound) {
			t.Errorf("AppendEvent for deployment %d = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Events(id); !errors.Is(err, deployer.ErrNotFound) {
			t.Errorf("Events(%d) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestLock(t *testing.T) {
	s, path := openTest(t)
	reopen := func() {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, path)
	}
	want := func(l *deployer.Lock) {
		t.Helper()
		got, err := s.Lock()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, l) {
			t.Errorf("Lock() = %+v, want %+v", got, l)
		}
	}
	set := func(l *deployer.Lock) {
		t.Helper()
		if err := s.SetLock(l); err != nil {
			t.Fatal(err)
		}
	}

	want(nil)
	set(nil) // lifting no freeze is fine
	want(nil)
	l1 := &deployer.Lock{By: "alice", Reason: "train deploy", Since: ts(0)}
	set(l1)
	want(l1)
	reopen()
	want(l1)
	l2 := &deployer.Lock{By: "bob", Reason: "incident", Since: ts(60)}
	set(l2)
	want(l2)
	set(nil)
	want(nil)
	reopen()
	want(nil)
}

func TestReopenKeepsEverything(t *testing.T) {
	s, path := openTest(t)
	d := fullDeployment()
	a, err := s.Create(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(a, deployer.StateQueued, deployer.StatePreparing, deployer.Event{Actor: "bot"}, nil); err != nil {
		t.Fatal(err)
	}
	b := drive(t, s, deployer.StateCancelled)
	drive(t, s)
	if err := s.AppendEvent(deployer.Event{Actor: "x", Message: "general"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLock(&deployer.Lock{By: "alice", Reason: "r", Since: ts(3)}); err != nil {
		t.Fatal(err)
	}

	type all struct {
		List       []*deployer.Deployment
		Unfinished []*deployer.Deployment
		Events     map[int64][]deployer.Event
		Lock       *deployer.Lock
	}
	read := func(s *Store) all {
		t.Helper()
		var v all
		var err error
		if v.List, err = s.List(0, 100); err != nil {
			t.Fatal(err)
		}
		if v.Unfinished, err = s.Unfinished(); err != nil {
			t.Fatal(err)
		}
		v.Events = map[int64][]deployer.Event{}
		for _, id := range []int64{0, a, b} {
			if v.Events[id], err = s.Events(id); err != nil {
				t.Fatal(err)
			}
		}
		if v.Lock, err = s.Lock(); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := read(s)
	if len(before.List) != 3 || len(before.Unfinished) != 2 || len(before.Events[a]) != 2 || before.Lock == nil {
		t.Fatalf("setup went wrong: %+v", before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	if after := read(s); !reflect.DeepEqual(before, after) {
		t.Errorf("after reopening:\n%+v\nbefore:\n%+v", after, before)
	}
	if id, err := s.Create(&deployer.Deployment{State: deployer.StateQueued}); err != nil || id != 4 {
		t.Errorf("Create after reopening = %d, %v; want 4", id, err)
	}
}

func TestOpenInUse(t *testing.T) {
	// bbolt locks the file with flock, which on Linux conflicts between two
	// open file descriptions even within one process, so this needs no child
	// process. If that ever stops being true, the second Open succeeds and
	// this test fails rather than passing vacuously.
	s, path := openTest(t)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	s2, err := Open(path, timeout)
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "another deploybot") {
		t.Errorf("error %q should name %s and suggest another deploybot is running", msg, path)
	}
	if !errors.Is(err, ErrInUse) || !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %v is not ErrInUse and bbolt's ErrTimeout", err)
	}
	// bbolt gives up one retry interval (50ms) before the timeout.
	if elapsed < timeout/2 || elapsed > timeout+2*time.Second {
		t.Errorf("second Open gave up after %v, want about %v", elapsed, timeout)
	}
	// The first store still works, and once it is closed the file is free.
	if _, err := s.Create(&deployer.Deployment{State: deployer.StateQueued}); err != nil {
		t.Fatalf("first store after a refused second Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openAt(t, path)
	if _, err := s3.Get(1); err != nil {
		t.Errorf("Get after reopening: %v", err)
	}
}

func TestOpenMode(t *testing.T) {
	_, path := openTest(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		t.Errorf("file mode %v, want no access for group and others", m)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup func(path string)
		want  string
	}{
		{"not a bbolt file", func(path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not bolt ", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"newer layout", func(path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyVersion, itob(layoutVersion+1))
			})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}, "layout version 2"},
		{"missing directory", func(string) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".db")
			if tt.name == "missing directory" {
				path = filepath.Join(dir, "nope", "x.db")
			}
			tt.setup(path)
			s, err := Open(path, time.Second)
			if err == nil {
				s.Close()
				t.Fatalf("Open succeeded")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should name %s and say %q", err, path, tt.want)
			}
			if errors.Is(err, ErrInUse) {
				t.Errorf("error %v claims the file is in use", err)
			}
		})
	}
}

func TestTransitionRace(t *testing.T) {
	s, _ := openTest(t)
	const racers = 16
	for round := range 20 {
		id := drive(t, s)
		start := make(chan struct{})
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				_, errs[i] = s.Transition(id, deployer.StateQueued, deployer.StatePreparing,
					deployer.Event{Actor: fmt.Sprint("racer", i)},
					func(d *deployer.Deployment) { d.Reason = fmt.Sprint("racer", i) })
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, deployer.ErrConflict):
				t.Fatalf("round %d: racer %d lost with %v, want ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", round)
		}
		d, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprint("racer", winner)
		if d.State != deployer.StatePreparing || d.Reason != name {
			t.Errorf("round %d: stored state %s, reason %q; want preparing by %s", round, d.State, d.Reason, name)
		}
		evs, err := s.Events(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[1].Actor != name {
			t.Errorf("round %d: timeline %+v; want queued then one transition by %s", round, evs, name)
		}
	}
}

func TestBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocks.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"123", "45"} {
		b := deployer.Block{Change: deployer.Change{ID: id, Subject: "s" + id}, Deployment: int64(i + 1), Reason: "canary failed", Revert: "https://gerrit/r/9" + id, Since: t0.Add(time.Duration(i) * time.Minute)}
		if err := s.SetBlock(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetBlock(deployer.Block{}); err == nil {
		t.Error("a block without a change id was stored")
	}
	if err := s.Unblock("123"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unblock("123"); deployer.ErrorCode(err) != deployer.ENotFound {
		t.Errorf("second Unblock: %v, want not found", err)
	}
	s.Close()
	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bs, err := s.Blocks()
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Change.ID != "45" || bs[0].Revert != "https://gerrit/r/945" || bs[0].Deployment != 2 {
		t.Errorf("after reopen: %+v", bs)
	}
}
