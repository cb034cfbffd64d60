package slack

import (
	"container/list"
	"sync"
)

// seen remembers the most recent keys (envelope ids, message timestamps)
// so that a delivery Slack repeats is acted on once. Slack retries an
// envelope whose acknowledgement came late, sometimes under a new envelope
// id, so both the envelope and the event it carries are remembered. It is
// bounded: the least recently seen key is forgotten first, which is safe
// because Slack retries only for a few minutes.
type seen struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recent
	keys  map[string]*list.Element
}

func newSeen(max int) *seen {
	return &seen{max: max, order: list.New(), keys: make(map[string]*list.Element, max)}
}

// add records key and reports whether it is new.
func (s *seen) add(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.keys[key]; ok {
		s.order.MoveToFront(e)
		return false
	}
	s.keys[key] = s.order.PushFront(key)
	for s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.keys, old.Value.(string))
	}
	return true
}
