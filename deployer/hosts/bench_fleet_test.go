package hosts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/internal/testparts"
)

// benchVersion names the cached benchmark repository; change it when the
// trees below change.
const benchVersion = "deploybot-bench-v1"

// benchCommits are the commits of the cached benchmark repository.
type benchCommits struct {
	// One is a chain from the 50,000-file tree in which one file
	// (d250/f050.php) changes at every commit; Thousand continues from its
	// end with the same 1,000 files (two per directory) changing at every
	// commit. Syncing commit i after i-1 writes what differs from i-2:
	// exactly the one, or the 1,000, files.
	One, Thousand []string
	// Small is a chain over a 500-file tree in which the same 10 files
	// change at every commit: the fleet benchmarks.
	Small []string
}

func bigFile(d, f, gen int) memFile {
	head := fmt.Sprintf("<?php\n// d%03d/f%03d.php, generation %d\n", d, f, gen)
	return file(head + strings.Repeat("// padding to a typical small source file\n", 5))
}

// benchRepo opens the staging repository the benchmarks sync from. Building
// it (three chains of commits over a 50,000-file tree, written with go-git
// as one pack) takes a while, so it is cached in os.TempDir() under
// benchVersion and reused by later runs.
func benchRepo(b *testing.B, runs int) (*gitrepo.Repo, benchCommits) {
	dir := filepath.Join(os.TempDir(), benchVersion)
	index := filepath.Join(dir, "commits.json")
	var bc benchCommits
	if data, err := os.ReadFile(index); err == nil && json.Unmarshal(data, &bc) == nil && len(bc.One) >= runs+2 && len(bc.Thousand) >= runs+2 && len(bc.Small) >= runs+2 {
		fmt.Printf("using the cached benchmark repository %s\n", dir)
		return openRepo(b, filepath.Join(dir, "staging.git")), bc
	}
	start := time.Now()
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	g := newGitBuilder()
	n := runs + 4
	big := tree{}
	for d := range 500 {
		for f := range 100 {
			big[fmt.Sprintf("d%03d/f%03d.php", d, f)] = bigFile(d, f, 0)
		}
	}
	var parent plumbing.Hash
	for gen := range n {
		big["d250/f050.php"] = bigFile(250, 50, gen+1)
		parent = g.commit(b, big, parent, fmt.Sprintf("one file, generation %d", gen))
		bc.One = append(bc.One, parent.String())
	}
	for gen := range n {
		for d := range 500 {
			for _, f := range []int{10, 60} {
				big[fmt.Sprintf("d%03d/f%03d.php", d, f)] = bigFile(d, f, gen+1)
			}
		}
		parent = g.commit(b, big, parent, fmt.Sprintf("1,000 files, generation %d", gen))
		bc.Thousand = append(bc.Thousand, parent.String())
	}
	small := tree{}
	for d := range 5 {
		for f := range 100 {
			small[fmt.Sprintf("s%d/f%03d.php", d, f)] = bigFile(d, f, 0)
		}
	}
	parent = plumbing.ZeroHash
	for gen := range 3 * n {
		for f := range 10 {
			small[fmt.Sprintf("s2/f%03d.php", f*10)] = bigFile(2, f*10, gen+1)
		}
		parent = g.commit(b, small, parent, fmt.Sprintf("10 files, generation %d", gen))
		bc.Small = append(bc.Small, parent.String())
	}
	r := g.open(b, filepath.Join(dir, "staging.git"))
	data, _ := json.Marshal(bc)
	if err := os.WriteFile(index, data, 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("built the benchmark repository %s in %s (cached for later runs)\n", dir, time.Since(start).Round(time.Second))
	return r, bc
}

// median returns the median of ds.
func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// materialize writes commit's tree into dir (which must not exist), for
// rsync.
func materialize(b *testing.B, src deployer.TreeSource, commit, dir string) {
	changes, err := src.Diff(context.Background(), "", commit)
	if err != nil {
		b.Fatal(err)
	}
	applyPlain(b, changes, dir)
}

// applyPlain applies changes to a plain directory (no slots): rsync's
// source tree moving from one commit to the next.
func applyPlain(b *testing.B, changes []deployer.FileChange, dir string) {
	for _, c := range changes {
		p := filepath.Join(dir, filepath.FromSlash(c.Path))
		if c.Delete {
			os.Remove(p)
			continue
		}
		rc, err := c.Open()
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// syncAll syncs hosts to commit, at most parallel at once, then reads back
// what each serves, as the runner does for a stage or a rollback.
func syncAll(b *testing.B, hosts []deployer.Host, commit string, src deployer.TreeSource, parallel int) time.Duration {
	start := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	errs := make(chan error, len(hosts))
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx := context.Background()
			if err := h.Sync(ctx, commit, src); err != nil {
				errs <- err
				return
			}
			if cur, err := h.Current(ctx); err != nil || cur != commit {
				errs <- fmt.Errorf("%s serves %q after the sync (%v)", h.Name(), cur, err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}

// peakRSS returns the process's peak resident set (VmHWM) since the last
// resetPeakRSS; rss its resident set now (VmRSS).
func peakRSS() string { return procStatus("VmHWM:") }
func rss() string     { return procStatus("VmRSS:") }

func procStatus(field string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "?"
}

// resetPeakRSS starts a new peak: writing 5 to clear_refs resets VmHWM
// (Linux 4.0 and later).
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func benchRuns() int {
	if n, err := strconv.Atoi(os.Getenv("DEPLOYBOT_BENCH_RUNS")); err == nil && n >= 1 {
		return n
	}
	return 5
}

func timedRun(b *testing.B, name string, args ...string) time.Duration {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

// BenchmarkFleet measures the four figures of `make bench` in one run and
// prints them as a table, each a median of several syncs, next to rsync -a
// --delete between the same two trees where there is one to compare with.
func BenchmarkFleet(b *testing.B) {
	rsync := testparts.Need(b, "rsync", "rsync")
	sshBin := testparts.Need(b, "ssh", "openssh-client")
	runs := benchRuns()
	src, bc := benchRepo(b, runs)
	d := testparts.StartSSHD(b)
	dir := b.TempDir()
	ctx := context.Background()
	sshConfig := func(root string) SSHConfig {
		return SSHConfig{Address: d.Addr, User: d.User, Root: root, KeyFile: d.KeyFile, KnownHosts: d.KnownHosts}
	}
	rsh := fmt.Sprintf("%s -p %d -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes", sshBin, d.Port, d.KeyFile, d.KnownHosts)
	remote := d.User + "@127.0.0.1:"

	// The table is printed section by section as it is measured, and whole
	// at the end.
	var out strings.Builder
	printed := 0
	flush := func() {
		fmt.Print(out.String()[printed:])
		printed = out.Len()
	}
	fmt.Fprintf(&out, "\ndeploybot make bench: %d CPUs (%s), %s, %s; medians of %d runs\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runs)

	// 1 and 2: one host, a 50,000-file tree.
	local := NewLocal("bench-local", filepath.Join(dir, "local"))
	remoteHost, err := NewSSH("bench-ssh", sshConfig(filepath.Join(dir, "ssh")))
	if err != nil {
		b.Fatal(err)
	}
	defer remoteHost.Close()
	// The same over ssh without the check that the slot is unchanged: not
	// a configuration anyone can run, only what the check costs.
	unchecked, err := NewSSH("bench-ssh-unchecked", sshConfig(filepath.Join(dir, "ssh-unchecked")))
	if err != nil {
		b.Fatal(err)
	}
	defer unchecked.Close()
	unchecked.skipSlotCheck = true
	setup := time.Now()
	for _, c := range bc.One[:2] {
		if _, err := local.SyncReport(ctx, c, src); err != nil {
			b.Fatal(err)
		}
		if _, err := remoteHost.SyncReport(ctx, c, src); err != nil {
			b.Fatal(err)
		}
		if _, err := unchecked.SyncReport(ctx, c, src); err != nil {
			b.Fatal(err)
		}
	}
	rsSrc, rsLocal, rsSSH := filepath.Join(dir, "rsync-src"), filepath.Join(dir, "rsync-local"), filepath.Join(dir, "rsync-ssh")
	materialize(b, src, bc.One[1], rsSrc)
	timedRun(b, rsync, "-a", "--delete", rsSrc+"/", rsLocal+"/")
	timedRun(b, rsync, "-a", "--delete", "-e", rsh, rsSrc+"/", remote+rsSSH+"/")
	fmt.Printf("set up two 50,000-file hosts and two rsync copies in %s\n", time.Since(setup).Round(time.Second))

	type figure struct {
		ours, rsync []time.Duration
		bytes       int64
		written     int
	}
	var uncheckedRuns []time.Duration
	measure := func(chain []string, what string) (loc, ssh figure) {
		prev := chain[1]
		for i := 2; i < runs+2; i++ {
			c := chain[i]
			changes, err := src.Diff(ctx, prev, c)
			if err != nil {
				b.Fatal(err)
			}
			applyPlain(b, changes, rsSrc)
			prev = c

			start := time.Now()
			r, err := local.SyncReport(ctx, c, src)
			loc.ours = append(loc.ours, time.Since(start))
			if err != nil || r.Action != SyncIncremental {
				b.Fatalf("local sync %s: %+v, %v", what, r, err)
			}
			loc.written = r.Written
			loc.rsync = append(loc.rsync, timedRun(b, rsync, "-a", "--delete", rsSrc+"/", rsLocal+"/"))

			start = time.Now()
			rr, err := remoteHost.SyncReport(ctx, c, src)
			ssh.ours = append(ssh.ours, time.Since(start))
			if err != nil || rr.Action != SyncIncremental {
				b.Fatalf("ssh sync %s: %+v, %v", what, rr, err)
			}
			ssh.written, ssh.bytes = rr.Written, rr.Bytes
			ssh.rsync = append(ssh.rsync, timedRun(b, rsync, "-a", "--delete", "-e", rsh, rsSrc+"/", remote+rsSSH+"/"))

			if what == "one-file" {
				start = time.Now()
				ru, err := unchecked.SyncReport(ctx, c, src)
				uncheckedRuns = append(uncheckedRuns, time.Since(start))
				if err != nil || ru.Action != SyncIncremental {
					b.Fatalf("unchecked ssh sync: %+v, %v", ru, err)
				}
			}
		}
		// The copies must be what the commit holds, or the timings mean
		// nothing.
		for _, dst := range []string{rsLocal, rsSSH, filepath.Join(local.Root(), "current"), filepath.Join(remoteHost.Root(), "current")} {
			if err := VerifyTree(ctx, dst, prev, src); err != nil {
				b.Fatalf("after the %s runs: %v", what, err)
			}
		}
		return loc, ssh
	}
	row := func(label string, f figure) float64 {
		o, r := medianOf(f.ours), medianOf(f.rsync)
		ratio := float64(r) / float64(o)
		fmt.Fprintf(&out, "   %-26s %10s %14s %9.1fx   (%d files written", label, o.Round(10*time.Microsecond), r.Round(10*time.Microsecond), ratio, f.written)
		if f.bytes > 0 {
			fmt.Fprintf(&out, ", %d bytes sent", f.bytes)
		}
		fmt.Fprintln(&out, ")")
		return ratio
	}
	fmt.Fprintf(&out, "\n1. one-file change into a 50,000-file tree (500 dirs x 100 files), per host\n")
	fmt.Fprintf(&out, "   %-26s %10s %14s %10s\n", "", "deploybot", "rsync -a --del", "ratio")
	l1, s1 := measure(bc.One, "one-file")
	b.ReportMetric(row("local", l1), "x-local-1file")
	b.ReportMetric(row("over ssh to 127.0.0.1", s1), "x-ssh-1file")
	row("  the same, no slot check", figure{ours: uncheckedRuns, rsync: s1.rsync, written: s1.written, bytes: s1.bytes})
	// Where an ssh sync's time goes: every remote command starts the
	// user's login shell, and the slot check stats every entry.
	var shell, check []time.Duration
	inactive := "a"
	if remoteHost.known.active == "a" {
		inactive = "b"
	}
	token := remoteHost.known.tokens[slotIndex(inactive)]
	for range runs {
		start := time.Now()
		if _, err := remoteHost.Run(ctx, []string{"true"}); err != nil {
			b.Fatal(err)
		}
		shell = append(shell, time.Since(start))
		start = time.Now()
		// The sync script's own check, run alone.
		if err := remoteHost.run(ctx, shellCommand(scriptLib+`cd -- "$1" && unchanged "$2" "$3"`, remoteHost.Root(), inactive, token), nil, nil); err != nil {
			b.Fatalf("slot check: %v", err)
		}
		check = append(check, time.Since(start))
	}
	fmt.Fprintf(&out, "   (over ssh, each remote command costs %s here: sshd starts the user's login shell, and root's ~/.bashrc on this machine runs pyenv init; rsync pays it once per run too. The check that the slot is unchanged, a stat of 50,000 entries, adds %s.)\n",
		medianOf(shell).Round(100*time.Microsecond), (medianOf(check) - medianOf(shell)).Round(100*time.Microsecond))
	flush()

	// The Thousand chain continues from One's end; two unmeasured syncs
	// put both slots on it.
	for _, c := range bc.Thousand[:2] {
		if _, err := local.SyncReport(ctx, c, src); err != nil {
			b.Fatal(err)
		}
		if _, err := remoteHost.SyncReport(ctx, c, src); err != nil {
			b.Fatal(err)
		}
	}
	changes, err := src.Diff(ctx, bc.One[runs+1], bc.Thousand[1])
	if err != nil {
		b.Fatal(err)
	}
	applyPlain(b, changes, rsSrc)
	timedRun(b, rsync, "-a", "--delete", rsSrc+"/", rsLocal+"/")
	timedRun(b, rsync, "-a", "--delete", "-e", rsh, rsSrc+"/", remote+rsSSH+"/")
	fmt.Fprintf(&out, "\n2. 1,000-file change into the same tree, per host\n")
	l2, s2 := measure(bc.Thousand, "1,000-file")
	b.ReportMetric(row("local", l2), "x-local-1000files")
	b.ReportMetric(row("over ssh to 127.0.0.1", s2), "x-ssh-1000files")
	growth := func(a, b figure) string {
		return fmt.Sprintf("deploybot %.1fx, rsync %.1fx", float64(medianOf(b.ours))/float64(medianOf(a.ours)), float64(medianOf(b.rsync))/float64(medianOf(a.rsync)))
	}
	fmt.Fprintf(&out, "   1,000 files cost / 1 file cost: local %s; over ssh %s\n", growth(l1, l2), growth(s1, s2))
	flush()

	// 3 and 4: fleets of hosts over the 500-file tree.
	fleet := func(n int, ssh bool) []deployer.Host {
		var hs []deployer.Host
		os.MkdirAll(filepath.Join(dir, "ssh-fleet"), 0o755)
		os.MkdirAll(filepath.Join(dir, "fleet"), 0o755)
		for i := range n {
			name := fmt.Sprintf("mw%04d", i)
			if ssh {
				h, err := NewSSH(name, sshConfig(filepath.Join(dir, "ssh-fleet", name)))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { h.Close() })
				hs = append(hs, h)
			} else {
				hs = append(hs, NewLocal(name, filepath.Join(dir, "fleet", name)))
			}
		}
		for _, c := range bc.Small[:2] {
			syncAll(b, hs, c, src, 10)
		}
		return hs
	}
	setup = time.Now()
	locals := fleet(200, false)
	fmt.Printf("set up 200 local hosts in %s\n", time.Since(setup).Round(time.Second))

	// 3: each rollback flips 100 hosts back to the commit their other slot
	// holds; between rollbacks they are flipped forward again.
	var rollbacks []time.Duration
	for range runs {
		rollbacks = append(rollbacks, syncAll(b, locals[:100], bc.Small[0], src, 10))
		syncAll(b, locals[:100], bc.Small[1], src, 10)
	}
	rb := medianOf(rollbacks)
	fmt.Fprintf(&out, "\n3. rollback of a deployment on 100 local hosts (flip + read back, 10 at a time): %s wall (goal < 1s)\n", rb.Round(100*time.Microsecond))
	b.ReportMetric(float64(rb.Microseconds())/1000, "ms-rollback-100")
	flush()

	// 4: a 10-file change to every host of a fleet, 10 at a time.
	fmt.Fprintf(&out, "\n4. a 10-file change to a fleet (10 hosts at a time), wall time and the process's peak RSS\n")
	deploy := func(label string, hs []deployer.Host) {
		resetPeakRSS()
		before := rss()
		var walls []time.Duration
		for i := 2; i < runs+2; i++ {
			walls = append(walls, syncAll(b, hs, bc.Small[i], src, 10))
		}
		fmt.Fprintf(&out, "   %-22s %10s wall, peak RSS %s (%s before)\n", label, medianOf(walls).Round(100*time.Microsecond), peakRSS(), before)
		b.ReportMetric(float64(medianOf(walls).Microseconds())/1000, "ms-"+strings.ReplaceAll(label, " ", "-"))
		flush()
	}
	deploy("200 local hosts", locals)
	setup = time.Now()
	remotes := fleet(20, true)
	fmt.Printf("set up 20 ssh hosts in %s\n", time.Since(setup).Round(time.Second))
	deploy("20 ssh hosts", remotes)

	fmt.Print("\n--- the whole table ---", out.String())
}
