// Package config reads deploybot's YAML configuration and checks it, naming
// the line of every problem, so `deploybot check-config` can list them all
// at once. config.example.yaml at the repository root documents every key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes them ("15m", "2s").
// A value that does not parse is kept with its line, so that decoding goes
// on and every problem of the file is reported at once.
type Duration struct {
	time.Duration
	bad  string
	line int
}

// Dur makes a Duration.
func Dur(d time.Duration) Duration { return Duration{Duration: d} }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return d.Duration }

// UnmarshalYAML parses "15m"-style durations and refuses bare numbers,
// which would silently mean nanoseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil || n.Kind != yaml.ScalarNode:
		d.bad, d.line = fmt.Sprintf("%q is not a duration (write it like 90s, 15m or 1h)", n.Value), n.Line
	case v < 0:
		d.bad, d.line = fmt.Sprintf("duration %q is negative", n.Value), n.Line
	default:
		*d = Duration{Duration: v}
	}
	return nil
}

// durationProblems finds every Duration that did not parse.
func durationProblems(v reflect.Value) Problems {
	var ps Problems
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			ps = append(ps, durationProblems(v.Elem())...)
		}
	case reflect.Struct:
		if d, ok := v.Interface().(Duration); ok {
			if d.bad != "" {
				ps = append(ps, Problem{Line: d.line, Msg: d.bad})
			}
			return ps
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				ps = append(ps, durationProblems(v.Field(i))...)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			ps = append(ps, durationProblems(v.Index(i))...)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			ps = append(ps, durationProblems(v.MapIndex(k))...)
		}
	}
	return ps
}

