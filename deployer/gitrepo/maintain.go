package gitrepo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Keeping the staging repository healthy while the bot runs.
//
// Every fetch adds a pack file and every staging commit a loose object, and
// nothing else ever removes one: left alone, a repository that has seen a
// thousand deployments holds a thousand packs, and every object read may
// have to look through all of them. Maintain folds them back into one pack.
//
// It does so with go-git's parts (the walk, the pack encoder, the pack
// writer) but in its own order, because go-git's RepackObjects deletes the
// packed loose objects before the new pack is renamed into place, never
// fsyncs it, and fails on a tree holding a gitlink. The order here keeps one
// invariant: every object the repository needs is, at every instant, in a
// complete pack or loose file on disk. So a crash (kill -9, power loss) at
// any point leaves at worst an extra pack, a temporary file or an orphan
// index, which the next Open or Maintain removes:
//
//  1. walk every object reachable from the refs (and from the upstream
//     commits the deploy branch's commits name) under mu, so no fetch or
//     commit adds one meanwhile;
//  2. write them into one new pack (a tmp_pack_ file renamed into place
//     only when complete), fsync it, its index and the directory, and read
//     the index back from disk to check that it holds every one of them;
//  3. write the unreachable objects of recent packs as loose objects dated
//     like their pack, so the grace period applies to them as to loose ones;
//  4. only then delete the old packs (the .pack first: go-git ignores an
//     index without a pack, but fails on a pack without its index), the
//     loose objects now packed, and the unreachable loose objects older
//     than the grace period;
//  5. open the storage again, so that the Repo's go-git handle forgets the
//     packs it had open and indexed.

// MaintainReport says what one Maintain found and did.
type MaintainReport struct {
	// PacksBefore and LooseBefore count the pack files and loose objects
	// Maintain found; PacksAfter and LooseAfter what it left.
	PacksBefore, PacksAfter int
	LooseBefore, LooseAfter int
	// Repacked is true when Maintain wrote a new pack in place of the old
	// ones; Objects is the number of objects in it.
	Repacked bool
	Objects  int
	// Loosened counts unreachable objects of recent packs kept as loose
	// objects until their grace period ends; Pruned the unreachable loose
	// objects removed because it had.
	Loosened, Pruned int
	// Leftovers counts stale temporary files, orphan pack indexes and lock
	// files removed.
	Leftovers int
	// Took is how long Maintain held the repository.
	Took time.Duration
}

func (m MaintainReport) String() string {
	return fmt.Sprintf("packs %d -> %d, loose objects %d -> %d, %d objects packed, %d loosened, %d pruned, %d leftovers removed, in %s",
		m.PacksBefore, m.PacksAfter, m.LooseBefore, m.LooseAfter, m.Objects, m.Loosened, m.Pruned, m.Leftovers, m.Took.Round(time.Millisecond))
}

// LogValue makes a report one structured group in a slog line.
func (m MaintainReport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("repacked", m.Repacked),
		slog.Int("packs_before", m.PacksBefore), slog.Int("packs_after", m.PacksAfter),
		slog.Int("loose_before", m.LooseBefore), slog.Int("loose_after", m.LooseAfter),
		slog.Int("objects", m.Objects), slog.Int("loosened", m.Loosened), slog.Int("pruned", m.Pruned),
		slog.Int("leftovers", m.Leftovers), slog.Duration("took", m.Took))
}

const (
	// maintainPacks and maintainLoose are how many packs and loose objects
	// the repository may hold before Maintain repacks: a few fetches'
	// worth, so that a Maintain between every two deployments mostly only
	// counts files.
	maintainPacks = 4
	maintainLoose = 100
	// pruneGrace is how old an unreachable object must be before it is
	// deleted (git gc's default): an object fetched or written for a
	// deployment that has not reached a ref yet is never that old.
	pruneGrace = 14 * 24 * time.Hour
	// leftoverGrace is how old a temporary or lock file must be before
	// Maintain deletes it. Under mu no fetch of this process runs; the
	// grace spares a git command someone runs by hand.
	leftoverGrace = time.Hour
)

// maintainOptions are Maintain's settings; tests change them.
type maintainOptions struct {
	now                   time.Time
	maxPacks, maxLoose    int
	pruneGrace, tempGrace time.Duration
	afterStep             func(step string) // crash tests kill the process here
}

func defaultMaintainOptions() maintainOptions {
	return maintainOptions{
		now:        time.Now(),
		maxPacks:   maintainPacks,
		maxLoose:   maintainLoose,
		pruneGrace: pruneGrace,
		tempGrace:  leftoverGrace,
	}
}

