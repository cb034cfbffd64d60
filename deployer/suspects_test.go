package deployer

import (
	"slices"
	"strings"
	"testing"
)

// TestSuspectsSayWhyEach: a rollback blames what shipped and says why each
// is suspected, truthfully: asked for, shipped only because the request
// said --include-unexpected, or a submodule pointer move nobody named; it
// never blames a revert, nor a change shipped with its revert.
func TestSuspectsSayWhyEach(t *testing.T) {
	d := &Deployment{Changes: []Change{
		{ID: "101", Commit: "aaaa", Subject: "Asked for"},
		{ID: "bbbb", Commit: "bbbb", Subject: "Merged before", Unexpected: true},
		{ID: "cccc", Commit: "cccc", Subject: "Update git submodules", Pointer: true, Component: "php-1.46.0-wmf.3"},
		{ID: "dddd", Commit: "dddd", Subject: "Bad, reverted below", Unexpected: true},
		{ID: "eeee", Commit: "eeee", Subject: `Revert "Bad, reverted below"`, Reverts: "dddd", Unexpected: true},
		{ID: "102", Commit: "ffff", Subject: `Revert "Older"`, Reverts: "0000"},
	}}
	suspects, why, spared := d.Suspects()
	var ids []string
	for _, c := range suspects {
		ids = append(ids, c.ID)
	}
	if want := []string{"101", "bbbb", "cccc"}; !slices.Equal(ids, want) {
		t.Fatalf("suspects %v, want %v", ids, want)
	}
	for id, want := range map[string]string{
		"101":  "asked for",
		"bbbb": "shipped with --include-unexpected",
		"cccc": "moves the submodule pointer of what shipped with it",
	} {
		if why[id] != want {
			t.Errorf("why %s = %q, want %q", id, why[id], want)
		}
	}
	all := strings.Join(spared, "\n")
	for _, want := range []string{"dddd (Bad, reverted below) and its revert cancel out", "eeee (Revert \"Bad, reverted below\") is a revert: not blamed", "102 (Revert \"Older\") is a revert: not blamed"} {
		if !strings.Contains(all, want) {
			t.Errorf("spared lines lack %q:\n%s", want, all)
		}
	}
}
