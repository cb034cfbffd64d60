package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/deployer"
)

// TestOpenDamagedFile: a store file cut short (a copy interrupted, a disk
// that filled up) or with pages overwritten is refused with an error that
// says it is damaged. bbolt panicked on such files ("invalid freelist
// page") or killed the process with a bus error reading past the end of a
// truncated one, so the bot died with a stack trace instead of a sentence.
func TestOpenDamagedFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := Open(good, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "alice", Changes: []deployer.Change{{ID: strings.Repeat("x", 200)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// used is how much of the file holds pages (bbolt grows it in larger
	// steps): cutting the file anywhere below it loses pages.
	db, err := bolt.Open(good, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var used int
	if err := db.View(func(tx *bolt.Tx) error { used = int(tx.Size()); return nil }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if used < 8*4096 {
		t.Fatalf("the store uses only %d bytes; the cases below need a larger one", used)
	}
	flipped := append([]byte(nil), data...)
	for i := 4 * 4096; i < len(flipped); i++ {
		flipped[i] ^= 0x5a
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"cut in half", data[:used/2], "cut short"},
		{"its last page missing", data[:used-4096], "cut short"},
		{"only its first two pages", data[:2*4096], "cut short"},
		{"only its first three pages", data[:3*4096], "cut short"},
		{"pages overwritten", flipped, "damaged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var s *Store
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = nil
						t.Errorf("Open panicked: %v", r)
					}
				}()
				s, err = Open(path, time.Second)
			}()
			if err == nil {
				if s != nil {
					s.Close()
					t.Fatal("Open of a damaged file succeeded")
				}
				return
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) || !strings.Contains(msg, "backup") {
				t.Errorf("error %q should name %s, say %q and suggest the backup", msg, path, c.want)
			}
			if errors.Is(err, ErrInUse) {
				t.Errorf("error %v claims the file is in use", err)
			}
		})
	}
	// The intact file still opens, with its history.
	s = openAt(t, good)
	if ds, err := s.List(0, 100); err != nil || len(ds) != 50 {
		t.Errorf("List of the intact file = %d, %v; want 50", len(ds), err)
	}
}

// TestOpenOlderFileFindsWhatLanded: a file written before the store kept
// meta/landed (layout version 1 all the same) has deployments that landed
// but no such key. Landed() said nil for it, so after an upgrade the bot
// answered !rollback with "there is no deployment to roll back" and took
// the fleet's commit from the staging tip. Open now fills the key in from
// the history: the landed deployment that ended last.
func TestOpenOlderFileFindsWhatLanded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	land := func(to deployer.State, end time.Time) int64 {
		id, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "alice", Refs: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		from := deployer.StateQueued
		path := []deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateAwaitingVerification,
			deployer.StateSyncingCanaries, deployer.StateCheckingCanaries, deployer.StateSyncingProduction, deployer.StateDone}
		if to == deployer.StateRolledBack {
			path = []deployer.State{deployer.StatePreparing, deployer.StateSyncingTestservers, deployer.StateRollingBack, deployer.StateRolledBack}
		}
		if to == deployer.StateFailed {
			path = []deployer.State{deployer.StatePreparing, deployer.StateFailed}
		}
		for _, st := range path {
			if _, err := s.Transition(id, from, st, deployer.Event{Time: end}, nil); err != nil {
				t.Fatal(err)
			}
			from = st
		}
		return id
	}
	land(deployer.StateDone, t0)
	rolled := land(deployer.StateRolledBack, t0.Add(time.Hour))
	land(deployer.StateFailed, t0.Add(2*time.Hour)) // failed: nothing landed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What an older deploybot left: the same file without meta/landed.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyLanded) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = openAt(t, path)
	d, err := s.Landed()
	if err != nil || d == nil || d.ID != rolled {
		t.Fatalf("Landed() of an older file = %+v, %v; want #%d, the landed deployment that ended last", d, err, rolled)
	}
}

// TestOpenNewFileLandsNothing: a file where nothing has landed keeps no
// meta/landed after Open; the first landing writes it.
func TestOpenNewFileLandsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	s := openAt(t, path)
	if _, err := s.Create(&deployer.Deployment{State: deployer.StateQueued, Requester: "alice"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	if d, err := s.Landed(); err != nil || d != nil {
		t.Errorf("Landed() with nothing landed = %+v, %v; want nil", d, err)
	}
}
