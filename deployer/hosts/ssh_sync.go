package hosts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// The sync protocol of an ssh host: read its slots (the probe script),
// plan a sync as Local does, and stream the change to it as a tar archive
// that syncScript writes into the inactive slot before flipping current.
// ssh.go holds the connection the scripts run over.

// remoteState is what the probe script reports.
type remoteState struct {
	active  string // "a", "b" or "" (no current)
	target  string // current's text as read ("" when there is none)
	markers [2]*Marker
	merrs   [2]error
	mtexts  [2]string // the markers' text as read, without the final newline
	tokens  [2]string // fingerprint tokens, "" when absent
	broken  string    // what is wrong with the slot layout ("" when nothing)
}

func slotIndex(s string) int {
	if s == "b" {
		return 1
	}
	return 0
}

// commitName is what a commit may be called: it goes into a remote marker.
var commitName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

var hexToken = regexp.MustCompile(`^[0-9a-f]{32}$`)

// newToken returns a fresh fingerprint token: it names one completed write
// of a slot, so a sync planned on an older reading of the host is refused.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *SSH) probe(ctx context.Context, create bool) (*remoteState, error) {
	mode := "look"
	if create {
		mode = "create"
	}
	var out bytes.Buffer
	err := h.run(ctx, shellCommand(probeScript, h.cfg.Root, mode), nil, &limitedBuffer{buf: &out, max: 4 << 20})
	if err != nil {
		if ee := (*exitError)(nil); errors.As(err, &ee) {
			return nil, &OpError{Host: h.name, Op: "prepare " + h.cfg.Root, Err: err}
		}
		return nil, err
	}
	fields := strings.Split(out.String(), "\x00")
	if len(fields) != 7 {
		return nil, &OpError{Host: h.name, Op: "read the slots", Err: fmt.Errorf("unexpected answer of %d fields", len(fields))}
	}
	st := &remoteState{}
	switch cur := fields[0]; {
	case cur == "N":
	case cur == "X":
		return nil, &OpError{Host: h.name, Op: "read", Path: currentLink, Err: errors.New("not a symlink")}
	case strings.HasPrefix(cur, "L"):
		st.target = cur[1:]
		switch path.Clean(cur[1:]) {
		case slotDir("a"):
			st.active = "a"
		case slotDir("b"):
			st.active = "b"
		default:
			return nil, &OpError{Host: h.name, Op: "read", Path: currentLink, Err: fmt.Errorf("points at %q, not at slots/a or slots/b", cur[1:])}
		}
	default:
		return nil, &OpError{Host: h.name, Op: "read the slots", Err: fmt.Errorf("unexpected answer %q", cur)}
	}
	for i, s := range []string{"a", "b"} {
		m, fp := fields[1+2*i], fields[2+2*i]
		if strings.HasPrefix(m, "M") {
			st.mtexts[i] = strings.TrimRight(m[1:], "\n")
			var mk Marker
			if err := json.Unmarshal([]byte(m[1:]), &mk); err != nil {
				st.merrs[i] = opError(h.name, "read marker", markerPath(s), err)
			} else {
				st.markers[i] = &mk
			}
		}
		if strings.HasPrefix(fp, "F") && hexToken.MatchString(strings.TrimSpace(fp[1:])) {
			st.tokens[i] = strings.TrimSpace(fp[1:])
		}
	}
	st.broken = fields[5]
	return st, nil
}

// Current returns the commit the host serves ("" when it serves nothing
// yet); an error when current or the served slot's marker is not sound.
func (h *SSH) Current(ctx context.Context) (string, error) {
	st, err := h.probe(ctx, false)
	if err != nil {
		return "", err
	}
	if st.active == "" {
		return "", nil
	}
	i := slotIndex(st.active)
	if st.merrs[i] != nil {
		return "", st.merrs[i]
	}
	m := st.markers[i]
	if m == nil {
		return "", opError(h.name, "read marker", markerPath(st.active), errors.New("missing: the served slot's contents are unknown"))
	}
	if len(m.Pending) > 0 {
		return "", opError(h.name, "read marker", markerPath(st.active), fmt.Errorf("the served slot records an interrupted write towards %s", strings.Join(m.Pending, ", ")))
	}
	return m.Commit, nil
}

