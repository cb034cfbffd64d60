// Package store keeps deploybot's deployments, their timelines and the
// deployment freeze in one bbolt file. It implements deployer.Store.
//
// Layout of the file (every integer key is 8 bytes, big-endian, so bbolt's
// byte order is numeric order):
//
//	deployments/  id -> JSON of deployer.Deployment
//	unfinished/   id -> empty; one key per deployment whose state is not Finished
//	events/       id/ -> one nested bucket per deployment
//	                  seq -> JSON of deployer.Event (seq from the nested
//	                         bucket's NextSequence, so keys are append order)
//	              0/  -> the general log: events about no deployment
//	meta/         "version" -> layout version (8 bytes)
//	              "lock"    -> JSON of deployer.Lock; absent when not frozen
//	blocks/       change id -> JSON of deployer.Block (rolled-back changes
//	              that must not ship again)
//	hosts/        host name -> JSON of deployer.HostRecord: what the store
//	              says each host serves, read back after every sync
//	meta/"landed" -> id of the latest deployment whose outcome the fleet
//	              serves (it entered done, rolled-back or rollback-failed);
//	              kept by Transition, so no lookup scans the history
//
// Deployment ids come from the deployments bucket's NextSequence, so they
// start at 1, increase, and are never reused; 0 is never a deployment, which
// is what lets the general log live under events/0.
//
// Every exported method is one bbolt transaction: a crash leaves either all of
// a method's writes or none of them.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/deploybot/deploybot/deployer"
)

// Bucket and key names. They are part of the file format: never rename them.
var (
	bucketDeployments = []byte("deployments")
	bucketUnfinished  = []byte("unfinished")
	bucketEvents      = []byte("events")
	bucketMeta        = []byte("meta")
	bucketBlocks      = []byte("blocks") // change id -> Block JSON
	bucketHosts       = []byte("hosts")  // host name -> HostRecord JSON
	// bucketChatRoots: adapter name, then deployment id -> the chat's
	// handle of its root message (Slack: "channel ts"), so a deployment
	// resumed after a restart keeps its thread. Added without a layout
	// version change: an older file simply gains the bucket.
	bucketChatRoots = []byte("chat_roots")

	keyVersion = []byte("version")
	keyLock    = []byte("lock")
	keyLanded  = []byte("landed")
)

// layoutVersion is the version of the layout described in the package
// comment. A file written with a higher version is refused rather than
// misread.
const layoutVersion = 1

// Store is a deployer.Store backed by a bbolt file. It is safe for concurrent
// use: bbolt runs one writing transaction at a time and readers alongside it.
type Store struct {
	db   *bolt.DB
	path string
}

var _ deployer.Store = (*Store)(nil)

// ErrInUse is wrapped by the error Open returns when another process holds
// the file's lock.
var ErrInUse = errors.New("store is in use by another process")

