// Package gerrit is the `gerrit` change source: a deployer says
// `!backport 123456` (or pastes the change's URL), and the bot validates
// the change over Gerrit's REST API, approves it when configured to,
// waits for it to merge, fetches the branch into the staging repository
// and deploys the commit the change merged as. After a rollback that blames
// the change it opens a revert change upstream, so the source of truth
// stops holding the bad change.
//
// Gerrit is reached only through its documented REST API (JSON answers
// start with the )]}' line; authenticated calls go under /a/ with HTTP basic
// auth). Git objects come through the staging repository (deployer/gitrepo),
// which fetches the project's branch like any git remote.
package gerrit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// Config is what the source needs to know about the Gerrit it talks to.
type Config struct {
	// URL is the Gerrit site's root as people see it, e.g.
	// https://gerrit.wikimedia.org/r. Change links are built on it and
	// pasted links must point at its host.
	URL string
	// Project and Branch are what this bot deploys; changes for anything
	// else are refused.
	Project, Branch string
	// Username and Password are the bot's account and HTTP password. The
	// password is read by the caller from an environment variable or a
	// file, never from the configuration file. Without a username the
	// source can read but not vote, comment or revert.
	Username, Password string
	// Approve makes the bot vote Code-Review +2 on the changes it is asked
	// to deploy; otherwise it waits for people to approve and merge them.
	Approve bool
	// MergeTimeout bounds the wait for approved changes to merge;
	// PollInterval is how often the wait looks at them.
	MergeTimeout, PollInterval time.Duration
	// HTTP is the client for REST calls (a 30 s timeout by default).
	HTTP   *http.Client
	Logger *slog.Logger
}

// Defaults for Config's zero values.
const (
	DefaultMergeTimeout = 30 * time.Minute
	DefaultPollInterval = 10 * time.Second
)

// Source is the gerrit change source. It implements deployer.ChangeSource
// and deployer.Reverter.
type Source struct {
	cfg  Config
	base *url.URL
	api  *client
	repo *gitrepo.Repo
	log  *slog.Logger
	// now is the clock the merge wait measures its timeout with.
	now func() time.Time
}

var (
	_ deployer.ChangeSource = (*Source)(nil)
	_ deployer.Reverter     = (*Source)(nil)
)

// New returns a source for the Gerrit in cfg whose git objects arrive
// through repo, the staging repository, which must fetch cfg.Branch of the
// project's repository.
func New(cfg Config, repo *gitrepo.Repo) (*Source, error) {
	base, err := parseBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Project == "" || cfg.Branch == "" {
		return nil, errors.New("gerrit: project and branch are required")
	}
	if repo.Branch() != cfg.Branch {
		return nil, fmt.Errorf("gerrit: the staging repository follows branch %s, not %s", repo.Branch(), cfg.Branch)
	}
	return newSource(cfg, base, repo), nil
}

