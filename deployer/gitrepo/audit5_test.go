package gitrepo

import (
	"context"
	"strings"
	"testing"
)

// TestCompositeRetiredComponentGivesItsSubmoduleBack: a component
// configured on a submodule's path (php-1/extensions/Foo, tracking the
// extension's branch directly) replaces that submodule in the tree. Once
// it is no longer configured, the deploy tree must hold what core points
// the submodule at, exactly as a fresh composition does; reusing core's
// recorded tree (in which the submodule was left a gitlink, since the
// component stood there) would leave the directory empty on every host.
func TestCompositeRetiredComponentGivesItsSubmoduleBack(t *testing.T) {
	f := newGitFixture(t)
	ctx := context.Background()
	withFoo := append(f.components(), Component{Path: "php-1/extensions/Foo", URL: f.ext, Branch: "wmf/1"})
	r, c := f.open(withFoo)
	d := &deployed{f: f, r: r, c: c}
	var err error
	if d.up, err = c.Baseline(ctx); err != nil {
		t.Fatal(err)
	}
	direct := f.commit(f.ext, "Foo: direct", map[string]string{"Foo.php": "<?php // Foo direct\n"})
	p, err := d.prepare(false, "php-1/extensions/Foo:"+direct[:8])
	if err != nil {
		t.Fatal(err)
	}
	d.up = p.Upstream

	// Foo is retired as a component: core's submodule is back in charge.
	if d.c, err = NewComposite(r, f.components()); err != nil {
		t.Fatal(err)
	}
	cfg := f.commit(f.config, "config: retire the Foo component", map[string]string{"README": "config 2\n"})
	p, err = d.prepare(false, "root:"+cfg[:8])
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, r, p.Upstream), f.want(cfg, "wmf/1"))
	foo := f.git(f.core, "rev-parse", "wmf/1:extensions/Foo")
	if len(d.lines) != 1 || !strings.Contains(d.lines[0], "puts back submodule extensions/Foo of php-1 there, at "+foo[:10]) {
		t.Errorf("announced %q, want the submodule put back", d.lines)
	}

	// And the same from scratch, with nothing reused, agrees.
	fresh, err := d.c.Baseline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, r, fresh), f.want(cfg, "wmf/1"))
}
