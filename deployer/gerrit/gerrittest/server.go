// Package gerrittest is a Gerrit for tests: an httptest server speaking
// the part of Gerrit's documented REST API that deployer/gerrit uses, with
// its )]}' prefix and basic auth under /a/, backed by real git
// repositories, one per project (AddProject). Changes belong to a project
// and branch and are real commits under refs/changes/; submitting one
// moves the real branch (fast-forward, or a rebase onto the tip with real
// conflict detection), so the bot under test fetches what "Gerrit" merged.
// A superproject branch can subscribe to a project's branch
// (AddSubmodule): a merge there then commits the gitlink update to the
// superproject, as Gerrit's submodule subscription does, at once, later
// or never (SetSubscriptionDelay).
//
// No Gerrit can run in the test environment (it needs a JVM and minutes to
// start), which is the one reason this fake exists.
package gerrittest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer/gerrit"
)

// Options configure New.
type Options struct {
	// Project and Branch are the project and branch served from the start
	// ("app", "main" by default), which the methods without a project
	// argument act on. AddProject adds more.
	Project, Branch string
	// Username and Password are the bot's account; calls under /a/ must
	// carry them ("deploybot", "s3cret" by default).
	Username, Password string
	// Dir is an existing repository (bare or not) to serve; by default a
	// new bare repository with one initial commit on Branch.
	Dir string
	// MergeIfNecessary makes a submit that cannot fast-forward create a
	// merge commit of the branch tip and the change (Gerrit's
	// MERGE_IF_NECESSARY submit type, its default) instead of rebasing the
	// change onto the tip (REBASE_IF_NECESSARY).
	MergeIfNecessary bool
	// AutoSubmit submits a change as soon as it has Code-Review +2 and no
	// negative Verified vote, as a gate would.
	AutoSubmit bool
}

// Server is the fake Gerrit. Its exported methods are how a test plays
// the humans and CI around the bot.
type Server struct {
	*httptest.Server
	Project, Branch    string
	Username, Password string
	// Dir is the repository's path: the git URL the staging repo fetches.
	Dir string
	// OnReview, when set, runs after a review is stored, outside the lock
	// (it may call the Server's methods).
	OnReview func(n int, in gerrit.ReviewInput)
	// BeforeReview, when set, runs when a review arrives, before it is
	// looked at, outside the lock: a test's way to change the change
	// under the bot's feet.
	BeforeReview func(n int)

	t          testing.TB
	autoSubmit bool
	mergeType  bool // MergeIfNecessary
	mu         sync.Mutex
	root       string // where AddProject makes repositories
	projects   map[string]*project
	subs       []subscription
	subDelay   time.Duration // see SetSubscriptionDelay
	timers     []*time.Timer // delayed subscription updates
	closed     bool
	changes    map[int]*change
	next       int
	last       time.Time
	accounts   map[string]gerrit.AccountInfo
	requests   []string
}

type vote struct {
	value int
	date  time.Time
}

type change struct {
	number    int
	changeID  string
	status    string
	topic     string
	owner     string
	wip       bool
	mergeable *bool
	patchSets []plumbing.Hash
	// kinds[i] is patch set i+1's kind relative to the one before it, as
	// Gerrit's RevisionInfo.kind says (REWORK for an upload, TRIVIAL_REBASE
	// for the rebase a submit makes).
	kinds     []string
	votes     map[string]map[string]vote // label -> username -> vote
	messages  []gerrit.ChangeMessageInfo
	revertOf  int
	submitted time.Time
	// proj and branch are where the change merges.
	proj   *project
	branch string
	// showProject and showBranch override proj and branch in what the API
	// says ("" for none), to play a change of something the bot does not
	// deploy.
	showProject, showBranch string
}

func (c *change) current() plumbing.Hash { return c.patchSets[len(c.patchSets)-1] }

