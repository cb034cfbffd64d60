package gitrepo

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// This file builds a composite deploy tree: the trees of several upstream
// repositories (components) placed at their paths, with the submodules they
// follow flattened into files. Everything is done on tree objects by hash:
// a subtree that did not change is referred to, never read, so composing
// costs the depth of the paths that changed, not the size of the tree.

// part is one repository in a composition: a configured component, or a
// submodule of one that was flattened into the tree.
type part struct {
	Path       string        // deploy path; "" is the root
	Commit     plumbing.Hash // the upstream commit it holds
	Tree       plumbing.Hash // its flattened tree (submodules as files)
	URL        string
	Branch     string // components only
	Submodules bool   // components only: its submodules are followed
	Sub        bool   // a submodule, not a component
}

// composition is what a composition commit records: every part, by path.
type composition struct {
	parts []part
}

// compositionSubject starts the message of every composition commit, which
// is how a staging commit's upstream is told apart from a plain upstream
// commit.
const compositionSubject = "Composition: "

// Trailer keys of a composition. The staging commit copies these lines, so
// the staging repository alone says what every part of the fleet serves.
const (
	componentTrailer = "Component: "
	submoduleTrailer = "Submodule: "
)

func displayPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// line is the part's trailer line:
//
//	Component: <path> <commit> <tree> <submodules|no-submodules> <url> <branch>
//	Submodule: <path> <commit> <tree> <url>
//
// Paths and URLs hold no whitespace (Composite refuses them).
func (p part) line() string {
	if p.Sub {
		return fmt.Sprintf("%s%s %s %s %s", submoduleTrailer, p.Path, p.Commit, p.Tree, p.URL)
	}
	follow := "no-submodules"
	if p.Submodules {
		follow = "submodules"
	}
	return fmt.Sprintf("%s%s %s %s %s %s %s", componentTrailer, displayPath(p.Path), p.Commit, p.Tree, follow, p.URL, p.Branch)
}

// message is a composition commit's message.
func (c *composition) message(title string) string {
	var b strings.Builder
	nc, ns := 0, 0
	for _, p := range c.parts {
		if p.Sub {
			ns++
		} else {
			nc++
		}
	}
	fmt.Fprintf(&b, "%s%s (%d components, %d submodules)\n\n", compositionSubject, oneLine(title), nc, ns)
	for _, p := range c.parts {
		b.WriteString(p.line())
		b.WriteByte('\n')
	}
	return b.String()
}

// compositionLines returns the Component and Submodule lines of a message,
// in order.
func compositionLines(msg string) []string {
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, componentTrailer) || strings.HasPrefix(l, submoduleTrailer) {
			out = append(out, l)
		}
	}
	return out
}

// parseComposition reads a composition back from a commit message (of a
// composition commit, or of a staging commit that copied its lines). It
// returns nil when the message records none. Fields are split on the
// single spaces line writes, and only on those: a path may hold other
// spaces of Unicode (a no-break space), which must read back as written.
func parseComposition(msg string) *composition {
	var c composition
	for _, l := range compositionLines(msg) {
		if v, ok := strings.CutPrefix(l, componentTrailer); ok {
			f := strings.Split(v, " ")
			if len(f) != 6 {
				continue
			}
			p := part{Path: f[0], Commit: plumbing.NewHash(f[1]), Tree: plumbing.NewHash(f[2]),
				Submodules: f[3] == "submodules", URL: f[4], Branch: f[5]}
			if p.Path == "." {
				p.Path = ""
			}
			c.parts = append(c.parts, p)
		} else if v, ok := strings.CutPrefix(l, submoduleTrailer); ok {
			f := strings.Split(v, " ")
			if len(f) != 4 {
				continue
			}
			c.parts = append(c.parts, part{Path: f[0], Commit: plumbing.NewHash(f[1]), Tree: plumbing.NewHash(f[2]), URL: f[3], Sub: true})
		}
	}
	if len(c.parts) == 0 {
		return nil
	}
	return &c
}

// find returns the part at deploy path p (a component when sub is false).
func (c *composition) find(p string, sub bool) *part {
	if c == nil {
		return nil
	}
	for i := range c.parts {
		if c.parts[i].Path == p && c.parts[i].Sub == sub {
			return &c.parts[i]
		}
	}
	return nil
}

