package bot

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/store"
)

// TestRefusedTellsRefusalsApart checks that a command that was not carried
// out is answered through Refused when an adapter sets it (so a button
// press can be answered privately), and through Reply otherwise.
func TestRefusedTellsRefusalsApart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The runner is never started: refusals happen before it is asked.
	b := &Bot{Name: "deploybot", Prefix: "!", Store: st, Runner: deployer.NewRunner(deployer.Config{}, deployer.Deps{Store: st}), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dir: &Directory{Deployers: []string{"slack:UALICE"}}}
	for _, tc := range []struct {
		who, text   string
		withRefused bool
		reply       string // what Reply got
		refused     string // what Refused got
	}{
		{"UEVE", "!backport x", true, "", "UEVE: only deployers may do that"},
		{"UEVE", "!frobnicate", true, "", `UEVE: I don't know "frobnicate"`},
		{"UEVE", "!backport x", false, "UEVE: only deployers may do that", ""},
		{"UEVE", "!help", true, "I deploy backports.", ""},
	} {
		var reply, refused []string
		m := Message{Sender: Sender{Adapter: "slack", Keys: []string{"slack:" + tc.who}, Nick: tc.who}, Text: tc.text,
			Reply: func(lines ...string) { reply = append(reply, lines...) }}
		if tc.withRefused {
			m.Refused = func(line string) { refused = append(refused, line) }
		}
		b.Handle(m)
		for _, c := range []struct {
			name string
			got  []string
			want string
		}{{"Reply", reply, tc.reply}, {"Refused", refused, tc.refused}} {
			joined := strings.Join(c.got, "\n")
			if (c.want == "") != (joined == "") || !strings.HasPrefix(joined, c.want) {
				t.Errorf("%s (Refused set: %v): %s got %q, want %q", tc.text, tc.withRefused, c.name, joined, c.want)
			}
		}
	}
}