// Maintain keeps the staging repository small and quick to read: when it
// holds more than a few packs or loose objects, it repacks every object
// the repository needs into one pack and deletes the old packs and loose
// objects, dropping unreachable objects older than two weeks; it always
// removes temporary and lock files a killed process left more than an hour
// ago. It holds the repository while it works (about 0.2 s after 40
// deployments, seconds for a 50,000-file tree), so call it when no
// deployment is running; ctx is checked between steps, not inside the
// pack encoding. It is safe against a crash at any point (see the
// order above), and the Repo reads every object afterwards.
func (r *Repo) Maintain(ctx context.Context) (MaintainReport, error) {
	return r.maintain(ctx, defaultMaintainOptions())
}

// MaintainStaging is Maintain in a shape package deployer can name without
// importing this one (which imports it): the report comes back as a slog
// group, with "repacked" false when the repository was healthy already.
func (r *Repo) MaintainStaging(ctx context.Context) (slog.Value, error) {
	rep, err := r.Maintain(ctx)
	return rep.LogValue(), err
}

func (r *Repo) maintain(ctx context.Context, o maintainOptions) (rep MaintainReport, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	defer func() { rep.Took = time.Since(start) }()
	step := func(name string) {
		if o.afterStep != nil {
			o.afterStep(name)
		}
	}

	cutoff := o.now.Add(-o.tempGrace)
	if rep.Leftovers, err = removeLeftovers(r.dir, cutoff, cutoff); err != nil {
		return rep, err
	}
	packs, err := listPacks(r.dir)
	if err != nil {
		return rep, err
	}
	loose, err := listLoose(r.dir)
	if err != nil {
		return rep, err
	}
	rep.PacksBefore, rep.LooseBefore = len(packs), len(loose)
	rep.PacksAfter, rep.LooseAfter = len(packs), len(loose)
	if len(packs) <= o.maxPacks && len(loose) <= o.maxLoose {
		return rep, nil
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}

	// 1. What the repository needs.
	need, err := reachable(ctx, r.repo.Storer)
	if err != nil {
		return rep, err
	}

	// 2. One pack of it, durable and checked, before anything is deleted.
	// From here on the packs on disk are not the ones r.repo indexed, so
	// whatever happens r.repo is replaced by a fresh handle.
	defer func() {
		if rerr := r.reopenStorage(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	newPack, err := r.writePack(need)
	if err != nil {
		return rep, err
	}
	step("pack-written")
	if err := syncPack(r.dir, newPack); err != nil {
		return rep, err
	}
	if err := checkPack(r.dir, newPack, need); err != nil {
		return rep, err
	}
	rep.Repacked, rep.Objects = true, len(need)
	step("pack-synced")
	if err := ctx.Err(); err != nil {
		return rep, err
	}

	// 3. Unreachable objects of recent packs wait out their grace period
	// as loose objects.
	pruneBefore := o.now.Add(-o.pruneGrace)
	looseSet := map[plumbing.Hash]bool{}
	for _, h := range loose {
		looseSet[h] = true
	}
	for _, p := range packs {
		if p == newPack {
			continue
		}
		n, err := r.loosen(p, need, looseSet, pruneBefore)
		rep.Loosened += n
		if err != nil {
			return rep, err
		}
	}
	step("loosened")

	// 4. Delete what the new pack (or a loose file) now holds.
	for _, p := range packs {
		if p == newPack || kept(r.dir, p) {
			continue
		}
		if err := removePack(r.dir, p); err != nil {
			return rep, err
		}
		step("pack-removed")
	}
	for _, h := range loose {
		path := loosePath(r.dir, h)
		if !need[h] {
			fi, err := os.Lstat(path)
			if err != nil || !fi.ModTime().Before(pruneBefore) {
				continue
			}
			rep.Pruned++
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("gitrepo: maintain: %w", err)
		}
		step("loose-removed")
	}
	removeEmptyFanout(r.dir)

	if packs, err = listPacks(r.dir); err == nil {
		rep.PacksAfter = len(packs)
	}
	if loose, err = listLoose(r.dir); err == nil {
		rep.LooseAfter = len(loose)
	}
	return rep, nil
}

// reachable returns every object reachable from the repository's refs and
// from the upstream commits recorded in the deploy branch's commits (an
// upstream force-push must not take away the commit a deployment served).
// Gitlinks name commits of other repositories and are not followed.
func reachable(ctx context.Context, s storer.Storer) (map[plumbing.Hash]bool, error) {
	seen := map[plumbing.Hash]bool{}
	var stack []plumbing.Hash
	refs, err := s.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: list refs: %w", err)
	}
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference {
			stack = append(stack, ref.Hash())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: list refs: %w", err)
	}
	for n := 0; len(stack) > 0; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] {
			continue
		}
		obj, err := s.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("gitrepo: maintain: object %s: %w", h, err)
		}
		seen[h] = true
		switch obj.Type() {
		case plumbing.CommitObject:
			c, err := object.DecodeCommit(s, obj)
			if err != nil {
				return nil, fmt.Errorf("gitrepo: maintain: commit %s: %w", h, err)
			}
			stack = append(stack, c.TreeHash)
			stack = append(stack, c.ParentHashes...)
			if up, err := parseHash(trailer(c.Message, upstreamTrailer)); err == nil && !seen[up] && s.HasEncodedObject(up) == nil {
				stack = append(stack, up)
			}
		case plumbing.TreeObject:
			t, err := object.DecodeTree(s, obj)
			if err != nil {
				return nil, fmt.Errorf("gitrepo: maintain: tree %s: %w", h, err)
			}
			for _, e := range t.Entries {
				switch {
				case e.Mode == filemode.Submodule:
				case e.Mode == filemode.Dir:
					stack = append(stack, e.Hash)
				default:
					// Blobs need not be read to be packed; the
					// encoder fails if one is missing.
					seen[e.Hash] = true
				}
			}
		case plumbing.TagObject:
			t, err := object.DecodeTag(s, obj)
			if err != nil {
				return nil, fmt.Errorf("gitrepo: maintain: tag %s: %w", h, err)
			}
			stack = append(stack, t.Target)
		}
	}
	return seen, nil
}

