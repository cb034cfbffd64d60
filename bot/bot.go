// Package bot is deploybot's chat-neutral core: the command grammar, who may
// do what, conversations with the pipeline, and message formatting. Chat
// adapters (bot/console, bot/irc, bot/slack) turn their protocol's events
// into Messages and render Notices; commands never see a protocol.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/deployer"
)

// Message is one chat message addressed to the bot (or in its channel).
type Message struct {
	Sender  Sender
	Text    string
	Private bool // a direct message rather than the deployment channel
	// Reply answers in the place the message came from (channel, thread,
	// private message). Each element is one line.
	Reply func(lines ...string)
	// Refused, when set, receives the answer instead of Reply when the
	// command was not carried out (unknown, not allowed here, refused to
	// this sender, or declined), so an adapter can tell an accepted button
	// press from a refused one and answer the latter privately. When nil,
	// Handle uses Reply.
	Refused func(line string)
	// Sent, when set, is when the person sent the message, set by an
	// adapter that delivered it late (a redelivery): an answer naming no
	// deployment is then not taken for one that started after it
	// (bot/meant.go).
	Sent time.Time
	// Thread, when set, is the deployment whose thread the message was
	// written in (Slack): an answer naming no deployment is then not
	// taken for another one (bot/meant.go).
	Thread int64
}

// refused answers a command that was not carried out.
func (m Message) refused(line string) {
	if m.Refused != nil {
		m.Refused(line)
		return
	}
	m.Reply(line)
}

// Adapter is one chat network the bot is on.
type Adapter interface {
	// Name is the adapter's identity scheme: "console", "irc", "slack".
	Name() string
	// Run connects and delivers every incoming message to handle until ctx
	// ends. It returns nil when ctx ends or its input is exhausted.
	Run(ctx context.Context, handle func(Message)) error
	// Announce posts a pipeline notice to the deployment channel.
	// mentions are the notice's Mention entries, already translated to
	// this adapter's names (nicks, user ids).
	Announce(n deployer.Notice, mentions []string)
}

// Bot answers commands and announces the pipeline's notices on every
// adapter. It implements deployer.Announcer.
type Bot struct {
	Name   string // what people address it as
	Prefix string // "!"
	Runner *deployer.Runner
	Store  deployer.Store
	Dir    *Directory
	Log    *slog.Logger
	// Link, when set, returns a URL for a deployment (the dashboard).
	Link func(id int64) string
	// OnReconnect, when set, is called each time an adapter reconnects
	// (the dashboard counts them).
	OnReconnect func(adapter string)
	// Dashboard, when set, is the dashboard's URL; answers cut short in
	// the channel point to it (bot/manners.go).
	Dashboard string
	// TestURLs are the testservers' URLs, named in the verification ping
	// (bot/testurls.go).
	TestURLs []TestURL

	mu       sync.Mutex
	adapters []Adapter
}

// AddAdapter adds an adapter; call before Run.
func (b *Bot) AddAdapter(a Adapter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.adapters = append(b.adapters, a)
}

