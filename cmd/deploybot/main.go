// Command deploybot is a chat-ops bot that deploys backports: it stages a
// change as one git commit, syncs it to test servers, waits for the
// submitter to verify it, checks the canaries' error rate against a
// baseline, and either continues to production or rolls back by itself.
//
// Subcommands: run, demo, check-config, version. This file only wires the
// packages together; Main is what both main() and the end-to-end tests use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/console"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/deployer/gitrepo"
	"github.com/deploybot/deploybot/deployer/judge"
	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: deploybot <command> [flags]

commands:
  run --config FILE           run the bot
  demo [--dir DIR] [--scenario]
                              a complete sandbox on this machine: an upstream repo,
                              seven hosts, traffic, and the bot on this terminal
  check-config --config FILE [--offline]
                              check a configuration; list every problem with its line
                              (source.components: also asks each remote, unless --offline)
  judge replay [--id N] [--config FILE] [--alpha X --factor X --abs-diff X --min-requests N]
                              re-run the canary judge over stored verdicts' readings
  version                     print the version
`

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "deploybot %s (%s)\n", version, runtime.Version())
		return 0
	case "check-config":
		return checkConfig(ctx, args[1:], stdout, stderr)
	case "judge":
		return judgeCommand(args[1:], stdout, stderr)
	case "run":
		m := NewMain(stdin, stdout, stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0 // the usage is printed
			}
			fmt.Fprintln(stderr, err)
			return 2
		}
		if err := m.Open(ctx); err != nil {
			fmt.Fprintln(stderr, "deploybot:", err)
			return 1
		}
		defer m.Close()
		if err := m.Run(ctx); err != nil {
			fmt.Fprintln(stderr, "deploybot:", err)
			return 1
		}
		return 0
	case "demo":
		return runDemo(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "deploybot: unknown command %q\n%s", args[0], usage)
	return 2
}

func checkConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "deploybot.yaml", "configuration file")
	offline := fs.Bool("offline", false, "do not contact the components' remotes")
	if err := fs.Parse(args); err != nil {
		return helpOr2(err)
	}
	if err := noArgs(fs); err != nil {
		fmt.Fprintln(stderr, "deploybot check-config:", err)
		return 2
	}
	c, err := config.Load(*path)
	var ps config.Problems
	if err == nil && !*offline && len(c.Source.Components) > 0 {
		if ps = checkSourceRemotes(ctx, c); len(ps) > 0 { // wire_source.go
			err = ps
		}
	}
	if errors.As(err, &ps) {
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(ps))
		for _, p := range ps {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "deploybot:", err)
		return 1
	}
	n := 0
	for _, hs := range c.Hosts.Stages {
		n += len(hs)
	}
	src := fmt.Sprintf("source %s %s (%s)", c.Source.Type, stagingUpstream(c).URL, stagingUpstream(c).Branch)
	if k := len(c.Source.Components); k > 0 {
		src = fmt.Sprintf("source %s, %d component(s)", c.Source.Type, k)
		if *offline {
			src += " (remotes not contacted)"
		} else {
			src += ", every remote answered"
		}
	}
	// Warnings (config/warnings.go) do not fail the check: they depend
	// on this machine (secrets, files) or may be meant. They are never
	// left unsaid.
	ws := c.Warnings()
	if len(ws) > 0 {
		fmt.Fprintf(stdout, "%s: %d warning(s):\n", *path, len(ws))
		for _, w := range ws {
			fmt.Fprintf(stdout, "  %s\n", w)
		}
	}
	fmt.Fprintf(stdout, "%s is valid: %d hosts in 3 stages, %s, %d deployer(s)",
		*path, n, src, len(c.Access.Deployers))
	if len(ws) > 0 {
		fmt.Fprintf(stdout, "; mind the %d warning(s) above", len(ws))
	}
	fmt.Fprintln(stdout)
	return 0
}

// Main is the program: it opens the store, the staging repo and the chat
// adapters named by a configuration, and runs the pipeline and the bot.
type Main struct {
	ConfigPath string
	Config     *config.Config

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Logger, when set before Open, is used instead of one built from the
	// configuration.
	Logger *slog.Logger
	// Adapters are extra chat adapters (tests add a recording one).
	Adapters []bot.Adapter

	Store   *store.Store
	Staging *gitrepo.Repo
	Fleet   deployer.Fleet
	Runner  *deployer.Runner
	Bot     *bot.Bot
	Console *console.Console
	// Pool depools and repools hosts with the configured commands (nil
	// when no stage has any); wire_hosts.go builds it with the Fleet.
	Pool deployer.Pool
	// Web is the dashboard (nil when web.listen is off).
	Web *web.Server
	// Smoker runs the stages' smoke checks, and ProductionWatch is how long
	// production is judged after its sync (0: not at all); the runner's
	// configuration takes both from here (wire_canary.go builds them).
	Smoker          deployer.Smoker
	ProductionWatch time.Duration
	// NoSummary leaves out the start-up summary on Stdout and in the
	// chats (the demo prints its own banner).
	NoSummary bool

	logFile *os.File
	closers []func() error
	once    sync.Once
}

// NewMain returns a Main reading chat from stdin and writing to stdout.
func NewMain(stdin io.Reader, stdout, stderr io.Writer) *Main {
	return &Main{Stdin: stdin, Stdout: stdout, Stderr: stderr}
}

// ParseFlags reads the run subcommand's flags and loads the configuration.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.ConfigPath, "config", "deploybot.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return fmt.Errorf("deploybot run: %w", err)
	}
	c, err := config.Load(m.ConfigPath)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return fmt.Errorf("%s has problems (run `deploybot check-config --config %s`):\n%s", m.ConfigPath, m.ConfigPath, ps.Error())
		}
		return err
	}
	m.Config = c
	return nil
}

func (m *Main) logger() (*slog.Logger, error) {
	if m.Logger != nil {
		return m.Logger, nil
	}
	var w io.Writer = m.Stderr
	if f := m.Config.Log.File; f != "" {
		lf, err := os.OpenFile(f, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, fmt.Errorf("opening the log file: %w", err)
		}
		m.logFile = lf
		w = lf
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.Log.Level)); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if m.Config.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// Open builds every part from the configuration. On error, whatever was
// opened is closed again.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	c := m.Config
	if m.Logger, err = m.logger(); err != nil {
		return err
	}
	log := m.Logger
	if m.Store, err = store.Open(c.Store.Path, c.Store.OpenTimeout.D()); err != nil {
		return err
	}
	m.closers = append(m.closers, m.Store.Close)
	if m.Staging, err = gitrepo.Open(c.Staging.Path, stagingUpstream(c)); err != nil {
		return fmt.Errorf("opening the staging repository %s: %w", c.Staging.Path, err)
	}
	source, err := m.changeSource(c) // wire_source.go
	if err != nil {
		return err
	}
	if err = m.openHosts(); err != nil { // wire_hosts.go
		return err
	}
	targets := map[string]string{}
	for _, stage := range deployer.Stages {
		for _, h := range c.Hosts.Stages[string(stage)] {
			if h.Metrics != "" {
				targets[h.Name] = h.Metrics
			}
		}
	}
	metrics, smoker, watch := canaryParts(c, targets)
	m.Smoker, m.ProductionWatch = smoker, watch
	jc := judgeConfig(c)

	dir := &bot.Directory{Deployers: c.Access.Deployers}
	for _, p := range c.People {
		dir.People = append(dir.People, bot.Person{Name: p.Name, Emails: p.Emails, Gerrit: p.Gerrit, Chat: p.Chat, Nick: p.Nick, Slack: p.Slack})
	}
	schedule, err := c.Windows.Schedule()
	if err != nil {
		return err
	}
	m.Bot = &bot.Bot{Name: c.Bot.Name, Prefix: c.Bot.Prefix, Store: m.Store, Dir: dir, Log: log}
	for _, h := range c.Hosts.Stages[string(deployer.Testservers)] {
		if h.URL != "" { // only a URL given for people: a metrics port is no page to test
			m.Bot.TestURLs = append(m.Bot.TestURLs, bot.TestURL{Name: h.Name, URL: h.URL})
		}
	}
	m.Runner = deployer.NewRunner(deployer.Config{
		VerifyTimeout:  c.Pipeline.VerifyTimeout.D(),
		PromoteTimeout: c.Pipeline.PromoteTimeout.D(),
		BaselineMin:    c.Canary.BaselineMin.D(),
		CanaryWindow:   c.Canary.Window.D(),
		SampleInterval: c.Canary.Interval.D(),
		Parallel:       c.Hosts.Parallel,
		SyncRetries:    *c.Pipeline.SyncRetries,
		RollbackTries:  c.Pipeline.RollbackTries,
		RetryDelay:     c.Pipeline.RetryDelay.D(),
		// The runner's side of hosts.max_failed_hosts and canary.production_watch.
		ProductionWatch:     m.ProductionWatch,
		MaxFailedProduction: c.Hosts.MaxFailed,
		Schedule:            schedule,
		Batch:               deployer.BatchConfig{Enabled: c.Pipeline.Batch.Enabled, MaxChanges: c.Pipeline.Batch.MaxChanges, MaxRounds: c.Pipeline.Batch.MaxRounds},
	}, deployer.Deps{
		Store: m.Store, Source: source, Staging: m.Staging, Fleet: m.Fleet,
		Metrics: metrics, Judge: judge.New(jc), Announcer: m.Bot, Logger: log,
		Submitter: dir.Submitter, Explain: explain,
		Smoker: m.Smoker, Pool: m.Pool, Windows: m.Store,
	})
	m.Bot.Runner = m.Runner
	if err = m.openWeb(); err != nil {
		return err
	}
	if c.Chat.Console != nil {
		m.Console = &console.Console{In: m.Stdin, Out: m.Stdout, User: c.Chat.Console.User, BotName: c.Bot.Name}
		m.Bot.AddAdapter(m.Console)
	}
	if err := m.openIRC(); err != nil {
		return err
	}
	if err := m.openSlack(); err != nil {
		return err
	}
	for _, a := range m.Adapters {
		m.Bot.AddAdapter(a)
	}
	log.Info("deploybot opened", "version", version, "store", c.Store.Path, "staging", c.Staging.Path, "hosts", len(m.Fleet.Hosts()))
	return nil
}

// explain is the verdict table without its first line, which repeats the
// reason the runner already states.
func explain(v deployer.Verdict) []string {
	t := judge.Table(v)
	if len(t) > 0 {
		return t[1:]
	}
	return t
}

// Run runs the pipeline and the chat adapters until ctx ends. When the
// pipeline cannot start (the staging repo or upstream is unreadable) it
// returns that error.
func (m *Main) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := m.Runner.Run(ctx)
		if err != nil {
			m.Logger.Error("pipeline stopped", "err", err)
		}
		errc <- err
		cancel()
	}()
	webDone := m.serveWeb(ctx)
	m.announceStart(ctx) // summary.go
	botDone := make(chan struct{})
	go func() {
		defer close(botDone)
		// Bot.Run returns early only when every adapter has stopped; each
		// stop was logged and said in the channels left as it happened.
		if err := m.Bot.Run(ctx); err != nil && ctx.Err() == nil {
			m.Logger.Error("every chat adapter has stopped; the pipeline goes on, but nobody can answer it", "err", err)
		}
	}()
	<-ctx.Done()
	err := <-errc
	// Wait for the chats to say goodbye and the dashboard to close, so
	// that the shutdown line is the last one.
	<-webDone
	<-botDone
	m.Logger.Info("deploybot stopped", "clean", err == nil)
	return err
}

// Close releases everything Open acquired. It is safe to call twice.
func (m *Main) Close() error {
	var err error
	m.once.Do(func() {
		for i := len(m.closers) - 1; i >= 0; i-- {
			if e := m.closers[i](); e != nil && err == nil {
				err = e
			}
		}
		if m.logFile != nil {
			m.logFile.Close()
		}
	})
	return err
}

// helpOr2 is the exit status after a flag error: 0 when help was asked
// for (the flag package printed the usage), 2 otherwise.
func helpOr2(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// noArgs refuses the words left after a subcommand's flags. The flag
// package stops at the first one and leaves the rest unread, so
// `deploybot check-config prod.yaml` checked deploybot.yaml and
// `deploybot run --config a.yaml --verbose x` ran without a word about x.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() == 0 {
		return nil
	}
	if fs.Lookup("config") != nil {
		return fmt.Errorf("unexpected %q (name the configuration with --config FILE; flags go before anything else)", fs.Arg(0))
	}
	return fmt.Errorf("unexpected %q (flags go before anything else)", fs.Arg(0))
}
