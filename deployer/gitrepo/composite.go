package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/deploybot/deploybot/deployer"
)

// Component is one part of a composite deploy tree: a repository and
// branch placed at a path. A MediaWiki tree has the configuration
// repository at the root and one directory per live release branch holding
// mediawiki/core, with its extensions and skins as submodules.
type Component struct {
	// Name is how refs in chat name it (name:ref); it defaults to Path,
	// or "root" for the root.
	Name string
	// Path is where its tree goes in the deploy tree, slash-separated,
	// "" for the root.
	Path string
	// URL and Branch say where it comes from.
	URL    string
	Branch string
	// Submodules makes its submodules part of the deploy tree: each is
	// fetched from its own URL (relative ones resolved against URL) and its
	// files replace the gitlink, recursively. Without it a submodule
	// deploys nothing.
	Submodules bool
}

func (c Component) name() string {
	if c.Name != "" {
		return c.Name
	}
	if c.Path == "" {
		return "root"
	}
	return c.Path
}

// Composite is the change source for a deploy tree made of several
// components. It lives in the staging repository: every component and
// every followed submodule is fetched into the staging repo's object
// database (refs/sources/<key>/heads/*), and each deployment's upstream is
// a composition commit there (refs/deploybot/compositions/<id>) whose tree
// is the composed tree and whose message records, per component and per
// submodule, the upstream commit it holds. Staging.Commit copies those
// lines into the staging commit.
//
// It implements deployer.ChangeSource and deployer.Reverter.
type Composite struct {
	staging *Repo
	comps   []Component // by path
	views   map[string]*Repo
	// Push allows RevertUpstream to push revert commits to a component's
	// branch (as source.git.push_reverts does for one repository).
	Push bool
	// Log receives details that do not belong in chat; slog.Default() if nil.
	Log *slog.Logger
	// LastReads is what the last composition read (under the staging lock).
	LastReads ReadCounts
}

var (
	_ deployer.ChangeSource = (*Composite)(nil)
	_ deployer.Reverter     = (*Composite)(nil)
)

// compositionRefs holds one ref per composition, so that a deployment's
// upstream stays in the object database whatever git maintenance does.
const compositionRefs = "refs/deploybot/compositions/"