// Run runs every adapter until ctx ends, and returns when all have
// stopped, with the first error. An adapter that stops by itself without
// an error (input exhausted) leaves the others running and keeps its
// announcements. One that fails (a refused token) has stopped for good:
// it is logged, given no more announcements, and the channels of the
// others are told, so that nobody there waits for the bot to hear them.
func (b *Bot) Run(ctx context.Context) error {
	b.mu.Lock()
	as := append([]Adapter(nil), b.adapters...)
	b.mu.Unlock()
	errc := make(chan error, len(as))
	for _, a := range as {
		go func(a Adapter) {
			err := a.Run(ctx, b.Handle)
			switch {
			case err != nil:
				b.Log.Error("chat adapter stopped", "adapter", a.Name(), "err", err)
				if ctx.Err() == nil {
					b.stopped(a)
				}
			case ctx.Err() == nil:
				b.Log.Info("chat adapter's input ended", "adapter", a.Name())
			}
			errc <- err
		}(a)
	}
	var first error
	for range as {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// stopped takes an adapter that stopped for good out of the announcements
// (adapters are told apart by identity: each is a pointer) and tells the
// channels of the others.
func (b *Bot) stopped(a Adapter) {
	b.mu.Lock()
	b.adapters = slices.DeleteFunc(b.adapters, func(x Adapter) bool { return x == a })
	left := len(b.adapters)
	b.mu.Unlock()
	if left == 0 {
		b.Log.Error("no chat adapter is left: nobody can answer the bot's prompts or give it commands until it is restarted")
		if b.Runner != nil {
			// A deployment must not wait on people who cannot reach it.
			b.Runner.NobodyCanAnswer(fmt.Sprintf("the %s connection, the last one, stopped for good", a.Name()))
		}
		return
	}
	b.Announce(deployer.Notice{Kind: deployer.NoticeInfo, Text: fmt.Sprintf(
		"My %s connection has stopped for good: I no longer hear or answer anyone there, and my notices no longer reach it. Answer me here until deploybot is restarted; its log says why.",
		a.Name())})
}

// Reconnected is called by an adapter after it reconnected to its network.
func (b *Bot) Reconnected(adapter string) {
	b.Log.Info("chat reconnected", "adapter", adapter)
	if b.OnReconnect != nil {
		b.OnReconnect(adapter)
	}
}

// Announce implements deployer.Announcer.
func (b *Bot) Announce(n deployer.Notice) {
	if b.Outdated(n) { // bot/manners.go
		b.Log.Info("notice no longer needed, not announced", "deployment", n.Deployment, "kind", n.Kind)
		return
	}
	n = b.withTestURLs(n) // bot/testurls.go
	b.Log.Info("announce", "deployment", n.Deployment, "kind", n.Kind, "text", firstLine(n.Text))
	b.mu.Lock()
	as := append([]Adapter(nil), b.adapters...)
	b.mu.Unlock()
	n = b.renderNotice(n)
	if b.Link != nil && n.Deployment != 0 && (n.Kind == deployer.NoticeStarted || n.Kind == deployer.NoticeDone || n.Kind == deployer.NoticeRolledBack) {
		n.Text += " " + b.Link(n.Deployment)
	}
	for _, a := range as {
		ms := make([]string, 0, len(n.Mention))
		for _, m := range n.Mention {
			ms = append(ms, b.Dir.Mention(a.Name(), m))
		}
		a.Announce(n, ms)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

type role int

const (
	anyone role = iota
	submitterOrDeployer
	deployerOnly
)

type command struct {
	role    role
	usage   string
	help    string
	private bool // answered in private messages too
	run     func(b *Bot, m Message, who string, args []string) ([]string, error)
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"backport": {deployerOnly, "!backport [--batch] <ref> [<ref>...] [--include-unexpected] [--emergency <reason>]", "deploy a change: a commit id or a branch upstream (--batch: several changes as one batch)", false, (*Bot).backport},
		"window":   {anyone, "!window [go]", "the open or next backport window and its list; go: deploy the list (deployers)", false, (*Bot).window},
		"add":      {anyone, "!add <change>...", "put your change on the next backport window's list (its submitter or a deployer)", false, (*Bot).add},
		"drop":     {anyone, "!drop <change>", "take a change off the window's list", false, (*Bot).drop},
		"verified": {submitterOrDeployer, "verified [id]", "say the change works on the testservers", false, (*Bot).verified},
		"abort":    {submitterOrDeployer, "!abort [id]", "stop a deployment and roll back what it synced", false, (*Bot).abort},
		"promote":  {deployerOnly, "!promote [id]", "continue to production after an inconclusive canary check", false, (*Bot).promote},
		"rollback": {deployerOnly, "!rollback [id]", "undo a running deployment, or the latest finished one on every host", false, (*Bot).rollback},
		"cancel":   {deployerOnly, "!cancel <id>", "take a deployment off the queue", false, (*Bot).cancel},
		"lock":     {deployerOnly, "!lock <reason>", "freeze deployments: new backports queue but do not start", false, (*Bot).lock},
		"unlock":   {deployerOnly, "!unlock", "lift the freeze", false, (*Bot).unlock},
		"status":   {anyone, "!status [id]", "what is deploying now, or one deployment", true, (*Bot).status},
		"queue":    {anyone, "!queue", "the deployments waiting, in order", false, (*Bot).queue},
		"history":  {anyone, "!history [n]", "the last n deployments (default 10)", true, (*Bot).history},
		"help":     {anyone, "!help", "this list", true, (*Bot).help},
		"unblock":  {deployerOnly, "!unblock <change>", "let a rolled-back change ship again before its revert is merged", false, (*Bot).unblock},
		"repool":   {deployerOnly, "!repool <host>", "put a depooled host back into service (after checking it serves the deployed commit)", false, (*Bot).repool},
		"sync":     {deployerOnly, "!sync [host...]", "bring hosts that are not on the fleet's commit up to date, stage by stage with the smoke checks", false, (*Bot).sync},
		"whoami":   {anyone, "!whoami", "the identity I see for you, and whether it makes you a deployer", true, (*Bot).whoami}, // bot/whoami.go
	}
}

// Handle answers one message. It never panics on input and never lets a Go
// error chain reach the chat: application errors are shown as their
// message, everything else as "internal error" and logged in full.
func (b *Bot) Handle(m Message) {
	name, args, ok := b.Grammar().Parse(m.Text)
	if !ok {
		return
	}
	who := b.Dir.Identity(m.Sender)
	log := b.Log.With("adapter", m.Sender.Adapter, "who", who, "command", name)
	if id := argID(args); id > 0 && name != "history" {
		// Every line about a deployment carries its id.
		log = log.With("deployment", id)
	}
	if name == "verify" {
		name = "verified"
	}
	cmd, known := commands[name]
	if !known {
		m.refused(fmt.Sprintf("%s: I don't know %q. Try %shelp.", m.Sender.Nick, name, b.Prefix))
		return
	}
	if argID(args) == 0 {
		// "verified", "!abort" and the like name no id: they are about
		// the running deployment, and their lines say so too.
		if id := b.eventTarget(name, args); id > 0 {
			log = log.With("deployment", id)
		}
	}
	if m.Private && !cmd.private {
		m.refused(fmt.Sprintf("In private I answer only %s; say %s%s in the deployment channel.", privateCommands(b.Prefix), b.Prefix, name))
		return
	}
	if reason := b.refuse(cmd, m.Sender, args); reason != "" {
		log.Warn("command refused", "reason", reason, "text", m.Text)
		_ = b.Store.AppendEvent(deployer.Event{Deployment: b.eventTarget(name, args), Time: time.Now(), Actor: who, Kind: "refused",
			Message: fmt.Sprintf("%s%s refused: %s", b.Prefix, name, reason)})
		m.refused(fmt.Sprintf("%s: %s", m.Sender.Nick, reason))
		return
	}
	err := b.notMeant(m, name, args) // bot/meant.go
	var lines []string
	if err == nil {
		lines, err = cmd.run(b, m, who, args)
	}
	if err != nil {
		if deployer.ErrorCode(err) == deployer.EInternal {
			log.Error("command failed", "err", err, "text", m.Text)
		} else {
			log.Info("command declined", "reason", err.Error())
			// README: refused commands are recorded in the store, those
			// refused for what they ask as well as for who asks.
			_ = b.Store.AppendEvent(deployer.Event{Deployment: b.eventTarget(name, args), Time: time.Now(), Actor: who, Kind: "refused",
				Message: fmt.Sprintf("%s%s refused: %s", b.Prefix, name, deployer.ErrorMessage(err))})
		}
		line := fmt.Sprintf("%s: %s", m.Sender.Nick, deployer.ErrorMessage(err))
		if next := b.RenderNext(deployer.ErrorNext(err)); next != "" {
			if !strings.HasSuffix(line, ".") {
				line += "."
			}
			line += " " + next
		}
		m.refused(line)
		return
	}
	if cmd.role != anyone {
		log.Info("command done", "args", strings.Join(args, " "))
	}
	if !m.Private {
		lines = b.shorten(m.Sender.Adapter, name, args, lines) // bot/manners.go
	}
	if len(lines) > 0 {
		m.Reply(lines...)
	}
}

// refuse returns why the sender may not run cmd, or "".
func (b *Bot) refuse(cmd command, s Sender, args []string) string {
	switch cmd.role {
	case anyone:
		return ""
	case deployerOnly:
		if b.Dir.IsDeployer(s) {
			return ""
		}
		return "only deployers may do that (ask one of them, or see !help)"
	}
	if b.Dir.IsDeployer(s) {
		return ""
	}
	d, err := b.target(args)
	if err != nil {
		return ""
	}
	if b.Dir.Is(s, d.Submitter) {
		return ""
	}
	if d.Batch {
		for _, sub := range d.BatchSubmitters(b.Dir.Submitter) {
			if b.Dir.Is(s, sub) {
				return ""
			}
		}
	}
	if d.Submitter == "" {
		// It never reached a submitter (failed or cancelled while
		// preparing): there is nobody to name.
		return fmt.Sprintf("only a deployer may answer for #%d", d.ID)
	}
	return fmt.Sprintf("only the submitter (%s) or a deployer may answer for #%d", b.Dir.Mention(s.Adapter, d.Submitter), d.ID)
}

// eventTarget is the deployment whose timeline records a refusal of the
// command name: the one it names or (for commands about the running one)
// the running one; 0, the general log, for the others (a refused
// !backport is no event of the deployment that happens to run).
func (b *Bot) eventTarget(name string, args []string) int64 {
	switch name {
	case "verified", "abort", "promote", "rollback", "cancel":
	default:
		return 0
	}
	if d, err := b.target(args); err == nil {
		return d.ID
	}
	return 0
}

// target is the deployment a command names: an id argument ("42" or
// "#42"), else the one running now.
func (b *Bot) target(args []string) (*deployer.Deployment, error) {
	for _, a := range args {
		if id, ok := parseID(a); ok {
			d, err := b.Store.Get(id)
			if errors.Is(err, deployer.ErrNotFound) {
				return nil, deployer.Errorf(deployer.ENotFound, "there is no deployment #%d", id)
			}
			return d, err
		}
		if a != "" && (a[0] == '#' || (a[0] >= '0' && a[0] <= '9')) {
			// A mistyped id must not fall back to the running
			// deployment: "!abort 1x" would stop the wrong one.
			return nil, deployer.Errorf(deployer.EInvalid, "%q is not a deployment id (write it like 12 or #12)", a)
		}
	}
	d, err := b.Runner.Active()
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, deployer.Errorf(deployer.ENotFound, "nothing is deploying right now; name the deployment (e.g. #12)")
	}
	return d, nil
}

// argID is the deployment id a command's arguments name, or 0.
func argID(args []string) int64 {
	for _, a := range args {
		if id, ok := parseID(a); ok {
			return id
		}
	}
	return 0
}

func parseID(s string) (int64, bool) {
	// "verified 3." ends a sentence; the full stop is not part of the id.
	s = strings.TrimRight(s, ".,")
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return id, err == nil && id > 0
}

func (b *Bot) backport(m Message, who string, args []string) ([]string, error) {
	req := deployer.Request{Requester: who}
	for i, a := range args {
		if req.Emergency != "" {
			break // the rest is the emergency's reason
		}
		switch {
		case a == "--include-unexpected":
			req.IncludeUnexpected = true
		case a == "--batch":
			req.Batch = true
		case a == "--emergency":
			req.Emergency = strings.Join(args[i+1:], " ")
			if req.Emergency == "" {
				return nil, deployer.Errorf(deployer.EInvalid, "say why it cannot wait for a window: --emergency <reason>")
			}
		case strings.HasPrefix(a, "-"):
			return nil, deployer.Errorf(deployer.EInvalid, "unknown option %q; usage: %s", a, commands["backport"].usage)
		default:
			req.Refs = append(req.Refs, a)
		}
	}
	if len(req.Refs) == 0 {
		return nil, deployer.Errorf(deployer.EInvalid, "what should I deploy? usage: %s", commands["backport"].usage)
	}
	d, pos, err := b.Runner.Submit(req)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%s: queued %s as #%d", m.Sender.Nick, strings.Join(req.Refs, " "), d.ID)
	if lock, _ := b.Store.Lock(); lock != nil {
		line += fmt.Sprintf("; deployments are locked by %s (%s), so it waits until !unlock", lock.By, lock.Reason)
	} else if active, _ := b.Runner.Active(); active != nil || pos > 1 {
		line += fmt.Sprintf("; position %d in the queue", pos)
	}
	return []string{line}, nil
}

func (b *Bot) verified(m Message, who string, args []string) ([]string, error) {
	d, err := b.target(args)
	if err != nil {
		return nil, err
	}
	return nil, b.Runner.Verify(d.ID, who)
}

func (b *Bot) abort(m Message, who string, args []string) ([]string, error) {
	d, err := b.target(args)
	if err != nil {
		return nil, err
	}
	if d.State == deployer.StatePreparing {
		return []string{fmt.Sprintf("%s: stopping #%d", m.Sender.Nick, d.ID)}, b.Runner.Cancel(d.ID, who)
	}
	return []string{fmt.Sprintf("%s: aborting #%d and rolling back what it synced", m.Sender.Nick, d.ID)}, b.Runner.Abort(d.ID, who)
}

func (b *Bot) promote(m Message, who string, args []string) ([]string, error) {
	d, err := b.target(args)
	if err != nil {
		return nil, err
	}
	return nil, b.Runner.Promote(d.ID, who)
}

func (b *Bot) rollback(m Message, who string, args []string) ([]string, error) {
	var d *deployer.Deployment
	var err error
	if len(args) > 0 {
		id, ok := parseID(args[0])
		if !ok {
			return nil, deployer.Errorf(deployer.EInvalid, "%q is not a deployment id; usage: %s", args[0], commands["rollback"].usage)
		}
		d, err = b.Store.Get(id)
	} else {
		d, err = b.Runner.RollbackTarget()
	}
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, deployer.Errorf(deployer.ENotFound, "there is no deployment to roll back")
	}
	if len(args) == 0 && d.State.Finished() {
		// Without an id, undo only what people just watched: when a later
		// deployment ended since (failed, rolled back), ask for the id.
		if last, err := b.Store.List(0, 1); err == nil && len(last) == 1 && last[0].ID != d.ID {
			return nil, deployer.Errorf(deployer.EConflict, "the fleet serves #%d (%s), which finished %s ago; #%d came after it. Say which one you mean",
				d.ID, d.Title(), time.Since(d.EndedAt).Round(time.Second), last[0].ID).Or(deployer.Do(deployer.VerbRollback, d.ID, "undo #"+strconv.FormatInt(d.ID, 10)+" on every host"))
		}
	}
	if err := b.Runner.Rollback(d.ID, who); err != nil {
		return nil, err
	}
	what := "the running deployment"
	if d.State.Finished() {
		what = "what the fleet serves now"
	}
	return []string{fmt.Sprintf("%s: rolling back #%d (%s), %s", m.Sender.Nick, d.ID, d.Title(), what)}, nil
}

func (b *Bot) sync(m Message, who string, args []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return b.Runner.SyncFleet(ctx, args, who)
}

func (b *Bot) cancel(m Message, who string, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", commands["cancel"].usage)
	}
	id, ok := parseID(args[0])
	if !ok {
		return nil, deployer.Errorf(deployer.EInvalid, "%q is not a deployment id; usage: %s", args[0], commands["cancel"].usage)
	}
	if err := b.Runner.Cancel(id, who); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%s: cancelled #%d", m.Sender.Nick, id)}, nil
}

