package main

// make bench-batch: a backport window of eight changes, one of them bad,
// deployed one change at a time and as one batch with bisection, on local
// two-slot hosts (one testserver, two canaries, three production hosts,
// as in the demo) with short canary windows. It prints wall time and the
// canary hosts' exposure to the bad change (host-seconds serving it).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

type batchRun struct {
	wall     time.Duration
	exposure time.Duration // canary host-time serving the bad change
	windows  int           // canary windows judged
	shipped  int
	rounds   int
}

const benchSample = 10 * time.Millisecond

// runWindow deploys kinds (in upstream order) as a batch or one by one,
// answering every verification prompt at once.
func runWindow(b *testing.B, batch bool, kinds []string) batchRun {
	w := newWorldWith(b, worldOptions{batch: batch})
	defer w.close(b.Failed())
	w.settle()
	var cs []*modelChange
	for _, k := range kinds {
		cs = append(cs, w.commit(k))
	}
	hw := watchHosts(w, benchSample)
	start := time.Now()
	var ids []int64
	if batch {
		w.say("alice", "!backport --batch "+refs(cs))
		ids = append(ids, w.waitVerifyAndFinish(b))
	} else {
		for _, c := range cs {
			w.say("alice", "!backport "+c.commit[:10])
			ids = append(ids, w.waitVerifyAndFinish(b))
		}
	}
	run := batchRun{wall: time.Since(start)}
	close(hw.stop)
	<-hw.done
	run.exposure = time.Duration(hw.badCan.Load()) * benchSample
	for _, id := range ids {
		d, _ := w.m.Store.Get(id)
		if d.State == deployer.StateDone {
			run.shipped += len(d.Changes)
		}
		for _, v := range d.Verdicts {
			if v.Stage == deployer.Canaries {
				run.windows++
			}
		}
		if d.Bisect != nil {
			run.rounds = d.Bisect.Round
		}
	}
	return run
}

// waitVerifyAndFinish answers the latest deployment's verification
// prompt as soon as it appears and waits for it to finish.
func (w *world) waitVerifyAndFinish(b *testing.B) int64 {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var id int64
	verified := false
	for time.Now().Before(deadline) {
		id = w.lastID()
		d, err := w.m.Store.Get(id)
		if err == nil {
			if d.State == deployer.StateAwaitingVerification && !verified {
				w.say("bob", "verified")
				verified = true
			}
			if d.State.Finished() {
				return id
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("#%d did not finish", id)
	return 0
}

func BenchmarkBatchWindow(b *testing.B) {
	saved := modelTimings
	defer func() { modelTimings = saved }()
	modelTimings.window, modelTimings.interval, modelTimings.watch = "1s", "50ms", "500ms"
	kinds := func(bad int) []string {
		k := make([]string, 8)
		for i := range k {
			k[i] = kindGood
		}
		k[bad] = kindBad
		return k
	}
	type row struct {
		name string
		r    batchRun
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		rows = append(rows,
			row{"one at a time, bad change 8th", runWindow(b, false, kinds(7))},
			row{"batch + bisection, bad change 8th", runWindow(b, true, kinds(7))},
			row{"batch + bisection, bad change 2nd", runWindow(b, true, kinds(1))},
		)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nA window of 8 changes, 1 bad; canary window 1s, production watch 500ms, verification answered at once\n")
	fmt.Fprintf(&out, "%-36s %10s %12s %14s %8s %8s\n", "", "wall", "vs one-by-one", "canary exposure", "windows", "shipped")
	base := rows[0].r.wall
	for _, r := range rows {
		fmt.Fprintf(&out, "%-36s %10s %12.0f%% %14s %8d %8d\n", r.name, r.r.wall.Round(10*time.Millisecond), 100*float64(r.r.wall)/float64(base),
			r.r.exposure.Round(10*time.Millisecond), r.r.windows, r.r.shipped)
	}
	fmt.Print(out.String())
}
