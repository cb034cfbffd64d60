package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/deployer"
)

// Backport windows' lists live in their own buckets, created on first use
// (so files written before windows existed need no new layout version):
//
//	windows/        window key (its start, RFC 3339 UTC) -> JSON list of
//	                deployer.WindowItem, in the order they were added
//	windows-opened/ window key -> empty; the opening was announced
var (
	bucketWindows       = []byte("windows")
	bucketWindowsOpened = []byte("windows-opened")
)

var _ deployer.WindowStore = (*Store)(nil)

// WindowList returns the list of the window key.
func (s *Store) WindowList(key string) ([]deployer.WindowItem, error) {
	var out []deployer.WindowItem
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWindows)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &out); err != nil {
			return fmt.Errorf("store: window %s: %w", key, err)
		}
		return nil
	})
	return out, err
}

// UpdateWindowList replaces the list of window key with what mutate
// returns, in one transaction.
func (s *Store) UpdateWindowList(key string, mutate func([]deployer.WindowItem) ([]deployer.WindowItem, error)) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketWindows)
		if err != nil {
			return err
		}
		var items []deployer.WindowItem
		if v := b.Get([]byte(key)); v != nil {
			if err := json.Unmarshal(v, &items); err != nil {
				return fmt.Errorf("store: window %s: %w", key, err)
			}
		}
		items, err = mutate(items)
		if err != nil {
			return err
		}
		v, err := json.Marshal(items)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
}

// MarkWindowOpened records that window key's opening was announced; it
// returns false when it already was.
func (s *Store) MarkWindowOpened(key string) (bool, error) {
	first := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketWindowsOpened)
		if err != nil {
			return err
		}
		if b.Get([]byte(key)) != nil {
			return nil
		}
		first = true
		return b.Put([]byte(key), []byte{})
	})
	return first, err
}
