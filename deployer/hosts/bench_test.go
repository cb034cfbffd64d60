package hosts

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// genSource serves commits "g0", "g1", ... of one large tree in which only
// the file "d000/f000" changes, holding the generation number. Diff between
// two generations is that one file, computed without comparing 50,000
// entries, as git's tree diff skips unchanged subtrees: the benchmark
// measures the host, not the source.
type genSource struct{ dirs, files int }

func (s genSource) content(p string, gen int) string {
	if p == "d000/f000" {
		return fmt.Sprintf("generation %d\n", gen)
	}
	return "contents of " + p + "\n"
}

func (s genSource) change(p string, gen int) deployer.FileChange {
	data := s.content(p, gen)
	return deployer.FileChange{Path: p, Mode: deployer.ModeRegular, Hash: blobHash(data), Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(data)), nil }}
}

func (s genSource) Diff(ctx context.Context, from, to string) ([]deployer.FileChange, error) {
	gen, err := strconv.Atoi(strings.TrimPrefix(to, "g"))
	if err != nil {
		return nil, err
	}
	if from == "" {
		out := make([]deployer.FileChange, 0, s.dirs*s.files)
		for d := range s.dirs {
			for f := range s.files {
				out = append(out, s.change(fmt.Sprintf("d%03d/f%03d", d, f), gen))
			}
		}
		return out, nil
	}
	if from == to {
		return nil, nil
	}
	return []deployer.FileChange{s.change("d000/f000", gen)}, nil
}

// BenchmarkSyncOneFileIn50k measures one deployment of a one-file change to
// a 50,000-file tree (500 directories of 100 files): the inactive slot holds
// the previous commit, so the sync writes one file, flushes, records the
// marker and flips.
func BenchmarkSyncOneFileIn50k(b *testing.B) {
	src := genSource{dirs: 500, files: 100}
	h := newHost(b)
	ctx := context.Background()
	for _, c := range []string{"g0", "g1"} {
		if res, err := h.SyncReport(ctx, c, src); err != nil || res.Written != 50000 {
			b.Fatalf("setup sync %s: %+v, %v", c, res, err)
		}
	}
	gen := 2
	for b.Loop() {
		res, err := h.SyncReport(ctx, fmt.Sprintf("g%d", gen), src)
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != SyncIncremental || res.Written != 1 {
			b.Fatalf("sync g%d: %+v", gen, res)
		}
		gen++
	}
}
