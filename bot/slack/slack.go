// Package slack is deploybot's Slack adapter, on github.com/slack-go/slack
// over Socket Mode, so the bot needs no public URL. It turns channel
// messages and button presses into bot.Messages, and renders the
// pipeline's notices with one root message per deployment (kept up to
// date with a status line), its step-by-step notices in that message's
// thread, and buttons on every prompt.
//
// Every button sends the text of the command it stands for, from the
// person who pressed it, through the same command layer and access rules
// as typing it. Slack writes happen on one goroutine, in the order the
// notices and replies were produced, so a thread reads in pipeline order
// and the pipeline never waits for Slack.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

// Options configure an Adapter.
type Options struct {
	// AppToken (xapp-…) opens the Socket Mode connection; BotToken
	// (xoxb-…) posts. Both are secrets and are never logged.
	AppToken, BotToken string
	// Channel is the deployment channel's id. Messages in other channels
	// are ignored; direct messages are private messages.
	Channel string
	// APIURL is the Web API's base URL, ending in "/" (Slack's by default).
	APIURL string
	// BotName and Prefix are the bot's, so that "@deploybot status" and
	// buttons work with any configured prefix.
	BotName, Prefix string
	// Stages is how many hosts each stage has, for the "hosts synced"
	// count in a deployment's status line (omitted when empty).
	Stages map[deployer.Stage]int
	// Lookup, when set, reads a deployment, so its root message names its
	// changes and requester and lists hosts a rollback could not restore.
	Lookup func(id int64) (*deployer.Deployment, error)
	// Roots, when set, keeps each deployment's root message across
	// restarts (the store's chat_roots bucket), so a resumed deployment
	// goes on in its thread instead of starting a new root.
	Roots Roots
	// Users are the Slack user ids of the people the bot knows
	// (people[].slack, slack: identities). A reply mentions these and the
	// person it answers; any other word that looks like a user id is text.
	Users []string
	// Reconnected is called after the socket was re-established.
	Reconnected func(adapter string)
	// Logger receives one line per event; default slog.Default().
	Logger *slog.Logger
	// PingInterval is how long without a ping from Slack before the socket
	// is taken for dead and reopened; default 30s.
	PingInterval time.Duration
	// Now is the clock for "answered at" lines; default time.Now.
	Now func() time.Time
}

// Adapter is the Slack chat adapter. It implements bot.Adapter.
type Adapter struct {
	opts    Options
	grammar bot.Grammar // the bot's, from BotName and Prefix
	api     *slackgo.Client
	log     *slog.Logger
	seen    *seen
	users   map[string]bool // Options.Users

	mu     sync.Mutex
	queue  []func(context.Context)
	wake   chan struct{}
	selfID string // the bot's user id, from auth.test
	selfBo string // the bot's bot id, from auth.test
	// threads maps a root message's ts to its deployment, so a message
	// written in a deployment's thread says which one it is about.
	threads map[string]int64

	// Only the writer goroutine touches what follows.
	deps     map[int64]*depState
	lastDone int64 // the latest deployment seen done: its root has Roll back
}

// Roots stores deployments' root messages (store.Store implements it).
type Roots interface {
	ChatRoot(adapter string, id int64) (string, error)
	SetChatRoot(adapter string, id int64, handle string) error
}

// depState is what the adapter remembers about one deployment's messages.
// It lives in memory; only the root message's ts is also kept in
// Options.Roots, so after a restart the next notice about a deployment
// goes on in its thread (and updates its root).
type depState struct {
	rootTS      string
	title       string
	requester   string
	state       deployer.State
	verdict     deployer.Outcome
	failedHosts []string
	touched     int    // hosts that may hold the change, while rolling back
	rollbackBy  string // "rollback requested by … at …", once pressed
	rendered    string // the root as last posted, to skip idle updates
	prompts     []*prompt
}

// prompt is a posted message with buttons that still await an answer.
type prompt struct {
	ts     string
	state  deployer.State // the deployment's state the prompt is about
	text   string
	blocks []slackgo.Block // without the buttons
}

