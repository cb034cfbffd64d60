// Package gitrepo is the deploy host's staging repository and the `git`
// change source, both on go-git.
//
// One bare repository holds two kinds of history side by side:
//
//   - refs/upstream/heads/*: the upstream repository's branches, fetched
//     with `+refs/heads/*:refs/upstream/heads/*`. Their objects are what the
//     change source resolves, validates and returns.
//   - refs/heads/deploy: the deploy branch, one commit per deployment and per
//     rollback. A deployment's commit reuses the upstream commit's tree as
//     is (same tree hash), so staging costs one commit object, never a
//     checkout or a tree rebuild.
//
// Because both live in one object database, Diff can compare any two
// commits, staging or upstream, by walking their trees and skipping every
// subtree whose hash is the same on both sides: a sync costs what its change
// costs, not what the tree costs.
//
// Nothing here ever checks out a worktree or runs a shell. The only process
// that may be started is the one go-git itself starts to fetch from a
// local-path remote (git-upload-pack), with the configured path, never with
// text a person typed.
package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/deploybot/deploybot/deployer"
)

const (
	// RemoteName is the name of the upstream remote in the staging repo.
	RemoteName = "upstream"
	// DeployBranch is the staging repo's branch that records every deployed
	// tree, one commit per deployment and per rollback.
	DeployBranch = plumbing.ReferenceName("refs/heads/deploy")
	// upstreamPrefix is where fetched upstream branches live, kept apart from
	// refs/heads so an upstream branch can never overwrite the deploy branch.
	upstreamPrefix = "refs/upstream/heads/"
)

// Upstream names the repository deployments come from and the branch that
// production follows.
type Upstream struct {
	// URL is the remote's URL, or a local path to a repository.
	URL string
	// Branch is the branch deployments are taken from, e.g. "main".
	Branch string
}

// Repo is the staging repository. It implements deployer.Staging (and so
// deployer.TreeSource) and deployer.ChangeSource.
//
// go-git's filesystem storage is not safe for concurrent use (its pack
// readers share file offsets and unguarded maps), so every method, and every
// FileChange.Open a Diff hands out, takes mu. That serialises access within
// one process; two processes must not share a staging repo.
type Repo struct {
	mu       *sync.Mutex
	dir      string
	upstream Upstream
	repo     *git.Repository
	// remote and prefix are the remote this value fetches and where its
	// branches land: RemoteName and refs/upstream/heads/ for the staging
	// repo itself, others for the views of a composite source (see
	// Repo.view), which share the object database and mu.
	remote string
	prefix string
}

var (
	_ deployer.Staging      = (*Repo)(nil)
	_ deployer.TreeSource   = (*Repo)(nil)
	_ deployer.ChangeSource = (*Repo)(nil)
)

// Open opens the staging repository at dir, creating an empty bare
// repository there when dir does not exist or is empty, and points its
// "upstream" remote at upstream (updating it when the configuration
// changed). It does not fetch.
func Open(dir string, upstream Upstream) (*Repo, error) {
	if upstream.URL == "" || strings.HasPrefix(upstream.URL, "-") {
		// A leading "-" would reach git-upload-pack as an option.
		return nil, fmt.Errorf("gitrepo: %q is not a usable upstream URL", upstream.URL)
	}
	if !validBranch(upstream.Branch) {
		return nil, fmt.Errorf("gitrepo: %q is not a valid upstream branch name", upstream.Branch)
	}
	upstream.URL = absLocalPath(upstream.URL)

	repo, err := git.PlainOpen(dir)
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		if err := requireEmptyDir(dir); err != nil {
			return nil, err
		}
		repo, err = git.PlainInit(dir, true)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: init %s: %w", dir, err)
		}
		// HEAD names the deploy branch so that `git log` in the staging
		// repo shows the deployment history.
		head := plumbing.NewSymbolicReference(plumbing.HEAD, DeployBranch)
		if err := repo.Storer.SetReference(head); err != nil {
			return nil, fmt.Errorf("gitrepo: set HEAD: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("gitrepo: open %s: %w", dir, err)
	}
	removeTempAtOpen(dir) // a fetch killed mid-way left its tmp_pack_ file
	repo, err = reopen(repo)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: open %s: %w", dir, err)
	}
	r := &Repo{mu: new(sync.Mutex), dir: dir, upstream: upstream, repo: repo, remote: RemoteName, prefix: upstreamPrefix}
	if err := r.configureRemote(); err != nil {
		return nil, err
	}
	return r, nil
}

// maxOpenPacks bounds the pack files kept open between reads. Every fetch
// adds a pack until Maintain folds them into one, so keeping all of them
// open could grow without bound.
const maxOpenPacks = 64

