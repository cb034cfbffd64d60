package gerrittest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// project is one Gerrit project: a real git repository whose branches
// the changes of the project merge into.
type project struct {
	s    *Server
	name string
	dir  string
	repo *git.Repository
}

// newProject makes a bare repository for project name under the server's
// root, with one initial commit of files on branch.
func (s *Server) newProject(name, branch string, files map[string]string) *project {
	dir := filepath.Join(s.root, filepath.FromSlash(name)+".git")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		s.t.Fatal(err)
	}
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		s.t.Fatal(err)
	}
	p := &project{s: s, name: name, dir: dir, repo: repo}
	s.projects[name] = p
	first := p.commit("", files, "Initial commit of "+name, "carol")
	p.setBranch(branch, first)
	return p
}

// AddProject creates project name (slashes allowed, as in
// mediawiki/extensions/Foo) with one initial commit of files on branch,
// and returns its repository's path: the git URL to fetch it from.
func (s *Server) AddProject(name, branch string, files map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.projects[name] != nil {
		s.t.Fatalf("gerrittest: project %s exists", name)
	}
	return s.newProject(name, branch, files).dir
}

// ProjectDir returns the path of project name's repository.
func (s *Server) ProjectDir(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proj(name).dir
}

func (s *Server) proj(name string) *project {
	p := s.projects[name]
	if p == nil {
		s.t.Fatalf("gerrittest: no project %s", name)
	}
	return p
}

// CreateBranch makes branch of project start at the tip of from, as a
// release cut does.
func (s *Server) CreateBranch(projectName, from, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proj(projectName)
	p.setBranch(branch, p.tip(from))
}

