package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// This file holds what the runner knows and does about hosts outside the
// steps of one deployment: syncing a set of hosts and recording what each
// one serves (the store's host records are the one home of that fact), the
// start-up check, `sync` of hosts that fell behind, and repooling.

func hostNames(hs []Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name()
	}
	return out
}

// hostResult is what syncing one host came to.
type hostResult struct {
	err    error  // nil when the host serves the commit, read back
	serves string // what it was read back serving afterwards
	known  bool   // serves was read back (false: the host could not be read)
}

// PlainError is implemented by host errors that can say what went wrong in
// words for the channel (the full chain goes to the log).
type PlainError interface {
	Plain() string
}

// plainHostError is what the channel reads about a failed host.
func plainHostError(err error) string {
	var pe PlainError
	if errors.As(err, &pe) {
		return pe.Plain()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return short(err.Error())
}

// syncHosts syncs hosts to commit with at most cfg.Parallel at once,
// retrying each failure cfg.SyncRetries times, and reads back what each
// host serves afterwards. Before the syncs start, every host's record gets
// Target = commit; afterwards it holds what the host was read back serving.
// It returns the hosts that do not serve commit, with why.
func (r *Runner) syncHosts(ctx context.Context, log *slog.Logger, id int64, hosts []Host, commit string) map[string]error {
	// Hosts, hooks and pools log through ctx's logger, so their lines
	// about this deployment carry its id too.
	ctx = WithLogger(ctx, log)
	names := hostNames(hosts)
	if err := r.Store.UpdateHosts(names, func(h *HostRecord) { h.Target, h.Deployment = commit, id }); err != nil {
		failed := map[string]error{}
		for _, n := range names {
			failed[n] = &recordError{err}
		}
		return failed
	}
	var (
		mu      sync.Mutex
		results = map[string]hostResult{}
		wg      sync.WaitGroup
		sem     = make(chan struct{}, r.cfg.Parallel)
	)
	for _, h := range hosts {
		wg.Add(1)
		go func(h Host) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res := r.syncOne(ctx, log, h, commit)
			mu.Lock()
			results[h.Name()] = res
			mu.Unlock()
		}(h)
	}
	wg.Wait()
	failed := map[string]error{}
	for n, res := range results {
		if res.err != nil {
			failed[n] = res.err
		}
	}
	now := r.Now()
	if err := r.Store.UpdateHosts(names, func(h *HostRecord) {
		res := results[h.Name]
		h.Time = now
		if !res.known {
			h.Unknown = true
			return
		}
		h.Commit, h.Target, h.Unknown = res.serves, "", false
		if res.err == nil {
			h.Behind = ""
		}
	}); err != nil {
		log.Error("recording what the hosts serve failed", "err", err)
		for _, n := range names {
			if failed[n] == nil {
				failed[n] = &recordError{err}
			}
		}
	}
	return failed
}

// recordError is a sync the store could not record (the bot's own disk,
// not the host, failed): the host may be fine.
type recordError struct{ err error }