// at returns the part, component or submodule, at deploy path p.
func (c *composition) at(p string) *part {
	if q := c.find(p, false); q != nil {
		return q
	}
	return c.find(p, true)
}

// within reports whether deploy path p lies inside dir ("" holds
// everything), or is dir itself.
func within(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

func joinPath(dir, p string) string {
	if dir == "" {
		return p
	}
	return dir + "/" + p
}

// ReadCounts is how many objects of each kind a composition read from the
// object database. Composing must read no file (blob) of a component that
// did not change, and only the trees on the paths where parts are placed.
type ReadCounts struct {
	Commits, Trees, Blobs int
}

// countingStorer counts the objects read through it.
type countingStorer struct {
	storer.EncodedObjectStorer
	n *ReadCounts
}

func (s countingStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	o, err := s.EncodedObjectStorer.EncodedObject(t, h)
	if err == nil {
		switch o.Type() {
		case plumbing.CommitObject:
			s.n.Commits++
		case plumbing.TreeObject:
			s.n.Trees++
		case plumbing.BlobObject:
			s.n.Blobs++
		}
	}
	return o, err
}

// readTree returns a copy of tree h's entries (none for the zero hash).
func readTree(s storer.EncodedObjectStorer, h plumbing.Hash) ([]object.TreeEntry, error) {
	if h.IsZero() {
		return nil, nil
	}
	t, err := object.GetTree(s, h)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: tree %s: %w", h, err)
	}
	return append([]object.TreeEntry(nil), t.Entries...), nil
}

// writeTreeEntries stores a tree of entries in git's order and returns it.
func writeTreeEntries(s storer.EncodedObjectStorer, es []object.TreeEntry) (plumbing.Hash, error) {
	sort.Slice(es, func(i, j int) bool { return entryKey(es[i]) < entryKey(es[j]) })
	t := &object.Tree{Entries: es}
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: encode tree: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: write tree: %w", err)
	}
	return h, nil
}

// entryKey is git's sort key for a tree entry: a directory sorts as if
// its name ended in "/".
func entryKey(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// setPath returns tree root with the entry at slash path p replaced by
// (mode, h), creating directories on the way and replacing whatever stood
// in their place; a zero h removes the entry (and directories it leaves
// empty). Only the trees on the path are read and rewritten. The result is
// the zero hash when the tree ends up empty.
func setPath(s storer.EncodedObjectStorer, root plumbing.Hash, p string, mode filemode.FileMode, h plumbing.Hash) (plumbing.Hash, error) {
	name, rest, deeper := strings.Cut(p, "/")
	es, err := readTree(s, root)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	idx := -1
	for i, e := range es {
		if e.Name == name {
			idx = i
			break
		}
	}
	newHash, newMode := h, mode
	if deeper {
		var sub plumbing.Hash
		if idx >= 0 && es[idx].Mode == filemode.Dir {
			sub = es[idx].Hash
		}
		if newHash, err = setPath(s, sub, rest, mode, h); err != nil {
			return plumbing.ZeroHash, err
		}
		newMode = filemode.Dir
	}
	switch {
	case newHash.IsZero() && idx >= 0:
		es = append(es[:idx], es[idx+1:]...)
	case newHash.IsZero():
	case idx >= 0:
		es[idx] = object.TreeEntry{Name: name, Mode: newMode, Hash: newHash}
	default:
		es = append(es, object.TreeEntry{Name: name, Mode: newMode, Hash: newHash})
	}
	if len(es) == 0 {
		return plumbing.ZeroHash, nil
	}
	return writeTreeEntries(s, es)
}

// entryAt returns the entry at slash path p of tree root, nil when there
// is none. It reads only the trees on the path.
func entryAt(s storer.EncodedObjectStorer, root plumbing.Hash, p string) (*object.TreeEntry, error) {
	for {
		name, rest, deeper := strings.Cut(p, "/")
		es, err := readTree(s, root)
		if err != nil {
			return nil, err
		}
		var found *object.TreeEntry
		for i := range es {
			if es[i].Name == name {
				found = &es[i]
				break
			}
		}
		if found == nil || !deeper {
			return found, nil
		}
		if found.Mode != filemode.Dir {
			return nil, nil
		}
		root, p = found.Hash, rest
	}
}

// gitlinkAt returns the commit a tree's gitlink at path p points at, or
// the zero hash when p is not a gitlink there.
func gitlinkAt(s storer.EncodedObjectStorer, root plumbing.Hash, p string) (plumbing.Hash, error) {
	e, err := entryAt(s, root, p)
	if err != nil || e == nil || e.Mode != filemode.Submodule {
		return plumbing.ZeroHash, err
	}
	return e.Hash, nil
}

// submodule is one entry of a .gitmodules file whose path is a gitlink.
type submodule struct {
	Path string // relative to the repository's root
	URL  string // as written (possibly relative)
	Link plumbing.Hash
}

// maxModules bounds the .gitmodules read (MediaWiki core's is about 30 kB).
const maxModules = 1 << 20

// readModules parses tree's .gitmodules; nil when it has none.
func readModules(s storer.EncodedObjectStorer, tree plumbing.Hash) (*config.Modules, error) {
	e, err := entryAt(s, tree, ".gitmodules")
	if err != nil || e == nil || !e.Mode.IsFile() {
		return nil, err
	}
	blob, err := object.GetBlob(s, e.Hash)
	if err != nil {
		return nil, fmt.Errorf("gitrepo: .gitmodules: %w", err)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: .gitmodules: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(rd, maxModules+1))
	rd.Close()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: .gitmodules: %w", err)
	}
	if len(data) > maxModules {
		// Cut, it would parse without the submodules listed after the
		// cut, and the deploy tree would lose them without a word.
		return nil, fmt.Errorf("gitrepo: .gitmodules is larger than %d MiB, too large to read", maxModules>>20)
	}
	mods := config.NewModules()
	if err := mods.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("gitrepo: .gitmodules does not parse: %w", err)
	}
	return mods, nil
}

