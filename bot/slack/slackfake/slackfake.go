// Package slackfake is a Slack for tests: slack-go's slacktest server,
// extended to speak Socket Mode (apps.connections.open hands out its /ws
// endpoint, which sends `hello`, then the `events_api` and `interactive`
// envelopes a test asks for, sends WebSocket pings, and reads the
// acknowledgements), and to record every chat.postMessage, chat.update,
// chat.postEphemeral and reactions.add call with its decoded blocks.
//
// No Slack can run on a test machine; slacktest is the fake the project
// allows, and this package only adds the Socket Mode half slacktest lacks.
package slackfake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// The bot's identity on the fake Slack, as auth.test reports it.
const (
	BotUserID = "UBOTDEPLOY"
	BotID     = "BDEPLOYBOT"
	TeamID    = "T0TEST"
)

// Call is one recorded Web API call.
type Call struct {
	Method  string     // "chat.postMessage", "chat.update", ...
	Values  url.Values // the form as sent
	Channel string
	TS      string // the message's ts: new for a post, the target for an update
	Thread  string // thread_ts
	Text    string
	User    string // chat.postEphemeral's recipient
	Blocks  []slackgo.Block
	Seq     int // order of arrival, from 1
}

// Broadcast reports whether a threaded post is also shown in the channel.
func (c Call) Broadcast() bool { return c.Values.Get("reply_broadcast") == "true" }

// Buttons returns the buttons in the call's blocks.
func (c Call) Buttons() []*slackgo.ButtonBlockElement {
	var out []*slackgo.ButtonBlockElement
	for _, b := range c.Blocks {
		if ab, ok := b.(*slackgo.ActionBlock); ok && ab.Elements != nil {
			for _, e := range ab.Elements.ElementSet {
				if btn, ok := e.(*slackgo.ButtonBlockElement); ok {
					out = append(out, btn)
				}
			}
		}
	}
	return out
}

// BlockText joins the text of every section and context block.
func (c Call) BlockText() string {
	var parts []string
	for _, b := range c.Blocks {
		switch b := b.(type) {
		case *slackgo.SectionBlock:
			if b.Text != nil {
				parts = append(parts, b.Text.Text)
			}
		case *slackgo.ContextBlock:
			for _, e := range b.ContextElements.Elements {
				if t, ok := e.(*slackgo.TextBlockObject); ok {
					parts = append(parts, t.Text)
				}
			}
		}
	}
	return strings.Join(parts, "\n")
}

// Server is a fake Slack workspace with one bot.
type Server struct {
	*slacktest.Server
	AppToken, BotToken string

	mu          sync.Mutex
	changed     chan struct{}
	calls       []Call
	acks        map[string]int // envelope id -> acknowledgements read
	conn        *websocket.Conn
	connections int
	nextTS      int64
	nextEnv     int
	pingEvery   time.Duration
	revoked     bool // the app-level token no longer opens connections
	down        bool // Web API writes answer 503, as during a Slack outage
}

// New starts a fake Slack that accepts these tokens and stops it when the
// test ends.
func New(t testing.TB, appToken, botToken string) *Server {
	s := &Server{AppToken: appToken, BotToken: botToken, changed: make(chan struct{}), acks: map[string]int{},
		nextTS: time.Now().Unix() * 1000000, pingEvery: 200 * time.Millisecond}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/apps.connections.open", s.connectionsOpen)
		c.Handle("/auth.test", s.authTest)
		c.Handle("/ws", s.socket)
		for _, m := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.add"} {
			c.Handle("/"+m, s.record(m))
		}
	})
	s.Start()
	t.Cleanup(func() {
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
		s.Stop()
	})
	return s
}

// APIURL is the base URL to configure as chat.slack.api_url.
func (s *Server) APIURL() string { return s.GetAPIURL() }

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func bearer(r *http.Request) string {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return v
	}
	_ = r.ParseForm()
	return r.Form.Get("token")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	revoked := s.revoked
	s.mu.Unlock()
	if bearer(r) != s.AppToken || revoked {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "url": s.GetWSURL()})
}

