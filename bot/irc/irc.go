// Package irc is deploybot's IRC adapter, on github.com/lrstanley/girc. The
// bot lives in one deployment channel: people's messages there (and in
// private) become bot.Messages, and the pipeline's notices become channel
// lines. Commands never see IRC.
//
// What the adapter guarantees, and how:
//   - Identity: a sender is known by the services account the server
//     vouches for (IRCv3 account-tag, or account-notify / extended-join
//     tracking), and always by the nick!user@host mask. A nick alone is never
//     a key.
//   - Nothing sent is lost and order is kept: every outgoing line waits in
//     a queue per target until the server has confirmed it. Lines are
//     confirmed by a PING sent after them: a server answers commands in
//     order, so its PONG means every line before it was received. Lines not
//     confirmed when the connection drops are sent again after the
//     reconnect, in their order, before anything newer.
//   - Lines fit: long text is cut to fit IRC's 512-byte lines as the server
//     relays them (":nick!user@host PRIVMSG #chan :" included), at spaces
//     when possible, never inside a UTF-8 sequence.
//   - Live first: deployment notices (and one- or two-line answers) go
//     before long answers waiting in the same queue, so after a reconnect
//     a resent backlog does not delay "verified by bob". A reminder whose
//     question was answered meanwhile (Config.Outdated) is dropped unsent.
//   - Flood control: lines are paced (a burst, then one per interval), so
//     long output never gets the bot disconnected for flooding.
//   - Staying connected: the adapter reconnects with exponential backoff,
//     rejoins, and reports each reconnect.
package irc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lrstanley/girc"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/deployer"
)

// Config is what the adapter needs: where to connect, who to be, and the
// few hooks into the rest of the bot. The wiring (cmd/deploybot) fills it
// from config.IRC; secrets arrive here already read from their files or
// environment variables.
type Config struct {
	Server    string
	Port      int
	TLS       bool
	TLSCAFile string // PEM CAs to trust instead of the system's ("" = system)
	Nick      string
	User      string
	RealName  string

	Channel    string // the deployment channel
	LogChannel string // optional: one `!log` line per finished deployment

	SASLUser     string // when set, log in with SASL PLAIN
	SASLPassword string

	// FloodBurst lines go out at once, then one per FloodInterval.
	// FloodInterval 0 sends without pacing.
	FloodBurst    int
	FloodInterval time.Duration

	// ReconnectMin is the wait after the first failure; it doubles up to
	// ReconnectMax, and starts again once a connection worked.
	ReconnectMin, ReconnectMax time.Duration

	// BotName is what people address the bot as (bot.Bot.Name). When the
	// IRC nick differs ("deploybot_" after a nick collision), "nick: cmd"
	// is read as "BotName: cmd".
	BotName string

	Logger *slog.Logger
	// OnReconnect is called after each reconnect, once the bot is back in
	// the deployment channel (bot.Bot.Reconnected).
	OnReconnect func()
	// OnJoined, when set, is called each time the bot has joined the
	// deployment channel, with the nick it has (the terminal's "joined"
	// line).
	OnJoined func(channel, nick string)
	// Deployment looks a deployment up for the `!log` line (Store.Get).
	Deployment func(id int64) (*deployer.Deployment, error)
	// Nickname is how to name a person or identity in a `!log` line
	// (bot.Directory.Mention for "irc").
	Nickname func(who string) string
	// Outdated, when set, reports whether a notice no longer needs saying
	// (bot.Bot.Outdated: a reminder whose question was answered). It is
	// asked again when the notice's lines are about to be sent, so a
	// reminder queued during an outage is dropped if the answer came first.
	Outdated func(n deployer.Notice) bool
}