func (b *Bot) lock(m Message, who string, args []string) ([]string, error) {
	reason := strings.Join(args, " ")
	if err := b.Runner.Lock(who, reason); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("deployments locked by %s: %s. Backports queue until %sunlock.", who, reason, b.Prefix)}, nil
}

func (b *Bot) unlock(m Message, who string, args []string) ([]string, error) {
	if err := b.Runner.Unlock(who); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("deployments unlocked by %s", who)}, nil
}

func (b *Bot) status(m Message, who string, args []string) ([]string, error) {
	if len(args) > 0 {
		id, ok := parseID(args[0])
		if !ok {
			return nil, deployer.Errorf(deployer.EInvalid, "%q is not a deployment id; usage: %s", args[0], commands["status"].usage)
		}
		d, err := b.Store.Get(id)
		if errors.Is(err, deployer.ErrNotFound) {
			return nil, deployer.Errorf(deployer.ENotFound, "there is no deployment #%d", id)
		}
		if err != nil {
			return nil, err
		}
		return b.describe(d, true), nil
	}
	var lines []string
	d, err := b.Runner.Active()
	if err != nil {
		return nil, err
	}
	if d != nil {
		lines = append(lines, b.describe(d, true)...)
	} else {
		lines = append(lines, b.idleStatus(time.Now())) // bot/status_idle.go
	}
	q, err := b.Runner.Queue()
	if err != nil {
		return nil, err
	}
	if len(q) > 0 {
		lines = append(lines, fmt.Sprintf("%d queued (next: #%d by %s); see %squeue", len(q), q[0].ID, q[0].Requester, b.Prefix))
	}
	if l, err := b.Store.Lock(); err == nil && l != nil {
		lines = append(lines, fmt.Sprintf("locked by %s since %s: %s", l.By, l.Since.UTC().Format("15:04 MST"), l.Reason))
	}
	if v, err := b.Runner.FleetView(context.Background()); err == nil {
		lines = append(lines, b.fleetLines(v, d)...)
	}
	if bs, err := b.Store.Blocks(); err == nil && len(bs) > 0 {
		var ids []string
		for _, bl := range bs {
			id := bl.Change.ID
			if len(id) == 40 {
				id = id[:10]
			}
			ids = append(ids, fmt.Sprintf("%s (rolled back in #%d)", id, bl.Deployment))
		}
		lines = append(lines, "blocked from shipping again: "+strings.Join(ids, ", "))
	}
	if line := b.withheldLine(d); line != "" {
		lines = append(lines, line)
	}
	return lines, nil
}