// submodules lists tree root's submodules: the .gitmodules entries whose
// path is a gitlink in the tree, sorted by path. Reading them costs the
// .gitmodules blob and the trees on each submodule's path.
func submodules(s storer.EncodedObjectStorer, root plumbing.Hash) ([]submodule, error) {
	mods, err := readModules(s, root)
	if err != nil || mods == nil {
		return nil, err
	}
	var out []submodule
	for _, m := range mods.Submodules {
		p := strings.Trim(path.Clean(m.Path), "/")
		if m.Path == "" || p == "." || strings.HasPrefix(p, "../") || p == ".." {
			continue
		}
		link, err := gitlinkAt(s, root, p)
		if err != nil {
			return nil, err
		}
		if link.IsZero() {
			continue // listed but not a gitlink in this commit: nothing to follow
		}
		out = append(out, submodule{Path: p, URL: m.URL, Link: link})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ResolveSubmoduleURL resolves a submodule URL from .gitmodules the way git
// does: "./x" and "../x" are relative to the superproject's remote URL
// (each "../" drops one path element of it), anything else is used as is.
func ResolveSubmoduleURL(super, u string) string {
	if !strings.HasPrefix(u, "./") && !strings.HasPrefix(u, "../") {
		return u
	}
	base := strings.TrimRight(super, "/")
	// For scp-like "host:path" the path part starts after the colon; for
	// URLs after the host; for local paths anywhere.
	floor := 0
	if i := strings.Index(base, "://"); i >= 0 {
		if j := strings.Index(base[i+3:], "/"); j >= 0 {
			floor = i + 3 + j
		} else {
			floor = len(base)
		}
	} else if i := strings.Index(base, ":"); i >= 0 && !strings.HasPrefix(base, "/") {
		floor = i + 1
	}
	rest := u
	for {
		switch {
		case strings.HasPrefix(rest, "./"):
			rest = rest[2:]
			continue
		case strings.HasPrefix(rest, "../"):
			rest = rest[3:]
			if i := strings.LastIndex(base[floor:], "/"); i >= 0 {
				base = base[:floor+i]
			} else {
				base = base[:floor]
			}
			continue
		}
		break
	}
	if base == "" || strings.HasSuffix(base, ":") {
		return base + rest
	}
	return base + "/" + rest
}

// urlKey names a remote URL in refs and remote names: the same URL always
// gets the same key, so two components of one repository share fetches.
func urlKey(u string) string {
	sum := sha1.Sum([]byte(u))
	return hex.EncodeToString(sum[:8])
}