func (s *Server) authTest(w http.ResponseWriter, r *http.Request) {
	if bearer(r) != s.BotToken {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	writeJSON(w, map[string]any{"ok": true, "url": "https://fake.slack.test/", "team": "Fake", "user": "deploybot",
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID})
}

// record answers a Web API write and remembers it.
func (s *Server) record(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if bearer(r) != s.BotToken {
			writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := Call{Method: method, Values: r.PostForm, Channel: r.PostForm.Get("channel"), Thread: r.PostForm.Get("thread_ts"),
			Text: r.PostForm.Get("text"), User: r.PostForm.Get("user")}
		if b := r.PostForm.Get("blocks"); b != "" {
			var bs slackgo.Blocks
			if err := json.Unmarshal([]byte(b), &bs); err != nil {
				writeJSON(w, map[string]any{"ok": false, "error": "invalid_blocks", "detail": err.Error()})
				return
			}
			c.Blocks = bs.BlockSet
		}
		s.mu.Lock()
		switch method {
		case "chat.update":
			c.TS = r.PostForm.Get("ts")
		case "reactions.add":
			c.TS = r.PostForm.Get("timestamp")
		default:
			s.nextTS++
			c.TS = fmt.Sprintf("%d.%06d", s.nextTS/1000000, s.nextTS%1000000)
		}
		c.Seq = len(s.calls) + 1
		s.calls = append(s.calls, c)
		s.notify()
		s.mu.Unlock()
		resp := map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS, "text": c.Text}
		if method == "chat.postEphemeral" {
			resp = map[string]any{"ok": true, "message_ts": c.TS}
		}
		writeJSON(w, resp)
	}
}

// socket serves one Socket Mode connection: hello, pings, and whatever
// the test sends, while it reads the acknowledgements.
func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	s.mu.Lock()
	if s.conn != nil {
		s.conn.Close() // Slack, too, lets a new connection replace an old one here
	}
	s.conn = conn
	s.connections++
	err = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
		"debug_info": map[string]any{"host": "slackfake", "approximate_connection_time": 3600}, "connection_info": map[string]any{"app_id": "AFAKE"}})
	s.notify()
	s.mu.Unlock()
	if err != nil {
		return
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(s.pingEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.mu.Lock()
				err := conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second))
				s.mu.Unlock()
				if err != nil {
					return
				}
			}
		}
	}()
	for {
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if err := conn.ReadJSON(&ack); err != nil {
			s.mu.Lock()
			if s.conn == conn {
				s.conn = nil
			}
			s.notify()
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		s.acks[ack.EnvelopeID]++
		s.notify()
		s.mu.Unlock()
	}
}

// wait blocks until cond (called with s.mu held) holds or timeout passes.
func (s *Server) wait(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return fmt.Errorf("slackfake: no %s within %s", what, timeout)
		}
	}
}

// WaitConnections waits until the bot has opened n sockets in all.
func (s *Server) WaitConnections(n int, timeout time.Duration) error {
	return s.wait(timeout, fmt.Sprintf("socket connection #%d", n), func() bool { return s.connections >= n && s.conn != nil })
}

// Connections is how many sockets the bot has opened so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Drop closes the bot's socket without a word, as a network failure would.
func (s *Server) Drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.UnderlyingConn().Close()
		s.conn = nil
	}
}

// SetDown makes the Web API's writes (posts, updates, reactions) fail
// with 503 Service Unavailable while down is true, as during an outage of
// Slack or of the network to it; they are not recorded.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// RevokeAppToken makes apps.connections.open refuse the app-level token
// from now on, as Slack does once the token is revoked: the open socket
// stays up, but no new one can be opened.
func (s *Server) RevokeAppToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
}