// writePack writes objs as one pack through go-git's pack writer, which
// writes a tmp_pack_ file and renames it into place with its index only
// once the pack is complete. The caller holds mu.
func (r *Repo) writePack(objs map[plumbing.Hash]bool) (plumbing.Hash, error) {
	pfw, ok := r.repo.Storer.(storer.PackfileWriter)
	if !ok {
		return plumbing.ZeroHash, errors.New("gitrepo: maintain: storage cannot write packs")
	}
	cfg, err := r.repo.Config()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: maintain: read config: %w", err)
	}
	hashes := make([]plumbing.Hash, 0, len(objs))
	for h := range objs {
		hashes = append(hashes, h)
	}
	w, err := pfw.PackfileWriter()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: maintain: %w", err)
	}
	// The encoder writes each object in several small pieces; one write
	// call per piece costs more than the encoding.
	bw := bufio.NewWriterSize(w, 1<<20)
	h, err := packfile.NewEncoder(bw, r.repo.Storer, false).Encode(hashes, cfg.Pack.Window)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitrepo: maintain: write pack: %w", err)
	}
	return h, nil
}

// loosen writes the objects of pack p that are not in need, unless p is
// older than pruneBefore (a pack's objects are as old as the pack), as
// loose objects dated like the pack, and fsyncs them; an object loose
// already gets the pack's date if that is later. The caller holds mu.
func (r *Repo) loosen(p plumbing.Hash, need, loose map[plumbing.Hash]bool, pruneBefore time.Time) (int, error) {
	packPath := packFile(r.dir, p, "pack")
	fi, err := os.Stat(packPath)
	if err != nil {
		return 0, fmt.Errorf("gitrepo: maintain: %w", err)
	}
	if fi.ModTime().Before(pruneBefore) {
		return 0, nil
	}
	idx, err := readIndex(r.dir, p)
	if err != nil {
		return 0, err
	}
	entries, err := idx.Entries()
	if err != nil {
		return 0, fmt.Errorf("gitrepo: maintain: pack %s: %w", p, err)
	}
	defer entries.Close()
	n := 0
	for {
		e, err := entries.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("gitrepo: maintain: pack %s: %w", p, err)
		}
		if need[e.Hash] {
			continue
		}
		if loose[e.Hash] {
			// The object came again with this pack: it is as young
			// as the pack, not as its loose copy.
			path := loosePath(r.dir, e.Hash)
			if lfi, err := os.Lstat(path); err == nil && lfi.ModTime().Before(fi.ModTime()) {
				if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
					return n, fmt.Errorf("gitrepo: maintain: %w", err)
				}
			}
			continue
		}
		obj, err := r.repo.Storer.EncodedObject(plumbing.AnyObject, e.Hash)
		if err != nil {
			return n, fmt.Errorf("gitrepo: maintain: object %s: %w", e.Hash, err)
		}
		if _, err := r.repo.Storer.SetEncodedObject(obj); err != nil {
			return n, fmt.Errorf("gitrepo: maintain: loosen %s: %w", e.Hash, err)
		}
		path := loosePath(r.dir, e.Hash)
		if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
			return n, fmt.Errorf("gitrepo: maintain: %w", err)
		}
		if err := syncFile(path); err != nil {
			return n, err
		}
		if err := syncFile(filepath.Dir(path)); err != nil {
			return n, err
		}
		loose[e.Hash] = true
		n++
	}
	return n, nil
}