// withheldLine names the changes a batch shipped without that no later
// deployment shipped (blocked ones are named as blocked, and those the
// running deployment carries are its), or "".
func (b *Bot) withheldLine(active *deployer.Deployment) string {
	ws, err := b.Runner.Withheld()
	if err != nil || len(ws) == 0 {
		return ""
	}
	blocks, _ := b.Store.Blocks()
	var names, ids []string
	var skip []deployer.Change
	for _, bl := range blocks {
		skip = append(skip, bl.Change)
	}
	if active != nil {
		skip = append(skip, active.Changes...)
	}
	for _, w := range ws {
		if slices.ContainsFunc(skip, func(c deployer.Change) bool { return deployer.SameChange(c, w.Change) }) {
			continue
		}
		id := deployer.ShortID(w.Change.ID)
		names = append(names, fmt.Sprintf("%s (%s; dropped from #%d)", id, w.Change.Subject, w.Deployment))
		ids = append(ids, id)
	}
	if len(names) == 0 {
		return ""
	}
	it := map[bool]string{true: "it", false: "them"}[len(ids) == 1]
	return fmt.Sprintf("dropped from a batch and not deployed since: %s; a deployment ships %s only when it names %s (%sbackport %s) or says --include-unexpected",
		strings.Join(names, ", "), it, it, b.Prefix, strings.Join(ids, " "))
}

