package gitrepo

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/hosts"
)

// slotFiles reads what a local host serves, path -> content.
func slotFiles(t *testing.T, h *hosts.Local) map[string]string {
	t.Helper()
	dir, err := h.ActiveDir()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.Dir(rel) == "." && rel[0] == '.' && rel != ".gitmodules" {
			return nil // slot bookkeeping, not deployed content
		}
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompositeOnHostsAndRollback deploys a change to two components (the
// root config repository and an extension submodule of a release branch)
// to real local hosts, checks every host file by file against git's own
// view of the composed tree, then rolls it back and checks that both
// components are restored exactly.
func TestCompositeOnHostsAndRollback(t *testing.T) {
	d := newDeployed(t, nil)
	f, ctx := d.f, context.Background()
	fleet := []*hosts.Local{
		hosts.NewLocal("mwdebug1001", filepath.Join(t.TempDir(), "mwdebug1001")),
		hosts.NewLocal("mw1001", filepath.Join(t.TempDir(), "mw1001")),
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		for _, h := range fleet {
			if err := hosts.VerifyHost(ctx, h, d.r); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			sameFiles(t, slotFiles(t, h), want)
		}
	}
	base, err := d.r.Commit(ctx, &deployer.Deployment{Refs: []string{"baseline"}}, d.up)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range fleet {
		if err := h.Sync(ctx, base, d.r); err != nil {
			t.Fatal(err)
		}
	}
	baseWant := f.want("master", "wmf/1")
	check("baseline", baseWant)

	cfg := f.commit(f.config, "config: enable Foo everywhere", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // Foo on\n"})
	fix := f.commit(f.ext, "Foo: new message", map[string]string{"i18n/en.json": "{\"foo\":\"hi\"}\n", "Foo.php": ""})
	coreBump := f.bump(fix)
	p, err := d.prepare(false, "root:"+cfg[:8], "php-1/extensions/Foo:"+fix[:8])
	if err != nil {
		t.Fatal(err)
	}
	dep := &deployer.Deployment{ID: 2, Refs: []string{"x"}, Changes: p.Changes, PrevUpstream: d.up, Upstream: p.Upstream}
	commit, err := d.r.Commit(ctx, dep, p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	// The change is three paths: one config file, one extension file
	// written and one deleted; nothing else of the tree is compared.
	changed, err := d.r.Changed(ctx, base, commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 {
		t.Errorf("changed = %v, want 3 paths", changed)
	}
	for _, h := range fleet {
		if err := h.Sync(ctx, commit, d.r); err != nil {
			t.Fatal(err)
		}
	}
	check("deployed", f.want(cfg, coreBump))

	// Roll back: the staging repo records it, the hosts flip back.
	rb, err := d.r.Revert(ctx, dep, base, "canary errors")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range fleet {
		if err := h.Sync(ctx, rb, d.r); err != nil {
			t.Fatal(err)
		}
	}
	check("rolled back", baseWant)
	if got, _ := d.c.ComposedCommit(p.Upstream, "php-1/extensions/Foo"); got != fix {
		t.Errorf("composition records Foo at %s, want %s", got, fix)
	}
}