// Adapter is the bot on one IRC network. It implements bot.Adapter.
type Adapter struct {
	cfg    Config
	log    *slog.Logger
	client *girc.Client
	// caps reports whether the server enabled an IRCv3 capability; tests
	// replace it to feed lines a server with accounts would send.
	caps func(name string) bool
	// regainEvery is regainEvery, per adapter so tests can shorten it.
	regainEvery time.Duration

	in      chan bot.Message
	stopped chan struct{}   // closed when Run ends
	ctxDone <-chan struct{} // Run's context; set before connecting

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every change below
	running     bool
	registered  bool            // the current connection passed registration
	nick        string          // our nick on the current connection
	joined      map[string]bool // lower-cased channels we are in
	connections int             // registrations so far
	reported    bool            // the reconnect of this connection was reported
	tryNick     string          // the nick last asked for while registering
	silenced    map[string]bool // CTCP tags with a silent handler (silenceCTCP)

	queues   map[string][]qline // target -> lines waiting, in order
	targets  []string           // targets in round-robin order
	next     int                // round-robin position in targets
	inflight []sent             // lines sent and not yet confirmed, in order
	seq      uint64             // sequence number of the last line sent
	acked    uint64             // highest sequence number a PING was sent for
}

// qline is one line waiting to be sent.
type qline struct {
	text string
	// live lines (notices, short answers) are sent before the other
	// lines queued for the same target; among themselves, in order.
	live bool
	// stale, when set, is asked just before sending: true drops the line.
	stale func() bool
}

// sent is a line handed to the server, waiting for its PONG.
type sent struct {
	target string
	qline
	seq uint64
}

// maxQueued bounds each target's queue, so that a channel the bot cannot
// join (banned, invite-only) does not grow memory without end. Overflow
// drops the oldest lines and logs it.
const maxQueued = 10000

// ackEvery is how many unconfirmed lines may be sent before a PING asks
// the server to confirm them, even while more lines wait.
const ackEvery = 10

// ackPrefix marks the PINGs that confirm delivery (girc's keepalive PINGs
// carry timestamps).
const ackPrefix = "deploybot-ack-"

// rejoinDelay is how long to wait before joining again after a kick or a
// refused join.
var rejoinDelay = 30 * time.Second

// New checks cfg and returns an adapter that connects when Run is called.
func New(cfg Config) (*Adapter, error) {
	if cfg.Server == "" || cfg.Port <= 0 {
		return nil, errors.New("irc: a server and port are required")
	}
	if cfg.Nick == "" || cfg.Channel == "" {
		return nil, errors.New("irc: a nick and a channel are required")
	}
	if cfg.User == "" {
		cfg.User = cfg.Nick
	}
	if cfg.RealName == "" {
		cfg.RealName = cfg.Nick
	}
	if cfg.BotName == "" {
		cfg.BotName = cfg.Nick
	}
	if cfg.FloodBurst < 1 {
		cfg.FloodBurst = 1
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 2 * time.Second
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = cfg.ReconnectMin
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	gc := girc.Config{
		Server: cfg.Server, Port: cfg.Port, Nick: cfg.Nick, User: cfg.User, Name: cfg.RealName,
		SSL: cfg.TLS,
		// The adapter paces lines itself (configurable), so girc's fixed
		// pacing would only slow it down twice.
		AllowFlood: true,
		Version:    "deploybot",
	}
	if cfg.TLS {
		tc := &tls.Config{ServerName: cfg.Server, MinVersion: tls.VersionTLS12}
		if cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("irc: reading tls_ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("irc: tls_ca_file %s holds no PEM certificates", cfg.TLSCAFile)
			}
		}
		gc.TLSConfig = tc
	}
	if cfg.SASLUser != "" {
		gc.SASL = &girc.SASLPlain{User: cfg.SASLUser, Pass: cfg.SASLPassword}
	}
	a := &Adapter{
		cfg: cfg, log: log.With("adapter", "irc"), client: girc.New(gc),
		in: make(chan bot.Message, 64), stopped: make(chan struct{}),
		changed: make(chan struct{}), joined: map[string]bool{}, queues: map[string][]qline{},
	}
	a.caps = a.client.HasCapability
	a.regainEvery = regainEvery
	a.silenceCTCP("")
	a.client.Config.HandleNickCollide = a.onNickCollide
	h := a.client.Handlers
	h.Add(girc.INITIALIZED, a.onInitialized)
	h.Add(girc.RPL_WELCOME, a.onWelcome)
	h.Add(girc.JOIN, a.onJoin)
	h.Add(girc.PART, a.onPart)
	h.Add(girc.KICK, a.onKick)
	h.Add(girc.NICK, a.onNick)
	h.Add(girc.PRIVMSG, a.onPrivmsg)
	h.Add(girc.PONG, a.onPong)
	h.Add(girc.DISCONNECTED, a.onDisconnected)
	h.Add(girc.ERROR, func(_ *girc.Client, e girc.Event) {
		// The server closes every connection with ERROR, ours on QUIT too.
		level := slog.LevelWarn
		if a.ctxDone != nil {
			select {
			case <-a.ctxDone:
				level = slog.LevelInfo
			default:
			}
		}
		a.log.Log(context.Background(), level, "irc server closed the connection", "server", a.cfg.Server, "text", e.Last())
	})
	for _, code := range []string{girc.ERR_BANNEDFROMCHAN, girc.ERR_INVITEONLYCHAN, girc.ERR_BADCHANNELKEY,
		girc.ERR_CHANNELISFULL, "477" /* need a registered nick */, girc.ERR_NOSUCHCHANNEL} {
		h.Add(code, a.onJoinRefused)
	}
	h.Add(girc.ERR_CANNOTSENDTOCHAN, func(_ *girc.Client, e girc.Event) {
		a.log.Warn("irc refused a line", "channel", param(e, 1), "text", e.Last())
	})
	return a, nil
}

