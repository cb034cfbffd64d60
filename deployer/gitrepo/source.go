package gitrepo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/deploybot/deploybot/deployer"
)

// maxListed caps how many unexpected commits a refusal names, so the
// message stays readable in chat.
const maxListed = 10

var (
	hexRef    = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)
	branchRef = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._/-]*$`)
)

// validBranch accepts branch names git would, minus anything exotic. Refs
// are typed in chat: a name may not start with "-" (it could read as an
// option to some git program) and may not hold "..", "@{", spaces or shell
// characters, whatever git allows.
func validBranch(s string) bool {
	if len(s) > 200 || !branchRef.MatchString(s) || strings.Contains(s, "..") {
		return false
	}
	for _, part := range strings.Split(s, "/") {
		if part == "" || strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".") ||
			strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}

// Baseline fetches upstream and returns the configured branch's tip.
func (r *Repo) Baseline(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return "", err
	}
	heads, err := r.upstreamHeads()
	if err != nil {
		return "", err
	}
	h, ok := heads[r.upstream.Branch]
	if !ok {
		return "", deployer.Errorf(deployer.ENotFound, "upstream has no branch named %s", r.upstream.Branch)
	}
	return h.String(), nil
}

// ref is one requested ref, resolved.
type ref struct {
	text string // as typed
	hash plumbing.Hash
}

// Prepare fetches upstream, resolves req.Refs and checks that they can be
// deployed on top of prevUpstream:
//
//   - every ref is a commit id (a unique prefix of 7 to 40 hex digits among
//     commits on upstream branches) or the name of an upstream branch;
//   - one of them, the target, contains all the others: a deployment ships
//     one line of history;
//   - none of them is deployed already, and the target descends from
//     prevUpstream, so deploying it adds to production and takes nothing
//     away;
//   - every commit the deployment would ship was asked for by name, unless
//     req.IncludeUnexpected: someone else's merged but undeployed change
//     must not go out unnoticed with yours.
//
// On success the target and its commits are in the staging repo, and
// Changes lists prevUpstream..target oldest first. When prevUpstream is ""
// (nothing deployed) there is nothing to compare with: Changes is the
// target alone. The git source waits for nothing, so progress is unused.
func (r *Repo) Prepare(ctx context.Context, req deployer.Request, prevUpstream string, progress func(string)) (*deployer.Prepared, error) {
	if len(req.Refs) == 0 {
		return nil, deployer.Errorf(deployer.EInvalid, "name a commit or a branch to deploy")
	}
	// Check the text before anything else happens: it came from chat.
	for _, t := range req.Refs {
		if !hexRef.MatchString(t) && !validBranch(t) {
			return nil, deployer.Errorf(deployer.EInvalid, "%q is neither a commit id (7 to 40 hex digits) nor a branch name", t)
		}
	}
	var prev plumbing.Hash
	if prevUpstream != "" {
		h, err := parseHash(prevUpstream)
		if err != nil {
			return nil, err
		}
		prev = h
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	heads, err := r.upstreamHeads()
	if err != nil {
		return nil, err
	}
	if !prev.IsZero() {
		if _, err := object.GetCommit(r.repo.Storer, prev); err != nil {
			return nil, fmt.Errorf("gitrepo: deployed upstream commit %s: %w", prev, err)
		}
	}

	var refs []ref
	seen := map[plumbing.Hash]bool{}
	for _, t := range req.Refs {
		h, err := r.resolve(ctx, t, heads)
		if err != nil {
			return nil, err
		}
		if !seen[h] {
			seen[h] = true
			refs = append(refs, ref{text: t, hash: h})
		}
	}

	if prev.IsZero() {
		target, err := r.lineTarget(ctx, refs)
		if err != nil {
			return nil, err
		}
		c, err := object.GetCommit(r.repo.Storer, target.hash)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: commit %s: %w", target.hash, err)
		}
		return &deployer.Prepared{Upstream: target.hash.String(), Changes: []deployer.Change{change(c)}}, nil
	}
	return r.prepareOn(ctx, req, refs, prev)
}

// prepareOn is Prepare's checks against the deployed commit prev.
func (r *Repo) prepareOn(ctx context.Context, req deployer.Request, refs []ref, prev plumbing.Hash) (*deployer.Prepared, error) {
	include := make([]plumbing.Hash, len(refs))
	for i, rf := range refs {
		include[i] = rf.hash
	}
	w := newWalk(ctx, r.repo.Storer)
	if err := w.run(include, []plumbing.Hash{prev}); err != nil {
		if errors.Is(err, errTooFar) {
			return nil, deployer.Errorf(deployer.EInvalid,
				"%s is too far from the deployed commit %s (more than %d commits apart); is it on %s?",
				refList(refs), short(prev), maxWalk, r.upstream.Branch)
		}
		return nil, err
	}
	for _, rf := range refs {
		if !w.good(rf.hash) {
			return nil, deployer.Errorf(deployer.EConflict, "%s is already deployed", rf.text)
		}
	}

	var target ref
	var line map[plumbing.Hash]*node
	for _, rf := range refs {
		below := w.below(rf.hash)
		if containsAll(below, refs) {
			target, line = rf, below
			break
		}
	}
	if line == nil {
		return nil, notOneLine(refs)
	}

	descends := false
	for _, n := range line {
		for _, p := range n.c.ParentHashes {
			descends = descends || p == prev
		}
	}
	if !descends {
		return nil, deployer.Errorf(deployer.EConflict,
			"%s does not descend from the deployed commit %s; rebase it onto %s",
			target.text, short(prev), r.upstream.Branch)
	}

	commits := oldestFirst(line)
	requested := map[plumbing.Hash]bool{}
	for _, rf := range refs {
		requested[rf.hash] = true
	}
	// A commit and its revert inside the same range cancel out: together
	// they ship nothing, so neither is "unexpected"; say so instead.
	inRange := map[string]bool{}
	for _, c := range commits {
		inRange[c.Hash.String()] = true
	}
	cancelled := map[string]bool{}
	var notes []string
	byHash := map[string]*object.Commit{}
	for _, c := range commits {
		byHash[c.Hash.String()] = c
	}
	for _, c := range commits {
		if rv := RevertsCommit(c.Message); rv != "" && inRange[rv] {
			if ok, err := r.undoes(ctx, c, byHash[rv]); err != nil {
				return nil, err
			} else if !ok {
				continue // a partial or edited revert: both ship something
			}
			cancelled[rv], cancelled[c.Hash.String()] = true, true
			notes = append(notes, fmt.Sprintf("%s and its revert %s (%s) cancel out: they ship nothing", short(plumbing.NewHash(rv)), short(c.Hash), firstLine(c.Message)))
		}
	}
	var unexpected []*object.Commit
	for _, c := range commits {
		if !requested[c.Hash] && !cancelled[c.Hash.String()] {
			unexpected = append(unexpected, c)
		}
	}
	changes := make([]deployer.Change, len(commits))
	for i, c := range commits {
		changes[i] = change(c)
		changes[i].Unexpected = !requested[c.Hash] && !cancelled[c.Hash.String()]
	}
	if len(unexpected) > 0 && !req.IncludeUnexpected {
		var carried []deployer.Change
		for _, c := range changes {
			if c.Unexpected {
				carried = append(carried, c)
			}
		}
		return nil, &deployer.UnexpectedError{Err: unexpectedError(target.text, unexpected), Changes: carried}
	}
	return &deployer.Prepared{Upstream: target.hash.String(), Changes: changes, Notes: notes}, nil
}

// undoes reports whether commit rv changes exactly what orig changed, back
// to what it was before orig (relative to each one's first parent): only
// then do the two cancel out. A revert message alone proves nothing: a
// partial or edited revert ships changes of its own, and leaves some of
// orig's. The caller holds mu.
func (r *Repo) undoes(ctx context.Context, rv, orig *object.Commit) (bool, error) {
	if rv == nil || orig == nil || len(rv.ParentHashes) == 0 || len(orig.ParentHashes) == 0 {
		return false, nil
	}
	diff := func(from, to plumbing.Hash) ([]deployer.FileChange, error) {
		fc, err := object.GetCommit(r.repo.Storer, from)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: commit %s: %w", from, err)
		}
		tc, err := object.GetCommit(r.repo.Storer, to)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: commit %s: %w", to, err)
		}
		d := &differ{ctx: ctx, r: r}
		if err := d.trees("", fc.TreeHash, tc.TreeHash); err != nil {
			return nil, err
		}
		sort.Slice(d.out, func(i, j int) bool { return d.out[i].Path < d.out[j].Path })
		return d.out, nil
	}
	undo, err := diff(orig.Hash, orig.ParentHashes[0]) // what undoing orig does
	if err != nil {
		return false, err
	}
	did, err := diff(rv.ParentHashes[0], rv.Hash) // what rv does
	if err != nil {
		return false, err
	}
	if len(undo) != len(did) {
		return false, nil
	}
	for i := range undo {
		a, b := undo[i], did[i]
		if a.Path != b.Path || a.Delete != b.Delete || a.Mode != b.Mode || a.Hash != b.Hash {
			return false, nil
		}
	}
	return true, nil
}

// RevertsCommit returns the first commit a commit message says it
// reverts (RevertsOf), or "".
func RevertsCommit(msg string) string {
	if rs := RevertsOf(msg); len(rs) > 0 {
		return rs[0]
	}
	return ""
}

// CheckRef implements deployer.RefChecker: a ref must look like a commit
// id or a branch name before it is queued.
func (r *Repo) CheckRef(ref string) error {
	if !hexRef.MatchString(ref) && !validBranch(ref) {
		return deployer.Errorf(deployer.EInvalid, "%q is neither a commit id (7 to 40 hex digits) nor a branch name", ref)
	}
	return nil
}

// lineTarget returns the ref that contains all the others, checking
// ancestry pairwise. It is only used when nothing is deployed yet, so there
// is no deployed commit to bound the walks by.
func (r *Repo) lineTarget(ctx context.Context, refs []ref) (ref, error) {
	for _, t := range refs {
		all := true
		for _, o := range refs {
			if o.hash == t.hash {
				continue
			}
			ok, err := reaches(ctx, r.repo.Storer, []plumbing.Hash{t.hash}, o.hash)
			if errors.Is(err, errTooFar) {
				return ref{}, deployer.Errorf(deployer.EInvalid,
					"%s and %s are too far apart (more than %d commits) to check", t.text, o.text, maxWalk)
			}
			if err != nil {
				return ref{}, err
			}
			if !ok {
				all = false
				break
			}
		}
		if all {
			return t, nil
		}
	}
	return ref{}, notOneLine(refs)
}

func notOneLine(refs []ref) error {
	which := "none of them contains the others"
	if len(refs) == 2 {
		which = "neither contains the other"
	}
	return deployer.Errorf(deployer.EInvalid,
		"%s are not one line of history (%s); deploy them one at a time or put them on one branch",
		refList(refs), which)
}

func containsAll(set map[plumbing.Hash]*node, refs []ref) bool {
	for _, rf := range refs {
		if _, ok := set[rf.hash]; !ok {
			return false
		}
	}
	return true
}

func refList(refs []ref) string {
	texts := make([]string, len(refs))
	for i, rf := range refs {
		texts[i] = rf.text
	}
	if len(texts) <= 1 {
		return strings.Join(texts, "")
	}
	return strings.Join(texts[:len(texts)-1], ", ") + " and " + texts[len(texts)-1]
}

func unexpectedError(target string, cs []*object.Commit) *deployer.Error {
	items := make([]string, 0, maxListed)
	for i, c := range cs {
		if i == maxListed {
			break
		}
		items = append(items, fmt.Sprintf("%s %s (%s)", short(c.Hash), firstLine(c.Message), c.Author.Name))
	}
	list := strings.Join(items, "; ")
	if n := len(cs) - maxListed; n > 0 {
		list += fmt.Sprintf("; and %d more", n)
	}
	what := "1 commit that was"
	if len(cs) > 1 {
		what = fmt.Sprintf("%d commits that were", len(cs))
	}
	return deployer.Errorf(deployer.EConflict,
		"deploying %s would also ship %s not asked for: %s. Check with their authors, then repeat with --include-unexpected to ship them too",
		target, what, list)
}

// resolve turns one validated ref into an upstream commit. A hex ref is
// tried as a commit id first, then as a branch name.
func (r *Repo) resolve(ctx context.Context, text string, heads map[string]plumbing.Hash) (plumbing.Hash, error) {
	if hexRef.MatchString(text) {
		found, err := r.resolvePrefix(ctx, text, heads)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		switch len(found) {
		case 0:
		case 1:
			return found[0], nil
		default:
			names := make([]string, len(found))
			for i, h := range found {
				names[i] = short(h)
			}
			return plumbing.ZeroHash, deployer.Errorf(deployer.EInvalid,
				"%s is ambiguous: it starts %d upstream commits (%s); give more of the hash",
				text, len(found), strings.Join(names, ", "))
		}
	}
	if h, ok := heads[text]; ok && validBranch(text) {
		return h, nil
	}
	return plumbing.ZeroHash, deployer.Errorf(deployer.ENotFound, "no commit or branch named %s upstream", text)
}

// resolvePrefix returns the commits on upstream branches whose id starts
// with prefix. The object database also holds staging commits and commits
// of branches upstream has since rewritten or deleted; none of those may be
// deployed, so a candidate counts only if an upstream branch reaches it.
func (r *Repo) resolvePrefix(ctx context.Context, prefix string, heads map[string]plumbing.Hash) ([]plumbing.Hash, error) {
	prefix = strings.ToLower(prefix)
	cands, err := r.hashesWithPrefix(prefix)
	if err != nil {
		return nil, err
	}
	tips := make([]plumbing.Hash, 0, len(heads))
	for _, h := range heads {
		tips = append(tips, h)
	}
	sort.Slice(tips, func(i, j int) bool { return tips[i].String() < tips[j].String() })

	var found []plumbing.Hash
	tooFar := false
	for _, h := range cands {
		if _, err := object.GetCommit(r.repo.Storer, h); err != nil {
			continue // a tree or a blob
		}
		ok, err := reaches(ctx, r.repo.Storer, tips, h)
		if errors.Is(err, errTooFar) {
			tooFar = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, h)
		}
	}
	if len(found) == 0 && tooFar {
		return nil, deployer.Errorf(deployer.EInvalid,
			"%s is not among the newest %d commits of any upstream branch; it is too old to deploy", prefix, maxWalk)
	}
	return found, nil
}

// hashesWithPrefix lists the objects whose id starts with the hex prefix.
// go-git matches whole bytes, so an odd last digit is matched here.
func (r *Repo) hashesWithPrefix(prefix string) ([]plumbing.Hash, error) {
	lister, ok := r.repo.Storer.(interface {
		HashesWithPrefix([]byte) ([]plumbing.Hash, error)
	})
	if !ok {
		return nil, errors.New("gitrepo: storage cannot look up hash prefixes")
	}
	b, err := hex.DecodeString(prefix[:len(prefix)/2*2])
	if err != nil {
		return nil, fmt.Errorf("gitrepo: %w", err)
	}
	all, err := lister.HashesWithPrefix(b)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: look up %s: %w", prefix, err)
	}
	var out []plumbing.Hash
	for _, h := range all {
		if strings.HasPrefix(h.String(), prefix) {
			out = append(out, h)
		}
	}
	return out, nil
}

// change describes an upstream commit for the deployment record.
func change(c *object.Commit) deployer.Change {
	return deployer.Change{
		ID:          c.Hash.String(),
		Commit:      c.Hash.String(),
		Subject:     firstLine(c.Message),
		Author:      c.Author.Name,
		AuthorEmail: c.Author.Email,
		Bugs:        bugs(c.Message),
		Reverts:     RevertsCommit(c.Message),
	}
}

// bugs returns the values of "Bug:" lines in a commit message body, the
// trailer MediaWiki-style projects use (Bug: T12345), in order and without
// repeats. Any body line counts, not only the last paragraph: people put a
// Change-Id paragraph after it often enough.
func bugs(msg string) []string {
	var out []string
	seen := map[string]bool{}
	lines := strings.Split(msg, "\n")
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.EqualFold(k, "bug") {
			continue
		}
		for _, b := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	return out
}

// Prepare is Repo.Prepare for the git change source, which also logs what
// it prepared on Log (when set), naming the request's deployment.
func (s *Reverter) Prepare(ctx context.Context, req deployer.Request, prevUpstream string, progress func(string)) (*deployer.Prepared, error) {
	prep, err := s.Repo.Prepare(ctx, req, prevUpstream, progress)
	if err == nil && s.Log != nil {
		log := s.Log
		if req.Deployment != 0 {
			log = log.With("deployment", req.Deployment)
		}
		log.Info("git changes prepared", "refs", strings.Join(req.Refs, " "), "upstream", prep.Upstream, "changes", len(prep.Changes))
	}
	return prep, err
}
