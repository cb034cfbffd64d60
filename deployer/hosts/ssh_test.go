package hosts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// sshHost returns a host reached through sshd whose root is a fresh local
// directory, so the test can look at what arrived.
func sshHost(t testing.TB, d *testparts.SSHD, name string) *SSH {
	t.Helper()
	root := filepath.Join(t.TempDir(), name)
	h, err := NewSSH(name, SSHConfig{
		Address: d.Addr, User: d.User, Root: root, KeyFile: d.KeyFile, KnownHosts: d.KnownHosts,
		ConnectTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second, Keepalive: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// syncSSH syncs h to commit and checks that it then serves commit, exactly
// (VerifyTree on the directory behind the remote root), with no staging
// or temporary files left in the root.
func syncSSH(t testing.TB, h *SSH, src deployer.TreeSource, commit string) SSHSyncResult {
	t.Helper()
	res, err := h.SyncReport(context.Background(), commit, src)
	if err != nil {
		t.Fatalf("sync %s: %v", commit, err)
	}
	checkServesSSH(t, h, src, commit)
	return res
}

func checkServesSSH(t testing.TB, h *SSH, src deployer.TreeSource, commit string) {
	t.Helper()
	ctx := context.Background()
	if got, err := h.Current(ctx); err != nil || got != commit {
		t.Fatalf("after sync %s: Current = %q, %v", commit, got, err)
	}
	if err := VerifyTree(ctx, filepath.Join(h.Root(), "current"), commit, src); err != nil {
		t.Fatalf("after sync %s: %v", commit, err)
	}
	entries, err := os.ReadDir(h.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "slots" && e.Name() != "current" {
			t.Errorf("after sync %s: %s left in the root", commit, e.Name())
		}
	}
}

func bigTree(n int) tree {
	t := tree{}
	for i := range n {
		t[fmt.Sprintf("dir%02d/file%03d.php", i%10, i)] = file(strings.Repeat(fmt.Sprintf("<?php // %d\n", i), 60))
	}
	return t
}

func TestSSHFullAndIncrementalSyncs(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(300)
	c2 := c1.with(tree{"dir00/file000.php": file("<?php // changed in c2\n")})
	c3 := c2.with(tree{"dir01/file001.php": file("<?php // changed in c3\n")})
	fifty := tree{}
	for i := 100; i < 150; i++ {
		fifty[fmt.Sprintf("dir%02d/file%03d.php", i%10, i)] = file(fmt.Sprintf("<?php // changed in c4: %d\n", i))
	}
	fifty["dir09/file299.php"] = memFile{} // deleted
	fifty["new/dir/added.php"] = exe("#!/usr/bin/php\n")
	c4 := c3.with(fifty)
	src, commits := gitCommits(t, c1, c2, c3, c4)
	h := sshHost(t, d, "web1")

	r1 := syncSSH(t, h, src, commits[0])
	if r1.Action != SyncRebuild || r1.Slot != "a" || r1.Written != 300 {
		t.Errorf("first sync: %+v; want a rebuild of slot a writing 300 files", r1)
	}
	r2 := syncSSH(t, h, src, commits[1])
	if r2.Action != SyncRebuild || r2.Slot != "b" || r2.Written != 300 {
		t.Errorf("second sync: %+v; want a rebuild of the empty slot b", r2)
	}
	// Slot a holds c1; c3 differs from it in two files.
	r3 := syncSSH(t, h, src, commits[2])
	if r3.Action != SyncIncremental || r3.Slot != "a" || r3.Written != 2 || r3.Deleted != 0 {
		t.Errorf("third sync: %+v; want incremental into a, 2 files", r3)
	}
	// Slot b holds c2; c4 differs from it in c3's file, 50 changed, one
	// added and one deleted.
	r4 := syncSSH(t, h, src, commits[3])
	if r4.Action != SyncIncremental || r4.Slot != "b" || r4.Written != 52 || r4.Deleted != 1 {
		t.Errorf("fourth sync: %+v; want incremental into b, 52 written, 1 deleted", r4)
	}
	// What is sent grows with the change, not with the tree.
	if r3.Bytes*20 > r2.Bytes {
		t.Errorf("a 2-file sync sent %d bytes, a 300-file one %d: not the cost of the change", r3.Bytes, r2.Bytes)
	}
	if ratio := float64(r4.Bytes) / float64(r3.Bytes); ratio < 10 || ratio > 40 {
		t.Errorf("53 changed paths sent %d bytes, 2 sent %d (ratio %.1f); want it to grow with the change", r4.Bytes, r3.Bytes, ratio)
	}
	t.Logf("bytes sent: full 300 files %d, 2-file change %d, 53-path change %d", r2.Bytes, r3.Bytes, r4.Bytes)

	// Rollback: slot a holds c3, so it is a flip, and idempotent.
	if r := syncSSH(t, h, src, commits[2]); r.Action != SyncFlip || r.Slot != "a" {
		t.Errorf("rollback: %+v; want a flip to a", r)
	}
	if r := syncSSH(t, h, src, commits[2]); r.Action != SyncNone {
		t.Errorf("second rollback: %+v; want nothing done", r)
	}
}

// nasty holds names a shell would split, expand or take for options.
var nasty = tree{
	"with space/file name.txt":     file("spaces\n"),
	"quote's/\"double\" quote.txt": file("quotes\n"),
	"new\nline/file\nname":         file("newlines\n"),
	"-rf":                          file("leading dash\n"),
	"--help/-n":                    file("options\n"),
	"café/naïve 日本語.txt":           file("non-ascii ünïcødé\n"),
	"$(touch PWNED)/`touch PWNED`": file("substitutions\n"),
	"semi;colon & pipe|star*?.txt": file("metacharacters\n"),
	"back\\slash/tab\there":        file("tab and backslash\n"),
	"bin/run me.sh":                exe("#!/bin/sh\necho run\n"),
	"links/to file":                link("../with space/file name.txt"),
	"links/abs":                    link("/etc/passwd"),
	"links/dir":                    link("../café"),
	"empty":                        file(""),
	"binary.bin":                   file("\x00\x01\x02\xff\xfe\n\r\n"),
}

func TestSSHNastyPaths(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	// The second commit changes kinds: a file becomes a directory, a
	// directory a file, a symlink a file, a file a symlink, and names with
	// newlines and dashes go away.
	c2 := nasty.with(tree{
		"-rf":                      {},
		"-rf/now a dir":            file("was a file\n"),
		"with space/file name.txt": {},
		"with space":               file("was a directory\n"),
		"links/dir":                file("was a symlink\n"),
		"empty":                    link("binary.bin"),
		"new\nline/file\nname":     {},
		"bin/run me.sh":            file("#!/bin/sh\necho no longer executable\n"),
		"links/to file":            {},
	})
	src, commits := gitCommits(t, nasty, c2, nasty)
	h := sshHost(t, d, "web1")
	syncSSH(t, h, src, commits[0])
	if r := syncSSH(t, h, src, commits[1]); r.Action != SyncRebuild {
		t.Errorf("second sync: %+v; want a rebuild of the empty slot b", r)
	}
	// The third commit has the first one's tree, which slot a holds.
	if r := syncSSH(t, h, src, commits[2]); r.Action != SyncIncremental || r.Written != 0 || r.Deleted != 0 {
		t.Errorf("third sync: %+v; want incremental with nothing to write", r)
	}

	// Every kind change through an incremental write: slot b holds c2,
	// and the last commit is nasty's tree plus one file.
	src2, commits2 := gitCommits(t, nasty, c2, nasty.with(tree{"extra": file("x\n")}))
	h2 := sshHost(t, d, "web2")
	syncSSH(t, h2, src2, commits2[0])
	syncSSH(t, h2, src2, commits2[1])
	syncSSH(t, h2, src2, commits2[0]) // a flip back to slot a
	r := syncSSH(t, h2, src2, commits2[2])
	if r.Action != SyncIncremental || r.Slot != "b" || r.Deleted != 2 || r.Written != 8 {
		t.Errorf("kind changes: %+v; want an incremental write into b, 2 deleted, 8 written", r)
	}
	// No name was ever run by a shell.
	filepath.Walk(filepath.Dir(h.Root()), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "PWNED" {
			t.Errorf("a shell ran a substitution in a path: %s exists", p)
		}
		return nil
	})
	if _, err := os.Stat("PWNED"); err == nil {
		t.Error("a shell ran a substitution in a path: ./PWNED exists")
	}
	// The absolute symlink arrived as a symlink, and /etc/passwd is intact.
	if target, err := os.Readlink(filepath.Join(h2.Root(), "current", "links", "abs")); err != nil || target != "/etc/passwd" {
		t.Errorf("links/abs -> %q, %v", target, err)
	}
}

func TestSSHDriftedSlotIsRebuilt(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(50)
	c2 := c1.with(tree{"dir00/file000.php": file("c2\n")})
	c3 := c2.with(tree{"dir01/file001.php": file("c3\n")})
	src, commits := gitCommits(t, c1, c2, c3)
	var mu sync.Mutex
	var rebuilt []string
	h := sshHost(t, d, "web1")
	h.cfg.Rebuilt = func(host, reason string) {
		mu.Lock()
		defer mu.Unlock()
		rebuilt = append(rebuilt, host+": "+reason)
	}
	syncSSH(t, h, src, commits[0])
	syncSSH(t, h, src, commits[1])
	rebuilt = nil

	// Someone edits a file of the inactive slot in place, keeping its size
	// and its modification time.
	victim := filepath.Join(h.Root(), "slots", "a", "dir05", "file005.php")
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(victim)
	data[0] = 'X'
	if err := os.WriteFile(victim, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(victim, fi.ModTime(), fi.ModTime())

	r := syncSSH(t, h, src, commits[2])
	if r.Action != SyncRebuild || r.Slot != "a" || !strings.Contains(r.Reason, "fingerprint") {
		t.Errorf("sync into the drifted slot: %+v; want a rebuild because of the fingerprint", r)
	}
	if len(rebuilt) != 1 || !strings.Contains(rebuilt[0], "web1: slot a does not match") {
		t.Errorf("Rebuilt calls: %q", rebuilt)
	}

	// A rollback onto a drifted slot rebuilds it too, rather than flipping
	// to files the bot did not write: an extra file this time.
	if err := os.WriteFile(filepath.Join(h.Root(), "slots", "b", "hotfix.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = syncSSH(t, h, src, commits[1])
	if r.Action != SyncRebuild || r.Slot != "b" {
		t.Errorf("rollback onto a drifted slot: %+v; want a rebuild of b", r)
	}
	if _, err := os.Stat(filepath.Join(h.Root(), "slots", "b", "hotfix.php")); err == nil {
		t.Error("the file added behind the bot's back is still there")
	}
	// Untouched, the next rollback is a flip again.
	if r := syncSSH(t, h, src, commits[2]); r.Action != SyncFlip {
		t.Errorf("rollback onto an untouched slot: %+v; want a flip", r)
	}
}

func TestSSHUnknownOrChangedHostKey(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")})
	dir := t.TempDir()

	empty := filepath.Join(dir, "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	// Another host's key, listed for this address.
	other := filepath.Join(dir, "other_known_hosts")
	otherKey := "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	os.WriteFile(other, []byte(fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 %s\n", d.Port, otherKey)), 0o600)

	for _, tc := range []struct {
		file, want string
		changed    bool
	}{
		{empty, "is not in " + empty, false},
		{other, "does not match the one in " + other, true},
	} {
		h, err := NewSSH("web9", SSHConfig{Address: d.Addr, User: d.User, Root: filepath.Join(dir, "web9"), KeyFile: d.KeyFile, KnownHosts: tc.file})
		if err != nil {
			t.Fatal(err)
		}
		err = h.Sync(context.Background(), commits[0], src)
		var ke *HostKeyError
		if !errors.As(err, &ke) || ke.Changed != tc.changed {
			t.Fatalf("known_hosts %s: err = %v; want a HostKeyError", tc.file, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "host web9 ("+d.Addr+")") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("message %q; want one line naming the host, its address and %q", msg, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "web9")); err == nil {
			t.Error("the root was created although the host key was not trusted")
		}
		h.Close()
	}

	// No known_hosts at all is a configuration error, before any dial.
	if _, err := NewSSH("web9", SSHConfig{Address: d.Addr, User: d.User, Root: "/srv/x", KeyFile: d.KeyFile}); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("no known_hosts: %v", err)
	}
}

// hangingSource blocks the n-th Open until release is closed, and calls
// reached first: the test kills the host while the sync is mid-stream.
type hangingSource struct {
	src     deployer.TreeSource
	n       int64
	count   atomic.Int64
	reached func()
	release chan struct{}
}

func (s *hangingSource) Diff(ctx context.Context, from, to string) ([]deployer.FileChange, error) {
	out, err := s.src.Diff(ctx, from, to)
	for i := range out {
		open := out[i].Open
		if open == nil {
			continue
		}
		out[i].Open = func() (io.ReadCloser, error) {
			if s.count.Add(1) == s.n {
				s.reached()
				<-s.release
			}
			return open()
		}
	}
	return out, err
}

func TestSSHHostDiesMidSync(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(200)
	c2 := c1.with(tree{"dir00/file000.php": file("c2\n")})
	c3 := bigTree(200)
	for p := range c3 {
		c3[p] = file("<?php // c3 rewrites everything: " + p + "\n")
	}
	src, commits := gitCommits(t, c1, c2, c3)
	h := sshHost(t, d, "web1")
	syncSSH(t, h, src, commits[0])
	syncSSH(t, h, src, commits[1])

	// The host dies after 100 of c3's 200 files went out, once it has
	// started writing them into slot a.
	hs := &hangingSource{src: src, n: 100, release: make(chan struct{})}
	hs.reached = func() {
		marker := filepath.Join(h.Root(), "slots", "a.state")
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if data, _ := os.ReadFile(marker); strings.Contains(string(data), "pending") {
				break
			}
		}
		d.Stop()
		close(hs.release)
	}
	err := h.Sync(context.Background(), commits[2], hs)
	if err == nil {
		t.Fatal("sync succeeded although the host died mid-stream")
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "host web1") {
		t.Errorf("error %q; want one line naming the host", err)
	}
	// The host still serves c2, whole.
	if err := VerifyTree(context.Background(), filepath.Join(h.Root(), "current"), commits[1], src); err != nil {
		t.Fatalf("after the failed sync: %v", err)
	}

	// The host comes back; the same host value dials again and finishes.
	d.Restart(t)
	if got, err := h.Current(context.Background()); err != nil || got != commits[1] {
		t.Fatalf("after the restart: Current = %q, %v", got, err)
	}
	r := syncSSH(t, h, src, commits[2])
	if r.Action != SyncRebuild || !strings.Contains(r.Reason, "interrupted") {
		t.Errorf("retry: %+v; want a rebuild of the interrupted slot", r)
	}
}

func TestSSHCommandTimeout(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	h := sshHost(t, d, "web1")
	h.cfg.CommandTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := h.Run(context.Background(), []string{"sleep", "5"})
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("err = %v; want a timeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the timeout took %s", took)
	}
	// The connection was dropped and is dialled again.
	h.cfg.CommandTimeout = 30 * time.Second
	out, err := h.Run(context.Background(), []string{"printf", "%s|", "a b", "'q'", "$HOME", "-n"})
	if err != nil || string(out) != "a b|'q'|$HOME|-n|" {
		t.Errorf("Run = %q, %v; want each argument as is", out, err)
	}
}