// Name implements bot.Adapter.
func (a *Adapter) Name() string { return "irc" }

// Run implements bot.Adapter: it connects, reconnects when the connection
// drops, and delivers messages to handle one at a time, in order, until
// ctx ends.
func (a *Adapter) Run(ctx context.Context, handle func(bot.Message)) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("irc: Run called twice")
	}
	a.running = true
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer close(a.stopped)
	a.ctxDone = ctx.Done()
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		a.sendLoop(ctx)
	}()
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		a.connectLoop(ctx)
	}()
	for {
		select {
		case m := <-a.in:
			handle(m)
		case <-ctx.Done():
			a.shutdown(connDone)
			<-sendDone
			return nil
		}
	}
}

// shutdown says goodbye and waits for the connection to end.
func (a *Adapter) shutdown(connDone chan struct{}) {
	a.mu.Lock()
	registered := a.registered
	a.mu.Unlock()
	if registered {
		a.client.Quit("deploybot is stopping")
		select {
		case <-connDone:
			return
		case <-time.After(2 * time.Second):
		}
	}
	a.client.Close()
	select {
	case <-connDone:
	case <-time.After(10 * time.Second):
		a.log.Warn("irc connection did not close within 10s")
	}
}

// connectLoop keeps the bot connected until ctx ends, waiting
// ReconnectMin after a failure, doubling up to ReconnectMax; a connection
// that got through registration starts the backoff again.
func (a *Adapter) connectLoop(ctx context.Context) {
	backoff := a.cfg.ReconnectMin
	for {
		a.mu.Lock()
		before := a.connections
		a.mu.Unlock()
		err := a.client.Connect()
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		worked := a.connections > before
		a.mu.Unlock()
		if worked {
			backoff = a.cfg.ReconnectMin
		}
		// Up to a fifth of jitter, so a fleet of bots does not reconnect in
		// lockstep after a netsplit.
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)/5+1))
		a.log.Warn("irc disconnected; reconnecting", "server", a.addr(), "err", errText(err), "in", wait.Round(time.Millisecond), "queued", a.queued())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, a.cfg.ReconnectMax)
	}
}

func (a *Adapter) addr() string { return a.cfg.Server + ":" + strconv.Itoa(a.cfg.Port) }

func errText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// kickLocked wakes everything waiting for a state change; a.mu is held.
func (a *Adapter) kickLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func param(e girc.Event, i int) string {
	if i < len(e.Params) {
		return e.Params[i]
	}
	return ""
}

func (a *Adapter) isSelf(src *girc.Source) bool {
	return src != nil && strings.EqualFold(src.Name, a.currentNick())
}

func (a *Adapter) currentNick() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nick != "" {
		return a.nick
	}
	return a.cfg.Nick
}