// reopen opens repo's storage again with the options a long-running sole
// owner wants. PlainOpen's defaults re-open the pack file and probe for a
// loose object file on every object read, which makes listing a 50,000
// file tree cost seconds of system calls. ExclusiveAccess lets go-git keep
// its list of loose objects in memory (it updates it on its own writes):
// the bot must be the only writer of its staging repo, which it is. It
// keeps the repo healthy itself (Maintain, in maintain.go), so nobody needs
// to stop it to run git gc.
func reopen(repo *git.Repository) (*git.Repository, error) {
	st, ok := repo.Storer.(*filesystem.Storage)
	if !ok {
		return repo, nil
	}
	fs := st.Filesystem()
	st.Close()
	st = filesystem.NewStorageWithOptions(fs, cache.NewObjectLRUDefault(), filesystem.Options{
		ExclusiveAccess:    true,
		MaxOpenDescriptors: maxOpenPacks,
	})
	return git.Open(st, nil)
}

// requireEmptyDir refuses to turn a directory holding anything into a
// repository: a mistyped path must not scatter git's files over someone's
// data.
func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gitrepo: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("gitrepo: %s is neither a git repository nor empty", dir)
	}
	return nil
}

// absLocalPath makes a relative local path absolute, so the remote keeps
// working whatever the bot's working directory is. URLs are left alone.
func absLocalPath(u string) string {
	if strings.Contains(u, "://") || filepath.IsAbs(u) {
		return u
	}
	if _, err := os.Stat(u); err != nil {
		return u // scp-like "host:path", or not there yet
	}
	if abs, err := filepath.Abs(u); err == nil {
		return abs
	}
	return u
}

// fetchSpec is the refspec that brings the remote's branches under prefix.
func (r *Repo) fetchSpec() config.RefSpec {
	return config.RefSpec("+refs/heads/*:" + r.prefix + "*")
}

// configureRemote points r.remote at r.upstream.URL in the repository's
// configuration, writing it only when it changed.
func (r *Repo) configureRemote() error {
	cfg, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("gitrepo: read config: %w", err)
	}
	url, spec := r.upstream.URL, r.fetchSpec()
	want := &config.RemoteConfig{
		Name:  r.remote,
		URLs:  []string{url},
		Fetch: []config.RefSpec{spec},
	}
	if have := cfg.Remotes[r.remote]; have != nil &&
		len(have.URLs) == 1 && have.URLs[0] == url &&
		len(have.Fetch) == 1 && have.Fetch[0] == spec {
		return nil
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("gitrepo: remote: %w", err)
	}
	cfg.Remotes[r.remote] = want
	if err := r.repo.Storer.SetConfig(cfg); err != nil {
		return fmt.Errorf("gitrepo: write config: %w", err)
	}
	return nil
}

// Dir returns the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// Close releases the files the repository holds open.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.repo.Storer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Fetch brings every upstream branch into refs/upstream/heads/, pruning
// branches upstream deleted so that a deleted branch can no longer be
// deployed by name.
func (r *Repo) Fetch(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch(ctx)
}

func (r *Repo) fetch(ctx context.Context) error {
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: r.remote,
		RefSpecs:   []config.RefSpec{r.fetchSpec()},
		Tags:       git.NoTags,
		Prune:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("gitrepo: fetch %s: %w", r.upstream.URL, err)
	}
	return nil
}

// parseHash accepts a full hexadecimal commit id. plumbing.NewHash silently
// maps garbage to the zero hash, so every id from outside goes through here.
func parseHash(s string) (plumbing.Hash, error) {
	if len(s) != 40 || !isHex(s) {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: %q is not a full commit id", s)
	}
	return plumbing.NewHash(strings.ToLower(s)), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// commit loads a commit by its full id. The caller holds mu.
func (r *Repo) commit(id string) (*object.Commit, error) {
	h, err := parseHash(id)
	if err != nil {
		return nil, err
	}
	c, err := object.GetCommit(r.repo.Storer, h)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: commit %s: %w", id, err)
	}
	return c, nil
}

// upstreamHeads returns the fetched upstream branches' tips. The caller
// holds mu.
func (r *Repo) upstreamHeads() (map[string]plumbing.Hash, error) {
	iter, err := r.repo.Storer.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: list refs: %w", err)
	}
	heads := map[string]plumbing.Hash{}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		name := ref.Name().String()
		if ref.Type() == plumbing.HashReference && strings.HasPrefix(name, r.prefix) {
			heads[strings.TrimPrefix(name, r.prefix)] = ref.Hash()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gitrepo: list refs: %w", err)
	}
	return heads, nil
}

func short(h plumbing.Hash) string { return h.String()[:10] }