// The bot remembers each host's slots between syncs; a host changed
// behind its back (here: current flipped by hand) is read again before
// anything is written, and the slot being served is never written.
func TestSSHHostChangedBehindTheBotsBack(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(20)
	c2 := c1.with(tree{"dir00/file000.php": file("c2\n")})
	c3 := c2.with(tree{"dir01/file001.php": file("c3\n")})
	src, commits := gitCommits(t, c1, c2, c3)
	h := sshHost(t, d, "web1")
	syncSSH(t, h, src, commits[0])
	syncSSH(t, h, src, commits[1])
	// An operator rolls back by hand: current -> slots/a (c1).
	cur := filepath.Join(h.Root(), "current")
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("slots/a", cur); err != nil {
		t.Fatal(err)
	}
	before := identities(t, filepath.Join(h.Root(), "slots", "a"))
	r := syncSSH(t, h, src, commits[2])
	if r.Action != SyncIncremental || r.Slot != "b" || r.Written != 1 {
		t.Errorf("sync after the hand flip: %+v; want one file written into b", r)
	}
	after := identities(t, filepath.Join(h.Root(), "slots", "a"))
	for p, id := range before {
		if after[p] != id {
			t.Errorf("%s in slot a, which was being served, was rewritten", p)
		}
	}
}