// Config is the whole configuration file.
type Config struct {
	Bot      Bot      `yaml:"bot"`
	Store    Store    `yaml:"store"`
	Staging  Staging  `yaml:"staging"`
	Source   Source   `yaml:"source"`
	Hosts    Hosts    `yaml:"hosts"`
	Pipeline Pipeline `yaml:"pipeline"`
	Canary   Canary   `yaml:"canary"`
	Access   Access   `yaml:"access"`
	People   []Person `yaml:"people"`
	Chat     Chat     `yaml:"chat"`
	Log      Log      `yaml:"log"`
	Web      Web      `yaml:"web"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
}

// Bot names the bot in chat.
type Bot struct {
	Name   string `yaml:"name"`   // what people address it as: "deploybot: status"
	Prefix string `yaml:"prefix"` // command prefix, "!" by default
}

// Store is where the bbolt database lives.
type Store struct {
	Path        string   `yaml:"path"`
	OpenTimeout Duration `yaml:"open_timeout"`
}

// Staging is where the staging git repository lives.
type Staging struct {
	Path string `yaml:"path"`
}

// Source says where changes come from.
type Source struct {
	Type   string       `yaml:"type"` // "git" or "gerrit"
	Git    GitSource    `yaml:"git"`
	Gerrit GerritSource `yaml:"gerrit"` // config/gerrit.go
}

// GitSource is an upstream git remote and the branch deployed from it.
type GitSource struct {
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	// PushReverts lets a rollback push a revert commit to Branch when the
	// rolled-back commit is still its tip.
	PushReverts bool `yaml:"push_reverts"`
}

// Hosts is the fleet, by stage.
type Hosts struct {
	Transport string              `yaml:"transport"` // "local" or "ssh"
	Parallel  int                 `yaml:"parallel"`
	Stages    map[string][]HostCf `yaml:"stages"`
	// SSH, MaxFailedHosts and StageOptions: config/hosts_ssh.go.
	SSH            SSH                     `yaml:"ssh"`
	MaxFailedHosts string                  `yaml:"max_failed_hosts"`
	StageOptions   map[string]StageOptions `yaml:"stage_options"`
}

// HostCf is one host.
type HostCf struct {
	Name    string `yaml:"name"`
	Root    string `yaml:"root"`    // local: the directory holding slots/ and current
	Address string `yaml:"address"` // ssh: host or host:port (default: the name)
	Metrics string `yaml:"metrics"` // URL of its Prometheus text-format metrics
	Line    int    `yaml:"-"`

	// URL is where its web server answers smoke checks (default: the
	// metrics URL's scheme and host:port); PrometheusInstance is its
	// instance label in Prometheus (default: the metrics URL's host:port).
	URL                string `yaml:"url"`
	PrometheusInstance string `yaml:"prometheus_instance"`
}

// Pipeline holds the pipeline's waits and retries.
type Pipeline struct {
	VerifyTimeout  Duration `yaml:"verify_timeout"`
	PromoteTimeout Duration `yaml:"promote_timeout"`
	SyncRetries    *int     `yaml:"sync_retries"`
	// RollbackTries bounds the attempts at one rollback before it ends
	// rollback-failed and locks deployments (0: the runner's default).
	RollbackTries int `yaml:"rollback_tries"`
	// RetryDelay is the first pause before a failed step is redone (0: the
	// runner's default).
	RetryDelay Duration `yaml:"retry_delay"`
}

// Canary configures the canary check.
type Canary struct {
	Metrics     Metrics  `yaml:"metrics"`
	BaselineMin Duration `yaml:"baseline_min"`
	Window      Duration `yaml:"window"`
	Interval    Duration `yaml:"interval"`
	Judge       Judge    `yaml:"judge"`
	// Smoke and ProductionWatch are described in canary_ext.go; a nil
	// ProductionWatch takes the default, 0s turns the watch off.
	Smoke           Smoke     `yaml:"smoke"`
	ProductionWatch *Duration `yaml:"production_watch"`
}

// Metrics configures how request and error counters are read.
type Metrics struct {
	Source     string   `yaml:"source"` // "scrape"
	Metric     string   `yaml:"metric"`
	CodeLabel  string   `yaml:"code_label"`
	ErrorCodes string   `yaml:"error_codes"`
	Timeout    Duration `yaml:"timeout"`
	// Prometheus is used when Source is "prometheus" (canary_ext.go).
	Prometheus PrometheusSource `yaml:"prometheus"`
}

// Judge holds the canary judge's thresholds.
type Judge struct {
	Alpha            float64 `yaml:"alpha"`
	Factor           float64 `yaml:"factor"`
	AbsDiff          float64 `yaml:"abs_diff"`
	MinRequests      int     `yaml:"min_requests"`
	GrossRate        float64 `yaml:"gross_rate"`
	GrossMinRequests int     `yaml:"gross_min_requests"`
}

// Access lists who may deploy.
type Access struct {
	// Deployers are identities (console:alice, irc:account:alice,
	// irc:mask:*!alice@example/*, slack:U012AB3CD) or names of people.
	Deployers []string `yaml:"deployers"`
}

// Person links one human's identities: as a commit author, in Gerrit and
// in each chat.
type Person struct {
	Name   string   `yaml:"name"`
	Emails []string `yaml:"emails"`
	Gerrit string   `yaml:"gerrit"`
	// Chat lists identities (globs allowed) that prove a chat sender is
	// this person, e.g. console:bob, irc:account:bob, slack:U012AB3CD.
	Chat []string `yaml:"chat"`
	// Nick is who to ping: the console name or IRC nick.
	Nick  string `yaml:"nick"`
	Slack string `yaml:"slack"` // Slack user id to mention
}

// Chat configures the chat adapters.
type Chat struct {
	Console *Console `yaml:"console"`
	Slack   *Slack   `yaml:"slack"`
	IRC     *IRC     `yaml:"irc"`
}

// Console is the standard-input adapter.
type Console struct {
	User string `yaml:"user"` // who a line on standard input is from
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	File   string `yaml:"file"`   // default: standard error
}

// Problem is one thing wrong with a configuration, at a line.
type Problem struct {
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Problems is every problem found in a configuration; it is an error.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

type lineError struct {
	Line int
	Msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Load reads and checks the file at path. The error, when the file was
// read, is Problems listing everything wrong with it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	c, err := Parse(data)
	if c != nil {
		c.Path = path
		dir, aerr := filepath.Abs(filepath.Dir(path))
		if aerr != nil {
			return nil, aerr
		}
		c.resolvePaths(dir)
	}
	return c, err
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse decodes and checks a configuration.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{toProblem(err.Error())}
	}
	var ps Problems
	c := &Config{}
	if len(root.Content) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, e := range te.Errors {
					ps = append(ps, toProblem(e))
				}
			} else {
				ps = append(ps, toProblem(err.Error()))
			}
		}
	}
	ps = append(ps, durationProblems(reflect.ValueOf(c))...)
	c.lines(&root)
	c.defaults()
	ps = append(ps, c.check(&root)...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	if len(ps) > 0 {
		return c, ps
	}
	return c, nil
}

func toProblem(s string) Problem {
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		msg := m[2]
		if f := regexp.MustCompile(`^field (\S+) not found in type \S+$`).FindStringSubmatch(msg); f != nil {
			msg = fmt.Sprintf("unknown key %q", f[1])
		}
		msg = strings.TrimPrefix(msg, "line "+m[1]+": ")
		return Problem{Line: n, Msg: msg}
	}
	return Problem{Msg: s}
}

// find returns the value node at a path of mapping keys, or nil.
func find(n *yaml.Node, path ...string) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// lineOf returns the line of the key at path, or of its nearest parent.
func lineOf(root *yaml.Node, path ...string) int {
	for len(path) > 0 {
		if parent := find(root, path[:len(path)-1]...); parent != nil && parent.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(parent.Content); i += 2 {
				if parent.Content[i].Value == path[len(path)-1] {
					return parent.Content[i].Line
				}
			}
		}
		path = path[:len(path)-1]
	}
	return 0
}

// lines records the line of each host entry, for later messages.
func (c *Config) lines(root *yaml.Node) {
	for stage, hs := range c.Hosts.Stages {
		n := find(root, "hosts", "stages", stage)
		if n == nil || n.Kind != yaml.SequenceNode {
			continue
		}
		for i := range hs {
			if i < len(n.Content) {
				hs[i].Line = n.Content[i].Line
			}
		}
	}
}

func (c *Config) defaults() {
	if c.Bot.Name == "" {
		c.Bot.Name = "deploybot"
	}
	if c.Bot.Prefix == "" {
		c.Bot.Prefix = "!"
	}
	if c.Store.Path == "" {
		c.Store.Path = "deploybot.db"
	}
	if c.Store.OpenTimeout.D() == 0 {
		c.Store.OpenTimeout = Dur(time.Second)
	}
	if c.Staging.Path == "" {
		c.Staging.Path = "staging.git"
	}
	if c.Source.Type == "" {
		c.Source.Type = "git"
	}
	if c.Source.Git.Branch == "" {
		c.Source.Git.Branch = "main"
	}
	c.gerritDefaults()
	if c.Hosts.Transport == "" {
		c.Hosts.Transport = "local"
	}
	if c.Hosts.Parallel == 0 {
		c.Hosts.Parallel = 10
	}
	c.defaultsHosts()
	if c.Pipeline.VerifyTimeout.D() == 0 {
		c.Pipeline.VerifyTimeout = Dur(15 * time.Minute)
	}
	if c.Pipeline.PromoteTimeout.D() == 0 {
		c.Pipeline.PromoteTimeout = Dur(10 * time.Minute)
	}
	if c.Pipeline.SyncRetries == nil {
		two := 2
		c.Pipeline.SyncRetries = &two
	}
	m := &c.Canary.Metrics
	if m.Source == "" {
		m.Source = "scrape"
	}
	if m.Metric == "" {
		m.Metric = "http_requests_total"
	}
	if m.CodeLabel == "" {
		m.CodeLabel = "code"
	}
	if m.ErrorCodes == "" {
		m.ErrorCodes = "^5..$"
	}
	if m.Timeout.D() == 0 {
		m.Timeout = Dur(2 * time.Second)
	}
	if c.Canary.BaselineMin.D() == 0 {
		c.Canary.BaselineMin = Dur(30 * time.Second)
	}
	if c.Canary.Window.D() == 0 {
		c.Canary.Window = Dur(60 * time.Second)
	}
	if c.Canary.Interval.D() == 0 {
		c.Canary.Interval = Dur(5 * time.Second)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	c.Web.defaults()
	c.Chat.Slack.defaults()
	c.Chat.IRC.defaults(c.Bot.Name)
	c.canaryDefaults()
}

var stageNames = []string{"testservers", "canaries", "production"}

var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (c *Config) check(root *yaml.Node) Problems {
	var ps Problems
	add := func(line int, format string, args ...any) {
		ps = append(ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	ps = append(ps, c.checkSource(root)...) // config/gerrit.go
	ps = append(ps, c.checkHosts(root)...)
	if c.Hosts.Parallel < 1 {
		add(lineOf(root, "hosts", "parallel"), "hosts.parallel must be at least 1")
	}
	known := map[string]bool{}
	for _, s := range stageNames {
		known[s] = true
	}
	var unknown []string
	for s := range c.Hosts.Stages {
		if !known[s] {
			unknown = append(unknown, s)
		}
	}
	sort.Strings(unknown)
	for _, s := range unknown {
		add(lineOf(root, "hosts", "stages", s), "unknown stage %q (stages are testservers, canaries, production)", s)
	}
	seen := map[string]int{}
	for _, s := range stageNames {
		hs := c.Hosts.Stages[s]
		if len(hs) == 0 {
			add(lineOf(root, "hosts", "stages", s), "stage %s has no hosts", s)
		}
		for _, h := range hs {
			if !hostName.MatchString(h.Name) {
				add(h.Line, "host name %q is not valid (letters, digits, dot, dash, underscore)", h.Name)
			}
			if prev, dup := seen[h.Name]; dup {
				add(h.Line, "host %q is listed twice (first at line %d)", h.Name, prev)
			} else {
				seen[h.Name] = h.Line
			}
			if c.Hosts.Transport == "local" && h.Root == "" {
				add(h.Line, "host %q needs a root directory", h.Name)
			}
			if h.Metrics != "" && !strings.HasPrefix(h.Metrics, "http://") && !strings.HasPrefix(h.Metrics, "https://") {
				add(h.Line, "host %q: metrics must be an http:// or https:// URL", h.Name)
			}
		}
	}
	if c.Canary.Metrics.Source != "scrape" && c.Canary.Metrics.Source != "prometheus" {
		add(lineOf(root, "canary", "metrics", "source"), "metrics source %q is not supported (use scrape or prometheus)", c.Canary.Metrics.Source)
	}
	if _, err := regexp.Compile(c.Canary.Metrics.ErrorCodes); err != nil {
		add(lineOf(root, "canary", "metrics", "error_codes"), "error_codes is not a valid regular expression")
	}
	if c.Canary.Interval.D() > c.Canary.Window.D() {
		add(lineOf(root, "canary", "interval"), "canary.interval (%s) is longer than canary.window (%s)", c.Canary.Interval.D(), c.Canary.Window.D())
	}
	j := c.Canary.Judge
	if j.Alpha < 0 || j.Alpha >= 1 {
		add(lineOf(root, "canary", "judge", "alpha"), "alpha must be between 0 and 1")
	}
	if j.Factor < 0 || j.AbsDiff < 0 || j.MinRequests < 0 || j.GrossMinRequests < 0 {
		add(lineOf(root, "canary", "judge"), "judge thresholds must not be negative")
	}
	if j.GrossRate < 0 || j.GrossRate > 1 {
		add(lineOf(root, "canary", "judge", "gross_rate"), "gross_rate must be between 0 and 1")
	}
	if len(c.Access.Deployers) == 0 {
		add(lineOf(root, "access", "deployers"), "access.deployers is empty: nobody could deploy")
	}
	if *c.Pipeline.SyncRetries < 0 {
		add(lineOf(root, "pipeline", "sync_retries"), "sync_retries must not be negative")
	}
	names := map[string]bool{}
	for i, p := range c.People {
		line := 0
		if n := find(root, "people"); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
			line = n.Content[i].Line
		}
		if p.Name == "" {
			add(line, "a person needs a name")
		} else if names[p.Name] {
			add(line, "person %q is listed twice", p.Name)
		}
		names[p.Name] = true
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add(lineOf(root, "log", "level"), "log level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add(lineOf(root, "log", "format"), "log format %q is not text or json", c.Log.Format)
	}
	if c.Chat.Console == nil && c.Chat.Slack == nil && c.Chat.IRC == nil {
		add(lineOf(root, "chat"), "no chat adapter is configured (chat.console, chat.slack or chat.irc)")
	} else if c.Chat.Console != nil && c.Chat.Console.User == "" {
		add(lineOf(root, "chat", "console"), "chat.console.user is required: who the lines on standard input are from")
	}
	ps = append(ps, c.Web.check(root)...)
	ps = append(ps, c.Chat.Slack.check(root)...)
	ps = append(ps, c.Chat.IRC.check(root)...)
	ps = append(ps, c.checkCanary(root)...)
	return ps
}

// resolvePaths makes relative paths relative to the configuration file.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Store.Path)
	abs(&c.Staging.Path)
	for _, hs := range c.Hosts.Stages {
		for i := range hs {
			if c.Hosts.Transport != "ssh" { // an ssh host's root is on the host
				abs(&hs[i].Root)
			}
		}
	}
	if u := c.Source.Git.URL; u != "" && !strings.Contains(u, "://") && !strings.Contains(u, "@") {
		abs(&c.Source.Git.URL)
	}
	c.resolveSourcePaths(abs)
	abs(&c.Log.File)
	c.resolveHostsPaths(dir)
	c.Chat.Slack.resolve(abs)
	c.Chat.IRC.resolvePaths(dir)
	abs(&c.Web.TokenFile)
}
