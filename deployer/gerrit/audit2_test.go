package gerrit_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gerrit"
	"github.com/deploybot/deploybot/deployer/gerrit/gerrittest"
)

// A change someone vetoed (Code-Review -2) before the request is refused
// in validation, before the bot votes +2 on it or posts anything.
func TestAudit2VetoedChangeIsRefusedBeforeTheVote(t *testing.T) {
	t.Parallel()
	e := newEnv(t, gerrittest.Options{})
	n := e.g.Upload("bob", "", map[string]string{"a": "1"}, "A change")
	e.g.Vote(n, "carol", gerrit.CodeReview, -2)
	before, _ := e.src.Baseline(context.Background())
	_, err := e.prepare(before, false, strconv.Itoa(n))
	wantError(t, err, deployer.EInvalid, "change "+strconv.Itoa(n), "Code-Review -2", "Carol Reviewer")
	if got := e.g.VoteOf(n, e.g.Username, gerrit.CodeReview); got != 0 {
		t.Errorf("the bot voted Code-Review %+d on a vetoed change", got)
	}
	for _, p := range e.posts() {
		if strings.Contains(p, "/review") {
			t.Errorf("the bot posted a review on a vetoed change: %s", p)
		}
	}
}
