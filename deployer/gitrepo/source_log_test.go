package gitrepo

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestPrepareLogNamesTheDeployment: the git source's line about what it
// prepared carries the request's deployment=<id>.
func TestPrepareLogNamesTheDeployment(t *testing.T) {
	f := newRevertFixture(t, false)
	var buf testparts.Buffer
	f.s.Log = slog.New(slog.NewTextHandler(&buf, nil))
	req := deployer.Request{Refs: []string{f.c2.String()}, Requester: "alice", Deployment: 9}
	if _, err := f.s.Prepare(context.Background(), req, "", nil); err != nil {
		t.Fatal(err)
	}
	want := `msg="git changes prepared" deployment=9 refs=` + f.c2.String() + ` upstream=` + f.c2.String() + ` changes=1`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}
}