// Envelope is one Socket Mode envelope.
type Envelope struct {
	EnvelopeID string          `json:"envelope_id"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
	Accepts    bool            `json:"accepts_response_payload"`
	Retry      int             `json:"retry_attempt"`
}

// Send writes an envelope to the bot's socket, waiting up to five seconds
// for one to be open.
func (s *Server) Send(env Envelope) error {
	if err := s.WaitConnections(1, 5*time.Second); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return fmt.Errorf("slackfake: no socket open")
	}
	return s.conn.WriteJSON(env)
}

func (s *Server) envelopeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextEnv++
	return fmt.Sprintf("env-%04d", s.nextEnv)
}

// NewTS returns a fresh message timestamp.
func (s *Server) NewTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextTS++
	return fmt.Sprintf("%d.%06d", s.nextTS/1000000, s.nextTS%1000000)
}

// MessageEnvelope builds an events_api envelope for a message event. ts
// is the message's timestamp (NewTS for a fresh one).
func (s *Server) MessageEnvelope(user, channel, text, ts string, extra map[string]any) Envelope {
	ev := map[string]any{"type": "message", "user": user, "channel": channel, "text": text, "ts": ts, "event_ts": ts, "channel_type": "channel"}
	for k, v := range extra {
		ev[k] = v
	}
	payload, _ := json.Marshal(map[string]any{"token": "x", "team_id": TeamID, "api_app_id": "AFAKE", "type": "event_callback",
		"event_id": "Ev" + strings.ReplaceAll(ts, ".", ""), "event_time": time.Now().Unix(), "event": ev})
	return Envelope{EnvelopeID: s.envelopeID(), Type: "events_api", Payload: payload}
}

// Say sends a message from user in channel and returns its envelope.
func (s *Server) Say(user, channel, text string) (Envelope, error) {
	env := s.MessageEnvelope(user, channel, text, s.NewTS(), nil)
	return env, s.Send(env)
}

// PressEnvelope builds an interactive envelope: user pressed the button
// whose value is value on the message the call posted.
func (s *Server) PressEnvelope(user string, msg Call, value string) (Envelope, error) {
	var btn *slackgo.ButtonBlockElement
	var blockID string
	for _, b := range msg.Blocks {
		if ab, ok := b.(*slackgo.ActionBlock); ok && ab.Elements != nil {
			for _, e := range ab.Elements.ElementSet {
				if bb, ok := e.(*slackgo.ButtonBlockElement); ok && bb.Value == value {
					btn, blockID = bb, ab.BlockID
				}
			}
		}
	}
	if btn == nil {
		return Envelope{}, fmt.Errorf("slackfake: message %s has no button with value %q", msg.TS, value)
	}
	blocks, _ := json.Marshal(msg.Blocks)
	actionTS := s.NewTS()
	payload, _ := json.Marshal(map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "team_id": TeamID},
		"api_app_id": "AFAKE",
		"team":       map[string]any{"id": TeamID},
		"container":  map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "is_ephemeral": false, "thread_ts": msg.Thread},
		"channel":    map[string]any{"id": msg.Channel, "name": "deployments"},
		"message":    map[string]any{"type": "message", "ts": msg.TS, "thread_ts": msg.Thread, "text": msg.Text, "user": BotUserID, "bot_id": BotID, "blocks": json.RawMessage(blocks)},
		"trigger_id": "trig-" + actionTS,
		"actions": []map[string]any{{"type": "button", "action_id": btn.ActionID, "block_id": blockID, "value": btn.Value,
			"text": map[string]any{"type": "plain_text", "text": btn.Text.Text}, "action_ts": actionTS}},
	})
	return Envelope{EnvelopeID: s.envelopeID(), Type: "interactive", Payload: payload, Accepts: true}, nil
}

// Press sends a button press and returns its envelope.
func (s *Server) Press(user string, msg Call, value string) (Envelope, error) {
	env, err := s.PressEnvelope(user, msg, value)
	if err != nil {
		return env, err
	}
	return env, s.Send(env)
}

// Acks is how many times the envelope was acknowledged.
func (s *Server) Acks(envelopeID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acks[envelopeID]
}

// WaitAck waits until the envelope was acknowledged n times in all.
func (s *Server) WaitAck(envelopeID string, n int, timeout time.Duration) error {
	return s.wait(timeout, fmt.Sprintf("acknowledgement of %s", envelopeID), func() bool { return s.acks[envelopeID] >= n })
}

// Calls returns every recorded call, in order of arrival.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// WaitCall waits for the first call after the after'th that matches and
// returns it.
func (s *Server) WaitCall(ctx context.Context, after int, timeout time.Duration, what string, match func(Call) bool) (Call, error) {
	var found Call
	err := s.wait(timeout, what, func() bool {
		for _, c := range s.calls[min(after, len(s.calls)):] {
			if match(c) {
				found = c
				return true
			}
		}
		return ctx.Err() != nil
	})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return found, err
}

// LastUpdate returns the latest chat.update of the message ts, if any.
func (s *Server) LastUpdate(ts string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.calls) - 1; i >= 0; i-- {
		if c := s.calls[i]; c.Method == "chat.update" && c.TS == ts {
			return c, true
		}
	}
	return Call{}, false
}
