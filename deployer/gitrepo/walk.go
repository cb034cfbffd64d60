package gitrepo

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxWalk bounds every history walk, in commits loaded. It is a variable
// only so that tests can lower it.
//
// Why a bound: a person types the refs. A typo that happens to name a
// commit on a long-diverged branch, an ancient commit, or an unrelated
// history would otherwise make the bot walk hundreds of thousands of
// commits while the channel waits, holding the staging repo's lock. No
// backport legitimately spans anywhere near this many commits, so hitting
// the bound is reported to the person as a refusal ("too far apart")
// instead of being waited out.
var maxWalk = 10000

// errTooFar is returned when a walk hits maxWalk.
var errTooFar = errors.New("gitrepo: history walk exceeded its bound")

// slop is how many extra commits a walk examines once only excluded
// commits are left, before it trusts commit dates to say that nothing
// excluded can still reach an included commit. It is git's own rule
// (revision.c, limit_list/still_interesting, SLOP = 5), which tolerates
// the clock skew real histories have.
const slop = 5

// walk computes the commits reachable from a set of included commits but
// not from a set of excluded ones (git's `include ^exclude`), the way
// `git rev-list` does: newest first by committer date, propagating
// "excluded" (bad) down through every commit it reaches, and stopping once
// only excluded commits are left to look at.
//
// It works on decoded commits held in nodes, which also serves as the
// visited set: no commit is loaded or expanded twice, so merges cannot make
// it loop or blow up. go-git's own commit iterators walk from one side
// only; `include ^exclude` needs both sides in one date-ordered queue, so
// the walk is built here on object.GetCommit.
type walk struct {
	ctx   context.Context
	s     storer.EncodedObjectStorer
	limit int
	nodes map[plumbing.Hash]*node
	q     nodeQueue
	// exclude holds the excluded starting points; hit records those found
	// as a parent of an included commit, i.e. reachable from include.
	exclude map[plumbing.Hash]bool
	hit     map[plumbing.Hash]bool
	// stop, if set, ends the walk early (checked after every included
	// commit is expanded).
	stop func() bool
}

type node struct {
	c        *object.Commit
	when     time.Time
	bad      bool // reachable from an excluded commit
	queued   bool
	expanded bool
}

func newWalk(ctx context.Context, s storer.EncodedObjectStorer) *walk {
	return &walk{
		ctx:     ctx,
		s:       s,
		limit:   maxWalk,
		nodes:   map[plumbing.Hash]*node{},
		exclude: map[plumbing.Hash]bool{},
		hit:     map[plumbing.Hash]bool{},
	}
}

func (w *walk) get(h plumbing.Hash) (*node, error) {
	if n := w.nodes[h]; n != nil {
		return n, nil
	}
	if len(w.nodes) >= w.limit {
		return nil, errTooFar
	}
	c, err := object.GetCommit(w.s, h)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: commit %s: %w", h, err)
	}
	n := &node{c: c, when: c.Committer.When}
	w.nodes[h] = n
	return n, nil
}

func (w *walk) push(n *node) {
	if !n.queued && !n.expanded {
		n.queued = true
		heap.Push(&w.q, n)
	}
}

// markBad flags n and every commit already known below it as excluded.
func (w *walk) markBad(n *node) {
	stack := []*node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.bad {
			continue
		}
		n.bad = true
		if !n.expanded {
			continue // its parents inherit the flag when it is expanded
		}
		for _, p := range n.c.ParentHashes {
			if pn := w.nodes[p]; pn != nil && !pn.bad {
				stack = append(stack, pn)
			}
		}
	}
}

// run walks from include, excluding everything reachable from exclude.
func (w *walk) run(include, exclude []plumbing.Hash) error {
	for _, h := range exclude {
		n, err := w.get(h)
		if err != nil {
			return err
		}
		w.exclude[h] = true
		w.markBad(n)
		w.push(n)
	}
	for _, h := range include {
		n, err := w.get(h)
		if err != nil {
			return err
		}
		w.push(n)
	}

	var lastGood time.Time // date of the last included commit expanded
	seenGood := false
	left := slop
	for w.q.Len() > 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		n := heap.Pop(&w.q).(*node)
		n.queued = false
		n.expanded = true
		for _, p := range n.c.ParentHashes {
			pn, err := w.get(p)
			if err != nil {
				return err
			}
			if n.bad {
				w.markBad(pn)
			} else if w.exclude[p] {
				w.hit[p] = true
			}
			w.push(pn)
		}
		if !n.bad {
			seenGood, lastGood = true, n.when
			if w.stop != nil && w.stop() {
				return nil
			}
			continue
		}
		// Only excluded commits may be left: give the dates a few more
		// commits to prove that nothing excluded lies above what we kept.
		switch {
		case w.anyGood():
			left = slop
		case seenGood && w.q.Len() > 0 && !w.q.ns[0].when.Before(lastGood):
			left = slop
		default:
			left--
		}
		if left == 0 {
			break
		}
	}
	return nil
}