// Open opens the store at path, creating the file (mode 0600) and its buckets
// when they do not exist. bbolt allows one process per file: when another one
// holds it, Open gives up after timeout with an error that wraps both ErrInUse
// and bbolt's timeout error. A timeout of 0 waits for as long as it takes, as
// in bbolt.
//
// A damaged file (truncated, or with pages overwritten) is refused with an
// error that says so: bbolt itself panics on such a file, or dies of a bus
// error reading past the end of a truncated one.
func Open(path string, timeout time.Duration) (*Store, error) {
	if err := checkLength(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, timeout)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &inUseError{path: path, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.initSafe(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

// errDamaged is what Open says of a file bbolt cannot read.
func errDamaged(path string, why any) error {
	return fmt.Errorf("store %s is damaged (%v); restore it from a backup, or move it away to start an empty history", path, why)
}

// openBolt is bolt.Open, with a panic or memory fault on a damaged file
// turned into an error. The file descriptor bbolt opened before it panicked
// is not closed (bbolt keeps it to itself); the caller is about to exit.
func openBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, errDamaged(path, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
}

// initSafe is init with a damaged file's panic turned into an error.
func (s *Store) initSafe() (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the file is damaged (%v); restore it from a backup, or move it away to start an empty history", r)
		}
	}()
	return s.init()
}

// checkLength refuses a file shorter than its own header says it is (a
// copy cut short, a disk that filled up): bbolt maps the missing pages and
// the process dies of a bus error on the first read. It reads the two meta
// pages as bbolt lays them out (a 16-byte page header, then magic, version,
// page size, flags, root bucket, freelist, high-water page id, txid and an
// FNV-64a checksum, in the machine's byte order) and trusts the valid one
// with the higher txid. A file it cannot make sense of is left to bbolt.
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt creates it, or says why it cannot
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil
	}
	meta := func(off int64) (pageSize, pgid, txid uint64, ok bool) {
		b := make([]byte, 80)
		if _, err := f.ReadAt(b, off); err != nil {
			return 0, 0, 0, false
		}
		ne := binary.NativeEndian
		if ne.Uint32(b[16:]) != 0xED0CDAED {
			return 0, 0, 0, false
		}
		h := fnv.New64a()
		h.Write(b[16:72])
		if h.Sum64() != ne.Uint64(b[72:]) {
			return 0, 0, 0, false
		}
		return uint64(ne.Uint32(b[24:])), ne.Uint64(b[56:]), ne.Uint64(b[64:]), true
	}
	ps0, pg0, tx0, ok0 := meta(0)
	ps := ps0
	if !ok0 {
		ps = uint64(os.Getpagesize())
	}
	ps1, pg1, tx1, ok1 := meta(int64(ps))
	var pageSize, pgid uint64
	switch {
	case ok0 && (!ok1 || tx0 >= tx1):
		pageSize, pgid = ps0, pg0
	case ok1:
		pageSize, pgid = ps1, pg1
	default:
		return nil
	}
	if want := pageSize * pgid; uint64(fi.Size()) < want {
		return errDamaged(path, fmt.Sprintf("it is %d bytes long, but its header says %d: it was cut short", fi.Size(), want))
	}
	return nil
}

// inUseError is what Open returns when another process holds the file.
type inUseError struct {
	path string
	err  error // bbolt's timeout error
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("store %s is in use by another process (is another deploybot running?)", e.path)
}

// Unwrap lets callers test for ErrInUse and for bbolt's ErrTimeout.
func (e *inUseError) Unwrap() []error { return []error{ErrInUse, e.err} }

// init creates the buckets and records the layout version, or checks it.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketDeployments, bucketUnfinished, bucketEvents, bucketMeta, bucketBlocks, bucketHosts, bucketChatRoots} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyVersion)
		if v == nil {
			return meta.Put(keyVersion, itob(layoutVersion))
		}
		if len(v) != 8 {
			return fmt.Errorf("layout version is %d bytes long, want 8", len(v))
		}
		if n := binary.BigEndian.Uint64(v); n != layoutVersion {
			return fmt.Errorf("file has layout version %d; this deploybot reads version %d", n, layoutVersion)
		}
		return backfillLanded(tx)
	})
}

// backfillLanded writes meta/landed into a file an older deploybot wrote
// before it kept that key: the deployment in a landed state that ended
// last. Without it, such a file's history read as if nothing had ever
// landed (!rollback: "there is no deployment to roll back", the fleet's
// commit taken from the staging tip). A file that has the key, or where
// nothing has landed yet, is left as it is.
func backfillLanded(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyLanded) != nil {
		return nil
	}
	var best *deployer.Deployment
	err := tx.Bucket(bucketDeployments).ForEach(func(k, v []byte) error {
		d, err := decodeDeployment(k, v)
		if err != nil {
			return err
		}
		if d.State.Landed() && (best == nil || !d.EndedAt.Before(best.EndedAt)) {
			best = d
		}
		return nil
	})
	if err != nil || best == nil {
		return err
	}
	return meta.Put(keyLanded, itob(best.ID))
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close releases the file. Pending transactions finish first.
func (s *Store) Close() error { return s.db.Close() }

