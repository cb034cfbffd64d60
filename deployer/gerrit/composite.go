package gerrit

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
)

// Component is one part of a composite deploy tree whose changes come
// from Gerrit: gitrepo's component (path, URL, branch, submodules) and
// the Gerrit project it is. A followed submodule's project is read from
// its URL (see projectOf), so it needs no entry of its own unless it is
// to track its branch directly.
type Component struct {
	gitrepo.Component
	// Project is the Gerrit project the component's repository is; ""
	// for a component whose changes are not Gerrit changes.
	Project string
}

// name is how refs name the component, as gitrepo names it.
func (c Component) name() string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Path == "":
		return "root"
	}
	return c.Path
}

// Composite is the gerrit change source for a composite deploy tree:
// `!backport 1234 5678` takes changes of any configured project and
// branch (the components' own, and those of the submodules they follow),
// in dependency order across projects; approves them and waits for them
// to merge as Source does; waits for each superproject's subscription to
// point its submodule at a merged submodule change; then stages through
// gitrepo.Composite with component:commit refs, so the composition, the
// unexpected-commit checks and the rollback are the git composite's.
//
// It implements deployer.ChangeSource, deployer.Reverter and
// deployer.RefChecker.
type Composite struct {
	src   *Source // the REST side; its repo is the staging repository
	git   *gitrepo.Composite
	comps []Component
}

var (
	_ deployer.ChangeSource = (*Composite)(nil)
	_ deployer.Reverter     = (*Composite)(nil)
	_ deployer.RefChecker   = (*Composite)(nil)
)

// NewComposite returns the source for the Gerrit in cfg (its Project and
// Branch are not used: each component names its own) over git, the
// composite built on the staging repository with the same components.
func NewComposite(cfg Config, staging *gitrepo.Repo, git *gitrepo.Composite, comps []Component) (*Composite, error) {
	base, err := parseBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	var ps []string
	for _, c := range comps {
		if c.Project == "" {
			ps = append(ps, fmt.Sprintf("component %s names no Gerrit project", c.name()))
		}
	}
	if len(ps) > 0 {
		return nil, fmt.Errorf("gerrit: %s", strings.Join(ps, "; "))
	}
	return &Composite{src: newSource(cfg, base, staging), git: git, comps: comps}, nil
}

// Baseline composes every component's branch tip (gitrepo.Composite).
func (c *Composite) Baseline(ctx context.Context) (string, error) { return c.git.Baseline(ctx) }

// CheckRef accepts a change number or link, or a component:ref the git
// composite resolves.
func (c *Composite) CheckRef(ref string) error {
	if isChangeRef(ref) {
		_, err := ParseRef(ref, c.src.base)
		return err
	}
	if !strings.Contains(ref, ":") {
		_, err := ParseRef(ref, c.src.base)
		return err
	}
	return c.git.CheckRef(ref)
}

// isChangeRef reports whether a ref is meant as a Gerrit change: a number
// or a web link. Anything else (component:ref) is for the git composite.
func isChangeRef(ref string) bool {
	return plainNumber.MatchString(ref) || strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://")
}

// target is a place a change of some project and branch lands in the
// deploy tree: a component's own branch, or a submodule a component
// follows (whose superproject's subscription must pick the merge up).
type target struct {
	where string // what gitrepo's refs call it: the component's name, or the submodule's deploy path
	comp  Component
	sub   *gitrepo.SubmoduleInfo // nil for the component's own branch
	url   string                 // the repository the change merges into
}

// branchKey is a Gerrit project and branch.
type branchKey struct{ project, branch string }

