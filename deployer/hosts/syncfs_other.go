//go:build !linux

package hosts

// syncFS has no portable equivalent of syncfs(2) outside Linux, which is
// where deploybot's hosts run. Elsewhere (a developer's laptop) the slot
// marker can outrun the files after a power loss; a process crash is still
// safe, since the page cache survives it.
func syncFS(path string) error { return nil }