// Logging in with the keys of a real ssh-agent instead of a key file.
func TestSSHAgentAuth(t *testing.T) {
	d := testparts.StartSSHD(t)
	agentBin := testparts.Need(t, "ssh-agent", "openssh-client")
	addBin := testparts.Need(t, "ssh-add", "openssh-client")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agentCmd := exec.Command(agentBin, "-D", "-a", sock)
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentCmd.Process.Kill(); agentCmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not create its socket")
		}
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	src, commits := gitCommits(t, tree{"index.php": file("<?php\n")})
	newHost := func() *SSH {
		h, err := NewSSH("web1", SSHConfig{Address: d.Addr, User: d.User, Root: filepath.Join(t.TempDir(), "web1"), UseAgent: true, KnownHosts: d.KnownHosts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	// An empty agent: the login is refused, and says so.
	if err := newHost().Sync(context.Background(), commits[0], src); err == nil || !strings.Contains(err.Error(), "host web1: ssh to "+d.Addr) {
		t.Fatalf("with an empty agent: %v", err)
	}
	if out, err := exec.Command(addBin, d.KeyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	syncSSH(t, newHost(), src, commits[0])

	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := NewSSH("web1", SSHConfig{Address: d.Addr, User: d.User, Root: "/srv/x", UseAgent: true, KnownHosts: d.KnownHosts}); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not") {
		t.Errorf("use_agent without SSH_AUTH_SOCK: %v", err)
	}
}

// A host that hangs without closing the connection is noticed by the
// keepalive, which drops the connection; the next command dials again.
func TestSSHKeepaliveDropsAHungConnection(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	h := sshHost(t, d, "web1")
	h.cfg.Keepalive = 200 * time.Millisecond
	if _, err := h.Run(context.Background(), []string{"true"}); err != nil {
		t.Fatal(err)
	}
	h.connMu.Lock()
	first := h.client
	h.connMu.Unlock()
	d.Freeze()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.connMu.Lock()
		c := h.client
		h.connMu.Unlock()
		if c == nil {
			break
		}
		if time.Now().After(deadline) {
			d.Thaw()
			t.Fatal("the hung connection was not dropped within 5s (keepalive every 200ms)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Thaw()
	if out, err := h.Run(context.Background(), []string{"echo", "back"}); err != nil || string(out) != "back\n" {
		t.Fatalf("after the drop: %q, %v", out, err)
	}
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.client == nil || h.client == first {
		t.Error("the command did not run on a new connection")
	}
}

// TestSSHBrokenInactiveSlotFailsOnlyWhatMustWrite: an inactive slot that
// is a file fails a sync that has to write it, with the reason; a host
// that serves the wanted commit already (a rollback onto the base it never
// left) needs nothing written and must not fail, whether or not this
// process remembers the host's state.
func TestSSHBrokenInactiveSlotFailsOnlyWhatMustWrite(t *testing.T) {
	t.Parallel()
	d := testparts.StartSSHD(t)
	c1 := bigTree(5)
	c2 := c1.with(tree{"dir00/file000.php": file("c2\n")})
	src, commits := gitCommits(t, c1, c2)
	h := sshHost(t, d, "web1")
	syncSSH(t, h, src, commits[0]) // into slot a
	b := filepath.Join(h.Root(), "slots", "b")
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("not a slot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A new process (a restart) reads the host afresh and finds the
	// broken layout. It serves commits[0]: nothing to write, no failure.
	h = reopenSSH(t, d, h)
	if r, err := h.SyncReport(context.Background(), commits[0], src); err != nil || r.Action != SyncNone {
		t.Fatalf("sync to the commit it serves: %+v, %v; want nothing to do", r, err)
	}
	// commits[1] must be written into slot b: refused, with the reason.
	h = reopenSSH(t, d, h)
	_, err := h.SyncReport(context.Background(), commits[1], src)
	if err == nil || !strings.Contains(err.Error(), "slots/b is not a directory") {
		t.Fatalf("sync into a slot that is a file: %v; want it refused, naming slots/b", err)
	}
	checkServesSSH(t, h, src, commits[0])
}

// reopenSSH is h as a new process sees it: the same host, its state not
// remembered.
func reopenSSH(t testing.TB, d *testparts.SSHD, h *SSH) *SSH {
	t.Helper()
	n, err := NewSSH(h.name, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
