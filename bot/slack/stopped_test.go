package slack

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/console"
	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/internal/testparts"
)

// TestStoppedForGoodIsSaidElsewhere: Slack revokes the app-level token and
// drops the socket, so the adapter cannot reconnect and stops for good.
// The bot says so on its other adapter (a console) and in its log.
func TestStoppedForGoodIsSaidElsewhere(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, appToken, botToken)
	a, err := New(Options{AppToken: appToken, BotToken: botToken, Channel: channel, APIURL: fake.APIURL(),
		BotName: "deploybot", Prefix: "!", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var out, logged testparts.Buffer
	in, typing := io.Pipe()
	con := &console.Console{In: in, Out: &out, User: "alice"}
	b := &bot.Bot{Name: "deploybot", Prefix: "!", Dir: &bot.Directory{}, Log: slog.New(slog.NewTextHandler(&logged, nil))}
	b.AddAdapter(a)
	b.AddAdapter(con)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { typing.Close() })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err == nil {
			t.Error("Bot.Run returned no error, though the Slack adapter failed")
		}
	})
	if err := fake.WaitConnections(1, patience); err != nil {
		t.Fatal(err)
	}

	fake.RevokeAppToken()
	fake.Drop()
	const said = "<deploybot> My slack connection has stopped for good: I no longer hear or answer anyone there"
	for deadline := time.Now().Add(patience); !strings.Contains(out.String(), said); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the console was not told that Slack stopped; it shows:\n%s\nlog:\n%s", out.String(), logged.String())
		}
	}
	if want := `msg="chat adapter stopped" adapter=slack err="slack: the Socket Mode connection stopped: invalid_auth`; !strings.Contains(logged.String(), want) {
		t.Errorf("the log lacks %q:\n%s", want, logged.String())
	}
	if strings.Contains(out.String(), "invalid_auth") {
		t.Errorf("the Go error reached the chat:\n%s", out.String())
	}
}
