package hosts

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/deploybot/deploybot/deployer"
)

// memFile is one file of an in-memory tree.
type memFile struct {
	data string // contents, or a symlink's target
	mode deployer.FileMode
}

func file(s string) memFile { return memFile{data: s, mode: deployer.ModeRegular} }
func exe(s string) memFile  { return memFile{data: s, mode: deployer.ModeExecutable} }
func link(s string) memFile { return memFile{data: s, mode: deployer.ModeSymlink} }

// tree maps slash-separated paths to files, like a git tree flattened.
type tree map[string]memFile

// with returns a copy of t with changes applied; a zero memFile deletes.
func (t tree) with(changes tree) tree {
	out := make(tree, len(t)+len(changes))
	for p, f := range t {
		out[p] = f
	}
	for p, f := range changes {
		if f == (memFile{}) {
			delete(out, p)
		} else {
			out[p] = f
		}
	}
	return out
}

// memSource is a deployer.TreeSource over in-memory trees, one per commit
// name, computing Diff by comparing the maps. It counts Diff and Open
// calls, so tests can tell how much a sync read.
type memSource struct {
	mu      sync.Mutex
	commits map[string]tree
	noHash  bool // leave FileChange.Hash empty (VerifyTree then compares bytes)

	diffs atomic.Int64
	opens atomic.Int64
}

func newSource(commits map[string]tree) *memSource {
	return &memSource{commits: commits}
}

func (s *memSource) add(name string, t tree) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits[name] = t
}

func (s *memSource) resetCounts() {
	s.diffs.Store(0)
	s.opens.Store(0)
}

func blobHash(data string) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(data), data)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *memSource) Diff(ctx context.Context, from, to string) ([]deployer.FileChange, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.diffs.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := tree{}
	if from != "" {
		t, ok := s.commits[from]
		if !ok {
			return nil, fmt.Errorf("memsource: unknown commit %q", from)
		}
		a = t
	}
	b, ok := s.commits[to]
	if !ok {
		return nil, fmt.Errorf("memsource: unknown commit %q", to)
	}
	var out []deployer.FileChange
	for p, f := range b {
		if old, ok := a[p]; ok && old == f {
			continue
		}
		out = append(out, s.change(p, f))
	}
	for p := range a {
		if _, ok := b[p]; !ok {
			out = append(out, deployer.FileChange{Path: p, Delete: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (s *memSource) change(p string, f memFile) deployer.FileChange {
	c := deployer.FileChange{
		Path: p,
		Mode: f.mode,
		Size: int64(len(f.data)),
		Open: func() (io.ReadCloser, error) {
			s.opens.Add(1)
			return io.NopCloser(strings.NewReader(f.data)), nil
		},
	}
	if !s.noHash {
		c.Hash = blobHash(f.data)
	}
	return c
}

// flaky wraps a TreeSource so that Open fails after the first after calls,
// as a sync cut short by a crash or a lost connection would.
type flaky struct {
	src   deployer.TreeSource
	after int64
	n     atomic.Int64
	// hook, when set, runs instead of failing (e.g. to cancel a context).
	hook func()
}

var errFlaky = errors.New("source went away")

func (f *flaky) Diff(ctx context.Context, from, to string) ([]deployer.FileChange, error) {
	out, err := f.src.Diff(ctx, from, to)
	for i := range out {
		open := out[i].Open
		if open == nil {
			continue
		}
		out[i].Open = func() (io.ReadCloser, error) {
			if f.n.Add(1) > f.after {
				if f.hook == nil {
					return nil, errFlaky
				}
				f.hook()
			}
			return open()
		}
	}
	return out, err
}