// SSHSyncResult is what an ssh sync did, with what it sent.
type SSHSyncResult struct {
	SyncResult
	// Bytes is the size of the data stream sent to the host (the tar
	// archive and the deletion list).
	Bytes int64
}

// Sync makes the host serve commit; see deployer.Host.
func (h *SSH) Sync(ctx context.Context, commit string, src deployer.TreeSource) error {
	_, err := h.SyncReport(ctx, commit, src)
	return err
}

// SyncReport is Sync that says what it did: nothing, a flip, an
// incremental write or a full rebuild (with why), how many files and how
// many bytes went to the host.
//
// The plan is Local's (slots.go): the inactive slot is brought from the
// commit its marker names to the target by the paths that differ, or
// rebuilt in full when its contents are unknown. On top of it, a slot is
// trusted only while it has the fingerprint recorded when the bot last
// finished writing it; a slot without one (an interrupted sync) or with
// another (someone changed files on the host) is rebuilt, and Rebuilt is
// told why.
func (h *SSH) SyncReport(ctx context.Context, commit string, src deployer.TreeSource) (SSHSyncResult, error) {
	h.syncMu.Lock()
	defer h.syncMu.Unlock()
	start := time.Now()
	res, err := h.sync(ctx, commit, src)
	logSync(ctx, deployer.LoggerFrom(ctx, h.logger()), slog.LevelWarn, res.SyncResult, err,
		"host", h.name, "commit", commit, "action", res.Action, "slot", res.Slot,
		"written", res.Written, "deleted", res.Deleted, "bytes", res.Bytes, "took", time.Since(start))
	if err == nil && res.Action == SyncRebuild && h.cfg.Rebuilt != nil {
		h.cfg.Rebuilt(h.name, res.Reason)
	}
	return res, err
}

func (h *SSH) sync(ctx context.Context, commit string, src deployer.TreeSource) (SSHSyncResult, error) {
	if !commitName.MatchString(commit) {
		return SSHSyncResult{}, &OpError{Host: h.name, Op: "sync", Err: fmt.Errorf("%q is not a commit name", commit)}
	}
	// The host's state as this process left it saves reading it again;
	// the scripts check it (exit status 4 when it changed), and then the
	// host is read and the sync planned once more.
	st, cached := h.known, true
	if st != nil && st.active != "" && st.markers[slotIndex(st.active)].Holds(commit) {
		// "Nothing to do" runs no script, so nothing would check the
		// remembered state: a host flipped by hand since would be left
		// serving another commit while the sync reports success.
		st = nil
	}
	for {
		if st == nil {
			var err error
			if st, err = h.probe(ctx, true); err != nil {
				return SSHSyncResult{}, err
			}
			cached = false
		}
		res, next, err := h.attempt(ctx, st, commit, src)
		h.known = next
		if exitStatus(err) == 4 && cached {
			st = nil
			continue
		}
		if exitStatus(err) == 4 {
			err = &OpError{Host: h.name, Op: "sync", Err: errors.New("the host's slots changed while the sync was planned; is another deploybot syncing it?")}
		}
		return res, err
	}
}