// table maps every project and branch the bot deploys to where it lands:
// the components' own, and the submodules of components that follow
// them (read at their branch tips; a submodule with no branch in
// .gitmodules is followed by no subscription and is left out). A
// component configured at a submodule's path replaces the submodule.
func (c *Composite) table(ctx context.Context) (map[branchKey][]target, error) {
	tbl := map[branchKey][]target{}
	at := map[string]bool{}
	for _, comp := range c.comps {
		at[comp.Path] = true
		k := branchKey{comp.Project, comp.Branch}
		tbl[k] = append(tbl[k], target{where: comp.name(), comp: comp, url: comp.URL})
	}
	for _, comp := range c.comps {
		if !comp.Submodules {
			continue
		}
		subs, err := c.git.TipSubmodules(ctx, comp.name())
		if err != nil {
			return nil, err
		}
		for i := range subs {
			sm := subs[i]
			project := c.projectOf(sm.URL)
			if at[sm.Path] || project == "" || sm.Branch == "" {
				continue
			}
			k := branchKey{project, sm.Branch}
			tbl[k] = append(tbl[k], target{where: sm.Path, comp: comp, sub: &sm, url: sm.URL})
		}
	}
	return tbl, nil
}

// projectOf returns the Gerrit project a repository URL is, or "": the
// URL under the Gerrit site's URL, or under the root any component's URL
// shows (a component at <root>/<project>, such as a local mirror), with
// a trailing .git dropped.
func (c *Composite) projectOf(u string) string { return projectOf(c.src.base.String(), c.comps, u) }

func projectOf(site string, comps []Component, u string) string {
	roots := []string{site}
	for _, comp := range comps {
		cu := strings.TrimSuffix(strings.TrimSuffix(comp.URL, "/"), ".git")
		if r, ok := strings.CutSuffix(cu, "/"+comp.Project); ok {
			roots = append(roots, r)
		}
	}
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git")
	for _, r := range roots {
		if p, ok := strings.CutPrefix(u, strings.TrimSuffix(r, "/")+"/"); ok && p != "" {
			return p
		}
	}
	return ""
}

// scope is the composite's: a change must be of a project and branch in
// the table.
func (c *Composite) scope(tbl map[branchKey][]target) scope {
	return func(ci *ChangeInfo) string {
		if len(tbl[branchKey{ci.Project, ci.Branch}]) > 0 {
			return ""
		}
		return fmt.Sprintf("is for %s branch %s, which I do not deploy (I deploy %s); backport it to one of those branches, or add a component for it to source.components",
			ci.Project, ci.Branch, describeTable(tbl))
	}
}

// describeTable lists what the table deploys, for chat.
func describeTable(tbl map[branchKey][]target) string {
	var out []string
	for k, ts := range tbl {
		for _, t := range ts {
			s := fmt.Sprintf("%s %s", k.project, k.branch)
			if t.sub != nil {
				s += " at " + t.sub.Path
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// CheckSubmoduleProjects is check-config's online check of a composite
// Gerrit source: every submodule a component follows (and no component
// replaces) must come from a project of the Gerrit at site, and name the
// branch it tracks in .gitmodules (the superproject subscription follows
// only such submodules), or its changes could not be backported. It
// returns the problems by component index.
func CheckSubmoduleProjects(ctx context.Context, site string, comps []Component) map[int][]string {
	out := map[int][]string{}
	at := map[string]bool{}
	for _, c := range comps {
		at[c.Path] = true
	}
	for i, c := range comps {
		if !c.Submodules {
			continue
		}
		subs, err := gitrepo.RemoteSubmodules(ctx, c.Component)
		if err != nil {
			out[i] = append(out[i], fmt.Sprintf("component %s: I could not read its submodules (%v)", c.name(), err))
			continue
		}
		for _, sm := range subs {
			switch {
			case at[sm.Path]:
			case projectOf(strings.TrimSuffix(site, "/"), comps, sm.URL) == "":
				out[i] = append(out[i], fmt.Sprintf("component %s: submodule %s comes from %s, which is no project of %s, so its changes cannot be backported; fix its URL in .gitmodules or configure a component at %s",
					c.name(), sm.Rel, sm.URL, site, sm.Path))
			case sm.Branch == "":
				out[i] = append(out[i], fmt.Sprintf("component %s: submodule %s names no branch in .gitmodules, so no superproject subscription follows it and I refuse its Gerrit changes; add \"branch = .\" (or the branch it tracks) to its entry in .gitmodules of %s, or configure a component at %s",
					c.name(), sm.Rel, c.Branch, sm.Path))
			}
		}
	}
	return out
}