// New starts a fake Gerrit; it is closed when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Project == "" {
		o.Project = "app"
	}
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.Username == "" {
		o.Username, o.Password = "deploybot", "s3cret"
	}
	s := &Server{
		Project: o.Project, Branch: o.Branch, Username: o.Username, Password: o.Password,
		t: t, autoSubmit: o.AutoSubmit, mergeType: o.MergeIfNecessary, changes: map[int]*change{}, next: 100,
		accounts: map[string]gerrit.AccountInfo{}, root: t.TempDir(), projects: map[string]*project{},
	}
	s.AddAccount(o.Username, "Deploy Bot", "deploybot@example.org")
	s.AddAccount("bob", "Bob Submitter", "bob@example.org")
	s.AddAccount("carol", "Carol Reviewer", "carol@example.org")
	s.AddAccount("jenkins-bot", "jenkins-bot", "jenkins@example.org")
	if o.Dir == "" {
		s.Dir = s.newProject(o.Project, o.Branch, map[string]string{"README": "initial\n", "index.php": "<?php echo 'v0';\n"}).dir
	} else {
		repo, err := git.PlainOpen(o.Dir)
		if err != nil {
			t.Fatal(err)
		}
		s.Dir = o.Dir
		s.projects[o.Project] = &project{s: s, name: o.Project, dir: o.Dir, repo: repo}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.shutdown)
	return s
}

// shutdown stops the delayed subscription updates and the HTTP server.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	s.Close()
}

// AddAccount registers an account that can own changes and vote.
func (s *Server) AddAccount(username, name, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[username] = gerrit.AccountInfo{AccountID: 1000 + len(s.accounts), Name: name, Email: email, Username: username}
}

// now returns Gerrit's clock: wall time, strictly increasing.
func (s *Server) now() time.Time {
	t := time.Now().UTC()
	if !t.After(s.last) {
		t = s.last.Add(time.Microsecond)
	}
	s.last = t
	return t
}

// Tip returns the branch's tip commit.
func (s *Server) Tip() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.def().tip(s.Branch).String()
}

// def is the project Options named.
func (s *Server) def() *project { return s.projects[s.Project] }

// Commit writes a commit in the project Options named on parent ("" for
// none) whose tree is parent's with files set (an empty content deletes
// the path), authored by the account username, and returns its hash. It
// moves no ref.
func (s *Server) Commit(parent string, files map[string]string, msg, username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.def().commit(parent, files, msg, username).String()
}

// Upload creates a change owned by username: a commit on parent (the
// branch tip when ""; pass another change's Revision to build a relation
// chain) with files changed, its message the subject, any footer lines
// and a Change-Id. It returns the change number.
func (s *Server) Upload(username, parent string, files map[string]string, subject string, footers ...string) int {
	return s.UploadTo(s.Project, s.Branch, username, parent, files, subject, footers...)
}

// UploadTo is Upload for a change of project's branch.
func (s *Server) UploadTo(projectName, branch, username, parent string, files map[string]string, subject string, footers ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proj(projectName)
	if parent == "" {
		parent = p.tip(branch).String()
	}
	s.next++
	n := s.next
	id := changeID(n)
	msg := subject + "\n\n"
	for _, f := range footers {
		msg += f + "\n"
	}
	msg += "Change-Id: " + id + "\n"
	c := &change{number: n, changeID: id, status: gerrit.StatusNew, owner: username, votes: map[string]map[string]vote{}, proj: p, branch: branch}
	s.changes[n] = c
	s.addPatchSet(c, p.commit(parent, files, msg, username), gerrit.KindRework)
	return n
}

// Import makes a change of an existing commit (the demo's branches),
// owned by username.
func (s *Server) Import(username, commit string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	n := s.next
	c := &change{number: n, changeID: changeID(n), status: gerrit.StatusNew, owner: username, votes: map[string]map[string]vote{}, proj: s.def(), branch: s.Branch}
	s.changes[n] = c
	s.addPatchSet(c, plumbing.NewHash(commit), gerrit.KindRework)
	return n
}

// ChangeID returns the Change-Id the fake gives change number n, so a
// test can write a Depends-On on a change it has yet to upload.
func ChangeID(n int) string { return changeID(n) }

func changeID(n int) string {
	sum := sha1.Sum([]byte("change " + strconv.Itoa(n)))
	return "I" + hex.EncodeToString(sum[:])
}