// fleetLines says what the fleet serves and which hosts are not on it.
func (b *Bot) fleetLines(v deployer.FleetView, active *deployer.Deployment) []string {
	var lines []string
	if active == nil {
		lines = append(lines, b.fleetServes(v))
	}
	starting := false
	select {
	case <-b.Runner.Ready():
	default:
		starting = true // still reading back what each host serves
	}
	var behind, depooled, onCommit []string
	unread := 0
	for _, h := range v.Behind() {
		if active != nil && contains(active.Touched, h.Record.Name) && !h.Record.Depooled {
			continue // synced by the running deployment
		}
		if r := h.Record; r.Depooled && !r.Unknown && r.Target == "" && r.Commit == v.Commit {
			// Out of service, but on the fleet's commit.
			onCommit = append(onCommit, fmt.Sprintf("%s (by #%d)", r.Name, r.DepooledBy))
			continue
		}
		if starting && h.Record.Unknown && !h.Record.Depooled {
			// Not read yet is not off the fleet's commit: !sync is no
			// advice for it.
			unread++
			continue
		}
		behind = append(behind, h.Record.Name+" ("+h.OffFleet+")")
		if h.Record.Depooled {
			depooled = append(depooled, h.Record.Name)
		}
	}
	if len(behind) > 0 {
		line := fmt.Sprintf("hosts not on the fleet's commit: %s; %ssync brings them up to date", strings.Join(behind, ", "), b.Prefix)
		if len(depooled) > 0 {
			line += fmt.Sprintf(", %srepool <host> puts a depooled one back", b.Prefix)
		}
		lines = append(lines, line)
	}
	if len(onCommit) > 0 {
		lines = append(lines, fmt.Sprintf("depooled, though on the fleet's commit: %s; %srepool <host> puts one back into service", strings.Join(onCommit, ", "), b.Prefix))
	}
	if unread > 0 {
		what := "1 host serves"
		if unread > 1 {
			what = fmt.Sprintf("%d hosts serve", unread)
		}
		lines = append(lines, fmt.Sprintf("I have just started and am still reading back what %s; ask again in a moment", what))
	}
	return lines
}

