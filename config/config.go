// Package config reads deploybot's YAML configuration and checks it, naming
// the line of every problem, so `deploybot check-config` can list them all
// at once. config.example.yaml at the repository root documents every key.
//
// Each section of the file has its own file here, named for it (bot.go,
// source.go, hosts.go, pipeline.go, canary.go, chat.go, web.go, ...),
// holding its types, its defaults, its checks and its path resolution. A
// default that a package of the bot also applies is read from that package
// (deployer.DefaultConfig, hosts.DefaultSSHPort, ...), never restated.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
	Windows  Windows  `yaml:"windows"`

	// Path is the file the configuration was read from.
	Path string `yaml:"-"`
}

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

// Parse decodes and checks a configuration.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{fixYAMLLine(toProblem(err.Error()), data)} // config/warnings.go
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
	c.hostLines(&root)
	c.Source.componentLines(&root)
	c.defaults()
	ps = append(ps, voidDurations(reflect.ValueOf(c))...)
	ps = append(ps, c.check(&root)...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	if len(ps) > 0 {
		return c, ps
	}
	return c, nil
}

// defaults fills in every section's defaults. The order matters where one
// default is made of another: the IRC nick of the bot's name, the
// Prometheus timeout of the metrics timeout.
func (c *Config) defaults() {
	c.Bot.defaults()
	c.Store.defaults()
	c.Staging.defaults()
	c.Source.defaults()
	c.Hosts.defaults()
	c.Pipeline.defaults()
	c.Canary.defaults()
	c.Log.defaults()
	c.Web.defaults()
	c.Chat.defaults(c.Bot.Name)
	c.canaryDefaults() // canary_ext.go
}

// check lists every section's problems.
func (c *Config) check(root *yaml.Node) Problems {
	var ps Problems
	ps = append(ps, c.Source.check(root)...)
	ps = append(ps, c.Hosts.check(root)...)
	ps = append(ps, c.Canary.check(root)...)
	ps = append(ps, c.Access.check(root)...)
	ps = append(ps, c.Pipeline.check(root)...)
	ps = append(ps, checkPeople(c.People, root)...)
	ps = append(ps, c.Log.check(root)...)
	ps = append(ps, c.Chat.check(root)...)
	ps = append(ps, c.Web.check(root)...)
	ps = append(ps, c.checkCanary(root)...)     // canary_ext.go
	ps = append(ps, c.checkIdentities(root)...) // config/warnings.go
	ps = append(ps, c.Windows.check(root)...)
	ps = append(ps, c.checkWindowDeployers(root)...)
	ps = append(ps, c.Pipeline.Batch.check(root)...)
	return ps
}

// checkWindowDeployers: a window's deployers are matched to the name the
// bot knows a person by (people's name, or the chat identity of someone
// not in people), so a name that is neither locks everyone out of it.
func (c *Config) checkWindowDeployers(root *yaml.Node) Problems {
	var ps Problems
	known := map[string]bool{}
	for _, p := range c.People {
		known[strings.ToLower(p.Name)] = true
	}
	for i, w := range c.Windows.Weekly {
		for _, d := range w.Deployers {
			if !known[strings.ToLower(strings.TrimSpace(d))] && !strings.Contains(d, ":") {
				ps.add(lineOf(root, "windows", "weekly"), "windows.weekly[%d].deployers: %q is no one's name in people (nor a chat identity such as irc:account:alice), so nobody could deploy in that window as them", i, d)
			}
		}
	}
	return ps
}

// resolvePaths makes relative paths relative to the configuration file's
// directory dir.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Store.Path)
	abs(&c.Staging.Path)
	c.Hosts.resolvePaths(abs)
	c.Source.resolvePaths(abs)
	abs(&c.Log.File)
	c.Chat.Slack.resolve(abs)
	c.Chat.IRC.resolvePaths(dir)
	abs(&c.Web.TokenFile)
	abs(&c.Windows.ICal)
}
