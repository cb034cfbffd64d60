package gitrepo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

// TestRevertCancelsOnlyWhatItUndoes: a commit and a "revert" of it in the
// same range cancel out only when the revert really undoes it. A revert
// message on a commit that changes something else (a partial revert, an
// edited one) must not let the reverted commit, and its own changes, go
// out unnamed while the bot says they ship nothing.
func TestRevertCancelsOnlyWhatItUndoes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revert tree // the revert's whole tree
		cancel bool
	}{
		{"exact revert", tree{"index.php": reg("0"), "a.php": reg("ok")}, true},
		{"revert that changes something else", tree{"index.php": reg("0"), "a.php": reg("bad"), "b.php": reg("new")}, false},
		{"partial revert", tree{"index.php": reg("0"), "a.php": reg("ok"), "c.php": reg("bad too")}, false},
		{"revert that also flips a mode", tree{"index.php": exe("0"), "a.php": reg("ok")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			base := u.commit(tree{"index.php": reg("0"), "a.php": reg("ok")}, "Initial", "Alice")
			bad := u.commit(tree{"index.php": reg("0"), "a.php": reg("bad"), "c.php": reg("bad too")}, "Bad", "Mallory", base)
			rv := u.commit(tc.revert, "Revert \"Bad\"\n\nThis reverts commit "+bad.String()+".\n", "Mallory", bad)
			wanted := tc.revert
			next := tree{"index.php": reg("1")}
			for p, e := range wanted {
				if p != "index.php" {
					next[p] = e
				}
			}
			if tc.revert["index.php"].mode != reg("").mode {
				next["index.php"] = exe("1")
			}
			want := u.commit(next, "Wanted", "Bob", rv)
			u.branch("main", want)
			r := u.open()
			p, err := r.Prepare(context.Background(), deployer.Request{Refs: []string{want.String()[:10]}}, base.String(), nil)
			if tc.cancel {
				if err != nil {
					t.Fatalf("an exact revert and its commit were not taken to cancel out: %v", err)
				}
				if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "cancel out") {
					t.Errorf("notes = %q", p.Notes)
				}
				return
			}
			var ue *deployer.UnexpectedError
			if !errors.As(err, &ue) {
				if p != nil {
					t.Fatalf("deployed with notes %q: %s and %s went out unnamed", p.Notes, bad.String()[:10], rv.String()[:10])
				}
				t.Fatalf("err = %v, want the unexpected commits refused", err)
			}
			msg := deployer.ErrorMessage(err)
			for _, h := range []string{bad.String()[:10], rv.String()[:10]} {
				if !strings.Contains(msg, h) {
					t.Errorf("refusal %q does not name %s", msg, h)
				}
			}
		})
	}
}