// fleetServes says what the fleet serves: the deployment whose outcome it
// is (after a rollback, the one it is back on; Runner.Serving), or the
// baseline.
func (b *Bot) fleetServes(v deployer.FleetView) string {
	serving, err := b.Runner.Serving(v.Landed)
	var line string
	switch {
	case err != nil:
		b.Log.Warn("reading what the fleet serves failed", "err", err)
		line = fmt.Sprintf("the fleet serves %.10s", v.Commit)
	case serving == nil && v.Landed == nil:
		return fmt.Sprintf("the fleet serves the baseline %.10s (nothing deployed yet)", v.Commit)
	case serving == nil:
		line = fmt.Sprintf("the fleet serves the baseline %.10s again", v.Commit)
	default:
		what := "its commit"
		if serving.State != deployer.StateDone {
			what = "what it replaced (it was " + string(serving.State) + ")"
		}
		line = fmt.Sprintf("the fleet serves #%d %s: %s", serving.ID, serving.Title(), what)
	}
	if v.Landed != nil {
		line += ", since " + v.Landed.EndedAt.UTC().Format("2006-01-02 15:04 MST")
		if serving != v.Landed {
			line += fmt.Sprintf(" (#%d was rolled back)", v.Landed.ID)
		}
	}
	return line
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (b *Bot) unblock(m Message, who string, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", commands["unblock"].usage)
	}
	bl, err := b.Runner.Unblock(args[0], who)
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%s lifted the block on %s (%s), rolled back in #%d: it may ship again", who, args[0], bl.Change.Subject, bl.Deployment)}, nil
}

