package hosts

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fileSystem is the handful of operations the slot algorithm (slots.go,
// apply.go) and the verifier need from a host. Names are slash-separated and
// relative to the host's root ("." is the root itself); no method follows a
// symlink in the last component of a name except Open and ReadDir.
//
// localFS implements it with the os package. A remote transport can
// implement it over SFTP (every method has an SFTP request or extension) and
// reuse the algorithm unchanged.
type fileSystem interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	Readlink(name string) (string, error)
	Open(name string) (io.ReadCloser, error)
	// Mkdir creates one directory, mode 0755.
	Mkdir(name string) error
	// WriteFile creates name, which must not exist, with r's contents and
	// exactly mode perm (no umask). With durable it also fsyncs the file.
	WriteFile(name string, r io.Reader, perm fs.FileMode, durable bool) error
	Symlink(target, name string) error
	// Rename moves oldname to newname, atomically replacing newname when it
	// is a file, a symlink or an empty directory.
	Rename(oldname, newname string) error
	// Remove unlinks a file or a symlink; it never removes a directory.
	Remove(name string) error
	// Rmdir removes an empty directory; it never removes a file or a
	// symlink, and fails on a directory that is not empty.
	Rmdir(name string) error
	RemoveAll(name string) error
	// SyncDir fsyncs a directory, making the names in it durable.
	SyncDir(name string) error
	// SyncFS makes every write so far on the filesystem holding name
	// durable (syncfs(2) locally): one call instead of an fsync per file.
	SyncFS(name string) error
}

// localFS is a fileSystem rooted at a directory of this machine.
type localFS struct{ root string }

func (l localFS) path(name string) string {
	return filepath.Join(l.root, filepath.FromSlash(name))
}

func (l localFS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(l.path(name)) }

func (l localFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(l.path(name)) }

func (l localFS) Readlink(name string) (string, error) { return os.Readlink(l.path(name)) }

func (l localFS) Open(name string) (io.ReadCloser, error) { return os.Open(l.path(name)) }

func (l localFS) Mkdir(name string) error { return os.Mkdir(l.path(name), 0o755) }

func (l localFS) WriteFile(name string, r io.Reader, perm fs.FileMode, durable bool) (err error) {
	p := l.path(name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(p)
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return err
	}
	// The umask may have cleared bits of perm at creation; the tree's mode
	// is exact, so set it again.
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		return f.Sync()
	}
	return nil
}

func (l localFS) Symlink(target, name string) error { return os.Symlink(target, l.path(name)) }

func (l localFS) Rename(oldname, newname string) error {
	return os.Rename(l.path(oldname), l.path(newname))
}

func (l localFS) Remove(name string) error {
	p := l.path(name)
	if err := syscall.Unlink(p); err != nil {
		return &fs.PathError{Op: "unlink", Path: p, Err: err}
	}
	return nil
}

func (l localFS) Rmdir(name string) error {
	p := l.path(name)
	if err := syscall.Rmdir(p); err != nil {
		return &fs.PathError{Op: "rmdir", Path: p, Err: err}
	}
	return nil
}

func (l localFS) RemoveAll(name string) error { return os.RemoveAll(l.path(name)) }

func (l localFS) SyncDir(name string) error {
	f, err := os.Open(l.path(name))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l localFS) SyncFS(name string) error { return syncFS(l.path(name)) }

// notExist reports whether err says the name is not there. ENOTDIR counts:
// a path under a file does not exist either.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
