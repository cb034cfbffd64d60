package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slack/slackfake"
	"github.com/deploybot/deploybot/deployer"
)

// Regression tests from the fourth audit (the chat side). Each names the
// defect it pins.

// TestAnswerWithAFileAttachedIsHeard: a message with a file attached (a
// screenshot of the testserver) comes as subtype file_share, with its
// sender and text like any message. Every subtype but thread_broadcast
// was dropped as if it were an edit or a join, so a submitter's
// "verified" with a screenshot went unheard, without a word, and the
// change was rolled back when the wait ran out.
func TestAnswerWithAFileAttachedIsHeard(t *testing.T) {
	t.Parallel()
	in := newInbox()
	h := start(t, in.handle(func(m bot.Message) { m.Reply("verified by " + m.Sender.Nick) }))
	f := h.fake
	env := f.MessageEnvelope("UBOB", channel, "verified 5", f.NewTS(), map[string]any{
		"subtype": "file_share", "upload": true,
		"files": []map[string]any{{"id": "F0SHOT", "name": "testserver.png", "mimetype": "image/png", "user": "UBOB"}},
	})
	if err := f.Send(env); err != nil {
		t.Fatal(err)
	}
	// Not every subtype is a person speaking: these stay unheard.
	for _, sub := range []string{"message_changed", "message_deleted", "channel_join", "bot_message", "me_message"} {
		if err := f.Send(f.MessageEnvelope("UEVE", channel, "verified 5", f.NewTS(), map[string]any{"subtype": sub})); err != nil {
			t.Fatal(err)
		}
	}
	in.waitN(t, 1)
	time.Sleep(200 * time.Millisecond) // anything wrongly delivered would arrive by now
	if got, want := strings.Join(in.texts(), "|"), "slack:UBOB verified 5"; got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
	h.waitCall(t, "the answer", func(c slackfake.Call) bool { return strings.Contains(c.Text, "verified by") })
}

// TestWordsInRelayedTextAreNotMentions: a reply names people by their
// Slack user id, which the adapter turns into a mention. Every word that
// looked like a user id became one, including words of a change's
// subject in !status or !history: "Convert the tables to UTF8MB4" showed
// a mention of a user UTF8MB4, and a subject naming someone's user id
// pinged them through the bot. Only the ids of people the bot knows (and
// the person it answers) are mentions.
func TestWordsInRelayedTextAreNotMentions(t *testing.T) {
	t.Parallel()
	h := start(t, func(m bot.Message) {
		m.Reply(m.Sender.Nick+": #3 done: 1a2b3c4d5e (Convert the tables to UTF8MB4, ask U0MALLORY1), requested by Alice, submitter UBOB12345",
			"only the submitter (UBOB12345) or a deployer may answer for #3")
	}, func(o *Options) { o.Users = []string{"UBOB12345"} })
	if _, err := h.fake.Say("UALICE123", channel, "!status 3"); err != nil {
		t.Fatal(err)
	}
	reply := h.waitCall(t, "the reply", func(c slackfake.Call) bool { return strings.Contains(c.Text, "#3 done") })
	for _, want := range []string{"<@UALICE123>: #3", "UTF8MB4,", "ask U0MALLORY1)", "submitter <@UBOB12345>", "submitter (<@UBOB12345>)"} {
		if !strings.Contains(reply.Text, want) {
			t.Errorf("the reply lacks %q: %s", want, reply.Text)
		}
	}
}

// TestNoticesOutliveASlackOutage: while Slack's Web API answered 503 (or
// could not be reached), every notice the bot posted was logged as failed
// and lost: a deployment's root message, "rolled back" and its reason
// never reached the channel, though the IRC adapter keeps its lines
// through an outage. A write that failed for a reason that passes (no
// answer, a 5xx, a rate limit) is now tried again, in order, until it
// goes through.
func TestNoticesOutliveASlackOutage(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.fake.SetDown(true)
	h.a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeStarted, State: deployer.StatePreparing, Text: "starting"}, nil)
	h.a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeRolledBack, State: deployer.StateRolledBack, Text: "rolled back: canary check failed"}, nil)
	time.Sleep(1500 * time.Millisecond)
	h.fake.SetDown(false)
	root := h.waitCall(t, "the root message", func(c slackfake.Call) bool {
		return c.Method == "chat.postMessage" && c.Thread == "" && strings.Contains(c.BlockText(), "*Deployment #3*")
	})
	started := h.waitCall(t, "the first notice", func(c slackfake.Call) bool { return c.Text == "[#3] starting" })
	rolled := h.waitCall(t, "the rollback", func(c slackfake.Call) bool { return strings.HasPrefix(c.Text, "[#3] rolled back") })
	if started.Thread != root.TS || rolled.Thread != root.TS || started.Seq > rolled.Seq {
		t.Errorf("after the outage: root %s, %q in thread %s (call %d), %q in thread %s (call %d)",
			root.TS, started.Text, started.Thread, started.Seq, rolled.Text, rolled.Thread, rolled.Seq)
	}
}

// TestLongLineIsCutOnACharacter: a line longer than a Slack section holds
// (the hosts a big fleet's notice lists, a long subject) was cut at a
// byte count, through the middle of a multi-byte character, so the
// message ended in a replacement character (U+FFFD) instead of the
// character. It is cut between characters.
func TestLongLineIsCutOnACharacter(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	long := strings.Repeat("€", 1200) // 3600 bytes, 3 a character
	h.a.Announce(deployer.Notice{Kind: deployer.NoticeInfo, Text: long}, nil)
	c := h.waitCall(t, "the notice", func(c slackfake.Call) bool { return strings.Contains(c.BlockText(), "€€€") })
	text := c.BlockText()
	if strings.ContainsRune(text, '\uFFFD') || !strings.Contains(text, "€…") {
		t.Errorf("the long line was cut through a character: ...%q", text[max(0, len(text)-12):])
	}
}
