package gitrepo

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// A composite batch across the root, core and an extension (with the
// superproject's pointer commits) is staged part by part exactly as a
// one-repository batch is: each change's files land under its component,
// a pointer commit goes with the extension commits it carries, and the
// parts are the base plus whole changes.
func TestCompositeSubsets(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	ctx := context.Background()
	base, err := d.r.Commit(ctx, &deployer.Deployment{ID: 1, Requester: "console:alice"}, d.up)
	if err != nil {
		t.Fatal(err)
	}
	c1 := f.commit(f.config, "config: readme", map[string]string{"README": "config 2\n"})
	c2 := f.commit(f.config, "config: settings", map[string]string{"wmf-config/InitialiseSettings.php": "<?php // settings 2\n"})
	k1 := f.commit(f.core, "core: setup", map[string]string{"includes/Setup.php": "<?php // setup 2\n"})
	e1 := f.commit(f.ext, "Foo: code", map[string]string{"Foo.php": "<?php // Foo 2\n"})
	b1 := f.bump(e1)
	e2 := f.commit(f.ext, "Foo: message", map[string]string{"i18n/en.json": "{\"hello\": 1}\n"})
	b2 := f.bump(e2)

	p, err := d.prepare(false, "root:"+c1[:8], "root:"+c2[:8], "php-1:"+k1[:8], "php-1/extensions/Foo:"+e1[:8], "php-1/extensions/Foo:"+e2[:8])
	if err != nil {
		t.Fatal(err)
	}
	byCommit := map[string]deployer.Change{}
	for _, c := range p.Changes {
		byCommit[c.Commit] = c
	}
	if len(byCommit) != 7 {
		t.Fatalf("changes %v, want 7 (two root, one core, two pointer moves, two extension)", changeIDs(p))
	}
	dep := &deployer.Deployment{ID: 2, Requester: "console:alice", Changes: p.Changes, Upstream: p.Upstream, Batch: true}
	full, err := d.r.Commit(ctx, dep, p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.r.CheckSubset(ctx, base, full, p.Changes); err != nil {
		t.Fatalf("the whole batch applied file by file is not its staged tree: %v", err)
	}

	// Each change's paths are deploy paths; a pointer move has the files
	// of the extension commits it carries.
	for commit, want := range map[string][]string{
		c1: {"README"},
		c2: {"wmf-config/InitialiseSettings.php"},
		k1: {"php-1/includes/Setup.php"},
		e1: {"php-1/extensions/Foo/Foo.php"},
		b1: {"php-1/extensions/Foo/Foo.php"},
		e2: {"php-1/extensions/Foo/i18n/en.json"},
		b2: {"php-1/extensions/Foo/i18n/en.json"},
	} {
		got, err := d.r.ChangeFiles(ctx, byCommit[commit])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ChangeFiles(%s) = %v, want %v", byCommit[commit].Subject, got, want)
		}
	}

	// A part: the readme, core's change and the second extension change
	// with its pointer move, without the settings and the first
	// extension change.
	var part, without []deployer.Change
	for _, c := range p.Changes {
		switch c.Commit {
		case c1, k1, b2, e2:
			part = append(part, c)
		default:
			without = append(without, c)
		}
	}
	sc, err := d.r.CommitSubset(ctx, dep, "bisection round 1", base, part, without)
	if err != nil {
		t.Fatal(err)
	}
	want := files(t, d.r, base)
	want["README"] = "config 2\n"
	want["php-1/includes/Setup.php"] = "<?php // setup 2\n"
	want["php-1/extensions/Foo/i18n/en.json"] = "{\"hello\": 1}\n"
	sameFiles(t, files(t, d.r, sc), want)
	if want["php-1/extensions/Foo/Foo.php"] != "<?php // Foo 1\n" {
		t.Errorf("the base's Foo.php is %q", want["php-1/extensions/Foo/Foo.php"])
	}
	msg := f.git(d.r.Dir(), "log", "-1", "--format=%B", sc)
	for _, w := range []string{"Deployment #2 (bisection round 1)", "Without: " + e1, "Without: " + c2, "Upstream: " + p.Upstream} {
		if !strings.Contains(msg, w) {
			t.Errorf("the part's commit message lacks %q:\n%s", w, msg)
		}
	}

	// A batch whose changes do not add up to its tree is refused: here
	// one change is missing from the list.
	if err := d.r.CheckSubset(ctx, base, full, without); err == nil {
		t.Error("CheckSubset accepted a list of changes that is not the staged batch")
	}

	// Describe says where a window's change deploys.
	ch, err := d.c.Describe("php-1/extensions/Foo:" + e2[:8])
	if err != nil || ch.Component != "php-1/extensions/Foo" || ch.Commit != e2 || ch.Subject != "Foo: message" {
		t.Errorf("Describe(extension change) = %+v, %v", ch, err)
	}
	ch, err = d.c.Describe("php-1:" + k1[:8])
	if err != nil || ch.Component != "php-1" || ch.Commit != k1 {
		t.Errorf("Describe(core change) = %+v, %v", ch, err)
	}
	ch, err = d.c.Describe(c1[:8])
	if err != nil || ch.Component != "" || ch.Commit != c1 {
		t.Errorf("Describe(root change) = %+v, %v", ch, err)
	}
}

// A component new in the configuration ships whole: its batch cannot be
// staged part by part, and CheckSubset says so.
func TestCompositeSubsetRefusesNewComponent(t *testing.T) {
	d := newDeployed(t, nil)
	f := d.f
	ctx := context.Background()
	base, err := d.r.Commit(ctx, &deployer.Deployment{ID: 1, Requester: "console:alice"}, d.up)
	if err != nil {
		t.Fatal(err)
	}
	f.git(f.core, "branch", "wmf/2")
	c2, err := NewComposite(d.r, append(f.components(), Component{Path: "php-2", URL: f.core, Branch: "wmf/2", Submodules: true}))
	if err != nil {
		t.Fatal(err)
	}
	d.c = c2
	c1 := f.commit(f.config, "config: readme", map[string]string{"README": "config 2\n"})
	k := f.git(f.core, "rev-parse", "wmf/2")
	p, err := d.prepare(false, "root:"+c1[:8], "php-2:"+k[:8])
	if err != nil {
		t.Fatal(err)
	}
	dep := &deployer.Deployment{ID: 2, Requester: "console:alice", Changes: p.Changes, Upstream: p.Upstream, Batch: true}
	full, err := d.r.Commit(ctx, dep, p.Upstream)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.r.CheckSubset(ctx, base, full, p.Changes); err == nil || !strings.Contains(err.Error(), "php-2/") {
		t.Errorf("CheckSubset = %v, want the new component's files named", err)
	}
}