// attempt plans and runs one sync against the host state st. It returns
// the host's state afterwards when it is known (nil otherwise).
func (h *SSH) attempt(ctx context.Context, st *remoteState, commit string, src deployer.TreeSource) (SSHSyncResult, *remoteState, error) {
	var res SSHSyncResult
	if st.active != "" && st.markers[slotIndex(st.active)].Holds(commit) {
		res.Action, res.Slot = SyncNone, st.active
		return res, st, nil
	}
	if st.broken != "" {
		// Read again next time: someone may mend it.
		return res, nil, &OpError{Host: h.name, Op: "prepare " + h.cfg.Root, Err: fmt.Errorf("the slot layout is not made of directories: %s", st.broken)}
	}
	slot := "a"
	if st.active == "a" {
		slot = "b"
	}
	i := slotIndex(slot)
	m, merr, token := st.markers[i], st.merrs[i], st.tokens[i]
	res.Slot = slot
	flipped := func(token string, marker *Marker) *remoteState {
		next := *st
		next.active, next.target = slot, slotDir(slot)
		if marker != nil {
			text, _ := json.Marshal(marker)
			next.markers[i], next.merrs[i], next.mtexts[i], next.tokens[i] = marker, nil, string(text), token
		}
		return &next
	}

	var reason string
	switch {
	case merr != nil:
		reason = fmt.Sprintf("slot %s's marker is unreadable", slot)
	case m == nil:
		reason = fmt.Sprintf("slot %s has no marker, so its contents are unknown", slot)
	case token == "":
		reason = fmt.Sprintf("slot %s has no fingerprint (a sync into it was interrupted), so its contents are unknown", slot)
	case m.Holds(commit):
		// A rollback: the slot holds the commit already, so only current
		// moves, once the slot is shown unchanged since it was written.
		err := h.run(ctx, shellCommand(flipScript, h.cfg.Root, slot, token, st.target, st.mtexts[i]), nil, nil)
		if err == nil {
			res.Action = SyncFlip
			return res, flipped(token, nil), nil
		}
		if exitStatus(err) != 3 {
			return res, nil, h.scriptError("flip", err)
		}
		reason = driftReason(slot)
	}

	var changes []deployer.FileChange
	if reason == "" {
		// The slot is as the bot left it: plan as Local does.
		core := &slotHost{name: h.name}
		var err error
		changes, reason, err = core.plan(ctx, slot, m, nil, commit, src)
		if err != nil {
			return res, nil, err
		}
		if reason == "" {
			pending, err := json.Marshal(withPending(m, commit))
			if err != nil {
				return res, nil, err
			}
			res.Action = SyncIncremental
			next := newToken()
			err = h.send(ctx, slotWrite{st: st, slot: slot, commit: commit, changes: changes,
				token: token, pending: string(pending), next: next}, &res)
			switch {
			case err == nil:
				return res, flipped(next, &Marker{Commit: commit}), nil
			case exitStatus(err) != 3:
				return res, nil, err
			}
			reason = driftReason(slot)
			changes = nil
		}
	}
	if changes == nil {
		// plan lists every file itself when it gives the reason.
		var err error
		if changes, err = src.Diff(ctx, "", commit); err != nil {
			return res, nil, opError(h.name, "list the files of "+commit, "", err)
		}
		for _, c := range changes {
			if err := checkPath(c.Path); err != nil {
				return res, nil, opError(h.name, "plan", c.Path, err)
			}
		}
	}
	res.Action, res.Reason = SyncRebuild, reason
	next := newToken()
	if err := h.send(ctx, slotWrite{st: st, slot: slot, commit: commit, changes: changes, full: true, next: next}, &res); err != nil {
		return res, nil, err
	}
	return res, flipped(next, &Marker{Commit: commit}), nil
}

func driftReason(slot string) string {
	return fmt.Sprintf("slot %s does not match the fingerprint recorded when it was written: files changed on the host behind the bot's back", slot)
}

// scriptError turns a remote script's exit status into what went wrong.
func (h *SSH) scriptError(op string, err error) error {
	var ee *exitError
	if !errors.As(err, &ee) {
		return err
	}
	what := map[int]string{
		10: "cannot enter or create the root " + h.cfg.Root,
		11: "cannot empty the slot",
		12: "the slot layout is not made of directories",
		13: "deleting files failed",
		14: "extracting the files failed (is GNU tar installed, and is the disk full?)",
		15: "recording the slot's fingerprint failed",
		20: "flipping current failed",
		21: "writing the slot's marker failed",
	}[ee.status]
	if what == "" {
		return &OpError{Host: h.name, Op: op, Err: err}
	}
	return &OpError{Host: h.name, Op: op, Err: fmt.Errorf("%s (%v)", what, err)}
}