func (s *Server) addPatchSet(c *change, h plumbing.Hash, kind string) {
	c.patchSets = append(c.patchSets, h)
	c.kinds = append(c.kinds, kind)
	ref := plumbing.ReferenceName(fmt.Sprintf("refs/changes/%02d/%d/%d", c.number%100, c.number, len(c.patchSets)))
	if err := c.proj.setRef(ref, h); err != nil {
		s.t.Errorf("gerrittest: %v", err)
	}
}

// NewPatchSet uploads a new patch set of change n: same parent and
// message, files changed on top of the current patch set.
func (s *Server) NewPatchSet(n int, files map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changes[n]
	p := c.proj
	cur := p.mustCommit(c.current())
	flat := p.flatTree(cur.Hash)
	for path, content := range files {
		flat[path] = object.TreeEntry{Name: path, Mode: filemode.Regular, Hash: p.blob(content)}
	}
	nc := *cur
	nc.Committer.When = s.now()
	nc.TreeHash = p.buildTree(flat)
	s.addPatchSet(c, p.writeCommit(&nc), gerrit.KindRework)
}

// Revision returns change n's current patch set's commit.
func (s *Server) Revision(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes[n].current().String()
}

// Vote stores username's vote on label of change n's current patch set.
func (s *Server) Vote(n int, username, label string, value int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vote(s.changes[n], username, label, value)
}

func (s *Server) vote(c *change, username, label string, value int) {
	if c.votes[label] == nil {
		c.votes[label] = map[string]vote{}
	}
	c.votes[label][username] = vote{value: value, date: s.now()}
}

// Abandon abandons change n.
func (s *Server) Abandon(n int) { s.set(n, func(c *change) { c.status = gerrit.StatusAbandoned }) }

// SetWIP marks change n as a work in progress, or ready.
func (s *Server) SetWIP(n int, wip bool) { s.set(n, func(c *change) { c.wip = wip }) }

// SetTopic sets change n's topic; changes sharing a topic are submitted
// together.
func (s *Server) SetTopic(n int, topic string) { s.set(n, func(c *change) { c.topic = topic }) }

// Move pretends change n belongs to another project and branch.
func (s *Server) Move(n int, project, branch string) {
	s.set(n, func(c *change) { c.showProject, c.showBranch = project, branch })
}

// Revert creates a revert change of merged change n with message (Gerrit's
// default message when ""), as a person pressing Revert would, and
// returns its number.
func (s *Server) Revert(n int, message string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, status, msg := s.revert(s.changes[n], gerrit.RevertInput{Message: message})
	if status != http.StatusOK {
		s.t.Fatalf("gerrittest: revert of %d: %s", n, msg)
	}
	return info.Number
}

// SetMergeable overrides what the mergeable check answers for change n
// (nil: compute it from the repository).
func (s *Server) SetMergeable(n int, m *bool) { s.set(n, func(c *change) { c.mergeable = m }) }

func (s *Server) set(n int, f func(*change)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.changes[n])
}

// Where returns the project and branch change n belongs to.
func (s *Server) Where(n int) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.where(s.changes[n])
}

// Status returns change n's status.
func (s *Server) Status(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes[n].status
}

// VoteOf returns username's vote on label of change n (0 when none).
func (s *Server) VoteOf(n int, username, label string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes[n].votes[label][username].value
}

// Messages returns change n's messages.
func (s *Server) Messages(n int) []gerrit.ChangeMessageInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gerrit.ChangeMessageInfo(nil), s.changes[n].messages...)
}

// RevertsOf returns the numbers of the changes that revert change n.
func (s *Server) RevertsOf(n int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, c := range s.sorted() {
		if c.revertOf == n {
			out = append(out, c.number)
		}
	}
	return out
}

// CommitMessage returns the message of change n's current patch set.
func (s *Server) CommitMessage(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.changes[n]
	return c.proj.mustCommit(c.current()).Message
}

// Requests returns "METHOD path" of every request served, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *Server) sorted() []*change {
	out := make([]*change, 0, len(s.changes))
	for _, c := range s.changes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].number < out[j].number })
	return out
}

