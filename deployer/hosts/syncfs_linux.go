package hosts

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole filesystem holding path with syncfs(2). A sync
// calls it once, before recording the new commit in the slot's marker, so
// that the marker never becomes durable ahead of the files it describes
// (the same choice OSTree makes): an fsync per file would cost a disk flush
// for every file of a full rebuild.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: serr}
	}
	return nil
}