// reopenStorage replaces r.repo with a fresh handle on the same directory,
// so that go-git drops its list of packs, their indexes and open files,
// and closes the old one. The caller holds mu.
func (r *Repo) reopenStorage() error {
	fresh, err := git.PlainOpen(r.dir)
	if err != nil {
		return fmt.Errorf("gitrepo: maintain: open again: %w", err)
	}
	if fresh, err = reopen(fresh); err != nil {
		return fmt.Errorf("gitrepo: maintain: open again: %w", err)
	}
	old := r.repo
	r.repo = fresh
	if c, ok := old.Storer.(interface{ Close() error }); ok {
		c.Close()
	}
	return nil
}

func packDir(dir string) string { return filepath.Join(dir, "objects", "pack") }

func packFile(dir string, h plumbing.Hash, ext string) string {
	return filepath.Join(packDir(dir), "pack-"+h.String()+"."+ext)
}

func loosePath(dir string, h plumbing.Hash) string {
	s := h.String()
	return filepath.Join(dir, "objects", s[:2], s[2:])
}

// listPacks lists the repository's pack files.
func listPacks(dir string) ([]plumbing.Hash, error) {
	entries, err := os.ReadDir(packDir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: %w", err)
	}
	var out []plumbing.Hash
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "pack-")
		if !ok {
			continue
		}
		name, ok = strings.CutSuffix(name, ".pack")
		if ok && len(name) == 40 && isHex(name) && e.Type().IsRegular() {
			out = append(out, plumbing.NewHash(name))
		}
	}
	return out, nil
}

// listLoose lists the repository's loose objects.
func listLoose(dir string) ([]plumbing.Hash, error) {
	objects := filepath.Join(dir, "objects")
	fans, err := os.ReadDir(objects)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: %w", err)
	}
	var out []plumbing.Hash
	for _, f := range fans {
		if !f.IsDir() || len(f.Name()) != 2 || !isHex(f.Name()) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(objects, f.Name()))
		if err != nil {
			return nil, fmt.Errorf("gitrepo: maintain: %w", err)
		}
		for _, o := range files {
			if name := f.Name() + o.Name(); len(name) == 40 && isHex(name) && o.Type().IsRegular() {
				out = append(out, plumbing.NewHash(strings.ToLower(name)))
			}
		}
	}
	return out, nil
}

// removeEmptyFanout removes the objects/xx directories left empty.
func removeEmptyFanout(dir string) {
	objects := filepath.Join(dir, "objects")
	fans, _ := os.ReadDir(objects)
	for _, f := range fans {
		if f.IsDir() && len(f.Name()) == 2 && isHex(f.Name()) {
			os.Remove(filepath.Join(objects, f.Name())) // fails unless empty
		}
	}
}

// kept reports whether pack p has a .keep file: git's way of saying a pack
// must not be repacked away.
func kept(dir string, p plumbing.Hash) bool {
	_, err := os.Lstat(packFile(dir, p, "keep"))
	return err == nil
}

// removePack deletes pack p: the .pack first, so that no instant shows a
// pack without its index, then the files that describe it.
func removePack(dir string, p plumbing.Hash) error {
	for _, ext := range []string{"pack", "idx", "rev", "bitmap", "mtimes"} {
		if err := os.Remove(packFile(dir, p, ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("gitrepo: maintain: %w", err)
		}
	}
	return nil
}

// readIndex decodes pack p's index from disk.
func readIndex(dir string, p plumbing.Hash) (*idxfile.MemoryIndex, error) {
	f, err := os.Open(packFile(dir, p, "idx"))
	if err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: %w", err)
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("gitrepo: maintain: pack %s index: %w", p, err)
	}
	return idx, nil
}