// errConflict is a submit that cannot merge cleanly.
var errConflict = errors.New("merge conflict")

// Submit merges change n, and first the open changes it is based on, the
// way Gerrit submits a relation chain: a fast-forward when the change sits
// on the tip, otherwise a rebase onto the tip (a new patch set), refused
// on conflicting paths.
func (s *Server) Submit(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.submit(s.changes[n])
}

func (s *Server) submit(c *change) error {
	if c.status != gerrit.StatusNew {
		return fmt.Errorf("change %d is %s", c.number, c.status)
	}
	if parent := s.openParent(c); parent != nil {
		if err := s.submit(parent); err != nil {
			return err
		}
	}
	merged, err := c.proj.rebase(c.current(), c.proj.tip(c.branch))
	if err != nil {
		return err
	}
	switch {
	case merged == c.current():
	case s.mergeType:
		// A merge commit of the tip and the change, with the tree the
		// rebase computed; the change keeps its patch set.
		rebased := c.proj.mustCommit(merged)
		subject, _, _ := strings.Cut(rebased.Message, "\n")
		a := s.accounts[s.Username]
		sig := object.Signature{Name: a.Name, Email: a.Email, When: s.now()}
		merged = c.proj.writeCommit(&object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("Merge %q\n", subject),
			TreeHash: rebased.TreeHash, ParentHashes: []plumbing.Hash{c.proj.tip(c.branch), c.current()}})
	default:
		s.addPatchSet(c, merged, gerrit.KindTrivialRebase)
	}
	c.proj.setBranch(c.branch, merged)
	c.status = gerrit.StatusMerged
	c.submitted = s.now()
	c.messages = append(c.messages, gerrit.ChangeMessageInfo{ID: s.msgID(), Date: s.now().Format(gerrit.TimeLayout), Message: fmt.Sprintf("Change has been successfully merged into the git repository by %s", s.accounts[s.Username].Name)})
	s.subscribed(c.proj, c.branch, merged)
	return nil
}

// openParent returns the open change whose patch set c's commit sits on.
func (s *Server) openParent(c *change) *change {
	cm, err := object.GetCommit(c.proj.repo.Storer, c.current())
	if err != nil || len(cm.ParentHashes) == 0 {
		return nil
	}
	for _, o := range s.changes {
		if o.status == gerrit.StatusNew && o != c && o.proj == c.proj {
			for _, ps := range o.patchSets {
				if ps == cm.ParentHashes[0] {
					return o
				}
			}
		}
	}
	return nil
}

// rebase returns commit rebased onto tip: commit itself when its parent
// is tip (or tip already contains it), else a new commit whose tree is
// tip's with commit's own changes applied.
func (p *project) rebase(commit, tip plumbing.Hash) (plumbing.Hash, error) {
	s := p.s
	cm, err := object.GetCommit(p.repo.Storer, commit)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if len(cm.ParentHashes) == 0 || cm.ParentHashes[0] == tip || tip.IsZero() {
		return commit, nil
	}
	if isAnc, _ := cm.IsAncestor(p.mustCommit(tip)); isAnc {
		return commit, nil
	}
	base, mine, theirs := p.flatTree(cm.ParentHashes[0]), p.flatTree(commit), p.flatTree(tip)
	out := map[string]object.TreeEntry{}
	for path, e := range theirs {
		out[path] = e
	}
	paths := map[string]bool{}
	for path := range base {
		paths[path] = true
	}
	for path := range mine {
		paths[path] = true
	}
	for path := range paths {
		b, inBase := base[path]
		m, inMine := mine[path]
		if inBase == inMine && (!inBase || b.Hash == m.Hash) {
			continue // the change does not touch path
		}
		t, inTheirs := theirs[path]
		if inTheirs != inBase || (inBase && t.Hash != b.Hash) {
			if !(inTheirs == inMine && (!inMine || t.Hash == m.Hash)) {
				return plumbing.ZeroHash, errConflict
			}
		}
		if inMine {
			out[path] = m
		} else {
			delete(out, path)
		}
	}
	nc := *cm
	nc.Hash = plumbing.ZeroHash
	nc.ParentHashes = []plumbing.Hash{tip}
	nc.TreeHash = p.buildTree(out)
	a := s.accounts[s.Username]
	nc.Committer = object.Signature{Name: a.Name, Email: a.Email, When: s.now()}
	return p.writeCommit(&nc), nil
}

