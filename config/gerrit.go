package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer/gerrit"
)

// GerritSource is the `gerrit` change source: a Gerrit site's REST API for
// changes, and the project's git repository for their commits.
type GerritSource struct {
	// URL is the site's root as people see it (https://gerrit.example.org/r);
	// pasted change links must point at its host.
	URL string `yaml:"url"`
	// Project and Branch are what the bot deploys.
	Project string `yaml:"project"`
	Branch  string `yaml:"branch"`
	// GitURL is what the staging repository fetches. It defaults to
	// URL/Project, where Gerrit serves anonymous clones; a local mirror path
	// works too. It must be readable without credentials.
	GitURL string `yaml:"git_url"`
	// Username is the bot's Gerrit account. Its HTTP password comes from
	// the environment variable PasswordEnv or the file PasswordFile, never
	// from this file.
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// Approve makes the bot vote Code-Review +2 on the changes it deploys.
	Approve bool `yaml:"approve"`
	// MergeTimeout bounds the wait for a change to merge; PollInterval is
	// how often the bot looks.
	MergeTimeout Duration `yaml:"merge_timeout"`
	PollInterval Duration `yaml:"poll_interval"`
}

// defaults fills in the branch, the waits (deployer/gerrit's defaults) and
// the git URL.
func (g *GerritSource) defaults() {
	setDefault(&g.Branch, "main")
	g.MergeTimeout.orDefault(gerrit.DefaultMergeTimeout)
	g.PollInterval.orDefault(gerrit.DefaultPollInterval)
	if g.GitURL == "" && g.URL != "" && g.Project != "" {
		g.GitURL = strings.TrimSuffix(g.URL, "/") + "/" + g.Project
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// check checks the gerrit source's settings (source.type is gerrit).
func (g *GerritSource) check(root *yaml.Node) Problems {
	var ps Problems
	at := func(key string) int { return lineOf(root, "source", "gerrit", key) }
	if u, err := url.Parse(g.URL); g.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.add(at("url"), "source.gerrit.url must be the Gerrit site's http(s) URL, e.g. https://gerrit.example.org/r")
	}
	if g.Project == "" {
		ps.add(at("project"), "source.gerrit.project is required: the Gerrit project deployed")
	}
	if g.Username == "" {
		ps.add(at("username"), "source.gerrit.username is required: the bot votes, comments and opens reverts as this account")
	}
	switch {
	case g.PasswordEnv != "" && g.PasswordFile != "":
		ps.add(at("password_env"), "give source.gerrit.password_env or password_file, not both")
	case g.PasswordEnv == "" && g.PasswordFile == "" && g.Username != "":
		ps.add(at("username"), "source.gerrit needs password_env (an environment variable) or password_file holding the HTTP password")
	case g.PasswordEnv != "" && !envName.MatchString(g.PasswordEnv):
		ps.add(at("password_env"), "source.gerrit.password_env must name an environment variable (letters, digits, underscore), not hold the password")
	}
	if g.PollInterval.D() > g.MergeTimeout.D() {
		ps.add(at("poll_interval"), "source.gerrit.poll_interval (%s) is longer than merge_timeout (%s)", g.PollInterval.D(), g.MergeTimeout.D())
	}
	return ps
}

// resolvePaths makes the password file and a local git URL relative to
// the configuration file's directory.
func (g *GerritSource) resolvePaths(abs func(*string)) {
	abs(&g.PasswordFile)
	if isLocalPath(g.GitURL) {
		abs(&g.GitURL)
	}
}

// GerritPassword reads the bot's Gerrit HTTP password from the environment
// variable or the file the configuration names. Errors name where it was
// looked for, never what was found.
func (c *Config) GerritPassword() (string, error) {
	g := c.Source.Gerrit
	switch {
	case g.PasswordEnv != "":
		v, ok := os.LookupEnv(g.PasswordEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("the Gerrit password variable %s is not set", g.PasswordEnv)
		}
		return v, nil
	case g.PasswordFile != "":
		b, err := os.ReadFile(g.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("reading the Gerrit password file %s: %v", g.PasswordFile, pathErr(err))
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("the Gerrit password file %s is empty", g.PasswordFile)
		}
		return p, nil
	}
	return "", nil
}