// Create stores d as a new deployment and returns its id. d.State must be
// queued. On success d.ID is set, and d.CreatedAt too when it was zero; on
// failure d is left as it was. The deployment and its "queued" event are
// written in one transaction.
func (s *Store) Create(d *deployer.Deployment) (int64, error) {
	if d.State != deployer.StateQueued {
		return 0, fmt.Errorf("store: a new deployment must be %s, not %q", deployer.StateQueued, d.State)
	}
	nd := *d
	if nd.CreatedAt.IsZero() {
		nd.CreatedAt = now()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeployments)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		nd.ID = int64(seq)
		if err := putDeployment(tx, &nd); err != nil {
			return err
		}
		// Invariant: a key is in unfinished exactly when the deployment's
		// stored state is not Finished. queued is not Finished.
		if err := tx.Bucket(bucketUnfinished).Put(itob(nd.ID), nil); err != nil {
			return err
		}
		return appendEvent(tx, deployer.Event{
			Deployment: nd.ID,
			Time:       nd.CreatedAt,
			Actor:      nd.Requester,
			Kind:       "state",
			Message:    strings.TrimSpace("queued " + nd.Title()),
			To:         deployer.StateQueued,
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: create deployment: %w", err)
	}
	d.ID, d.CreatedAt = nd.ID, nd.CreatedAt
	return nd.ID, nil
}

// Get returns the deployment with this id, or an error that is
// deployer.ErrNotFound.
func (s *Store) Get(id int64) (*deployer.Deployment, error) {
	var d *deployer.Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, err = getDeployment(tx, id)
		return err
	})
	return d, err
}