func (b *Bot) repool(m Message, who string, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, deployer.Errorf(deployer.EInvalid, "usage: %s", commands["repool"].usage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Runner.Repool(ctx, args[0], who); err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%s repooled %s: it serves the deployed commit again", who, args[0])}, nil
}

// describe is one deployment in a line or a few.
func (b *Bot) describe(d *deployer.Deployment, long bool) []string {
	line := fmt.Sprintf("#%d %s: %s, requested by %s", d.ID, d.State, d.Title(), d.Requester)
	if d.Submitter != "" && d.Submitter != d.Requester {
		line += ", submitter " + d.Submitter
	}
	now := time.Now()
	switch d.State {
	case deployer.StateAwaitingVerification, deployer.StateAwaitingPromotion, deployer.StateAwaitingMetrics:
		line += fmt.Sprintf("; %s left to answer", d.Deadline.Sub(now).Round(time.Second))
	}
	if !d.StartedAt.IsZero() {
		end := now
		if d.State.Finished() && !d.EndedAt.IsZero() {
			end = d.EndedAt
		}
		took := "running for"
		if d.State.Finished() {
			took = "took"
		}
		line += fmt.Sprintf("; %s %s", took, end.Sub(d.StartedAt).Round(time.Second))
	}
	if d.State == deployer.StateQueued {
		line += fmt.Sprintf("; queued %s ago", now.Sub(d.CreatedAt).Round(time.Second))
	}
	lines := []string{line}
	if long {
		if d.Reason != "" {
			lines = append(lines, "  reason: "+d.Reason)
		}
		if len(d.Touched) > 0 && !d.State.Finished() {
			lines = append(lines, "  hosts touched: "+strings.Join(d.Touched, ", "))
		}
		for _, h := range sortedKeys(d.FailedHosts) {
			lines = append(lines, fmt.Sprintf("  host %s: %s", h, d.FailedHosts[h]))
		}
		if b.Link != nil {
			lines = append(lines, "  "+b.Link(d.ID))
		}
	}
	return lines
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func (b *Bot) queue(m Message, who string, args []string) ([]string, error) {
	q, err := b.Runner.Queue()
	if err != nil {
		return nil, err
	}
	if len(q) == 0 {
		return []string{"the queue is empty"}, nil
	}
	lines := []string{fmt.Sprintf("%d queued:", len(q))}
	for i, d := range q {
		lines = append(lines, fmt.Sprintf("%d. #%d %s by %s, queued %s ago", i+1, d.ID, d.Title(), d.Requester, time.Since(d.CreatedAt).Round(time.Second)))
	}
	if l, err := b.Store.Lock(); err == nil && l != nil {
		lines = append(lines, fmt.Sprintf("locked by %s: %s", l.By, l.Reason))
	}
	return lines, nil
}

func (b *Bot) history(m Message, who string, args []string) ([]string, error) {
	n := 10
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > 100 {
			return nil, deployer.Errorf(deployer.EInvalid, "%q: give a number from 1 to 100; usage: %s", args[0], commands["history"].usage)
		}
		n = v
	}
	ds, err := b.Store.List(0, n)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return []string{"no deployments yet"}, nil
	}
	lines := []string{fmt.Sprintf("last %d deployment(s), newest first:", len(ds))}
	for _, d := range ds {
		lines = append(lines, b.describe(d, false)...)
	}
	return lines, nil
}

// helpOrder is the order of !help.
var helpOrder = []string{"backport", "window", "add", "drop", "verified", "abort", "promote", "rollback", "cancel", "lock", "unlock", "unblock", "repool", "sync", "status", "queue", "history", "whoami", "help"}

func (b *Bot) help(m Message, who string, args []string) ([]string, error) {
	lines := []string{fmt.Sprintf("I deploy backports. Commands (prefix %s, or address me as \"%s: <command>\"):", b.Prefix, b.Name)}
	for _, name := range helpOrder {
		c := commands[name]
		who := "anyone"
		switch c.role {
		case deployerOnly:
			who = "deployers"
		case submitterOrDeployer:
			who = "submitter or deployers"
		}
		lines = append(lines, fmt.Sprintf("  %-48s %s [%s]", strings.ReplaceAll(c.usage, "!", b.Prefix), c.help, who))
	}
	return lines, nil
}