func (a *Adapter) onInitialized(c *girc.Client, _ girc.Event) {
	// A shutdown that raced with the connection being set up closes it
	// as soon as it exists.
	if a.ctxDone != nil {
		select {
		case <-a.ctxDone:
			c.Close()
		default:
		}
	}
}

func (a *Adapter) onWelcome(c *girc.Client, e girc.Event) {
	a.mu.Lock()
	a.registered = true
	a.nick = param(e, 0)
	a.connections++
	a.reported = false
	n := a.connections
	a.kickLocked()
	a.mu.Unlock()
	a.log.Info("irc connected", "server", a.addr(), "nick", param(e, 0), "connection", n)
	a.join()
	if !strings.EqualFold(param(e, 0), a.cfg.Nick) {
		go a.regainNick(n)
	}
}

// regainEvery is how often the bot asks for its configured nick back
// while it has another one: after a reconnect, the server may still hold
// the old connection under the nick until it times out.
var regainEvery = 30 * time.Second

// regainNick asks for the configured nick every regainEvery while
// connection conn lasts and the bot goes by another nick.
func (a *Adapter) regainNick(conn int) {
	t := time.NewTicker(a.regainEvery)
	defer t.Stop()
	for {
		select {
		case <-a.stopped:
			return
		case <-t.C:
		}
		a.mu.Lock()
		done := !a.registered || a.connections != conn || strings.EqualFold(a.nick, a.cfg.Nick)
		a.mu.Unlock()
		if done {
			return
		}
		a.client.Cmd.Nick(a.cfg.Nick)
	}
}

// onNickCollide picks the nick to try when the server says ours is taken.
// While registering it adds an underscore each time (girc would retry the
// same nick forever); once registered it keeps the nick the bot has, so a
// refused attempt to regain the configured nick changes nothing.
func (a *Adapter) onNickCollide(string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.registered {
		return ""
	}
	if a.tryNick == "" {
		a.tryNick = a.cfg.Nick
	}
	if len(a.tryNick) < 30 {
		a.tryNick += "_"
	} else {
		a.tryNick = a.cfg.Nick[:min(len(a.cfg.Nick), 24)] + strconv.Itoa(rand.IntN(100000))
	}
	return a.tryNick
}

// join joins the channels the bot is not in yet.
func (a *Adapter) join() {
	a.mu.Lock()
	if !a.registered {
		a.mu.Unlock()
		return
	}
	var chans []string
	for _, ch := range []string{a.cfg.Channel, a.cfg.LogChannel} {
		if ch != "" && !a.joined[strings.ToLower(ch)] {
			chans = append(chans, ch)
		}
	}
	a.mu.Unlock()
	if len(chans) > 0 {
		a.client.Cmd.Join(chans...)
	}
}

func (a *Adapter) onJoin(c *girc.Client, e girc.Event) {
	if !a.isSelf(e.Source) || len(e.Params) == 0 {
		return
	}
	ch := e.Params[0]
	a.mu.Lock()
	a.joined[strings.ToLower(ch)] = true
	report := strings.EqualFold(ch, a.cfg.Channel) && a.connections > 1 && !a.reported
	if report {
		a.reported = true
	}
	queued := len(a.queues[a.cfg.Channel])
	a.kickLocked()
	a.mu.Unlock()
	if report {
		a.log.Info("irc rejoined after a reconnect", "channel", ch, "queued", queued)
		if a.cfg.OnReconnect != nil {
			go a.cfg.OnReconnect()
		}
	} else {
		a.log.Info("irc joined", "channel", ch)
	}
	if a.cfg.OnJoined != nil && strings.EqualFold(ch, a.cfg.Channel) {
		a.cfg.OnJoined(ch, a.currentNick())
	}
}

func (a *Adapter) left(ch, why string) {
	a.mu.Lock()
	delete(a.joined, strings.ToLower(ch))
	a.kickLocked()
	a.mu.Unlock()
	a.log.Warn("irc left a channel; joining again soon", "channel", ch, "why", why, "in", rejoinDelay)
	time.AfterFunc(rejoinDelay, a.join)
}