// checkPack reads pack p's index back from disk and fails unless it holds
// every object of need and names p's checksum.
func checkPack(dir string, p plumbing.Hash, need map[plumbing.Hash]bool) error {
	idx, err := readIndex(dir, p)
	if err != nil {
		return err
	}
	if plumbing.Hash(idx.PackfileChecksum) != p {
		return fmt.Errorf("gitrepo: maintain: pack %s: its index is for another pack", p)
	}
	if n, err := idx.Count(); err != nil || n != int64(len(need)) {
		return fmt.Errorf("gitrepo: maintain: pack %s holds %d objects, want %d (%v)", p, n, len(need), err)
	}
	for h := range need {
		if ok, err := idx.Contains(h); err != nil || !ok {
			return fmt.Errorf("gitrepo: maintain: pack %s lacks object %s", p, h)
		}
	}
	return nil
}

// syncPack makes pack p, its index and their directory entries durable.
func syncPack(dir string, p plumbing.Hash) error {
	for _, path := range []string{packFile(dir, p, "pack"), packFile(dir, p, "idx"), packDir(dir)} {
		if err := syncFile(path); err != nil {
			return err
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("gitrepo: maintain: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("gitrepo: maintain: fsync %s: %w", path, err)
	}
	return nil
}

// removeLeftovers deletes what a killed writer leaves behind: temporary
// pack, index and object files (go-git's and git's) last changed before
// tmpBefore, indexes whose pack is gone, and git's *.lock files last
// changed before lockBefore. It returns how many it removed.
func removeLeftovers(dir string, tmpBefore, lockBefore time.Time) (int, error) {
	n := 0
	var firstErr error
	remove := func(path string) {
		if err := os.Remove(path); err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("gitrepo: remove leftover: %w", err)
		}
	}
	old := func(e fs.DirEntry, before time.Time) bool {
		fi, err := e.Info()
		return err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before)
	}
	isTemp := func(name string) bool {
		return strings.HasPrefix(name, "tmp_pack_") || strings.HasPrefix(name, "tmp_idx_") ||
			strings.HasPrefix(name, "tmp_obj_") || strings.HasPrefix(name, ".tmp-")
	}
	// Temporary files: objects/pack (go-git's packs and loose objects,
	// git's packs), objects and objects/xx (git's loose objects).
	objects := filepath.Join(dir, "objects")
	entries, _ := os.ReadDir(objects)
	for _, e := range entries {
		switch {
		case e.Name() == "pack" && e.IsDir():
			packs, _ := os.ReadDir(packDir(dir))
			for _, p := range packs {
				name := p.Name()
				switch {
				case isTemp(name) && old(p, tmpBefore):
					remove(filepath.Join(packDir(dir), name))
				case strings.HasPrefix(name, "pack-") && strings.HasSuffix(name, ".idx") && old(p, tmpBefore):
					if _, err := os.Lstat(filepath.Join(packDir(dir), strings.TrimSuffix(name, ".idx")+".pack")); errors.Is(err, fs.ErrNotExist) {
						remove(filepath.Join(packDir(dir), name))
					}
				}
			}
		case len(e.Name()) == 2 && isHex(e.Name()) && e.IsDir():
			files, _ := os.ReadDir(filepath.Join(objects, e.Name()))
			for _, f := range files {
				if isTemp(f.Name()) && old(f, tmpBefore) {
					remove(filepath.Join(objects, e.Name(), f.Name()))
				}
			}
		case isTemp(e.Name()) && old(e, tmpBefore):
			remove(filepath.Join(objects, e.Name()))
		}
	}
	// Lock files: the repository's top level and refs/, where git writes
	// config.lock, packed-refs.lock, HEAD.lock and refs/.../x.lock.
	top, _ := os.ReadDir(dir)
	for _, e := range top {
		if strings.HasSuffix(e.Name(), ".lock") && old(e, lockBefore) {
			remove(filepath.Join(dir, e.Name()))
		}
	}
	filepath.WalkDir(filepath.Join(dir, "refs"), func(path string, e fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(e.Name(), ".lock") && old(e, lockBefore) {
			remove(path)
		}
		return nil
	})
	return n, firstErr
}

// removeTempAtOpen is Open's quick cleanup: no fetch or Maintain of this
// process runs yet, so every temporary file in the repository is a
// leftover of a killed one, whatever its age. Lock files keep their grace
// period, as they might belong to a git command someone is running.
func removeTempAtOpen(dir string) {
	now := time.Now()
	// An error here is not worth refusing to start over: Maintain tries
	// again and returns it.
	removeLeftovers(dir, now.Add(time.Second), now.Add(-leftoverGrace))
}