func (e *recordError) Error() string { return "recording the sync failed: " + e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// syncOne syncs one host, with retries, and reads it back.
func (r *Runner) syncOne(ctx context.Context, log *slog.Logger, h Host, commit string) hostResult {
	var err error
	for attempt := 0; attempt <= r.cfg.SyncRetries; attempt++ {
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		start := r.Now()
		if err = h.Sync(ctx, commit, r.Staging); err == nil {
			var cur string
			if cur, err = h.Current(ctx); err == nil && cur != commit {
				err = fmt.Errorf("host serves %.10s after the sync, not %.10s", cur, commit)
			}
		}
		if err == nil {
			log.Info("host synced", "host", h.Name(), "commit", commit, "took", r.Now().Sub(start).Round(time.Millisecond).String())
			return hostResult{serves: commit, known: true}
		}
		log.Warn("host sync failed", "host", h.Name(), "commit", commit, "attempt", attempt+1, "err", err)
	}
	// Read back what it serves after all: the flip is atomic, so a host
	// that failed serves one whole commit, the old one as a rule.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cur, rerr := h.Current(rctx)
	if rerr != nil {
		log.Warn("host could not be read back", "host", h.Name(), "err", rerr)
		return hostResult{err: err}
	}
	return hostResult{err: err, serves: cur, known: true}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// deployedCommit is the staging commit the store says the fleet serves:
// that of the latest deployment that landed (its commit when done, its base
// when rolled back or when its rollback failed), else the staging tip (the
// baseline).
func (r *Runner) deployedCommit(ctx context.Context) (string, *Deployment, error) {
	d, err := r.Store.Landed()
	if err != nil {
		return "", nil, err
	}
	if d != nil {
		if d.State == StateDone {
			return d.Commit, d, nil
		}
		return d.Base, d, nil
	}
	// Nothing landed yet: the fleet serves the baseline. While the first
	// deployment runs, the staging tip is its commit, not the baseline;
	// its base is.
	a, err := r.Active()
	if err != nil {
		return "", nil, err
	}
	if a != nil && a.Base != "" {
		return a.Base, nil, nil
	}
	head, _, err := r.Staging.Head(ctx)
	return head, nil, err
}

// Serving follows rolled-back deployments back from d, a deployment that
// decided what the fleet serves (Store.Landed), to the one whose outcome
// the fleet serves now: d itself unless it was rolled back, else the first
// before it that was not (done, or a rollback that failed), or nil for the
// baseline. A rolled-back deployment left the fleet on its base, which is
// that earlier one's outcome. Every answer to "what is the fleet back on"
// comes from here.
func (r *Runner) Serving(d *Deployment) (*Deployment, error) {
	for seen := 0; d != nil && d.State == StateRolledBack; seen++ {
		if d.PrevDeployment == 0 {
			return nil, nil
		}
		if seen == 10000 {
			return nil, fmt.Errorf("following rolled-back deployments back from #%d: no end after %d", d.ID, seen)
		}
		var err error
		if d, err = r.Store.Get(d.PrevDeployment); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// HostView is one host as the status command shows it.
type HostView struct {
	Stage  Stage
	Record HostRecord
	// OffFleet is set when the host is not on the fleet's commit, with why
	// in words.
	OffFleet string
}

// FleetView is what the store says the fleet serves.
type FleetView struct {
	Commit string      // the staging commit the fleet serves
	Landed *Deployment // the deployment that put it there (nil: the baseline)
	Hosts  []HostView  // every configured host, in pipeline order
}

// Behind returns the hosts that are not on the fleet's commit.
func (v FleetView) Behind() []HostView {
	var out []HostView
	for _, h := range v.Hosts {
		if h.OffFleet != "" {
			out = append(out, h)
		}
	}
	return out
}

// Fleet returns what the store says each host serves, against the commit
// the fleet serves. While a deployment runs, hosts it has synced are of
// course on its commit; callers show the running deployment first.
func (r *Runner) FleetView(ctx context.Context) (FleetView, error) {
	commit, landed, err := r.deployedCommit(ctx)
	if err != nil {
		return FleetView{}, err
	}
	recs, err := r.Store.Hosts()
	if err != nil {
		return FleetView{}, err
	}
	v := FleetView{Commit: commit, Landed: landed}
	for _, st := range Stages {
		for _, h := range r.Fleet[st] {
			rec, ok := recs[h.Name()]
			if !ok {
				rec = HostRecord{Name: h.Name(), Unknown: true}
			}
			hv := HostView{Stage: st, Record: rec}
			switch {
			case !ok:
				hv.OffFleet = "not read back yet: what it serves is unknown"
			case rec.Unknown:
				hv.OffFleet = "could not be read back: what it serves is unknown"
			case rec.Target != "":
				hv.OffFleet = fmt.Sprintf("a sync to %.10s was interrupted", rec.Target)
			case rec.Commit == "":
				hv.OffFleet = "serves nothing"
			case rec.Commit != commit:
				hv.OffFleet = fmt.Sprintf("serves %.10s, not the fleet's %.10s", rec.Commit, commit)
				if rec.Behind != "" {
					hv.OffFleet += ": " + rec.Behind
				}
			}
			if rec.Depooled {
				hv.OffFleet = strings.TrimPrefix(hv.OffFleet+"; ", "; ") + fmt.Sprintf("depooled by #%d", rec.DepooledBy)
			}
			v.Hosts = append(v.Hosts, hv)
		}
	}
	return v, nil
}

// checkFleet reads back what every host serves when the bot starts,
// records it, and tells the channel about hosts that serve nothing or a
// commit other than the fleet's, and how to bring them up to date.
func (r *Runner) checkFleet(ctx context.Context) {
	hosts := r.Fleet.Hosts()
	read := map[string]hostResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.Parallel)
	for _, h := range hosts {
		wg.Add(1)
		go func(h Host) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			cur, err := h.Current(rctx)
			mu.Lock()
			read[h.Name()] = hostResult{serves: cur, known: err == nil, err: err}
			mu.Unlock()
		}(h)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	now := r.Now()
	if err := r.Store.UpdateHosts(hostNames(hosts), func(h *HostRecord) {
		res := read[h.Name]
		if !res.known {
			h.Unknown = true
			return
		}
		// A sync interrupted by the stop left the host on one whole
		// commit (the flip is atomic); a resumed deployment syncs it again.
		h.Commit, h.Target, h.Unknown, h.Time = res.serves, "", false, now
	}); err != nil {
		r.log.Error("recording what the hosts serve failed", "err", err)
		return
	}
	v, err := r.FleetView(ctx)
	if err != nil {
		r.log.Error("reading the fleet failed", "err", err)
		return
	}
	// Hosts a deployment left active by the stop has touched are its own
	// to sync or restore when it resumes: not behind, and !sync (refused
	// while it runs) is no advice for them.
	active, err := r.Active()
	if err != nil {
		r.log.Error("reading the active deployment failed", "err", err)
	}
	var behind []HostView
	var depooled []string // on the fleet's commit, but out of service
	for _, h := range v.Behind() {
		rec := h.Record
		if active != nil && contains(active.Touched, rec.Name) && !rec.Depooled {
			continue
		}
		if rec.Depooled && !rec.Unknown && rec.Target == "" && rec.Commit == v.Commit {
			depooled = append(depooled, fmt.Sprintf("%s (by #%d)", rec.Name, rec.DepooledBy))
			continue
		}
		behind = append(behind, h)
	}
	for _, h := range behind {
		r.log.Warn("host is not on the fleet's commit", "host", h.Record.Name, "serves", h.Record.Commit, "fleet", v.Commit, "why", h.OffFleet)
	}
	if len(behind) == 0 && len(depooled) == 0 {
		r.log.Info("every host serves the fleet's commit", "commit", v.Commit, "hosts", len(hosts))
		return
	}
	var text []string
	var next []Choice
	if len(behind) > 0 {
		var parts []string
		for _, h := range behind {
			parts = append(parts, h.Record.Name+" ("+h.OffFleet+")")
		}
		text = append(text, fmt.Sprintf("%d of %d hosts are not on the commit the fleet serves (%.10s): %s",
			len(behind), len(hosts), v.Commit, strings.Join(parts, ", ")))
		next = append(next, DoWith(VerbSync, "bring them up to date, stage by stage, with the smoke checks"))
	}
	if len(depooled) > 0 {
		text = append(text, fmt.Sprintf("depooled, though on the fleet's commit: %s", strings.Join(depooled, ", ")))
		first, _, _ := strings.Cut(depooled[0], " ")
		next = append(next, DoWith(VerbRepool, "put a mended host back into service", first))
	}
	r.Announcer.Announce(Notice{Kind: NoticeInfo, Text: strings.Join(text, "; "), Next: next})
}

// SyncFleet brings hosts (by name; none: every host not on the fleet's
// commit) to the commit the fleet serves, stage by stage in pipeline order,
// running each stage's smoke checks on them. It is how a reimaged or mended
// host rejoins the fleet. It refuses while a deployment runs. It returns
// lines for chat.
func (r *Runner) SyncFleet(ctx context.Context, names []string, who string) ([]string, error) {
	release, err := r.exclusive(ctx, "sync hosts")
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := r.FleetView(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range names {
		if r.Fleet.Host(n) == nil {
			return nil, Errorf(ENotFound, "there is no host %q in the configuration", n)
		}
		want[n] = true
	}
	if len(names) == 0 {
		for _, h := range v.Behind() {
			want[h.Record.Name] = true
		}
	}
	if len(want) == 0 {
		return []string{fmt.Sprintf("every host serves the fleet's commit %.10s already; nothing to sync", v.Commit)}, nil
	}
	log := r.log.With("command", "sync")
	var lines []string
	for _, st := range Stages {
		var hs []Host
		for _, h := range r.Fleet[st] {
			if want[h.Name()] {
				hs = append(hs, h)
			}
		}
		if len(hs) == 0 {
			continue
		}
		failed := r.syncHosts(ctx, log, 0, hs, v.Commit)
		recs, rerr := r.Store.Hosts()
		if rerr != nil {
			log.Error("reading the host records failed", "err", rerr)
		}
		var ok []string
		for _, h := range hs {
			if err := failed[h.Name()]; err != nil {
				lines = append(lines, fmt.Sprintf("%s: the sync FAILED (%s); %s", h.Name(), plainHostError(err), servesNow(recs, h.Name(), v.Commit)))
			} else {
				ok = append(ok, h.Name())
			}
		}
		if len(ok) > 0 && r.Smoker != nil && r.Smoker.Checks(st) > 0 {
			if fails := r.Smoker.Smoke(ctx, st, ok); len(fails) > 0 {
				lines = append(lines, fmt.Sprintf("smoke checks FAILED on %s after the sync: %s; look at them before they take traffic", strings.Join(ok, ", "), strings.Join(fails, "; ")))
				continue
			}
		}
		if len(ok) > 0 {
			lines = append(lines, fmt.Sprintf("%s %s now on the fleet's commit %.10s, read back", strings.Join(ok, ", "), isAre(len(ok)), v.Commit))
		}
	}
	r.log.Info("fleet sync done", "who", who, "commit", v.Commit, "hosts", len(want))
	return lines, nil
}

// exclusive holds the hosts for a command that syncs them outside any
// deployment (a fleet sync, a repool): it refuses while a deployment runs
// (its hosts are not on the fleet's commit) or another such command does,
// and keeps the queue from starting until release is called.
func (r *Runner) exclusive(ctx context.Context, what string) (release func(), err error) {
	// The start-up check records what it read once it has read every host:
	// a sync meanwhile would be overwritten by an older reading. Wait for
	// it a while.
	wait := time.NewTimer(time.Minute)
	defer wait.Stop()
	select {
	case <-r.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, Errorf(EConflict, "I have just started and am still reading back what every host serves; %s in a moment", what)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy {
		return nil, Errorf(EConflict, "a fleet sync or repool is running already; try again when it has finished")
	}
	id := r.active
	if id == 0 {
		d, err := r.Active()
		if err != nil {
			return nil, err
		}
		if d != nil {
			id = d.ID
		}
	}
	if id != 0 {
		return nil, Errorf(EConflict, "deployment #%d is running; %s when it has finished", id, what)
	}
	r.busy = true
	return func() {
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
		r.poke()
	}, nil
}

// servesNow says what the store read back a host serving after a sync
// that failed: a sync can fail after its flip (a failing hook), so "it
// still serves what it served" is not always true.
func servesNow(recs map[string]HostRecord, name, fleet string) string {
	rec, ok := recs[name]
	switch {
	case !ok || rec.Unknown:
		return "what it serves could not be read back"
	case rec.Commit == fleet:
		return fmt.Sprintf("it serves the fleet's commit %.10s now (read back)", fleet)
	case rec.Commit == "":
		return "it serves nothing (read back)"
	}
	return fmt.Sprintf("it serves %.10s (read back), not the fleet's %.10s", rec.Commit, fleet)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// Depooled returns the hosts that rollbacks took out of service and that
// nobody has put back yet, with the deployment that depooled each.
func (r *Runner) Depooled() (map[string]int64, error) {
	recs, err := r.Store.Hosts()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for n, h := range recs {
		if h.Depooled {
			out[n] = h.DepooledBy
		}
	}
	return out, nil
}

// Repool puts a depooled host back into service after making sure it
// serves the commit the store says the fleet serves (syncing it to that
// commit first if needed). It refuses while a deployment runs: that
// deployment's stages are not on the fleet's commit.
func (r *Runner) Repool(ctx context.Context, host, who string) error {
	if r.Pool == nil {
		return Errorf(EInvalid, "no repool command is configured (hosts.stage_options.<stage>.repool)")
	}
	h := r.Fleet.Host(host)
	if h == nil {
		return Errorf(ENotFound, "there is no host %q in the configuration", host)
	}
	release, err := r.exclusive(ctx, "repool hosts")
	if err != nil {
		return err
	}
	defer release()
	depooled, err := r.Depooled()
	if err != nil {
		return err
	}
	id, ok := depooled[host]
	if !ok {
		return Errorf(EConflict, "%s is not depooled", host)
	}
	want, _, err := r.deployedCommit(ctx)
	if err != nil {
		return err
	}
	if failed := r.syncHosts(ctx, r.log.With("deployment", id), id, []Host{h}, want); failed[host] != nil {
		recs, rerr := r.Store.Hosts()
		if rerr != nil {
			r.log.Error("reading the host records failed", "err", rerr)
		}
		return Errorf(EConflict, "syncing %s to the deployed commit %.10s failed (%s); %s. It stays depooled: fix the host and try again", host, want, plainHostError(failed[host]), servesNow(recs, host, want))
	}
	if err := r.Pool.Repool(ctx, host); err != nil {
		return Errorf(EConflict, "%s serves %.10s, but the repool command failed: %s", host, want, short(err.Error()))
	}
	if err := r.Store.UpdateHosts([]string{host}, func(h *HostRecord) { h.Depooled, h.DepooledBy = false, 0 }); err != nil {
		return err
	}
	_ = r.Store.AppendEvent(Event{Deployment: id, Time: r.Now(), Actor: who, Kind: "repool", Message: fmt.Sprintf("%s repooled by %s, serving %.10s", host, who, want)})
	r.log.Info("host repooled", "deployment", id, "host", host, "who", who, "commit", want)
	return nil
}