func (s *Server) msgID() string { return strconv.FormatInt(s.now().UnixNano(), 36) }

// --- HTTP ---

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.EscapedPath())
	s.mu.Unlock()
	// Project names hold slashes, sent as %2F inside one path segment:
	// split the escaped path, then unescape each segment.
	path := r.URL.EscapedPath()
	if rest, ok := strings.CutPrefix(path, "/a/"); ok {
		user, pass, ok := r.BasicAuth()
		if !ok || user != s.Username || pass != s.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="Gerrit Code Review"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		path = "/" + rest
	} else if r.Method != http.MethodGet {
		http.Error(w, "Authentication required", http.StatusForbidden)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		parts[i] = u
	}
	if len(parts) == 0 || parts[0] != "changes" {
		http.NotFound(w, r)
		return
	}
	if len(parts) == 1 {
		if r.Method != http.MethodGet {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		s.mu.Lock()
		out, err := s.query(r.URL.Query().Get("q"))
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	s.mu.Lock()
	c := s.lookup(parts[1])
	s.mu.Unlock()
	if c == nil {
		http.Error(w, "Not found: "+parts[1], http.StatusNotFound)
		return
	}
	rest := parts[2:]
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		s.mu.Lock()
		info := s.info(c)
		for _, o := range r.URL.Query()["o"] {
			if o == "ALL_REVISIONS" {
				s.allRevisions(c, &info)
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, info)
	case len(rest) == 1 && rest[0] == "submitted_together" && r.Method == http.MethodGet:
		s.mu.Lock()
		out := s.submittedTogether(c)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	case len(rest) == 1 && rest[0] == "messages" && r.Method == http.MethodGet:
		s.mu.Lock()
		out := append([]gerrit.ChangeMessageInfo{}, c.messages...)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	case len(rest) == 1 && rest[0] == "revert" && r.Method == http.MethodPost:
		var in gerrit.RevertInput
		if !readJSON(w, r, &in) {
			return
		}
		s.mu.Lock()
		info, status, msg := s.revert(c, in)
		s.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, msg, status)
			return
		}
		writeJSON(w, http.StatusOK, info)
	case len(rest) == 3 && rest[0] == "revisions":
		s.revision(w, r, c, rest[1], rest[2])
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) revision(w http.ResponseWriter, r *http.Request, c *change, rev, what string) {
	s.mu.Lock()
	ps := s.resolveRevision(c, rev)
	s.mu.Unlock()
	if ps == 0 {
		http.Error(w, "Not found: "+rev, http.StatusNotFound)
		return
	}
	switch {
	case what == "mergeable" && r.Method == http.MethodGet:
		s.mu.Lock()
		ok := s.mergeable(c)
		s.mu.Unlock()
		submitType := "REBASE_IF_NECESSARY"
		if s.mergeType {
			submitType = "MERGE_IF_NECESSARY"
		}
		writeJSON(w, http.StatusOK, gerrit.MergeableInfo{SubmitType: submitType, Mergeable: ok})
	case what == "related" && r.Method == http.MethodGet:
		s.mu.Lock()
		out := s.related(c)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, gerrit.RelatedChangesInfo{Changes: out})
	case what == "review" && r.Method == http.MethodPost:
		var in gerrit.ReviewInput
		if !readJSON(w, r, &in) {
			return
		}
		if s.BeforeReview != nil {
			s.BeforeReview(c.number)
		}
		s.mu.Lock()
		if len(in.Labels) > 0 && ps != len(c.patchSets) {
			s.mu.Unlock()
			http.Error(w, "cannot post votes on a non-current patch set", http.StatusConflict)
			return
		}
		if len(in.Labels) > 0 && c.status != gerrit.StatusNew {
			s.mu.Unlock()
			http.Error(w, "change is closed", http.StatusConflict)
			return
		}
		var voted []string
		for label, v := range in.Labels {
			s.vote(c, s.Username, label, v)
			voted = append(voted, fmt.Sprintf("%s%+d", label, v))
		}
		sort.Strings(voted)
		text := fmt.Sprintf("Patch Set %d:", ps)
		if len(voted) > 0 {
			text += " " + strings.Join(voted, " ")
		}
		if in.Message != "" {
			text += "\n\n" + in.Message
		}
		a := s.accounts[s.Username]
		c.messages = append(c.messages, gerrit.ChangeMessageInfo{ID: s.msgID(), Author: &a, Date: s.now().Format(gerrit.TimeLayout), Message: text, Tag: in.Tag})
		submit := s.autoSubmit && in.Labels[gerrit.CodeReview] == 2 && !s.failedCI(c)
		if submit {
			if err := s.submit(c); err != nil {
				s.t.Logf("gerrittest: auto-submit of %d: %v", c.number, err)
			}
		}
		hook := s.OnReview
		s.mu.Unlock()
		if hook != nil {
			hook(c.number, in)
		}
		writeJSON(w, http.StatusOK, map[string]any{"labels": in.Labels})
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) failedCI(c *change) bool {
	for _, v := range c.votes[gerrit.Verified] {
		if v.value < 0 {
			return true
		}
	}
	return false
}