// slotWrite is one write of a slot by syncScript, planned on the host's
// state st: the script refuses it (exit status 4) when the host is no
// longer so.
type slotWrite struct {
	st      *remoteState
	slot    string
	commit  string
	changes []deployer.FileChange
	// full empties the slot first, and changes is every file of commit.
	// Otherwise the slot is changed in place: token is the fingerprint it
	// must still have (exit status 3 when it drifted), and pending the
	// marker it carries during the write (its commit, with commit pending).
	full           bool
	token, pending string
	// next is the fingerprint recorded once the slot is written.
	next string
}

// send streams w's changes into its slot and flips to it (syncScript),
// recording in res what it wrote, deleted and sent.
func (h *SSH) send(ctx context.Context, w slotWrite, res *SSHSyncResult) error {
	token, pending := w.token, w.pending
	if w.full {
		token, pending = "-", "-"
	}
	var dels bytes.Buffer
	deleted := 0
	if !w.full {
		for _, c := range w.changes {
			if c.Delete {
				dels.WriteString(c.Path)
				dels.WriteByte(0)
				deleted++
			}
		}
	}
	final, err := json.Marshal(&Marker{Commit: w.commit})
	if err != nil {
		return err
	}
	mode := "incr"
	switch {
	case w.full:
		mode = "full"
	case h.skipSlotCheck:
		mode = "incr-unchecked"
	}
	written := 0
	var sent int64
	feed := func(out io.Writer) error {
		cw := &countingWriter{w: out}
		defer func() { sent = cw.n }()
		if _, err := cw.Write(dels.Bytes()); err != nil {
			return err
		}
		n, err := writeTar(ctx, h.name, cw, w.changes)
		written = n
		return err
	}
	cmd := shellCommand(syncScript, h.cfg.Root, w.slot, token, pending, string(final), strconv.Itoa(dels.Len()), mode,
		w.next, w.st.target, w.st.mtexts[slotIndex(w.slot)])
	err = h.run(ctx, cmd, feed, nil)
	res.Written, res.Deleted, res.Bytes = written, deleted, sent
	if st := exitStatus(err); err != nil && st != 3 && st != 4 {
		return h.scriptError("sync", err)
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeTar writes the files and symlinks of changes (deletions skipped) as
// a tar archive, each preceded by entries for the parent directories not
// yet written: extracting a directory entry replaces a symlink or a file
// standing there, so nothing is ever extracted through a symlink. It
// returns how many files and symlinks it wrote.
func writeTar(ctx context.Context, host string, w io.Writer, changes []deployer.FileChange) (int, error) {
	tw := tar.NewWriter(w)
	now := time.Now()
	dirs := map[string]bool{}
	n := 0
	for _, c := range changes {
		if c.Delete {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, opError(host, "stopped before", c.Path, err)
		}
		for i := 0; i < len(c.Path); i++ {
			if c.Path[i] != '/' || dirs[c.Path[:i]] {
				continue
			}
			d := c.Path[:i]
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
				return n, err
			}
		}
		switch c.Mode {
		case deployer.ModeSymlink:
			target, err := readLinkTarget(c)
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: c.Path, Linkname: target, Mode: 0o777, ModTime: now}); err != nil {
				return n, err
			}
		case deployer.ModeRegular, deployer.ModeExecutable:
			if c.Open == nil {
				return n, opError(host, "read", c.Path, errors.New("the source gave no contents"))
			}
			rc, err := c.Open()
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			// The header needs the size first; blobs of a deployable tree
			// are small, and reading one whole also checks Size.
			buf, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return n, opError(host, "read", c.Path, err)
			}
			mode := int64(0o644)
			if c.Mode == deployer.ModeExecutable {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: c.Path, Size: int64(len(buf)), Mode: mode, ModTime: now}); err != nil {
				return n, err
			}
			if _, err := tw.Write(buf); err != nil {
				return n, err
			}
		default:
			return n, opError(host, "write", c.Path, fmt.Errorf("unknown file mode %d", c.Mode))
		}
		n++
	}
	return n, tw.Close()
}