func (a *Adapter) onPart(c *girc.Client, e girc.Event) {
	if a.isSelf(e.Source) && len(e.Params) > 0 {
		a.left(e.Params[0], "parted")
	}
}

func (a *Adapter) onKick(c *girc.Client, e girc.Event) {
	if len(e.Params) > 1 && strings.EqualFold(e.Params[1], a.currentNick()) {
		by := ""
		if e.Source != nil {
			by = e.Source.Name
		}
		a.left(e.Params[0], "kicked by "+by+": "+e.Last())
	}
}

func (a *Adapter) onJoinRefused(c *girc.Client, e girc.Event) {
	ch := param(e, 1)
	a.log.Warn("irc could not join a channel; trying again soon", "channel", ch, "text", e.Last(), "in", rejoinDelay)
	time.AfterFunc(rejoinDelay, a.join)
}

func (a *Adapter) onNick(c *girc.Client, e girc.Event) {
	if a.isSelf(e.Source) && len(e.Params) > 0 {
		a.mu.Lock()
		a.nick = e.Params[0]
		a.mu.Unlock()
		a.log.Info("irc nick changed", "nick", e.Params[0])
	}
}

// onDisconnected puts every unconfirmed line back at the head of its
// queue: the server may not have received it.
func (a *Adapter) onDisconnected(c *girc.Client, e girc.Event) {
	a.mu.Lock()
	a.registered = false
	a.tryNick = ""
	a.joined = map[string]bool{}
	back := a.inflight
	a.inflight = nil
	a.acked = a.seq
	a.requeueLocked(back)
	a.kickLocked()
	a.mu.Unlock()
}

// requeueLocked puts lines back at the front of their queues, in order.
func (a *Adapter) requeueLocked(lines []sent) {
	byTarget := map[string][]qline{}
	var order []string
	for _, s := range lines {
		if _, ok := byTarget[s.target]; !ok {
			order = append(order, s.target)
		}
		byTarget[s.target] = append(byTarget[s.target], s.qline)
	}
	for _, t := range order {
		a.addTargetLocked(t)
		a.queues[t] = append(byTarget[t], a.queues[t]...)
	}
}

func (a *Adapter) addTargetLocked(t string) {
	if _, ok := a.queues[t]; ok {
		return
	}
	a.queues[t] = nil
	a.targets = append(a.targets, t)
}

// queued counts the lines waiting to be sent or confirmed.
func (a *Adapter) queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.inflight)
	for _, q := range a.queues {
		n += len(q)
	}
	return n
}

// maxSilencedCTCP bounds how many CTCP tags have a silent handler, so
// that people sending made-up tags cannot grow it without end.
const maxSilencedCTCP = 1000

// silenceCTCP makes girc answer no CTCP request. girc replies to them
// itself (VERSION, PING, TIME, and ERRMSG to any tag it has no handler
// for), at once and outside the adapter's paced queue, so a few people
// sending requests would make the bot flood the server. Every tag the bot
// receives gets a silent handler before girc looks for one (the PRIVMSG
// handler runs first); tag "" silences girc's own defaults.
func (a *Adapter) silenceCTCP(tag string) {
	quiet := func(*girc.Client, girc.CTCPEvent) {}
	a.mu.Lock()
	defer a.mu.Unlock()
	if tag != "" && a.silenced[tag] {
		return
	}
	if a.silenced == nil || len(a.silenced) >= maxSilencedCTCP {
		a.client.CTCP.ClearAll() // girc's defaults come back: silence them again
		a.silenced = map[string]bool{}
		for _, t := range []string{girc.CTCP_PING, girc.CTCP_PONG, girc.CTCP_VERSION, girc.CTCP_SOURCE,
			girc.CTCP_TIME, girc.CTCP_FINGER, girc.CTCP_USERINFO, girc.CTCP_CLIENTINFO} {
			a.client.CTCP.Set(t, quiet)
			a.silenced[t] = true
		}
	}
	if tag != "" {
		a.client.CTCP.Set(tag, quiet)
		a.silenced[tag] = true
	}
}