// lookup finds a change by any identifier Gerrit's REST API documents:
// <project>~<changeNumber> (the recommended one), <project>~<branch>~<Change-Id>,
// a number, or a Change-Id that names one change. A project or branch
// that is not the change's finds nothing, as in Gerrit.
func (s *Server) lookup(id string) *change {
	parts := strings.Split(id, "~")
	var found []*change
	for _, c := range s.sorted() {
		project, branch := s.where(c)
		var ok bool
		switch len(parts) {
		case 1:
			ok = parts[0] == strconv.Itoa(c.number) || parts[0] == c.changeID
		case 2:
			ok = parts[0] == project && parts[1] == strconv.Itoa(c.number)
		case 3:
			ok = parts[0] == project && parts[1] == branch && parts[2] == c.changeID
		}
		if ok {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		return nil
	}
	return found[0]
}

// where is the project and branch the API says change c belongs to.
func (s *Server) where(c *change) (string, string) {
	if c.showProject != "" {
		return c.showProject, c.showBranch
	}
	return c.proj.name, c.branch
}

// resolveRevision returns the patch set number rev names ("current", a
// number, or a commit), 0 when none.
func (s *Server) resolveRevision(c *change, rev string) int {
	if rev == "current" {
		return len(c.patchSets)
	}
	if n, err := strconv.Atoi(rev); err == nil && n >= 1 && n <= len(c.patchSets) {
		return n
	}
	for i, ps := range c.patchSets {
		if ps.String() == rev {
			return i + 1
		}
	}
	return 0
}

func (s *Server) mergeable(c *change) bool {
	if c.mergeable != nil {
		return *c.mergeable
	}
	if c.status != gerrit.StatusNew {
		return false
	}
	base := c.proj.tip(c.branch)
	if p := s.openParent(c); p != nil {
		base = p.current() // a chain merges on top of its parent
	}
	_, err := c.proj.rebase(c.current(), base)
	return err == nil
}

func (s *Server) query(q string) ([]gerrit.ChangeInfo, error) {
	out := []gerrit.ChangeInfo{}
	for _, c := range s.sorted() {
		match := true
		project, branch := s.where(c)
		for _, term := range strings.Fields(q) {
			k, v, ok := strings.Cut(term, ":")
			if !ok {
				return nil, fmt.Errorf("unsupported query term %q", term)
			}
			switch k {
			case "revertof":
				match = match && strconv.Itoa(c.revertOf) == v
			case "change":
				match = match && (c.changeID == v || strconv.Itoa(c.number) == v)
			case "status":
				want := map[string]string{"merged": gerrit.StatusMerged, "open": gerrit.StatusNew, "new": gerrit.StatusNew, "abandoned": gerrit.StatusAbandoned}[v]
				match = match && c.status == want
			case "project":
				match = match && v == project
			case "branch":
				match = match && v == branch
			default:
				return nil, fmt.Errorf("unsupported query operator %q", k)
			}
		}
		if match {
			out = append(out, s.info(c))
		}
	}
	return out, nil
}

func (s *Server) commitInfo(p *project, h plumbing.Hash, withParents bool) gerrit.CommitInfo {
	c := p.mustCommit(h)
	subject, _, _ := strings.Cut(c.Message, "\n")
	ci := gerrit.CommitInfo{
		Commit:    h.String(),
		Author:    gerrit.GitPersonInfo{Name: c.Author.Name, Email: c.Author.Email, Date: c.Author.When.UTC().Format(gerrit.TimeLayout)},
		Committer: gerrit.GitPersonInfo{Name: c.Committer.Name, Email: c.Committer.Email, Date: c.Committer.When.UTC().Format(gerrit.TimeLayout)},
		Subject:   subject,
		Message:   c.Message,
	}
	if withParents {
		for _, ph := range c.ParentHashes {
			pc := p.mustCommit(ph)
			ps, _, _ := strings.Cut(pc.Message, "\n")
			ci.Parents = append(ci.Parents, gerrit.CommitInfo{Commit: ph.String(), Subject: ps})
		}
	}
	return ci
}

func (s *Server) info(c *change) gerrit.ChangeInfo {
	cur := c.current()
	commit := s.commitInfo(c.proj, cur, true)
	project, branch := s.where(c)
	ci := gerrit.ChangeInfo{
		ID:              fmt.Sprintf("%s~%s~%s", project, branch, c.changeID),
		Project:         project,
		Branch:          branch,
		Topic:           c.topic,
		ChangeID:        c.changeID,
		Subject:         commit.Subject,
		Status:          c.status,
		Number:          c.number,
		Owner:           s.accounts[c.owner],
		WorkInProgress:  c.wip,
		CurrentRevision: cur.String(),
		Revisions: map[string]gerrit.RevisionInfo{cur.String(): {
			Number: len(c.patchSets),
			Ref:    fmt.Sprintf("refs/changes/%02d/%d/%d", c.number%100, c.number, len(c.patchSets)),
			Kind:   c.kinds[len(c.kinds)-1],
			Commit: &commit,
		}},
		Labels:   map[string]gerrit.LabelInfo{gerrit.CodeReview: {}, gerrit.Verified: {}},
		RevertOf: c.revertOf,
	}
	if !c.submitted.IsZero() {
		ci.Submitted = c.submitted.Format(gerrit.TimeLayout)
	}
	for label, vs := range c.votes {
		var li gerrit.LabelInfo
		users := make([]string, 0, len(vs))
		for u := range vs {
			users = append(users, u)
		}
		sort.Strings(users)
		for _, u := range users {
			v := vs[u]
			li.All = append(li.All, gerrit.ApprovalInfo{AccountInfo: s.accounts[u], Value: v.value, Date: v.date.Format(gerrit.TimeLayout)})
		}
		ci.Labels[label] = li
	}
	return ci
}

// allRevisions adds every patch set to info.Revisions, as o=ALL_REVISIONS
// does (with their commits only under ALL_COMMITS, which the bot does not
// ask for).
func (s *Server) allRevisions(c *change, info *gerrit.ChangeInfo) {
	for i, h := range c.patchSets {
		if _, ok := info.Revisions[h.String()]; ok {
			continue
		}
		info.Revisions[h.String()] = gerrit.RevisionInfo{
			Number: i + 1,
			Ref:    fmt.Sprintf("refs/changes/%02d/%d/%d", c.number%100, c.number, i+1),
			Kind:   c.kinds[i],
		}
	}
}

// related is the relation chain: descendants (furthest first), the change,
// then its open ancestors (nearest first).
func (s *Server) related(c *change) []gerrit.RelatedChangeAndCommitInfo {
	entry := func(o *change) gerrit.RelatedChangeAndCommitInfo {
		project, _ := s.where(o)
		return gerrit.RelatedChangeAndCommitInfo{Project: project, ChangeID: o.changeID, Commit: s.commitInfo(o.proj, o.current(), true),
			ChangeNumber: o.number, RevisionNumber: len(o.patchSets), CurrentRevisionNumber: len(o.patchSets), Status: o.status}
	}
	var desc []*change
	frontier := []*change{c}
	for len(frontier) > 0 {
		var nextF []*change
		for _, f := range frontier {
			for _, o := range s.sorted() {
				if o != c && s.openParent(o) == f {
					desc = append(desc, o)
					nextF = append(nextF, o)
				}
			}
		}
		frontier = nextF
	}
	var anc []*change
	for p := s.openParent(c); p != nil && len(anc) < 50; p = s.openParent(p) {
		anc = append(anc, p)
	}
	if len(desc) == 0 && len(anc) == 0 {
		return []gerrit.RelatedChangeAndCommitInfo{}
	}
	var out []gerrit.RelatedChangeAndCommitInfo
	for i := len(desc) - 1; i >= 0; i-- {
		out = append(out, entry(desc[i]))
	}
	out = append(out, entry(c))
	for _, a := range anc {
		out = append(out, entry(a))
	}
	return out
}

// submittedTogether is the change, its open ancestors and the open
// changes of its topic; empty when it would be submitted alone.
func (s *Server) submittedTogether(c *change) []gerrit.ChangeInfo {
	set := map[int]*change{c.number: c}
	for p := s.openParent(c); p != nil && len(set) < 50; p = s.openParent(p) {
		set[p.number] = p
	}
	if c.topic != "" {
		for _, o := range s.changes {
			if o.topic == c.topic && o.status == gerrit.StatusNew {
				set[o.number] = o
			}
		}
	}
	out := []gerrit.ChangeInfo{}
	if len(set) == 1 {
		return out
	}
	for _, o := range s.sorted() {
		if set[o.number] != nil {
			out = append(out, s.info(o))
		}
	}
	return out
}

// revert creates the revert change of merged change c, as POST
// /changes/{id}/revert does.
func (s *Server) revert(c *change, in gerrit.RevertInput) (gerrit.ChangeInfo, int, string) {
	if c.status != gerrit.StatusMerged {
		return gerrit.ChangeInfo{}, http.StatusConflict, "change is " + strings.ToLower(c.status)
	}
	p := c.proj
	orig := p.mustCommit(c.current())
	subject, _, _ := strings.Cut(orig.Message, "\n")
	msg := in.Message
	if msg == "" {
		msg = fmt.Sprintf("Revert %q\n\nThis reverts commit %s.\n", subject, orig.Hash)
	}
	s.next++
	n := s.next
	id := changeID(n)
	msg = strings.TrimRight(msg, "\n") + "\n\nChange-Id: " + id + "\n"
	parentTree := p.mustCommit(orig.ParentHashes[0]).TreeHash
	a := s.accounts[s.Username]
	sig := object.Signature{Name: a.Name, Email: a.Email, When: s.now()}
	h := p.writeCommit(&object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: parentTree, ParentHashes: []plumbing.Hash{orig.Hash}})
	// The revert is a change of the same project and branch.
	rc := &change{number: n, changeID: id, status: gerrit.StatusNew, owner: s.Username, votes: map[string]map[string]vote{}, revertOf: c.number,
		proj: p, branch: c.branch, showProject: c.showProject, showBranch: c.showBranch}
	s.changes[n] = rc
	s.addPatchSet(rc, h, gerrit.KindRework)
	c.messages = append(c.messages, gerrit.ChangeMessageInfo{ID: s.msgID(), Author: &a, Date: s.now().Format(gerrit.TimeLayout), Message: fmt.Sprintf("Created a revert of this change as %s", id)})
	return s.info(rc), http.StatusOK, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Disposition", "attachment")
	w.WriteHeader(status)
	w.Write([]byte(")]}'\n"))
	w.Write(b)
	w.Write([]byte("\n"))
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