// Transition moves deployment id from state from to state to in one
// transaction: it loads the deployment, refuses with deployer.ErrConflict
// (writing nothing) when its stored state is not from, refuses with an error
// naming both states when deployer.CanTransition(from, to) is false, applies
// mutate (which may be nil; the State and ID it leaves are ignored), sets
// State, StartedAt when leaving queued (if still zero) and EndedAt when
// entering a Finished state, stores it and appends ev to its timeline.
//
// ev.Deployment, ev.From and ev.To are filled in; a zero ev.Time becomes now
// and an empty ev.Kind becomes "state". StartedAt and EndedAt take ev.Time,
// so the timeline and the deployment agree. The result is the deployment as
// stored.
//
// Because bbolt runs one writing transaction at a time, of several callers
// racing to move the same deployment out of the same state exactly one wins;
// the others get deployer.ErrConflict.
func (s *Store) Transition(id int64, from, to deployer.State, ev deployer.Event, mutate func(*deployer.Deployment)) (*deployer.Deployment, error) {
	var out *deployer.Deployment
	err := s.db.Update(func(tx *bolt.Tx) error {
		d, err := getDeployment(tx, id)
		if err != nil {
			return err
		}
		// The compare-and-set: nothing has been written yet, so returning
		// here leaves the file as it was.
		if d.State != from {
			return fmt.Errorf("deployment %d is %s, not %s: %w", id, d.State, from, deployer.ErrConflict)
		}
		if !deployer.CanTransition(from, to) {
			return deployer.Errorf(deployer.EInvalid, "deployment %d cannot go from %s to %s", id, from, to)
		}
		if mutate != nil {
			mutate(d)
		}
		// The key is the id; whatever mutate did, the stored id stays the key.
		d.ID = id
		d.State = to
		if ev.Time.IsZero() {
			ev.Time = now()
		}
		if from == deployer.StateQueued && d.StartedAt.IsZero() {
			d.StartedAt = ev.Time
		}
		if to.Finished() {
			d.EndedAt = ev.Time
		}
		if err := putDeployment(tx, d); err != nil {
			return err
		}
		// Invariant: a key is in unfinished exactly when the deployment's
		// stored state is not Finished. done -> rolling-back makes a
		// finished deployment unfinished again, so both directions happen.
		u := tx.Bucket(bucketUnfinished)
		if to.Finished() {
			err = u.Delete(itob(id))
		} else {
			err = u.Put(itob(id), nil)
		}
		if err != nil {
			return err
		}
		// Invariant: meta/landed names the latest deployment whose outcome
		// the fleet serves, written with the transition that lands it.
		if to.Landed() {
			if err := tx.Bucket(bucketMeta).Put(keyLanded, itob(id)); err != nil {
				return err
			}
		}
		ev.Deployment, ev.From, ev.To = id, from, to
		if ev.Kind == "" {
			ev.Kind = "state"
		}
		if err := appendEvent(tx, ev); err != nil {
			return err
		}
		// Read back what was stored, so the caller holds no pointer mutate
		// may have kept and sees exactly what Get will return.
		out, err = getDeployment(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update applies mutate to deployment id and stores the result. mutate must
// leave State and ID as they were: if it changes either, Update returns an
// error and writes nothing. A nil mutate stores nothing new.
func (s *Store) Update(id int64, mutate func(*deployer.Deployment)) (*deployer.Deployment, error) {
	var out *deployer.Deployment
	err := s.db.Update(func(tx *bolt.Tx) error {
		d, err := getDeployment(tx, id)
		if err != nil {
			return err
		}
		if mutate == nil {
			out = d
			return nil
		}
		state := d.State
		mutate(d)
		// State changes only through Transition, which checks them and
		// records them on the timeline; refusing here keeps that true.
		if d.State != state {
			return fmt.Errorf("store: update of deployment %d changed its state from %s to %s; use Transition", id, state, d.State)
		}
		if d.ID != id {
			return fmt.Errorf("store: update of deployment %d changed its id to %d", id, d.ID)
		}
		if err := putDeployment(tx, d); err != nil {
			return err
		}
		out, err = getDeployment(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendEvent adds ev to the timeline of deployment ev.Deployment, or to the
// general log when ev.Deployment is 0. A zero ev.Time becomes now. An event
// for a deployment that does not exist is refused with deployer.ErrNotFound.
func (s *Store) AppendEvent(ev deployer.Event) error {
	if ev.Time.IsZero() {
		ev.Time = now()
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if ev.Deployment != 0 {
			if err := checkExists(tx, ev.Deployment); err != nil {
				return err
			}
		}
		return appendEvent(tx, ev)
	})
}

// Events returns deployment id's timeline, oldest first, or the general log
// when id is 0. For an id that was never created it returns an error that is
// deployer.ErrNotFound.
func (s *Store) Events(id int64) ([]deployer.Event, error) {
	evs := []deployer.Event{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if id != 0 {
			if err := checkExists(tx, id); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketEvents).Bucket(itob(id))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var ev deployer.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("store: event %d/%d: %w", id, btoi(k), err)
			}
			evs = append(evs, ev)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return evs, nil
}

// List returns up to limit deployments, newest (highest id) first, after
// skipping the offset newest ones. It never returns nil on success.
func (s *Store) List(offset, limit int) ([]*deployer.Deployment, error) {
	if offset < 0 || limit < 0 {
		return nil, fmt.Errorf("store: list with offset %d and limit %d: neither may be negative", offset, limit)
	}
	ds := []*deployer.Deployment{}
	if limit == 0 {
		return ds, nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeployments).Cursor()
		skipped := 0
		for k, v := c.Last(); k != nil && len(ds) < limit; k, v = c.Prev() {
			if skipped < offset {
				skipped++
				continue
			}
			d, err := decodeDeployment(k, v)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// Unfinished returns every deployment whose state is not Finished, queued
// ones included, oldest (lowest id) first. It reads the unfinished index, not
// the whole history. It never returns nil on success.
func (s *Store) Unfinished() ([]*deployer.Deployment, error) {
	ds := []*deployer.Deployment{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUnfinished).ForEach(func(k, _ []byte) error {
			d, err := getDeployment(tx, btoi(k))
			if err != nil {
				// Not %w: a broken index is not the caller's missing deployment.
				return fmt.Errorf("store: unfinished index names deployment %d: %v", btoi(k), err)
			}
			ds = append(ds, d)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// Lock returns the deployment freeze, or nil when there is none.
func (s *Store) Lock() (*deployer.Lock, error) {
	var l *deployer.Lock
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyLock)
		if v == nil {
			return nil
		}
		l = new(deployer.Lock)
		if err := json.Unmarshal(v, l); err != nil {
			return fmt.Errorf("store: lock: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// SetLock sets the deployment freeze, replacing any earlier one; nil lifts it.
func (s *Store) SetLock(l *deployer.Lock) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if l == nil {
			return meta.Delete(keyLock)
		}
		v, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("store: lock: %w", err)
		}
		return meta.Put(keyLock, v)
	})
}

// getDeployment loads deployment id within tx.
func getDeployment(tx *bolt.Tx, id int64) (*deployer.Deployment, error) {
	k := itob(id)
	v := tx.Bucket(bucketDeployments).Get(k)
	if v == nil {
		return nil, notFound(id)
	}
	return decodeDeployment(k, v)
}

func decodeDeployment(k, v []byte) (*deployer.Deployment, error) {
	d := new(deployer.Deployment)
	if err := json.Unmarshal(v, d); err != nil {
		return nil, fmt.Errorf("store: deployment %d: %w", btoi(k), err)
	}
	return d, nil
}

// putDeployment writes d under its id. Callers keep d.ID equal to the key.
func putDeployment(tx *bolt.Tx, d *deployer.Deployment) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: deployment %d: %w", d.ID, err)
	}
	return tx.Bucket(bucketDeployments).Put(itob(d.ID), v)
}

func checkExists(tx *bolt.Tx, id int64) error {
	if id <= 0 || tx.Bucket(bucketDeployments).Get(itob(id)) == nil {
		return notFound(id)
	}
	return nil
}

func notFound(id int64) error {
	return fmt.Errorf("deployment %d: %w", id, deployer.ErrNotFound)
}

// appendEvent writes ev at the end of its deployment's timeline, creating
// the timeline's bucket on the first event.
func appendEvent(tx *bolt.Tx, ev deployer.Event) error {
	b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists(itob(ev.Deployment))
	if err != nil {
		return err
	}
	// Invariant: keys come from this bucket's own sequence, so they increase
	// in append order and ForEach reads the timeline oldest first.
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("store: event for deployment %d: %w", ev.Deployment, err)
	}
	return b.Put(itob(int64(seq)), v)
}

// now is the time stored for events and deployments that carry none: UTC
// and without a monotonic reading, so it reads back from JSON unchanged.
func now() time.Time { return time.Now().UTC().Round(0) }

// itob encodes an id as 8 big-endian bytes, so keys sort numerically.
func itob(id int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(id))
	return b
}

func btoi(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// Blocks returns every blocked change, oldest first.
func (s *Store) Blocks() ([]deployer.Block, error) {
	out := []deployer.Block{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlocks)
		return b.ForEach(func(k, v []byte) error {
			var bl deployer.Block
			if err := json.Unmarshal(v, &bl); err != nil {
				return fmt.Errorf("block %q: %w", k, err)
			}
			out = append(out, bl)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, err
}

// SetBlock records (or replaces) the block of b.Change.ID.
func (s *Store) SetBlock(b deployer.Block) error {
	if b.Change.ID == "" {
		return errors.New("store: a block needs a change id")
	}
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put([]byte(b.Change.ID), v)
	})
}

// Unblock removes the block of a change id.
func (s *Store) Unblock(changeID string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlocks)
		if b.Get([]byte(changeID)) == nil {
			return deployer.Errorf(deployer.ENotFound, "change %s is not blocked", changeID)
		}
		return b.Delete([]byte(changeID))
	})
}

// Landed returns the latest deployment whose outcome the fleet serves (the
// last one to enter done, rolled-back or rollback-failed), or nil when none
// has yet.
func (s *Store) Landed() (*deployer.Deployment, error) {
	var d *deployer.Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyLanded)
		if v == nil {
			return nil
		}
		var err error
		d, err = getDeployment(tx, btoi(v))
		return err
	})
	return d, err
}

// Hosts returns every host's record, by name.
func (s *Store) Hosts() (map[string]deployer.HostRecord, error) {
	out := map[string]deployer.HostRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHosts).ForEach(func(k, v []byte) error {
			var h deployer.HostRecord
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("store: host %q: %w", k, err)
			}
			out[string(k)] = h
			return nil
		})
	})
	return out, err
}

// UpdateHosts applies mutate to each named host's record (a record with
// only Name set when there is none) and stores them, in one transaction.
func (s *Store) UpdateHosts(names []string, mutate func(*deployer.HostRecord)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHosts)
		for _, name := range names {
			h := deployer.HostRecord{}
			if v := b.Get([]byte(name)); v != nil {
				if err := json.Unmarshal(v, &h); err != nil {
					return fmt.Errorf("store: host %q: %w", name, err)
				}
			}
			h.Name = name
			mutate(&h)
			h.Name = name
			v, err := json.Marshal(h)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(name), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// ChatRoot returns the handle an adapter stored for deployment id's root
// message ("" when none).
func (s *Store) ChatRoot(adapter string, id int64) (string, error) {
	var out string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChatRoots).Bucket([]byte(adapter))
		if b == nil {
			return nil
		}
		out = string(b.Get(itob(id)))
		return nil
	})
	return out, err
}

// SetChatRoot records the handle of deployment id's root message in an
// adapter's chat.
func (s *Store) SetChatRoot(adapter string, id int64, handle string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketChatRoots).CreateBucketIfNotExists([]byte(adapter))
		if err != nil {
			return err
		}
		return b.Put(itob(id), []byte(handle))
	})
}
