package hosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestVerifyTreeDetects(t *testing.T) {
	tamper := func(f func(dir string) error) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			t.Helper()
			if err := f(dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string // in the difference's line
	}{
		{"an extra file", tamper(func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "lib", "extra.php"), nil, 0o644)
		}), `"lib/extra.php": unexpected file`},
		{"an extra empty directory", tamper(func(dir string) error {
			return os.Mkdir(filepath.Join(dir, "static", "empty"), 0o755)
		}), `"static/empty": unexpected directory`},
		{"an extra symlink", tamper(func(dir string) error {
			return os.Symlink("index.html", filepath.Join(dir, "extra-link"))
		}), `"extra-link": unexpected symlink`},
		{"a missing file", tamper(func(dir string) error {
			return os.Remove(filepath.Join(dir, "lib", "a", "b", "c.php"))
		}), `"lib/a/b/c.php": missing`},
		{"a missing directory", tamper(func(dir string) error {
			return os.RemoveAll(filepath.Join(dir, "lib"))
		}), `"lib/a/d.php": missing`},
		{"changed content, same size", tamper(func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>HELLO</h1>\n"), 0o644)
		}), `"index.html": contents differ`},
		{"content appended", tamper(func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config", "empty.conf"), []byte("x"), 0o644)
		}), `"config/empty.conf": contents differ`},
		{"exec bit lost", tamper(func(dir string) error {
			return os.Chmod(filepath.Join(dir, "bin", "deploy-hook"), 0o644)
		}), `"bin/deploy-hook": mode -rw-r--r--, want executable`},
		{"exec bit gained", tamper(func(dir string) error {
			return os.Chmod(filepath.Join(dir, "docs", "README"), 0o744)
		}), `"docs/README": mode -rwxr--r--, want not executable`},
		{"symlink turned file", tamper(func(dir string) error {
			p := filepath.Join(dir, "latest")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, []byte("static/style.css"), 0o644)
		}), `"latest": a regular file, want a symlink`},
		{"file turned symlink", tamper(func(dir string) error {
			p := filepath.Join(dir, "docs", "README")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("../index.html", p)
		}), `"docs/README": a symlink, want a regular file`},
		{"symlink retargeted", tamper(func(dir string) error {
			p := filepath.Join(dir, "latest")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("static/logo.svg", p)
		}), `"latest": symlink to "static/logo.svg", want "static/style.css"`},
		{"a directory where a file was", tamper(func(dir string) error {
			p := filepath.Join(dir, "index.html")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Mkdir(p, 0o755)
		}), `"index.html": a directory, want a regular file`},
		{"a symlink where a directory was", tamper(func(dir string) error {
			p := filepath.Join(dir, "static")
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			return os.Symlink("lib", p)
		}), `"static": a symlink, want a directory`},
	}
	for _, hashed := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/hashed=%v", tc.name, hashed), func(t *testing.T) {
				ctx := context.Background()
				src := newSource(map[string]tree{"c1": site})
				src.noHash = !hashed
				h := newHost(t)
				syncOK(t, h, src, "c1")
				dir, err := h.ActiveDir()
				if err != nil {
					t.Fatal(err)
				}
				tc.change(t, dir)
				err = VerifyTree(ctx, dir, "c1", src)
				var me *MismatchError
				if !errors.As(err, &me) {
					t.Fatalf("VerifyTree = %v; want a *MismatchError", err)
				}
				found := false
				for _, d := range me.Differences {
					found = found || d == tc.want
				}
				if !found {
					t.Errorf("differences %q lack %q", me.Differences, tc.want)
				}
				if !strings.Contains(err.Error(), tc.want) || me.Dir != dir || me.Commit != "c1" {
					t.Errorf("error: %v", err)
				}
				if err := VerifyHost(ctx, h, src); !errors.As(err, &me) || !strings.Contains(err.Error(), "web1") {
					t.Errorf("VerifyHost = %v; want the mismatch, naming the host", err)
				}
			})
		}
	}
}

func TestVerifyTreeListsEveryDifferenceCapped(t *testing.T) {
	src := newSource(map[string]tree{"c1": site})
	h := newHost(t)
	syncOK(t, h, src, "c1")
	dir, _ := h.ActiveDir()
	for i := range 120 {
		writeFile(t, filepath.Join(dir, "junk", fmt.Sprintf("%03d", i)), "j", 0o644)
	}
	os.Remove(filepath.Join(dir, "index.html"))
	err := VerifyTree(context.Background(), dir, "c1", src)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("VerifyTree = %v", err)
	}
	// The junk directory is one difference (its contents are not listed
	// one by one), plus the missing file.
	if me.Total != 2 {
		t.Errorf("Total = %d, differences %q", me.Total, me.Differences)
	}

	os.RemoveAll(filepath.Join(dir, "junk"))
	for i := range 120 {
		writeFile(t, filepath.Join(dir, "lib", fmt.Sprintf("junk%03d", i)), "j", 0o644)
	}
	err = VerifyTree(context.Background(), dir, "c1", src)
	if !errors.As(err, &me) {
		t.Fatalf("VerifyTree = %v", err)
	}
	if me.Total != 121 || len(me.Differences) != maxListed {
		t.Errorf("Total = %d, listed %d; want 121, %d", me.Total, len(me.Differences), maxListed)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("and %d more", 121-maxListed)) {
		t.Errorf("error does not say how many more: %v", err)
	}
	if me.Differences[0] != `"index.html": missing` {
		t.Errorf("differences are not sorted by path: %q", me.Differences[:3])
	}
}

func TestVerifyTreeClean(t *testing.T) {
	ctx := context.Background()
	src := newSource(map[string]tree{"c1": site, "empty": {}})
	h := newHost(t)
	syncOK(t, h, src, "c1")
	dir, _ := h.ActiveDir()
	if err := VerifyTree(ctx, dir, "c1", src); err != nil {
		t.Fatal(err)
	}
	// Through the current link too.
	if err := VerifyTree(ctx, filepath.Join(h.Root(), "current"), "c1", src); err != nil {
		t.Fatal(err)
	}
	if err := VerifyTree(ctx, t.TempDir(), "empty", src); err != nil {
		t.Fatal(err)
	}
	if err := VerifyTree(ctx, dir, "no-such-commit", src); err == nil {
		t.Error("VerifyTree against an unknown commit succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := VerifyTree(cctx, dir, "c1", src); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := VerifyHost(ctx, newHost(t), src); err == nil {
		t.Error("VerifyHost of a host serving nothing succeeded")
	}
}

// TestOpErrorPlain: the channel reads what failed on a host in words,
// without the Go error chain (which goes to the log).
func TestOpErrorPlain(t *testing.T) {
	err := opError("web1", "write", "slots/b/index.php", &fs.PathError{Op: "open", Path: "/srv/web1/slots/b/index.php", Err: syscall.ENOSPC})
	var oe *OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%T", err)
	}
	if got, want := oe.Plain(), "could not write slots/b/index.php: no space left on device"; got != want {
		t.Errorf("Plain() = %q, want %q", got, want)
	}
	if !strings.Contains(err.Error(), "host web1") {
		t.Errorf("the log's error lost the host: %q", err.Error())
	}
}