func (w *walk) anyGood() bool {
	for _, n := range w.q.ns {
		if !n.bad {
			return true
		}
	}
	return false
}

// good reports whether h was reached and is not reachable from exclude.
func (w *walk) good(h plumbing.Hash) bool {
	n := w.nodes[h]
	return n != nil && !n.bad
}

// below returns the included commits reachable from h (h among them),
// following only included commits. Every commit of include ^exclude that
// h reaches is found this way: a path from h to such a commit cannot pass
// through an excluded commit, or the commit would be excluded too.
func (w *walk) below(h plumbing.Hash) map[plumbing.Hash]*node {
	out := map[plumbing.Hash]*node{}
	if !w.good(h) {
		return out
	}
	stack := []plumbing.Hash{h}
	out[h] = w.nodes[h]
	for len(stack) > 0 {
		n := w.nodes[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		for _, p := range n.c.ParentHashes {
			if _, ok := out[p]; !ok && w.good(p) {
				out[p] = w.nodes[p]
				stack = append(stack, p)
			}
		}
	}
	return out
}

// oldestFirst orders commits so that every commit comes after its parents
// in the set, and otherwise by committer date, oldest first (then hash, so
// the order is stable).
func oldestFirst(set map[plumbing.Hash]*node) []*object.Commit {
	children := map[plumbing.Hash]int{} // in-set parents not yet emitted
	kids := map[plumbing.Hash][]plumbing.Hash{}
	var ready nodeQueue
	ready.oldest = true
	for h, n := range set {
		for _, p := range n.c.ParentHashes {
			if _, ok := set[p]; ok {
				children[h]++
				kids[p] = append(kids[p], h)
			}
		}
	}
	for h, n := range set {
		if children[h] == 0 {
			heap.Push(&ready, n)
		}
	}
	out := make([]*object.Commit, 0, len(set))
	for ready.Len() > 0 {
		n := heap.Pop(&ready).(*node)
		out = append(out, n.c)
		for _, k := range kids[n.c.Hash] {
			if children[k]--; children[k] == 0 {
				heap.Push(&ready, set[k])
			}
		}
	}
	return out
}

// reaches reports whether target is reachable from any of heads. It is
// exact whatever the commit dates say: the walk excludes target's
// ancestors, so every commit on a path from a head to target stays
// included and is expanded before the walk can end. It stops as soon as
// target turns up.
func reaches(ctx context.Context, s storer.EncodedObjectStorer, heads []plumbing.Hash, target plumbing.Hash) (bool, error) {
	for _, h := range heads {
		if h == target {
			return true, nil
		}
	}
	if len(heads) == 0 {
		return false, nil
	}
	w := newWalk(ctx, s)
	w.stop = func() bool { return w.hit[target] }
	if err := w.run(heads, []plumbing.Hash{target}); err != nil {
		return false, err
	}
	return w.hit[target], nil
}

// nodeQueue is a heap of nodes by committer date: newest first, or oldest
// first when oldest is set. Ties go by hash so walks are deterministic.
type nodeQueue struct {
	ns     []*node
	oldest bool
}

func (q nodeQueue) Len() int { return len(q.ns) }
func (q nodeQueue) Less(i, j int) bool {
	a, b := q.ns[i], q.ns[j]
	if !a.when.Equal(b.when) {
		return a.when.After(b.when) != q.oldest
	}
	return bytes.Compare(a.c.Hash[:], b.c.Hash[:]) < 0
}
func (q nodeQueue) Swap(i, j int) {
	q.ns[i], q.ns[j] = q.ns[j], q.ns[i]
}
func (q *nodeQueue) Push(x any) {
	q.ns = append(q.ns, x.(*node))
}
func (q *nodeQueue) Pop() any {
	n := q.ns[len(q.ns)-1]
	q.ns = q.ns[:len(q.ns)-1]
	return n
}