// NewComposite returns the composite source over staging. It checks the
// components against each other (ValidateComponents) and configures one
// remote per repository; it does not fetch.
func NewComposite(staging *Repo, comps []Component) (*Composite, error) {
	if err := ValidateComponents(comps); err != nil {
		return nil, err
	}
	c := &Composite{staging: staging, views: map[string]*Repo{}}
	for _, comp := range comps {
		comp.URL = absLocalPath(comp.URL)
		c.comps = append(c.comps, comp)
	}
	sort.Slice(c.comps, func(i, j int) bool { return c.comps[i].Path < c.comps[j].Path })
	staging.mu.Lock()
	defer staging.mu.Unlock()
	for _, comp := range c.comps {
		if _, err := c.view(comp.URL, comp.Branch); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Components returns the configured components, by path.
func (c *Composite) Components() []Component { return append([]Component(nil), c.comps...) }

// ValidateComponents checks a list of components on its own: paths and
// names are well formed and unique, at most one component per path, and
// every URL and branch is usable.
func ValidateComponents(comps []Component) error {
	if len(comps) == 0 {
		return errors.New("no components")
	}
	var problems []string
	paths, names := map[string]bool{}, map[string]bool{}
	for _, c := range comps {
		label := fmt.Sprintf("component %q", displayPath(c.Path))
		if !validComponentPath(c.Path) {
			problems = append(problems, label+": the path must be relative, slash-separated, without \".\", \"..\", \".git\", empty parts or whitespace")
		}
		if paths[c.Path] {
			problems = append(problems, label+": two components have this path; each path holds one")
		}
		paths[c.Path] = true
		if n := c.name(); names[n] {
			problems = append(problems, fmt.Sprintf("%s: the name %q is taken by another component", label, n))
		} else if n != "" {
			names[n] = true
		}
		if c.Name != "" && (strings.ContainsAny(c.Name, ": \t/") || strings.HasPrefix(c.Name, "-")) {
			problems = append(problems, label+": a name may not hold \":\", \"/\" or whitespace, or start with \"-\"")
		}
		if c.URL == "" || strings.HasPrefix(c.URL, "-") || strings.ContainsAny(c.URL, " \t\n") {
			problems = append(problems, label+": the url is missing or unusable (no whitespace, no leading \"-\")")
		}
		if !validBranch(c.Branch) {
			problems = append(problems, fmt.Sprintf("%s: %q is not a valid branch name", label, c.Branch))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func validComponentPath(p string) bool {
	if p == "" {
		return true
	}
	if strings.ContainsAny(p, " \t\n\\:") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(part, ".git") {
			return false
		}
	}
	return true
}

// view returns a Repo on the staging object database that fetches url into
// refs/sources/<key>/heads/, with branch as its branch. The caller holds
// the staging lock.
func (c *Composite) view(url, branch string) (*Repo, error) {
	if url == "" || strings.HasPrefix(url, "-") || strings.ContainsAny(url, " \t\n") {
		return nil, deployer.Errorf(deployer.EInvalid, "%q is not a usable repository URL", url)
	}
	k := urlKey(url) + "\x00" + branch
	if v := c.views[k]; v != nil {
		return v, nil
	}
	s := c.staging
	v := &Repo{mu: s.mu, dir: s.dir, repo: s.repo, upstream: Upstream{URL: url, Branch: branch},
		remote: "src-" + urlKey(url), prefix: "refs/sources/" + urlKey(url) + "/heads/"}
	if err := v.configureRemote(); err != nil {
		return nil, err
	}
	c.views[k] = v
	return v, nil
}

// fetched fetches each view once per call of the returned function.
type fetcher struct {
	ctx  context.Context
	done map[string]error
}

func (f *fetcher) fetch(v *Repo) error {
	if err, ok := f.done[v.remote]; ok {
		return err
	}
	err := v.fetch(f.ctx)
	f.done[v.remote] = err
	return err
}

func (c *Composite) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// fetchProblem turns a failed fetch into a sentence for chat; the error
// itself goes to the log.
func (c *Composite) fetchProblem(err error, what, url string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	c.log().Warn("fetch failed", "what", what, "url", url, "err", err)
	return deployer.Errorf(deployer.EConflict, "I could not fetch %s from %s (the bot's log has the details)", what, url)
}

// state is one component during a Prepare: where it was and where it goes.
type state struct {
	Component
	view   *Repo
	prev   plumbing.Hash // deployed commit; zero when it is new
	target plumbing.Hash
}

// compose builds the composed tree of the components at their targets,
// reusing the flattened trees prev records for parts that did not change,
// and writes the composition commit. The caller holds the staging lock.
func (c *Composite) compose(ctx context.Context, f *fetcher, states []*state, prev *composition, title string) (plumbing.Hash, *composition, error) {
	c.LastReads = ReadCounts{}
	s := countingStorer{EncodedObjectStorer: c.staging.repo.Storer, n: &c.LastReads}
	cp := &composer{c: c, s: s, f: f, prev: prev, ctx: ctx}
	for _, st := range states {
		cp.owned = append(cp.owned, st.Path)
	}
	var root plumbing.Hash
	var out composition
	for _, st := range states {
		tree, parts, err := cp.component(st)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		out.parts = append(out.parts, parts...)
		if st.Path == "" {
			root = tree
			continue
		}
		if root, err = setPath(s, root, st.Path, filemode.Dir, tree); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	if root.IsZero() {
		var err error
		if root, err = writeTreeEntries(s, nil); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	sort.Slice(out.parts, func(i, j int) bool { return out.parts[i].Path < out.parts[j].Path })
	sig := object.Signature{Name: botName, Email: botEmail, When: time.Now()}
	commit := &object.Commit{Author: sig, Committer: sig, Message: out.message(title), TreeHash: root}
	obj := s.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitrepo: encode composition: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitrepo: write composition: %w", err)
	}
	ref := plumbing.NewHashReference(plumbing.ReferenceName(compositionRefs+h.String()), h)
	if err := c.staging.repo.Storer.SetReference(ref); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitrepo: %w", err)
	}
	return h, &out, nil
}

type composer struct {
	c     *Composite
	s     storer.EncodedObjectStorer
	f     *fetcher
	prev  *composition
	ctx   context.Context
	owned []string // component paths
}

// component returns the flattened tree of one component and the parts it
// is made of (itself first).
func (cp *composer) component(st *state) (plumbing.Hash, []part, error) {
	self := part{Path: st.Path, Commit: st.target, URL: st.URL, Branch: st.Branch, Submodules: st.Submodules}
	if old := cp.prev.find(st.Path, false); old != nil && old.Commit == st.target && old.Submodules == st.Submodules &&
		cp.sameNested(st.Path) && cp.exists(old.Tree) {
		self.Tree = old.Tree
		return old.Tree, append([]part{self}, cp.prevSubs(st.Path, st.Path)...), nil
	}
	tree, subs, err := cp.flatten(st.Path, st.Path, st.URL, st.target, st.Submodules)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	self.Tree = tree
	return tree, append([]part{self}, subs...), nil
}

// exists reports whether the object database holds object h (a recorded
// tree from an earlier composition is reused only then).
//
// It asks for the object's size, not HasEncodedObject: with the exclusive
// access the staging repo is opened with, go-git's HasEncodedObject fails
// for every packed object (its loose-object check does not fall through
// to the packs), which would make every composition start from scratch.
func (cp *composer) exists(h plumbing.Hash) bool {
	if h.IsZero() {
		return false
	}
	if sz, ok := cp.c.staging.repo.Storer.(interface {
		EncodedObjectSize(plumbing.Hash) (int64, error)
	}); ok {
		_, err := sz.EncodedObjectSize(h)
		return err == nil
	}
	return cp.s.HasEncodedObject(h) == nil
}

// sameNested reports whether the components configured inside component
// comp are the ones prev was composed with. A recorded flattened tree
// leaves a submodule a gitlink where a component of its own stood, and
// flattens it where none did, so it is only valid for the same nested
// components.
func (cp *composer) sameNested(comp string) bool {
	nested := func(paths []string) map[string]bool {
		out := map[string]bool{}
		for _, p := range paths {
			if p != comp && within(p, comp) {
				out[p] = true
			}
		}
		return out
	}
	var before []string
	for _, p := range cp.prev.parts {
		if !p.Sub {
			before = append(before, p.Path)
		}
	}
	a, b := nested(before), nested(cp.owned)
	if len(a) != len(b) {
		return false
	}
	for p := range a {
		if !b[p] {
			return false
		}
	}
	return true
}

// prevSubs returns the submodule parts prev records inside dir that belong
// to component comp (not to a component nested deeper).
func (cp *composer) prevSubs(comp, dir string) []part {
	if cp.prev == nil {
		return nil
	}
	var out []part
	for _, p := range cp.prev.parts {
		if p.Sub && p.Path != dir && within(p.Path, dir) && cp.ownerOf(p.Path) == comp {
			out = append(out, p)
		}
	}
	return out
}

// ownerOf returns the path of the component whose tree holds deploy path
// p: the deepest configured component containing it.
func (cp *composer) ownerOf(p string) string {
	best := ""
	for _, o := range cp.owned {
		if within(p, o) && len(o) > len(best) {
			best = o
		}
	}
	return best
}

// flatten returns commit's tree (a repository fetched from url, placed at
// deploy path at, inside component comp) with each submodule's flattened
// tree in place of its gitlink when follow is set, and the submodule parts.
func (cp *composer) flatten(comp, at, url string, commit plumbing.Hash, follow bool) (plumbing.Hash, []part, error) {
	if err := cp.ctx.Err(); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	co, err := object.GetCommit(cp.s, commit)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitrepo: commit %s: %w", commit, err)
	}
	tree := co.TreeHash
	if !follow {
		return tree, nil, nil
	}
	subs, err := submodules(cp.s, tree)
	if err != nil {
		return plumbing.ZeroHash, nil, deployer.Errorf(deployer.EConflict, "%s at %.10s: %s", displayPath(at), commit, strings.TrimPrefix(err.Error(), "gitrepo: "))
	}
	var parts []part
	for _, sm := range subs {
		dp := joinPath(at, sm.Path)
		if owner := cp.ownerOf(dp); owner != comp {
			if owner == dp {
				continue // a component of its own replaces it
			}
			return plumbing.ZeroHash, nil, deployer.Errorf(deployer.EInvalid,
				"component %s lies inside submodule %s of %s, which it does not own; configure it at %s or not at all",
				owner, dp, displayPath(comp), dp)
		}
		for _, o := range cp.owned {
			if o != dp && within(o, dp) {
				return plumbing.ZeroHash, nil, deployer.Errorf(deployer.EInvalid,
					"component %s lies inside submodule %s of %s, which it does not own; configure it at %s or not at all",
					o, dp, displayPath(comp), dp)
			}
		}
		if strings.ContainsAny(sm.Path, " \t\n") {
			return plumbing.ZeroHash, nil, deployer.Errorf(deployer.EConflict, "submodule path %q of %s holds whitespace, which I cannot record", sm.Path, displayPath(at))
		}
		surl := ResolveSubmoduleURL(url, sm.URL)
		p := part{Path: dp, Commit: sm.Link, URL: surl, Sub: true}
		if old := cp.prev.find(dp, true); old != nil && old.Commit == sm.Link && old.URL == surl && cp.exists(old.Tree) {
			p.Tree = old.Tree
			parts = append(parts, p)
			parts = append(parts, cp.prevSubs(comp, dp)...)
		} else {
			if err := cp.c.ensureCommit(cp.f, surl, sm.Link, dp); err != nil {
				return plumbing.ZeroHash, nil, err
			}
			st, sp, err := cp.flatten(comp, dp, surl, sm.Link, true)
			if err != nil {
				return plumbing.ZeroHash, nil, err
			}
			p.Tree = st
			parts = append(parts, p)
			parts = append(parts, sp...)
		}
		if tree, err = setPath(cp.s, tree, sm.Path, filemode.Dir, p.Tree); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	return tree, parts, nil
}

// ensureCommit makes sure the object database holds commit, fetching the
// submodule's repository when it does not. The caller holds the lock.
func (c *Composite) ensureCommit(f *fetcher, url string, commit plumbing.Hash, at string) error {
	if _, err := object.GetCommit(c.staging.repo.Storer, commit); err == nil {
		return nil
	}
	v, err := c.view(url, "")
	if err != nil {
		return deployer.Errorf(deployer.EConflict, "submodule %s: %s", at, deployer.ErrorMessage(err))
	}
	if err := f.fetch(v); err != nil {
		return c.fetchProblem(err, "submodule "+at, url)
	}
	if _, err := object.GetCommit(c.staging.repo.Storer, commit); err != nil {
		return deployer.Errorf(deployer.EConflict, "submodule %s points at %.10s, which no branch of %s holds", at, commit, url)
	}
	return nil
}
