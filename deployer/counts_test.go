package deployer

import "testing"

func TestCountsIncrease(t *testing.T) {
	for _, tc := range []struct {
		prev, cur    Counts
		reqs, errors float64
	}{
		{Counts{Requests: 100, Errors: 5}, Counts{Requests: 160, Errors: 8}, 60, 3},
		{Counts{Requests: 100, Errors: 5}, Counts{Requests: 100, Errors: 5}, 0, 0},
		{Counts{Requests: 100, Errors: 5}, Counts{Requests: 30, Errors: 2}, 30, 2},   // restarted
		{Counts{Requests: 100, Errors: 5}, Counts{Requests: 120, Errors: 1}, 120, 1}, // the error counter was reset
	} {
		if r, e := tc.cur.Increase(tc.prev); r != tc.reqs || e != tc.errors {
			t.Errorf("%+v after %+v: %v requests, %v errors; want %v, %v", tc.cur, tc.prev, r, e, tc.reqs, tc.errors)
		}
	}
}