// New returns an adapter; Run connects it.
func New(opts Options) (*Adapter, error) {
	if !strings.HasPrefix(opts.AppToken, "xapp-") {
		return nil, errors.New("slack: the app-level token must start with xapp-")
	}
	if !strings.HasPrefix(opts.BotToken, "xoxb-") {
		return nil, errors.New("slack: the bot token must start with xoxb-")
	}
	if opts.Channel == "" {
		return nil, errors.New("slack: no channel configured")
	}
	if opts.APIURL == "" {
		opts.APIURL = slackgo.APIURL
	}
	if opts.Prefix == "" {
		opts.Prefix = "!"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger.With("adapter", "slack")
	api := slackgo.New(opts.BotToken,
		slackgo.OptionAppLevelToken(opts.AppToken),
		slackgo.OptionAPIURL(opts.APIURL),
		slackgo.OptionLog(logOutput{log}),
		// Slack answers 429 when posting faster than about once a second
		// per channel; wait as it says and retry.
		slackgo.OptionRetry(3))
	users := map[string]bool{}
	for _, u := range opts.Users {
		users[u] = true
	}
	return &Adapter{
		opts:    opts,
		grammar: bot.Grammar{Name: opts.BotName, Prefix: opts.Prefix},
		api:     api,
		log:     log,
		seen:    newSeen(4096),
		users:   users,
		wake:    make(chan struct{}, 1),
		deps:    map[int64]*depState{},
	}, nil
}

// logOutput sends slack-go's own (debug) log lines to slog.
type logOutput struct{ l *slog.Logger }

func (o logOutput) Output(_ int, s string) error {
	o.l.Debug(strings.TrimSpace(s))
	return nil
}

// Name implements bot.Adapter.
func (a *Adapter) Name() string { return "slack" }

// Run implements bot.Adapter: it learns the bot's own ids, opens the
// socket (reopening it whenever it drops), and delivers messages and
// button presses to handle until ctx ends.
func (a *Adapter) Run(ctx context.Context, handle func(bot.Message)) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.writer(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	if err := a.authTest(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	client := socketmode.New(a.api, socketmode.OptionLog(logOutput{a.log}), socketmode.OptionPingInterval(a.pingInterval()))
	runErr := make(chan error, 1)
	go func() { runErr <- client.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: the Socket Mode connection stopped: %w (check the app-level token and that Socket Mode is on)", err)
		case ev := <-client.Events:
			a.event(ctx, client, ev, handle)
		}
	}
}

func (a *Adapter) pingInterval() time.Duration {
	if a.opts.PingInterval > 0 {
		return a.opts.PingInterval
	}
	return 30 * time.Second
}

// authTest learns the bot's user and bot ids, so its own messages are
// ignored. A refused token is an error; anything else is retried.
func (a *Adapter) authTest(ctx context.Context) error {
	wait := 500 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		r, err := a.api.AuthTestContext(actx)
		cancel()
		if err == nil {
			a.mu.Lock()
			a.selfID, a.selfBo = r.UserID, r.BotID
			a.mu.Unlock()
			a.log.Info("slack authenticated", "user", r.UserID, "bot", r.BotID, "team", r.TeamID)
			return nil
		}
		switch err.Error() {
		case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type":
			return fmt.Errorf("slack: the bot token was refused (%s): check chat.slack.bot_token_env / bot_token_file", err.Error())
		}
		a.log.Warn("slack auth.test failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// event handles one Socket Mode event. Envelopes are acknowledged first,
// before anything else, so that Slack does not retry them.
func (a *Adapter) event(ctx context.Context, client *socketmode.Client, ev socketmode.Event, handle func(bot.Message)) {
	if ev.Request != nil && ev.Request.EnvelopeID != "" {
		if err := client.AckCtx(ctx, ev.Request.EnvelopeID, nil); err != nil {
			a.log.Warn("slack acknowledgement failed", "envelope", ev.Request.EnvelopeID, "err", err)
		}
		if !a.seen.add("envelope:" + ev.Request.EnvelopeID) {
			a.log.Info("slack duplicate envelope dropped", "envelope", ev.Request.EnvelopeID, "retry", ev.Request.RetryAttempt)
			return
		}
	}
	switch ev.Type {
	case socketmode.EventTypeConnecting:
		a.log.Debug("slack connecting")
	case socketmode.EventTypeConnected:
		n := 0
		if c, ok := ev.Data.(*socketmode.ConnectedEvent); ok {
			n = c.ConnectionCount
		}
		a.log.Info("slack connected", "connection", n+1)
		if n > 0 && a.opts.Reconnected != nil {
			a.opts.Reconnected("slack")
		}
	case socketmode.EventTypeConnectionError:
		a.log.Warn("slack connection failed; retrying", "err", errorOf(ev.Data))
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("slack refused the app-level token")
	case socketmode.EventTypeDisconnect:
		a.log.Info("slack asked to reconnect")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		a.log.Warn("slack socket error", "type", ev.Type, "err", errorOf(ev.Data))
	case socketmode.EventTypeEventsAPI:
		e, ok := ev.Data.(slackevents.EventsAPIEvent)
		if !ok {
			return
		}
		if m, ok := e.InnerEvent.Data.(*slackevents.MessageEvent); ok {
			a.message(m, ev.Request != nil && ev.Request.RetryAttempt > 0, handle)
		}
	case socketmode.EventTypeInteractive:
		cb, ok := ev.Data.(slackgo.InteractionCallback)
		if ok && cb.Type == slackgo.InteractionTypeBlockActions {
			a.press(cb, handle)
		}
	}
}

func errorOf(data any) string {
	switch d := data.(type) {
	case *slackgo.ConnectionErrorEvent:
		return d.Error()
	case *slackgo.IncomingEventError:
		return d.Error()
	case *socketmode.ErrorBadMessage:
		return d.Cause.Error()
	case *socketmode.ErrorWriteFailed:
		return d.Cause.Error()
	}
	return fmt.Sprint(data)
}

func (a *Adapter) self() (user, botID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.selfID, a.selfBo
}

func sender(user string) bot.Sender {
	return bot.Sender{Adapter: "slack", Keys: []string{"slack:" + user}, Nick: user}
}

// answer collects what the bot core said to one message or press. The
// writer waits on done, so the answer is posted before any notice the
// command caused.
type answer struct {
	done    chan struct{}
	lines   []string
	refused []string
}

func newAnswer() *answer { return &answer{done: make(chan struct{})} }

func (r *answer) message(m bot.Message) bot.Message {
	m.Reply = func(lines ...string) { r.lines = append(r.lines, lines...) }
	m.Refused = func(line string) { r.refused = append(r.refused, line) }
	return m
}

// message handles a message event: a person typing in the channel (or
// to the bot directly). A redelivered event (its first delivery was not
// acknowledged) may come minutes after it was typed: the bot is told
// when it was sent.
func (a *Adapter) message(ev *slackevents.MessageEvent, redelivered bool, handle func(bot.Message)) {
	selfUser, selfBot := a.self()
	switch {
	case ev.SubType != "" && ev.SubType != "thread_broadcast" && ev.SubType != "file_share":
		// Edits, deletions, joins, bot messages. A message with a file
		// attached (file_share: "verified" with a screenshot) is a person
		// speaking, like a thread reply also sent to the channel.
		return
	case ev.BotID != "" || ev.User == "" || ev.User == selfUser || (selfBot != "" && ev.BotID == selfBot):
		return
	}
	private := ev.ChannelType == "im"
	if ev.Channel != a.opts.Channel && !private {
		return
	}
	if !a.seen.add("message:" + ev.Channel + ":" + ev.TimeStamp) {
		a.log.Info("slack duplicate message dropped", "channel", ev.Channel, "ts", ev.TimeStamp)
		return
	}
	text := strings.TrimSpace(unescape(ev.Text))
	if selfUser != "" && strings.HasPrefix(text, "<@"+selfUser+">") {
		text = a.opts.BotName + ": " + strings.TrimLeft(strings.TrimPrefix(text, "<@"+selfUser+">"), ":, ")
	}
	// A command gets a reaction once the bot has answered; the bot's own
	// grammar tells it from chatter.
	_, _, isCommand := a.grammar.Parse(text)
	ans := newAnswer()
	a.enqueue(func(ctx context.Context) {
		<-ans.done
		thread := ev.ThreadTimeStamp
		if len(ans.lines) > 0 {
			a.post(ctx, 0, ev.Channel, thread, ev.User, strings.Join(ans.lines, "\n"), false)
		}
		if len(ans.refused) > 0 {
			a.post(ctx, 0, ev.Channel, thread, ev.User, strings.Join(ans.refused, "\n"), false)
			a.react(ctx, ev.Channel, ev.TimeStamp, "no_entry_sign")
		} else if isCommand {
			a.react(ctx, ev.Channel, ev.TimeStamp, "white_check_mark")
		}
	})
	defer close(ans.done)
	m := bot.Message{Sender: sender(ev.User), Text: text, Private: private}
	if ev.ThreadTimeStamp != "" && !private {
		m.Thread = a.threadOf(ev.ThreadTimeStamp)
	}
	if redelivered {
		m.Sent = tsTime(ev.TimeStamp)
	}
	handle(ans.message(m))
}

// tsTime is the time a Slack ts ("1700000000.000100": seconds and
// microseconds) stands for, or the zero time.
func tsTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 {
		return time.Time{}
	}
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return time.Unix(s, us*1000)
}

// command turns a button's value into the command to run, with the
// configured prefix.
func (a *Adapter) command(value string) string {
	if rest, ok := strings.CutPrefix(value, "!"); ok && a.opts.Prefix != "!" {
		return a.opts.Prefix + rest
	}
	return value
}

// press handles a button press: the button's command, from the person who
// pressed it, through the same access control as typing it.
func (a *Adapter) press(cb slackgo.InteractionCallback, handle func(bot.Message)) {
	for _, act := range cb.ActionCallback.BlockActions {
		if !strings.HasPrefix(act.ActionID, ActionPrefix) || act.Value == "" {
			continue
		}
		key := "press:" + cb.User.ID + ":" + cb.Container.MessageTs + ":" + act.ActionID + ":" + act.ActionTs
		if !a.seen.add(key) {
			a.log.Info("slack duplicate button press dropped", "user", cb.User.ID, "value", act.Value)
			continue
		}
		act := *act
		channel := cb.Container.ChannelID
		if channel == "" {
			channel = cb.Channel.ID
		}
		a.log.Info("slack button pressed", "deployment", deploymentOf(act.Value), "user", cb.User.ID, "value", act.Value)
		ans := newAnswer()
		a.enqueue(func(ctx context.Context) {
			<-ans.done
			a.pressed(ctx, cb, act, channel, ans)
		})
		func() {
			defer close(ans.done)
			handle(ans.message(bot.Message{Sender: sender(cb.User.ID), Text: a.command(act.Value)}))
		}()
	}
}

// deploymentOf is the deployment a button's command names (its last
// word), for the log.
func deploymentOf(value string) int64 {
	f := strings.Fields(value)
	if len(f) == 0 {
		return 0
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(f[len(f)-1], "#"), 10, 64)
	return id
}

// pressed answers a press once the bot core has: a refusal goes only to
// the person who pressed; an accepted press replaces the buttons with who
// answered and when.
func (a *Adapter) pressed(ctx context.Context, cb slackgo.InteractionCallback, act slackgo.BlockAction, channel string, ans *answer) {
	msgTS := cb.Container.MessageTs
	thread := cb.Container.ThreadTs
	if thread == "" {
		thread = cb.Message.ThreadTimestamp
	}
	if thread == "" {
		thread = msgTS
	}
	if len(ans.refused) > 0 {
		for _, line := range ans.refused {
			a.ephemeral(ctx, channel, cb.User.ID, thread, line)
		}
		return
	}
	who := mention(cb.User.ID)
	what := "pressed *" + buttonLabel(act.Value) + "*"
	id, st, p := a.findMessage(msgTS)
	switch {
	case p != nil:
		a.closePrompt(ctx, id, channel, p, answered(who+" "+what, a.opts.Now()))
	case st != nil && st.rootTS == msgTS:
		st.rollbackBy = answered(who+" "+what, a.opts.Now())
		if a.lastDone == id {
			a.lastDone = 0
		}
		a.updateRoot(ctx, id, st)
	default:
		// A message from before a restart: rebuild it from what Slack sent.
		blocks := append(withoutActions(cb.Message.Blocks.BlockSet), contextLine(answered(who+" "+what, a.opts.Now())))
		a.update(ctx, 0, channel, msgTS, cb.Message.Text, blocks)
	}
	if len(ans.lines) > 0 {
		a.post(ctx, id, channel, thread, cb.User.ID, strings.Join(ans.lines, "\n"), false)
	}
}

// findMessage finds which deployment a message belongs to, and the open
// prompt it is, if any.
func (a *Adapter) findMessage(ts string) (int64, *depState, *prompt) {
	for id, st := range a.deps {
		if st.rootTS == ts {
			return id, st, nil
		}
		for _, p := range st.prompts {
			if p.ts == ts {
				return id, st, p
			}
		}
	}
	return 0, nil, nil
}

// Announce implements bot.Adapter. It only queues the notice: the writer
// posts it, so a slow Slack never holds up the pipeline.
func (a *Adapter) Announce(n deployer.Notice, mentions []string) {
	a.enqueue(func(ctx context.Context) { a.announce(ctx, n, mentions) })
}

func (a *Adapter) enqueue(op func(context.Context)) {
	a.mu.Lock()
	a.queue = append(a.queue, op)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// writer performs the queued Slack writes one at a time, in order.
func (a *Adapter) writer(ctx context.Context) {
	for {
		a.mu.Lock()
		ops := a.queue
		a.queue = nil
		a.mu.Unlock()
		for _, op := range ops {
			if ctx.Err() != nil {
				return
			}
			op(ctx)
		}
		if len(ops) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
	}
}

var finalKinds = map[deployer.NoticeKind]bool{
	deployer.NoticeDone: true, deployer.NoticeRolledBack: true, deployer.NoticeFailed: true, deployer.NoticeCancelled: true,
}

// announce posts one notice. A deployment's first notice creates its root
// message; every notice goes in the root's thread, the final one is also
// shown in the channel, and the root's status line follows the state.
func (a *Adapter) announce(ctx context.Context, n deployer.Notice, mentions []string) {
	ch := a.opts.Channel
	text, blocks := noticeMessage(n, mentions)
	if n.Deployment == 0 {
		a.postBlocks(ctx, 0, ch, "", text, blocks, false)
		return
	}
	st := a.deps[n.Deployment]
	if st == nil {
		st = &depState{rootTS: a.storedRoot(n.Deployment)}
		a.deps[n.Deployment] = st
		a.setThread(st.rootTS, n.Deployment)
	}
	if n.State != "" {
		st.state = n.State
	}
	if n.Verdict != nil {
		st.verdict = n.Verdict.Outcome
	}
	a.lookup(n.Deployment, st)
	// Prompts about an earlier state were answered (by a button, a typed
	// command from Slack or another chat, or the timeout).
	for _, p := range st.prompts {
		if p.state != st.state {
			a.closePrompt(ctx, n.Deployment, ch, p, answered("answered: "+escape(firstLine(n.Text)), a.opts.Now()))
		}
	}
	if st.rootTS == "" {
		rtext, rblocks := rootMessage(n.Deployment, st, a.opts.Stages, false)
		ts, ok := a.postBlocks(ctx, n.Deployment, ch, "", rtext, rblocks, false)
		if !ok {
			// Without a root there is no thread: say it in the channel.
			a.postBlocks(ctx, n.Deployment, ch, "", text, blocks, false)
			return
		}
		st.rootTS = ts
		a.setThread(ts, n.Deployment)
		st.rendered = renderKey(rtext, rblocks)
		a.storeRoot(n.Deployment, ts)
	}
	ts, ok := a.postBlocks(ctx, n.Deployment, ch, st.rootTS, text, blocks, finalKinds[n.Kind])
	if ok && len(n.Choices) > 0 {
		st.prompts = append(st.prompts, &prompt{ts: ts, state: n.State, text: text, blocks: withoutActions(blocks)})
	}
	switch prev := a.lastDone; {
	case n.State == deployer.StateDone && prev != n.Deployment:
		// Only the latest finished deployment can be rolled back: take the
		// button off the one before.
		a.lastDone = n.Deployment
		if a.deps[prev] != nil {
			a.updateRoot(ctx, prev, a.deps[prev])
		}
	case n.State != deployer.StateDone && prev == n.Deployment:
		a.lastDone = 0
	}
	a.updateRoot(ctx, n.Deployment, st)
	a.forget()
}

// setThread records that the thread of root message ts is deployment id's
// (id 0: forget it).
func (a *Adapter) setThread(ts string, id int64) {
	if ts == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if id == 0 {
		delete(a.threads, ts)
		return
	}
	if a.threads == nil {
		a.threads = map[string]int64{}
	}
	a.threads[ts] = id
}

// threadOf is the deployment whose thread has root ts, or 0.
func (a *Adapter) threadOf(ts string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.threads[ts]
}

// storedRoot is the ts of deployment id's root message in the configured
// channel as stored before a restart, or "".
func (a *Adapter) storedRoot(id int64) string {
	if a.opts.Roots == nil {
		return ""
	}
	h, err := a.opts.Roots.ChatRoot("slack", id)
	if err != nil {
		a.log.Warn("reading the deployment's root message from the store failed", "deployment", id, "err", err)
		return ""
	}
	ch, ts, ok := strings.Cut(h, " ")
	if !ok || ch != a.opts.Channel {
		return ""
	}
	return ts
}

// storeRoot keeps deployment id's root message for after a restart.
func (a *Adapter) storeRoot(id int64, ts string) {
	if a.opts.Roots == nil {
		return
	}
	if err := a.opts.Roots.SetChatRoot("slack", id, a.opts.Channel+" "+ts); err != nil {
		a.log.Warn("storing the deployment's root message failed", "deployment", id, "err", err)
	}
}

// keepDeployments bounds how many deployments' messages are remembered.
const keepDeployments = 200

// forget drops the oldest finished deployments' messages beyond
// keepDeployments; a later notice about one of them starts a new root.
func (a *Adapter) forget() {
	if len(a.deps) <= keepDeployments {
		return
	}
	var ids []int64
	for id, st := range a.deps {
		if st.state.Finished() && id != a.lastDone {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids[:max(0, min(len(ids), len(a.deps)-keepDeployments))] {
		a.setThread(a.deps[id].rootTS, 0)
		delete(a.deps, id)
	}
}

// lookup refreshes what the store knows about a deployment.
func (a *Adapter) lookup(id int64, st *depState) {
	if a.opts.Lookup == nil {
		return
	}
	d, err := a.opts.Lookup(id)
	if err != nil {
		a.log.Warn("reading the deployment for its Slack status failed", "deployment", id, "err", err)
		return
	}
	st.title, st.requester, st.touched = d.Title(), d.Requester, len(d.Touched)
	st.failedHosts = nil
	if d.State == deployer.StateRolledBack {
		for h := range d.FailedHosts {
			st.failedHosts = append(st.failedHosts, h)
		}
	}
}

func renderKey(text string, blocks []slackgo.Block) string {
	b, _ := json.Marshal(blocks)
	return text + "\x00" + string(b)
}

// updateRoot re-renders a deployment's root message when it changed.
func (a *Adapter) updateRoot(ctx context.Context, id int64, st *depState) {
	if st.rootTS == "" {
		return
	}
	text, blocks := rootMessage(id, st, a.opts.Stages, st.state == deployer.StateDone && a.lastDone == id && st.rollbackBy == "")
	key := renderKey(text, blocks)
	if key == st.rendered {
		return
	}
	if a.update(ctx, id, a.opts.Channel, st.rootTS, text, blocks) {
		st.rendered = key
	}
}

// closePrompt replaces a prompt's buttons with a line saying who answered
// and when.
func (a *Adapter) closePrompt(ctx context.Context, id int64, channel string, p *prompt, line string) {
	a.update(ctx, id, channel, p.ts, p.text, append(append([]slackgo.Block{}, p.blocks...), contextLine(line)))
	a.dropPrompt(p)
}

func (a *Adapter) dropPrompt(p *prompt) {
	for _, st := range a.deps {
		for i, q := range st.prompts {
			if q == p {
				st.prompts = append(st.prompts[:i], st.prompts[i+1:]...)
				return
			}
		}
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

const callTimeout = 20 * time.Second

// post sends plain lines (a reply to user) as mrkdwn-safe text, with the
// ids of user and of the people the bot knows as mentions.
func (a *Adapter) post(ctx context.Context, id int64, channel, thread, user, text string, broadcast bool) {
	text = linkUsers(escape(text), a.person(user))
	a.postBlocks(ctx, id, channel, thread, text, sections(text, false), broadcast)
}

// person reports whether an id in a reply to user is a person to
// mention: user, or someone the bot knows.
func (a *Adapter) person(user string) func(id string) bool {
	return func(id string) bool { return id == user || a.users[id] }
}

func (a *Adapter) postBlocks(ctx context.Context, id int64, channel, thread, text string, blocks []slackgo.Block, broadcast bool) (string, bool) {
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...)}
	if thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(thread))
		if broadcast {
			opts = append(opts, slackgo.MsgOptionBroadcast())
		}
	}
	var ts string
	err := a.call(ctx, "chat.postMessage", id, func(ctx context.Context) (err error) {
		_, ts, err = a.api.PostMessageContext(ctx, channel, opts...)
		return err
	})
	return ts, err == nil
}

func (a *Adapter) update(ctx context.Context, id int64, channel, ts, text string, blocks []slackgo.Block) bool {
	return a.call(ctx, "chat.update", id, func(ctx context.Context) error {
		_, _, _, err := a.api.UpdateMessageContext(ctx, channel, ts, slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...))
		return err
	}) == nil
}

func (a *Adapter) ephemeral(ctx context.Context, channel, user, thread, line string) {
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(linkUsers(escape(line), a.person(user)), false)}
	if thread != "" {
		opts = append(opts, slackgo.MsgOptionTS(thread))
	}
	_ = a.call(ctx, "chat.postEphemeral", 0, func(ctx context.Context) error {
		_, err := a.api.PostEphemeralContext(ctx, channel, user, opts...)
		return err
	})
}

func (a *Adapter) react(ctx context.Context, channel, ts, name string) {
	_ = a.call(ctx, "reactions.add", 0, func(ctx context.Context) error {
		err := a.api.AddReactionContext(ctx, name, slackgo.NewRefToMessage(channel, ts))
		if err != nil && err.Error() == "already_reacted" {
			return nil
		}
		return err
	})
}

// retryMax is the longest wait between two tries of a Slack write.
const retryMax = 30 * time.Second

// call makes one Slack write, each try within callTimeout. A write that
// failed for a reason that passes (Slack or the network to it is down: no
// answer, a 5xx; or a rate limit) is tried again after a wait that
// doubles up to retryMax, until it goes through or ctx ends: the writer
// holds every later write meanwhile, so nothing is lost and the order
// stays. (A try that timed out may have gone through: at worst a line
// comes twice.) Other failures (Slack refused the call) are logged and
// returned.
func (a *Adapter) call(ctx context.Context, method string, id int64, do func(context.Context) error) error {
	wait := 500 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := do(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			a.logFailure(method, id, err)
			return err
		}
		log := a.log.With("method", method, "err", err, "retry_in", wait)
		if id != 0 {
			log = log.With("deployment", id)
		}
		log.Warn("slack call failed; trying again")
		select {
		case <-ctx.Done():
			a.logFailure(method, id, err)
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// transient reports whether a failed call may work when tried again: no
// answer from Slack (a network error, a timeout), a 5xx, or a rate limit.
// An answer refusing the call (channel_not_found, invalid_blocks) is not.
func transient(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

func (a *Adapter) logFailure(method string, id int64, err error) {
	if id != 0 {
		a.log.Error("slack call failed", "method", method, "deployment", id, "err", err)
		return
	}
	a.log.Error("slack call failed", "method", method, "err", err)
}