// TipOf returns the tip of branch in project ("" when there is none).
func (s *Server) TipOf(projectName, branch string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.proj(projectName).tip(branch)
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// Push commits files (an empty content deletes the path) on the tip of
// branch in project and moves the branch: a direct push, not a change.
func (s *Server) Push(projectName, branch string, files map[string]string, msg, username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proj(projectName)
	h := p.commit(p.tip(branch).String(), files, msg, username)
	p.setBranch(branch, h)
	return h.String()
}

// Gitlink returns the commit the tip of branch in project points its
// submodule at path at ("" when there is no gitlink there).
func (s *Server) Gitlink(projectName, branch, at string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proj(projectName)
	e, ok := p.flatTree(p.tip(branch))[at]
	if !ok || e.Mode != filemode.Submodule {
		return ""
	}
	return e.Hash.String()
}

func (p *project) tip(branch string) plumbing.Hash {
	ref, err := p.repo.Storer.Reference(plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return plumbing.ZeroHash
	}
	return ref.Hash()
}

func (p *project) setBranch(branch string, h plumbing.Hash) {
	if err := p.setRef(plumbing.NewBranchReferenceName(branch), h); err != nil {
		p.s.t.Errorf("gerrittest: %v", err)
	}
}

// setRef points ref at h the way git and Gerrit do: a lock file renamed
// over the ref, so a fetch running at the same moment (git-upload-pack in
// the bot's staging repo) sees the old value or the new one, never an
// empty file. go-git's own ref writes truncate in place.
func (p *project) setRef(ref plumbing.ReferenceName, h plumbing.Hash) error {
	gitDir := p.dir
	if fi, err := os.Stat(filepath.Join(p.dir, ".git")); err == nil && fi.IsDir() {
		gitDir = filepath.Join(p.dir, ".git")
	}
	full := filepath.Join(gitDir, filepath.FromSlash(ref.String()))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	lock := full + ".lock"
	if err := os.WriteFile(lock, []byte(h.String()+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(lock, full)
}

// commit writes a commit on parent ("" for none) whose tree is parent's
// with files set (an empty content deletes the path), authored by the
// account username. It moves no ref.
func (p *project) commit(parent string, files map[string]string, msg, username string) plumbing.Hash {
	flat := map[string]object.TreeEntry{}
	var parents []plumbing.Hash
	if parent != "" {
		h := plumbing.NewHash(parent)
		parents = []plumbing.Hash{h}
		flat = p.flatTree(h)
	}
	for path, content := range files {
		if content == "" {
			delete(flat, path)
			continue
		}
		flat[path] = object.TreeEntry{Name: path, Mode: filemode.Regular, Hash: p.blob(content)}
	}
	a := p.s.accounts[username]
	sig := object.Signature{Name: a.Name, Email: a.Email, When: p.s.now()}
	return p.writeCommit(&object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: p.buildTree(flat), ParentHashes: parents})
}

func (p *project) writeCommit(c *object.Commit) plumbing.Hash {
	obj := p.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	h, err := p.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	return h
}

func (p *project) blob(content string) plumbing.Hash {
	obj := p.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, _ := obj.Writer()
	w.Write([]byte(content))
	w.Close()
	h, err := p.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	return h
}

// flatTree lists a commit's files (and gitlinks) by full path.
func (p *project) flatTree(commit plumbing.Hash) map[string]object.TreeEntry {
	out := map[string]object.TreeEntry{}
	if commit.IsZero() {
		return out
	}
	t, err := p.mustCommit(commit).Tree()
	if err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	walker := object.NewTreeWalker(t, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if err != nil {
			break
		}
		if e.Mode != filemode.Dir {
			e.Name = name
			out[name] = e
		}
	}
	return out
}

// buildTree writes nested tree objects for files keyed by full path.
func (p *project) buildTree(files map[string]object.TreeEntry) plumbing.Hash {
	sub := map[string]map[string]object.TreeEntry{}
	var entries []object.TreeEntry
	for path, e := range files {
		if dir, rest, ok := strings.Cut(path, "/"); ok {
			if sub[dir] == nil {
				sub[dir] = map[string]object.TreeEntry{}
			}
			sub[dir][rest] = e
			continue
		}
		entries = append(entries, object.TreeEntry{Name: path, Mode: e.Mode, Hash: e.Hash})
	}
	for dir, fs := range sub {
		entries = append(entries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: p.buildTree(fs)})
	}
	sort.Sort(object.TreeEntrySorter(entries))
	obj := p.repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	h, err := p.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	return h
}

func (p *project) mustCommit(h plumbing.Hash) *object.Commit {
	c, err := object.GetCommit(p.repo.Storer, h)
	if err != nil {
		p.s.t.Fatalf("gerrittest: %s: commit %s: %v", p.name, h, err)
	}
	return c
}

// readFile returns a file's content at commit ("" when absent).
func (p *project) readFile(commit plumbing.Hash, name string) string {
	e, ok := p.flatTree(commit)[name]
	if !ok {
		return ""
	}
	b, err := object.GetBlob(p.repo.Storer, e.Hash)
	if err != nil {
		p.s.t.Fatalf("gerrittest: %v", err)
	}
	r, _ := b.Reader()
	defer r.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// subscription is a superproject branch following a project's branch:
// Gerrit's submodule subscription (.gitmodules "branch", with "." for the
// superproject's own branch name). When a change of Project's Branch
// merges, Gerrit commits a gitlink update at Path to Super's SuperBranch.
type subscription struct {
	super, superBranch, path string
	project, branch          string
}

// AddSubmodule makes the submodule at path of super's superBranch track
// sub's subBranch, as a Gerrit admin does: .gitmodules gets an entry with
// a relative URL and "branch = ." (or the branch's name when it differs
// from superBranch), the gitlink points at subBranch's tip, pushed as one
// commit. From then on every merge into sub's subBranch updates the
// gitlink (see SetSubscriptionDelay). It returns the superproject's new
// commit.
func (s *Server) AddSubmodule(super, superBranch, at, sub, subBranch string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp, subp := s.proj(super), s.proj(sub)
	tip := sp.tip(superBranch)
	rel, err := filepath.Rel(path.Dir(super), sub)
	if err != nil {
		s.t.Fatal(err)
	}
	tracked := subBranch
	if subBranch == superBranch {
		tracked = "."
	}
	mods := sp.readFile(tip, ".gitmodules")
	mods += fmt.Sprintf("[submodule %q]\n\tpath = %s\n\turl = ../%s.git\n\tbranch = %s\n", at, at, filepath.ToSlash(rel), tracked)
	flat := sp.flatTree(tip)
	flat[".gitmodules"] = object.TreeEntry{Name: ".gitmodules", Mode: filemode.Regular, Hash: sp.blob(mods)}
	flat[at] = object.TreeEntry{Name: at, Mode: filemode.Submodule, Hash: subp.tip(subBranch)}
	a := s.accounts["carol"]
	sig := object.Signature{Name: a.Name, Email: a.Email, When: s.now()}
	h := sp.writeCommit(&object.Commit{Author: sig, Committer: sig, Message: "Add submodule " + at + "\n", TreeHash: sp.buildTree(flat), ParentHashes: []plumbing.Hash{tip}})
	sp.setBranch(superBranch, h)
	s.subs = append(s.subs, subscription{super: super, superBranch: superBranch, path: at, project: sub, branch: subBranch})
	return h.String()
}

// SetSubscriptionDelay makes superproject updates happen d after the
// merge that causes them (0, the default: at once, as part of the
// submit), or never when d < 0: a subscription Gerrit does not carry out.
func (s *Server) SetSubscriptionDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subDelay = d
}

// subscribed runs the subscriptions of project's branch after a merge
// made merged its tip. The caller holds the lock.
func (s *Server) subscribed(p *project, branch string, merged plumbing.Hash) {
	for _, sub := range s.subs {
		if sub.project != p.name || sub.branch != branch {
			continue
		}
		switch {
		case s.subDelay < 0:
			s.t.Logf("gerrittest: %s %s does not follow %s's merge %.10s (subscriptions off)", sub.super, sub.superBranch, p.name, merged)
		case s.subDelay == 0:
			s.updateGitlink(sub, merged)
		default:
			sub := sub
			timer := time.AfterFunc(s.subDelay, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if !s.closed {
					s.updateGitlink(sub, merged)
				}
			})
			s.timers = append(s.timers, timer)
		}
	}
}

// updateGitlink commits the gitlink update a subscription makes, with
// Gerrit's message. The caller holds the lock.
func (s *Server) updateGitlink(sub subscription, merged plumbing.Hash) {
	sp, from := s.projects[sub.super], s.projects[sub.project]
	tip := sp.tip(sub.superBranch)
	flat := sp.flatTree(tip)
	if e, ok := flat[sub.path]; ok && e.Hash == merged {
		return
	}
	flat[sub.path] = object.TreeEntry{Name: sub.path, Mode: filemode.Submodule, Hash: merged}
	subject, _, _ := strings.Cut(from.mustCommit(merged).Message, "\n")
	msg := fmt.Sprintf("Update git submodules\n\n* Update %s from branch '%s'\n  to %s\n  - %s\n", sub.path, sub.branch, merged, subject)
	sig := object.Signature{Name: "Gerrit Code Review", Email: "gerrit@example.org", When: s.now()}
	h := sp.writeCommit(&object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: sp.buildTree(flat), ParentHashes: []plumbing.Hash{tip}})
	sp.setBranch(sub.superBranch, h)
}
