package config

import (
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer"
)

// Hosts is the fleet, by stage.
type Hosts struct {
	Transport      string                  `yaml:"transport"` // "local" or "ssh"
	Parallel       int                     `yaml:"parallel"`
	Stages         map[string][]Host       `yaml:"stages"`
	SSH            SSH                     `yaml:"ssh"` // hosts_ssh.go
	MaxFailedHosts string                  `yaml:"max_failed_hosts"`
	StageOptions   map[string]StageOptions `yaml:"stage_options"`
}

// Host is one host of a stage.
type Host struct {
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

// HostCf is Host's former name, which canary_ext.go still uses.
type HostCf = Host

// StageOptions are a stage's host commands, each a program and its
// arguments (no shell; "{host}" is replaced by the host's name).
type StageOptions struct {
	// Hook runs on each host after its sync (on the host for ssh, on the
	// deploy host for local); a failing hook fails that host.
	Hook        []string `yaml:"hook"`
	HookTimeout Duration `yaml:"hook_timeout"`
	// Depool and Repool run on the deploy host to take a host out of
	// service (a rollback that failed on it) and to put it back.
	Depool      []string `yaml:"depool"`
	Repool      []string `yaml:"repool"`
	PoolTimeout Duration `yaml:"pool_timeout"`
}

// Options returns a stage's options (zero when none are configured).
func (h Hosts) Options(stage string) StageOptions { return h.StageOptions[stage] }

var maxFailedRE = regexp.MustCompile(`^(\d+)(%?)$`)

// MaxFailed is how many of total production hosts may fail to sync while
// the deployment continues (max_failed_hosts: a count, or a percentage of
// total rounded down). It is 0 when unset or invalid (check-config reports
// the latter).
func (h Hosts) MaxFailed(total int) int {
	m := maxFailedRE.FindStringSubmatch(strings.TrimSpace(h.MaxFailedHosts))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	if m[2] == "%" {
		if n > 100 {
			n = 100
		}
		return total * n / 100
	}
	return min(n, total)
}

// stageNames are the stages, in the order a deployment syncs them.
var stageNames = []string{"testservers", "canaries", "production"}

func isStage(s string) bool {
	for _, n := range stageNames {
		if n == s {
			return true
		}
	}
	return false
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// hostLines records the line of each host entry, for later messages.
func (c *Config) hostLines(root *yaml.Node) {
	for stage, hs := range c.Hosts.Stages {
		for i := range hs {
			hs[i].Line = itemLine(root, i, "hosts", "stages", stage)
		}
	}
}

// defaults fills in the transport, the parallelism (the pipeline's
// default, deployer.DefaultConfig), max_failed_hosts and the ssh settings.
func (h *Hosts) defaults() {
	setDefault(&h.Transport, "local")
	setDefault(&h.Parallel, deployer.DefaultConfig().Parallel)
	setDefault(&h.MaxFailedHosts, "0")
	h.SSH.defaults()
}

// check checks the transport (and the ssh settings), the parallelism, the
// stages and their hosts, max_failed_hosts and the stage options.
func (h *Hosts) check(root *yaml.Node) Problems {
	var ps Problems
	switch h.Transport {
	case "local":
	case "ssh":
		ps = append(ps, h.checkSSH(root)...)
	default:
		ps.add(lineOf(root, "hosts", "transport"), "host transport %q is not supported (use local or ssh)", h.Transport)
	}
	if maxFailedRE.FindStringSubmatch(strings.TrimSpace(h.MaxFailedHosts)) == nil {
		ps.add(lineOf(root, "hosts", "max_failed_hosts"), "max_failed_hosts %q is not a count or a percentage (write it like 2 or 10%%)", h.MaxFailedHosts)
	}
	ps = append(ps, h.checkStageOptions(root)...)
	if h.Parallel < 1 {
		ps.add(lineOf(root, "hosts", "parallel"), "hosts.parallel must be at least 1")
	}
	ps = append(ps, h.checkStages(root)...)
	return ps
}

// checkStages wants the three stages and no other, each with hosts, and
// every host named once, validly, with what its transport needs.
func (h *Hosts) checkStages(root *yaml.Node) Problems {
	var ps Problems
	var unknown []string
	for s := range h.Stages {
		if !isStage(s) {
			unknown = append(unknown, s)
		}
	}
	sort.Strings(unknown)
	for _, s := range unknown {
		ps.add(lineOf(root, "hosts", "stages", s), "unknown stage %q (stages are testservers, canaries, production)", s)
	}
	seen := map[string]int{}
	roots := map[string]string{} // where a host's root is (machine and directory): the host there
	for _, s := range stageNames {
		hs := h.Stages[s]
		if len(hs) == 0 {
			ps.add(lineOf(root, "hosts", "stages", s), "stage %s has no hosts", s)
		}
		for _, hc := range hs {
			if !hostName.MatchString(hc.Name) {
				ps.add(hc.Line, "host name %q is not valid (letters, digits, dot, dash, underscore)", hc.Name)
			}
			if prev, dup := seen[hc.Name]; dup {
				ps.add(hc.Line, "host %q is listed twice (first at line %d)", hc.Name, prev)
			} else {
				seen[hc.Name] = hc.Line
			}
			if h.Transport == "local" && hc.Root == "" {
				ps.add(hc.Line, "host %q needs a root directory", hc.Name)
			}
			if hc.Root != "" {
				// Two hosts in one root would write the same slots and
				// flip the same current link.
				where := filepath.Clean(hc.Root)
				if h.Transport == "ssh" {
					addr := hc.Address
					if addr == "" {
						addr = hc.Name
					}
					where = addr + ":" + where
				}
				if other, dup := roots[where]; dup && other != hc.Name {
					ps.add(hc.Line, "host %q has the same root as host %q (%s): each host needs its own", hc.Name, other, hc.Root)
				} else if !dup {
					roots[where] = hc.Name
				}
			}
			if hc.Metrics != "" && !strings.HasPrefix(hc.Metrics, "http://") && !strings.HasPrefix(hc.Metrics, "https://") {
				ps.add(hc.Line, "host %q: metrics must be an http:// or https:// URL", hc.Name)
			}
		}
	}
	return ps
}

// checkStageOptions checks hosts.stage_options: known stages, commands
// without empty arguments, no repool without a depool.
func (h *Hosts) checkStageOptions(root *yaml.Node) Problems {
	var ps Problems
	stages := make([]string, 0, len(h.StageOptions))
	for s := range h.StageOptions {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	for _, stage := range stages {
		o := h.StageOptions[stage]
		if !isStage(stage) {
			ps.add(lineOf(root, "hosts", "stage_options", stage), "unknown stage %q in hosts.stage_options (stages are testservers, canaries, production)", stage)
		}
		for key, argv := range map[string][]string{"hook": o.Hook, "depool": o.Depool, "repool": o.Repool} {
			for _, a := range argv {
				if a == "" {
					ps.add(lineOf(root, "hosts", "stage_options", stage, key), "hosts.stage_options.%s.%s has an empty argument", stage, key)
					break
				}
			}
		}
		if len(o.Repool) > 0 && len(o.Depool) == 0 {
			ps.add(lineOf(root, "hosts", "stage_options", stage, "repool"), "hosts.stage_options.%s has repool but no depool", stage)
		}
	}
	return ps
}

// resolvePaths makes local host roots and the ssh key and known_hosts
// paths relative to the configuration file's directory. (An ssh host's
// root is a path on the host.)
func (h *Hosts) resolvePaths(abs func(*string)) {
	if h.Transport != "ssh" {
		for _, hs := range h.Stages {
			for i := range hs {
				abs(&hs[i].Root)
			}
		}
	}
	abs(&h.SSH.KeyFile)
	abs(&h.SSH.KnownHosts)
}