// newSource fills in cfg's defaults and returns the source on them.
func newSource(cfg Config, base *url.URL, repo *gitrepo.Repo) *Source {
	if cfg.MergeTimeout <= 0 {
		cfg.MergeTimeout = DefaultMergeTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Source{
		cfg:  cfg,
		base: base,
		api:  &client{base: base, username: cfg.Username, password: cfg.Password, http: cfg.HTTP},
		repo: repo,
		log:  cfg.Logger,
		now:  time.Now,
	}
}

// parseBase reads the Gerrit site's URL.
func parseBase(u string) (*url.URL, error) {
	base, err := url.Parse(strings.TrimSuffix(u, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("gerrit: %q is not an http(s) URL", u)
	}
	return base, nil
}

// Link returns the web link of change n.
func (s *Source) Link(n int) string {
	return fmt.Sprintf("%s/c/%s/+/%d", s.base.String(), s.cfg.Project, n)
}

// link returns the web link of a change, in its own project.
func (s *Source) link(ci *ChangeInfo) string {
	if ci.Project == "" {
		return s.Link(ci.Number)
	}
	return fmt.Sprintf("%s/c/%s/+/%d", s.base.String(), ci.Project, ci.Number)
}

// searchLink returns a web link that finds the change with a Change-Id.
func (s *Source) searchLink(changeID string) string {
	return s.base.String() + "/q/" + changeID
}

// Baseline fetches the branch and returns its tip.
func (s *Source) Baseline(ctx context.Context) (string, error) {
	return s.repo.Baseline(ctx)
}

// want is one requested change as the preparation goes along.
type want struct {
	ref    Ref
	info   *ChangeInfo
	commit string // the commit it merged as, once known
	// landed is the commit of the branch's first-parent line that brought
	// commit in: commit itself, or the merge commit Gerrit made on submit
	// (MERGE_IF_NECESSARY) when the change was not on the branch's tip.
	landed string
	deps   []int // requested changes it depends on
}

// Prepare validates the requested changes, approves them and waits for
// them to merge when needed, fetches the branch and returns the commit to
// deploy. See the package comment and README's "Gerrit" section for the
// rules; every problem a person can fix is one line in one *deployer.Error.
func (s *Source) Prepare(ctx context.Context, req deployer.Request, prevUpstream string, progress func(string)) (*deployer.Prepared, error) {
	if progress == nil {
		progress = func(string) {}
	}
	// Every line about this request carries its deployment's id: the
	// helpers below log on the logger ctx carries (s.logger).
	log := s.log
	if req.Deployment != 0 {
		log = log.With("deployment", req.Deployment)
	}
	ctx = deployer.WithLogger(ctx, log)
	log = log.With("refs", strings.Join(req.Refs, " "))
	ws, err := s.validate(ctx, req.Refs, s.inProject)
	if err != nil {
		return nil, err
	}
	if err := s.checkUnexpected(ctx, req, ws, prevUpstream); err != nil {
		return nil, err
	}
	if err := s.approveAndWait(ctx, req, ws, progress); err != nil {
		return nil, err
	}
	if err := s.findMerged(ctx, ws, prevUpstream); err != nil {
		return nil, err
	}
	prep, err := s.prepared(ctx, req, ws, prevUpstream)
	if err != nil {
		return nil, err
	}
	progress(s.summary(ws))
	log.Info("gerrit changes prepared", "upstream", prep.Upstream, "changes", len(prep.Changes))
	return prep, nil
}

// problems collects what is wrong with a request, to report all at once.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return deployer.Errorf(deployer.EInvalid, "%s", strings.Join(p, "; "))
}

// scope says whether a change is of a project and branch the bot
// deploys: "" when it is, else the rest of a sentence starting with the
// change's name ("is for ... ; I deploy ...").
type scope func(ci *ChangeInfo) string

// inProject is the one-project source's scope.
func (s *Source) inProject(ci *ChangeInfo) string {
	if ci.Project != s.cfg.Project || ci.Branch != s.cfg.Branch {
		return fmt.Sprintf("is for %s branch %s; I deploy %s branch %s", ci.Project, ci.Branch, s.cfg.Project, s.cfg.Branch)
	}
	return ""
}

// validate parses and looks up every ref and checks, before anything is
// touched, that each change can be deployed: found, for a project and
// branch in scope, not abandoned, not a work in progress, mergeable, not
// depending on an unmerged change left out of the request, and not in a
// dependency cycle. It returns the changes in dependency order.
func (s *Source) validate(ctx context.Context, refs []string, in scope) ([]*want, error) {
	var ps problems
	var ws []*want
	seen := map[int]bool{}
	byNumber := map[int]*want{}
	for _, t := range refs {
		r, err := ParseRef(t, s.base)
		if err != nil {
			ps.add("%s", deployer.ErrorMessage(err))
			continue
		}
		if !seen[r.Number] {
			seen[r.Number] = true
			byNumber[r.Number] = &want{ref: r}
			ws = append(ws, byNumber[r.Number])
			continue
		}
		// Named again: a patch set the repeat links to is checked as well.
		switch w := byNumber[r.Number]; {
		case r.PatchSet == 0 || r.PatchSet == w.ref.PatchSet:
		case w.ref.PatchSet == 0:
			w.ref = r
		default:
			ps.add("you linked patch sets %d and %d of change %d; name the one to deploy", w.ref.PatchSet, r.PatchSet, r.Number)
		}
	}
	// Every ref that parsed is looked up, and every change found is
	// checked, so that one answer lists everything to fix.
	var found []*want
	for _, w := range ws {
		ci, err := s.api.change(ctx, w.ref.Number)
		switch {
		case statusOf(err) == http.StatusNotFound:
			ps.add("change %d was not found on %s", w.ref.Number, s.base.Host)
			continue
		case err != nil:
			return nil, s.internal(ctx, "looking up a change", err, w.ref.Number)
		}
		w.info = ci
		if s.checkOne(ctx, w, in, &ps) {
			found = append(found, w)
		}
	}
	if err := s.checkDeps(ctx, found, seen, in, &ps); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		if cyc := cycle(ws); len(cyc) > 0 {
			ps.add("changes %s depend on each other in a circle (Depends-On lines or a relation chain), so I cannot tell which goes first; remove one of the Depends-On lines, then ask again", strings.Join(cyc, ", "))
		}
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	return dependencyOrder(ws), nil
}

// checkOne adds the problems one change has on its own. It reports
// whether its dependencies are worth checking (not for a change of
// another branch, or an abandoned one).
func (s *Source) checkOne(ctx context.Context, w *want, in scope, ps *problems) bool {
	ci := w.info
	name := fmt.Sprintf("change %d (%s)", ci.Number, clip(ci.Subject))
	if msg := in(ci); msg != "" {
		ps.add("%s %s", name, msg)
		return false
	}
	switch ci.Status {
	case StatusAbandoned:
		ps.add("%s is abandoned; restore it first", name)
		return false
	case StatusMerged:
		return true
	}
	if ci.WorkInProgress {
		ps.add("%s is a work in progress; mark it ready first", name)
	}
	// A veto blocks the merge: refuse before the bot approves over it.
	for _, a := range ci.Labels[CodeReview].All {
		if a.Value <= -2 {
			ps.add("%s is vetoed: %s voted Code-Review %d; it cannot merge until that vote is removed", name, a.Display(), a.Value)
		}
	}
	rev, _ := ci.current()
	if w.ref.PatchSet > 0 && rev.Number > 0 && w.ref.PatchSet != rev.Number {
		ps.add("you linked patch set %d of change %d, but its current patch set is %d; check it and ask again with the change number", w.ref.PatchSet, ci.Number, rev.Number)
	}
	ok, err := s.api.mergeable(ctx, ci.Number, "current")
	if err != nil {
		s.logger(ctx).Warn("gerrit: mergeable check failed", "change", ci.Number, "err", err)
	} else if !ok && !s.mergedMeanwhile(ctx, w) {
		ps.add("%s has a merge conflict with %s; rebase it first", name, ci.Branch)
	}
	return true
}

// mergedMeanwhile reports whether a change that Gerrit calls unmergeable
// has in fact just merged (a closed change is not "mergeable" either), and
// if so records its merged state.
func (s *Source) mergedMeanwhile(ctx context.Context, w *want) bool {
	ci, err := s.api.change(ctx, w.info.Number)
	if err != nil || ci.Status != StatusMerged {
		return false
	}
	w.info = ci
	return true
}

// checkDeps adds dependency problems: an unmerged parent in the relation
// chain, an unmerged Depends-On, or a change Gerrit would submit together
// with a requested one, none of them in the request. It also records
// which requested changes depend on which, for the order.
func (s *Source) checkDeps(ctx context.Context, ws []*want, requested map[int]bool, in scope, ps *problems) error {
	byChangeID := map[string]int{}
	for _, w := range ws {
		byChangeID[w.info.ChangeID] = w.info.Number
	}
	for _, w := range ws {
		ci := w.info
		if ci.Status != StatusNew {
			continue
		}
		reported := map[int]bool{}
		name := fmt.Sprintf("change %d", ci.Number)
		missing := func(n int, subject, why string) {
			if reported[n] {
				return
			}
			reported[n] = true
			ps.add("%s %s change %d (%s), which is not merged; add it to the request (!backport %d %d) or merge it first", name, why, n, clip(subject), n, ci.Number)
		}
		// The relation chain lists descendants, the change itself, then
		// its ancestors.
		rel, err := s.api.related(ctx, ci.Number, "current")
		if err != nil {
			return s.internal(ctx, "reading the relation chain", err, ci.Number)
		}
		self := -1
		for i, r := range rel {
			if r.ChangeNumber == ci.Number {
				self = i
			}
		}
		if self >= 0 {
			for _, r := range rel[self+1:] {
				switch {
				case requested[r.ChangeNumber]:
					w.deps = append(w.deps, r.ChangeNumber)
				case r.Status != StatusMerged:
					missing(r.ChangeNumber, r.Commit.Subject, "is based on")
				}
			}
		}
		// Depends-On footers (Zuul's cross-change dependencies).
		_, commit := ci.current()
		if commit != nil {
			for _, dep := range dependsOn(commit.Message) {
				if err := s.checkDependsOn(ctx, w, dep, byChangeID, requested, in, missing, ps); err != nil {
					return err
				}
			}
		}
		// Gerrit submits some changes together (same topic with
		// submitWholeTopic, or a chain): all of them would merge.
		together, err := s.api.submittedTogether(ctx, ci.Number)
		if err != nil {
			return s.internal(ctx, "reading the changes submitted together", err, ci.Number)
		}
		for _, o := range together {
			if o.Number == ci.Number || requested[o.Number] || o.Status != StatusNew {
				continue
			}
			if !reported[o.Number] {
				reported[o.Number] = true
				ps.add("submitting change %d would also submit change %d (%s); add it to the request (!backport %d %d) or split them", ci.Number, o.Number, clip(o.Subject), ci.Number, o.Number)
			}
		}
	}
	return nil
}

// checkDependsOn checks one Depends-On value: a Change-Id or a link.
func (s *Source) checkDependsOn(ctx context.Context, w *want, dep string, byChangeID map[string]int, requested map[int]bool,
	in scope, missing func(int, string, string), ps *problems) error {
	if n, ok := byChangeID[dep]; ok {
		if n != w.info.Number {
			w.deps = append(w.deps, n)
		}
		return nil
	}
	var found []ChangeInfo
	if changeIDRe.MatchString(dep) {
		cs, err := s.api.query(ctx, "change:"+dep)
		if err != nil {
			return s.internal(ctx, "looking up a Depends-On change", err, w.info.Number)
		}
		found = cs
	} else {
		r, err := ParseRef(dep, s.base)
		if err != nil {
			ps.add("change %d depends on %s, which I cannot check; merge it first or remove the Depends-On line", w.info.Number, clip(dep))
			return nil
		}
		if requested[r.Number] {
			w.deps = append(w.deps, r.Number)
			return nil
		}
		ci, err := s.api.change(ctx, r.Number)
		if statusOf(err) == http.StatusNotFound {
			ps.add("change %d depends on change %d, which does not exist", w.info.Number, r.Number)
			return nil
		}
		if err != nil {
			return s.internal(ctx, "looking up a Depends-On change", err, w.info.Number)
		}
		found = []ChangeInfo{*ci}
	}
	if len(found) == 0 {
		ps.add("change %d depends on %s, which was not found", w.info.Number, clip(dep))
		return nil
	}
	for _, f := range found {
		if f.Status == StatusMerged {
			return nil // merged somewhere: Zuul's rule, and ours
		}
	}
	if f := found[0]; in(&f) != "" {
		ps.add("change %d depends on change %d (%s) of %s branch %s, which is not merged, and which I do not deploy; merge it first, or have a component follow %s %s in the configuration",
			w.info.Number, f.Number, clip(f.Subject), f.Project, f.Branch, f.Project, f.Branch)
		return nil
	}
	missing(found[0].Number, found[0].Subject, "depends on")
	return nil
}

// dependsOn returns the values of a commit message's Depends-On lines.
func dependsOn(msg string) []string {
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Depends-On") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// dependencyOrder sorts changes so that each comes after the requested
// changes it depends on, otherwise in the order they were asked for.
func dependencyOrder(ws []*want) []*want {
	index := map[int]*want{}
	for _, w := range ws {
		index[w.info.Number] = w
	}
	var out []*want
	done := map[int]bool{}
	visiting := map[int]bool{}
	var visit func(w *want)
	visit = func(w *want) {
		n := w.info.Number
		if done[n] || visiting[n] {
			return // a cycle cannot be ordered; keep the request's order
		}
		visiting[n] = true
		deps := append([]int(nil), w.deps...)
		sort.Ints(deps)
		for _, d := range deps {
			if dw := index[d]; dw != nil {
				visit(dw)
			}
		}
		visiting[n] = false
		done[n] = true
		out = append(out, w)
	}
	for _, w := range ws {
		visit(w)
	}
	return out
}

// logger is the logger for a request's lines: the one ctx carries (with
// the deployment's id, see Prepare), or the source's own.
func (s *Source) logger(ctx context.Context) *slog.Logger { return deployer.LoggerFrom(ctx, s.log) }

// internal logs err in full and returns it for the pipeline, which shows
// "internal error" in chat.
func (s *Source) internal(ctx context.Context, doing string, err error, change int) error {
	if errors.Is(err, context.Canceled) {
		return err // the step was interrupted (!cancel, shutdown): nothing failed
	}
	s.logger(ctx).Error("gerrit: "+doing+" failed", "change", change, "err", err)
	switch statusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return deployer.Errorf(deployer.EForbidden, "Gerrit refused the bot's credentials while %s for change %d; check source.gerrit.username and its password", doing, change)
	}
	return fmt.Errorf("gerrit: %s for change %d: %w", doing, change, err)
}

// findMerged fetches the branch and finds the commit each change merged
// as: its current revision when the branch holds it, or else the commit on
// the branch carrying its Change-Id (Gerrit rebased or cherry-picked it on
// submit). Replication to the git URL may lag behind the REST API, so a
// missing commit is fetched again a few times.
func (s *Source) findMerged(ctx context.Context, ws []*want, prevUpstream string) error {
	const tries = 4
	for attempt := 1; ; attempt++ {
		tip, err := s.repo.Baseline(ctx)
		if err != nil {
			return err
		}
		var missing []string
		for _, w := range ws {
			if w.commit != "" {
				continue
			}
			c, err := s.mergedCommit(ctx, w, tip, prevUpstream)
			if err != nil {
				return err
			}
			if c == "" {
				missing = append(missing, strconv.Itoa(w.info.Number))
				continue
			}
			w.commit = c
			if w.landed, err = s.landedBy(ctx, c, tip, prevUpstream); err != nil {
				return err
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if attempt == tries {
			return deployer.Errorf(deployer.EConflict, "change(s) %s merged, but %s does not hold their commits yet; try again in a minute",
				strings.Join(missing, ", "), s.cfg.Branch)
		}
		s.logger(ctx).Info("gerrit: merged commit not fetched yet; fetching again", "changes", strings.Join(missing, ","), "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(s.cfg.PollInterval, 5*time.Second)):
		}
	}
}

func (s *Source) mergedCommit(ctx context.Context, w *want, tip, prevUpstream string) (string, error) {
	rev := w.info.CurrentRevision
	if rev != "" && s.repo.HasCommit(rev) {
		in, err := s.repo.IsAncestor(ctx, rev, tip)
		if err != nil {
			return "", err
		}
		if in {
			return rev, nil
		}
	}
	// Look for the Change-Id among the commits not deployed yet (or, with
	// nothing deployed, among the tip's recent history).
	from := prevUpstream
	cs, err := s.repo.Range(ctx, from, tip)
	if from == "" && err == nil {
		cs, err = s.recent(ctx, tip)
	}
	if err != nil {
		return "", err
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if gitrepo.ChangeIDOf(cs[i].Message) == w.info.ChangeID {
			return cs[i].Hash, nil
		}
	}
	return "", nil
}

// landedBy returns the commit of tip's first-parent line, after
// prevUpstream, that first holds commit: commit itself when the change
// went onto the branch as it is (a fast-forward, a rebase or a
// cherry-pick), else the merge commit that brought it in. Deploying commit
// alone would take away what the branch held before that merge.
func (s *Source) landedBy(ctx context.Context, commit, tip, prevUpstream string) (string, error) {
	var line []string // first parents, newest first
	h := tip
	for i := 0; h != "" && h != prevUpstream && i < recentDepth; i++ {
		if h == commit {
			return commit, nil
		}
		line = append(line, h)
		c, err := s.repo.LookupCommit(ctx, h)
		if err != nil {
			return "", err
		}
		h = ""
		if len(c.Parents) > 0 {
			h = c.Parents[0]
		}
	}
	cut := h != "" && h != prevUpstream // the line goes on beyond reach
	// Holding commit is monotonic along the line (every commit after one
	// that holds it does too): search for the first one that does.
	var ferr error
	i := sort.Search(len(line), func(i int) bool {
		in, err := s.repo.IsAncestor(ctx, commit, line[i])
		if err != nil && ferr == nil {
			ferr = err
		}
		return !in // line is newest first: the holders come first
	})
	if ferr != nil {
		return "", ferr
	}
	if i == 0 || (i == len(line) && cut) {
		return commit, nil // where it landed is out of reach: as before
	}
	return line[i-1], nil
}

// recentDepth is how far back from the tip a merged change's commit is
// looked for when nothing was deployed yet.
const recentDepth = 200

// recent returns up to recentDepth first-parent commits from tip, oldest
// first.
func (s *Source) recent(ctx context.Context, tip string) ([]gitrepo.UpstreamCommit, error) {
	var out []gitrepo.UpstreamCommit
	h := tip
	for i := 0; i < recentDepth && h != ""; i++ {
		c, err := s.repo.LookupCommit(ctx, h)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
		h = ""
		if len(c.Parents) > 0 {
			h = c.Parents[0]
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// prepared picks the commit to deploy (the requested change that contains
// the others), refuses changes already deployed and, unless asked,
// undeployed commits nobody requested, and describes the changes.
func (s *Source) prepared(ctx context.Context, req deployer.Request, ws []*want, prevUpstream string) (*deployer.Prepared, error) {
	byCommit := map[string]*want{}
	for _, w := range ws {
		byCommit[w.commit] = w
	}
	// A merge commit Gerrit made on submit is the requested change's way
	// onto the branch: it is deployed (the change alone does not descend
	// from what the branch held), and is not someone else's commit.
	landed := map[string]bool{}
	for _, w := range ws {
		if w.landed != w.commit {
			landed[w.landed] = true
		}
	}
	var ps problems
	if prevUpstream != "" {
		for _, w := range ws {
			in, err := s.repo.IsAncestor(ctx, w.commit, prevUpstream)
			if err != nil {
				return nil, err
			}
			if in {
				ps.add("change %d (%s) is already deployed", w.info.Number, clip(w.info.Subject))
			}
		}
		if len(ps) > 0 {
			return nil, deployer.Errorf(deployer.EConflict, "%s", strings.Join(ps, "; "))
		}
	}
	var target *want
	for _, t := range ws {
		all := true
		for _, o := range ws {
			in, err := s.repo.IsAncestor(ctx, o.landed, t.landed)
			if err != nil {
				return nil, err
			}
			all = all && in
		}
		if all {
			target = t
			break
		}
	}
	if target == nil {
		return nil, deployer.Errorf(deployer.EInvalid, "the changes merged on diverging lines of history; deploy them one at a time")
	}
	if prevUpstream == "" {
		var out []deployer.Change
		for _, w := range ws {
			c, err := s.repo.LookupCommit(ctx, w.commit)
			if err != nil {
				return nil, err
			}
			out = append(out, s.change(w, c))
		}
		return &deployer.Prepared{Upstream: target.landed, Changes: out}, nil
	}
	if ok, err := s.repo.IsAncestor(ctx, prevUpstream, target.landed); err != nil {
		return nil, err
	} else if !ok {
		return nil, deployer.Errorf(deployer.EConflict, "change %d merged as %.10s, which does not descend from the deployed commit %.10s; was %s rewritten?",
			target.info.Number, target.landed, prevUpstream, s.cfg.Branch)
	}
	line, err := s.repo.Range(ctx, prevUpstream, target.landed)
	if err != nil {
		return nil, err
	}
	var unexpected []gitrepo.UpstreamCommit
	out := make([]deployer.Change, 0, len(line))
	for _, c := range line {
		if w := byCommit[c.Hash]; w != nil {
			out = append(out, s.change(w, &c))
			continue
		}
		if landed[c.Hash] && len(c.Parents) == 2 && byCommit[c.Parents[1]] != nil {
			continue // Gerrit's merge of a requested change: nothing of its own
		}
		unexpected = append(unexpected, c)
		ch := deployer.Change{ID: c.Hash, Commit: c.Hash, Subject: c.Subject, Author: c.Author, AuthorEmail: c.AuthorEmail, Bugs: gitrepo.Bugs(c.Message),
			Reverts: gitrepo.RevertsCommit(c.Message), Unexpected: true}
		if id := gitrepo.ChangeIDOf(c.Message); id != "" {
			ch.URL = s.searchLink(id)
		}
		out = append(out, ch)
	}
	if len(unexpected) > 0 && !req.IncludeUnexpected {
		return nil, s.unexpectedError(target, unexpected)
	}
	return &deployer.Prepared{Upstream: target.landed, Changes: out}, nil
}

// checkUnexpected refuses, before anything is approved, a request that
// would ship commits already merged but not deployed, unless the request
// includes them: approving first would merge the change and still not
// deploy it, adding to the very backlog this check guards against.
// prepared checks again after the merge, for commits merged meanwhile.
func (s *Source) checkUnexpected(ctx context.Context, req deployer.Request, ws []*want, prevUpstream string) error {
	if prevUpstream == "" || req.IncludeUnexpected {
		return nil
	}
	tip, err := s.repo.Baseline(ctx)
	if err != nil {
		return err
	}
	if tip == prevUpstream {
		return nil
	}
	line, err := s.repo.Range(ctx, prevUpstream, tip)
	if err != nil {
		// Upstream was rewritten, or is far ahead: prepared explains
		// that after the merge if it matters.
		s.logger(ctx).Warn("gerrit: listing undeployed commits failed", "err", err)
		return nil
	}
	mine := ownCommits(ws)
	var unexpected []gitrepo.UpstreamCommit
	for _, c := range line {
		if !mine[c.Hash] && !mine[gitrepo.ChangeIDOf(c.Message)] {
			unexpected = append(unexpected, c)
		}
	}
	if len(unexpected) == 0 {
		return nil
	}
	return s.unexpectedError(ws[len(ws)-1], unexpected)
}

// summary is one line naming every requested change with its link and the
// tasks of its Bug: lines.
func (s *Source) summary(ws []*want) string {
	var parts []string
	for _, w := range ws {
		part := fmt.Sprintf("change %d (%s) %s", w.info.Number, clip(w.info.Subject), s.link(w.info))
		if _, c := w.info.current(); c != nil {
			if bugs := gitrepo.Bugs(c.Message); len(bugs) > 0 {
				part += " [" + strings.Join(bugs, ", ") + "]"
			}
		}
		parts = append(parts, part)
	}
	return "merged and fetched: " + strings.Join(parts, "; ")
}

// maxListed caps how many unexpected commits a refusal names.
const maxListed = 10

func (s *Source) unexpectedError(target *want, cs []gitrepo.UpstreamCommit) error {
	var items []string
	for i, c := range cs {
		if i == maxListed {
			items = append(items, fmt.Sprintf("and %d more", len(cs)-maxListed))
			break
		}
		items = append(items, s.commitItem(c))
	}
	what := "1 commit that was"
	if len(cs) > 1 {
		what = fmt.Sprintf("%d commits that were", len(cs))
	}
	return deployer.Errorf(deployer.EConflict,
		"deploying change %d would also ship %s merged but not deployed: %s. Check with their authors, then repeat with --include-unexpected to ship them too",
		target.info.Number, what, strings.Join(items, "; "))
}

// commitItem names an unexpected commit for a refusal: its hash, subject
// and author, and the link to its Gerrit change when its message has a
// Change-Id.
func (s *Source) commitItem(c gitrepo.UpstreamCommit) string {
	item := fmt.Sprintf("%.10s %s (%s", c.Hash, clip(c.Subject), c.Author)
	if id := gitrepo.ChangeIDOf(c.Message); id != "" {
		item += ", " + s.searchLink(id)
	}
	return item + ")"
}

// change describes a requested change for the deployment record.
func (s *Source) change(w *want, c *gitrepo.UpstreamCommit) deployer.Change {
	return deployer.Change{
		ID:          strconv.Itoa(w.info.Number),
		Commit:      c.Hash,
		Subject:     c.Subject,
		Author:      c.Author,
		AuthorEmail: c.AuthorEmail,
		Owner:       w.info.Owner.Username,
		URL:         s.link(w.info),
		Bugs:        gitrepo.Bugs(c.Message),
		Reverts:     gitrepo.RevertsCommit(c.Message),
	}
}

// cycle returns the numbers of requested changes that depend on each
// other in a circle (nil when there is none): such changes have no
// order to be merged and deployed in.
func cycle(ws []*want) []string {
	index := map[int]*want{}
	for _, w := range ws {
		if w.info != nil {
			index[w.info.Number] = w
		}
	}
	state := map[int]int{} // 1 visiting, 2 done
	var stack []int
	var found []int
	var visit func(n int) bool
	visit = func(n int) bool {
		switch state[n] {
		case 1:
			for i, m := range stack {
				if m == n {
					found = append([]int(nil), stack[i:]...)
				}
			}
			return true
		case 2:
			return false
		}
		state[n] = 1
		stack = append(stack, n)
		for _, d := range index[n].deps {
			if index[d] != nil && visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return false
	}
	for _, w := range ws {
		if w.info != nil && visit(w.info.Number) {
			break
		}
	}
	sort.Ints(found)
	out := make([]string, len(found))
	for i, n := range found {
		out[i] = strconv.Itoa(n)
	}
	return out
}

// ownCommits is what identifies the requested changes' own commits: their
// Change-Ids and every revision, so that none of them is taken for an
// unexpected commit.
func ownCommits(ws []*want) map[string]bool {
	mine := map[string]bool{}
	for _, w := range ws {
		mine[w.info.ChangeID] = true
		for rev := range w.info.Revisions {
			mine[rev] = true
		}
		mine[w.info.CurrentRevision] = true
	}
	return mine
}
