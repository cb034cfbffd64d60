package deployer

import "testing"

// TestTransitionInvariants checks the promises written next to the
// transitions map: once a host may have been touched, the only way out
// other than forward is rolling-back, and rolling-back ends rolled-back.
func TestTransitionInvariants(t *testing.T) {
	touching := []State{StateSyncingTestservers, StateAwaitingVerification, StateSyncingCanaries,
		StateCheckingCanaries, StateAwaitingPromotion, StateSyncingProduction, StateCheckingProduction}
	for _, s := range touching {
		if !CanTransition(s, StateRollingBack) {
			t.Errorf("%s cannot roll back", s)
		}
		for _, bad := range []State{StateFailed, StateCancelled} {
			if CanTransition(s, bad) {
				t.Errorf("%s may end %s without restoring its hosts", s, bad)
			}
		}
		if !s.Active() || s.Finished() {
			t.Errorf("%s: Active %v Finished %v", s, s.Active(), s.Finished())
		}
	}
	for _, s := range []State{StateRolledBack, StateFailed, StateCancelled} {
		if len(transitions[s]) != 0 {
			t.Errorf("%s is final but has transitions %v", s, transitions[s])
		}
	}
	if got := transitions[StateRollingBack]; len(got) != 2 || got[0] != StateRolledBack || got[1] != StateRollbackFailed {
		t.Errorf("rolling-back may go to %v, want only rolled-back or rollback-failed", got)
	}
	if got := transitions[StateRollbackFailed]; len(got) != 1 || got[0] != StateRollingBack || !StateRollbackFailed.Finished() {
		t.Errorf("rollback-failed is finished and may only be tried again (rolling-back): %v", got)
	}
	cases := []struct {
		from, to State
		ok       bool
	}{
		{StateQueued, StatePreparing, true},
		{StateQueued, StateSyncingTestservers, false},
		{StatePreparing, StateFailed, true},
		{StatePreparing, StateRollingBack, false},
		{StateAwaitingVerification, StateSyncingProduction, false},
		{StateCheckingCanaries, StateAwaitingPromotion, true},
		{StateDone, StateRollingBack, true},
		{StateDone, StateQueued, false},
		{StateRolledBack, StateRollingBack, false},
		{StateRollbackFailed, StateRollingBack, true},
		{StateRollbackFailed, StateDone, false},
	}
	for _, c := range cases {
		if got := CanTransition(c.from, c.to); got != c.ok {
			t.Errorf("CanTransition(%s, %s) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
	for _, s := range []State{StateQueued, StateDone, StateRollingBack} {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if State("exploding").Valid() {
		t.Error("an unknown state is valid")
	}
}

func TestErrorsForPeople(t *testing.T) {
	err := Errorf(EConflict, "deployment #%d is %s", 3, StateDone)
	if ErrorCode(err) != EConflict || ErrorMessage(err) != "deployment #3 is done" {
		t.Errorf("app error: %q %q", ErrorCode(err), ErrorMessage(err))
	}
	internal := errorString("open /var/lib/x: permission denied")
	if ErrorCode(internal) != EInternal || ErrorMessage(internal) == internal.Error() {
		t.Errorf("an internal error leaks into chat: %q", ErrorMessage(internal))
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestShortID(t *testing.T) {
	full := "576ee0616ebc63712028c10b62d5550fcc1e9482"
	for in, want := range map[string]string{
		full:                            "576ee0616e",
		"php-1.46.0-wmf.3:" + full:      "php-1.46.0-wmf.3:576ee0616e",
		"php-1/extensions/Foo:" + full:  "php-1/extensions/Foo:576ee0616e",
		"php-1:576ee061":                "php-1:576ee061",
		"1234567":                       "1234567",
		"good-change":                   "good-change",
		"refs/heads/" + full[:39] + "x": "refs/heads/" + full[:39] + "x",
		"php-1:" + full[:39] + "X":      "php-1:" + full[:39] + "X",
	} {
		if got := ShortID(in); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", in, got, want)
		}
	}
}
