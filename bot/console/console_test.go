package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/testparts"
)

func TestALineOver64KiBIsRefusedAndTheConsoleGoesOn(t *testing.T) {
	out := &testparts.Buffer{}
	in := strings.Join([]string{
		"!status",
		strings.Repeat("x", MaxLine+1),
		strings.Repeat("y", MaxLine),   // exactly the limit: taken
		strings.Repeat("z", 5*MaxLine), // far over it
		"!queue",
		"last line without a newline",
	}, "\n")
	c := &Console{In: strings.NewReader(in), Out: out, User: "alice"}
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Run(ctx, func(m bot.Message) {
		t := m.Text
		if len(t) > 1000 {
			t = t[:1] + "*" + string(rune('0'+len(t)/MaxLine))
		}
		got = append(got, t)
	}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "!status|y*1|!queue|last line without a newline"; strings.Join(got, "|") != want {
		t.Errorf("messages:\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
	for _, want := range []string{"that line has 65537 bytes; I read lines of up to 64 KiB, so I ignored it", "that line has 327680 bytes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the console did not say %q; it said:\n%s", want, out.String())
		}
	}
}
