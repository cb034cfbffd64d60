package config

import (
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// What check-config says beyond "the file parses": configurations that
// would fail at run time, or run and silently do nothing useful.
//
// Two kinds. Problems (checkIdentities) are wrong wherever the file is
// used: a deployer who is nobody, an identity no adapter can ever produce.
// Load refuses them, so `run` does too. Warnings (Config.Warnings) depend
// on the machine or are legal but almost surely a mistake: a secret not
// set here, a file or upstream path missing here, a mask that proves
// nothing, canaries that can never be judged. check-config prints them and
// still exits 0, so a file can be checked on a machine without the secrets
// (CI), but it never says "valid" without naming them.

// identityForms is what check-config says a chat identity may look like.
const identityForms = "console:NAME, irc:account:ACCOUNT, irc:mask:NICK!USER@HOST or slack:USERID"

// checkIdentity returns what is wrong with an identity glob, or "".
func checkIdentity(id string) string {
	scheme, rest, _ := strings.Cut(id, ":")
	switch scheme {
	case "console", "slack":
		if rest == "" {
			return fmt.Sprintf("identity %q names nobody; identities look like %s", id, identityForms)
		}
		return ""
	case "irc":
		kind, v, _ := strings.Cut(rest, ":")
		switch kind {
		case "account":
			if v == "" {
				return fmt.Sprintf("identity %q names no account", id)
			}
			return ""
		case "mask":
			nick, uh, ok1 := strings.Cut(v, "!")
			_, host, ok2 := strings.Cut(uh, "@")
			if !ok1 || !ok2 || nick == "" || host == "" {
				return fmt.Sprintf("identity %q is not a mask: write irc:mask:NICK!USER@HOST (globs allowed, e.g. irc:mask:*!~alice@host.example.org)", id)
			}
			return ""
		}
		return fmt.Sprintf("identity %q has no kind: IRC identities are irc:account:ACCOUNT (a services account) or irc:mask:NICK!USER@HOST", id)
	}
	return fmt.Sprintf("identity %q has an unknown scheme %q; identities look like %s", id, scheme, identityForms)
}

// seqItem is the line of the i-th item of the sequence at path, or the
// line of the path's key.
func seqItem(root *yaml.Node, i int, path ...string) int {
	if n := find(root, path...); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i].Line
	}
	return lineOf(root, path...)
}

// personChatLine is the line of people[i].chat[j].
func personChatLine(root *yaml.Node, i, j int) int {
	ps := find(root, "people")
	if ps == nil || ps.Kind != yaml.SequenceNode || i >= len(ps.Content) {
		return lineOf(root, "people")
	}
	if n := find(ps.Content[i], "chat"); n != nil && n.Kind == yaml.SequenceNode && j < len(n.Content) {
		return n.Content[j].Line
	}
	return ps.Content[i].Line
}

// checkIdentities checks people[].chat and access.deployers: every
// identity has a scheme an adapter produces, and every deployer given by
// name is a person.
func (c *Config) checkIdentities(root *yaml.Node) Problems {
	var ps Problems
	names := map[string]bool{}
	var list []string
	for i, p := range c.People {
		if p.Name != "" && !names[p.Name] {
			list = append(list, p.Name)
		}
		names[p.Name] = true
		for j, id := range p.Chat {
			if msg := checkIdentity(id); msg != "" {
				ps = append(ps, Problem{Line: personChatLine(root, i, j), Msg: fmt.Sprintf("people[%s].chat: %s", p.Name, msg)})
			}
		}
	}
	for i, d := range c.Access.Deployers {
		line := seqItem(root, i, "access", "deployers")
		if strings.Contains(d, ":") {
			if msg := checkIdentity(d); msg != "" {
				ps = append(ps, Problem{Line: line, Msg: "access.deployers: " + msg})
			}
			continue
		}
		if !names[d] {
			known := "people is empty"
			if len(list) > 0 {
				known = "people has " + strings.Join(list, ", ")
			}
			ps = append(ps, Problem{Line: line, Msg: fmt.Sprintf("access.deployers: %q is nobody in people (%s): a deployer is a person's name or an identity like irc:account:alice", d, known)})
		}
	}
	return ps
}

// Warnings lists what check-config warns about (see the top of this file).
// It reads the file again for line numbers; a Config not loaded from a
// file gets warnings without lines.
func (c *Config) Warnings() Problems {
	var root yaml.Node
	if c.Path != "" {
		if data, err := os.ReadFile(c.Path); err == nil {
			_ = yaml.Unmarshal(data, &root)
		}
	}
	var ws Problems
	warn := func(line int, format string, args ...any) {
		ws = append(ws, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	// Masks that prove nothing.
	for i, p := range c.People {
		for j, id := range p.Chat {
			if msg := weakMask(id); msg != "" {
				warn(personChatLine(&root, i, j), "people[%s].chat: %s", p.Name, msg)
			}
		}
	}
	for i, d := range c.Access.Deployers {
		if msg := weakMask(d); msg != "" {
			warn(seqItem(&root, i, "access", "deployers"), "access.deployers: %s", msg)
		}
	}
	// Canaries that can never be judged.
	if c.Canary.Metrics.Source == "scrape" && len(c.Canary.Smoke.Canaries) == 0 {
		var blind []string
		for _, h := range c.Hosts.Stages["canaries"] {
			if h.Metrics == "" {
				blind = append(blind, h.Name)
			}
		}
		if len(blind) > 0 && len(blind) == len(c.Hosts.Stages["canaries"]) {
			warn(lineOf(&root, "hosts", "stages", "canaries"), "no canary has a metrics URL and canary.smoke has no canaries checks: every canary verdict would be inconclusive (give the canaries metrics, or smoke checks)")
		} else if len(blind) > 0 {
			warn(lineOf(&root, "hosts", "stages", "canaries"), "canaries %s have no metrics URL: the judge cannot see their errors", strings.Join(blind, ", "))
		}
	}
	// Secrets and files this machine does not have.
	secret := func(err error, path ...string) {
		if err != nil {
			warn(lineOf(&root, path...), "%v (the bot would not start here)", err)
		}
	}
	if c.Source.Type == "gerrit" {
		_, err := c.GerritPassword()
		secret(err, "source", "gerrit", "password_env")
	}
	if s := c.Chat.IRC; s != nil && s.SASL != nil {
		_, err := s.SASL.Password()
		secret(err, "chat", "irc", "sasl", "password_env")
		if !s.TLS && !onThisMachine(s.Server) {
			warn(lineOf(&root, "chat", "irc", "sasl"), "chat.irc.sasl: without chat.irc.tls the SASL password goes to %s as plain text, readable by anyone on the way; set tls: true", s.Server)
		}
	}
	if s := c.Chat.Slack; s != nil {
		_, errApp := s.token("app_token", s.AppTokenEnv, s.AppTokenFile)
		secret(errApp, "chat", "slack", "app_token_env")
		_, errBot := s.token("bot_token", s.BotTokenEnv, s.BotTokenFile)
		secret(errBot, "chat", "slack", "bot_token_env")
		if errApp == nil && errBot == nil {
			_, _, err := s.Tokens()
			secret(err, "chat", "slack")
		}
	}
	if c.Web.Enabled() {
		_, err := c.Web.Token()
		secret(err, "web", "token_env")
	}
	exists := func(file string, path ...string) {
		if file == "" {
			return
		}
		if _, err := os.Stat(file); err != nil {
			warn(lineOf(&root, path...), "%s: %s: %v (the bot would not start here)", strings.Join(path, "."), file, pathErr(err))
		}
	}
	if s := c.Chat.IRC; s != nil {
		exists(s.TLSCAFile, "chat", "irc", "tls_ca_file")
	}
	if c.Hosts.Transport == "ssh" {
		exists(c.Hosts.SSH.KeyFile, "hosts", "ssh", "key_file")
		exists(c.Hosts.SSH.KnownHosts, "hosts", "ssh", "known_hosts")
	}
	// A local upstream that is not there.
	for _, comp := range c.Source.Components {
		if u := comp.URL; u != "" && !strings.Contains(u, "://") && !strings.Contains(u, "@") {
			if _, err := os.Stat(u); err != nil {
				warn(comp.Line, "%s: the local repository %s does not exist here (%v)", comp.label(), u, pathErr(err))
			}
		}
	}
	if c.Source.Type == "git" && len(c.Source.Components) == 0 {
		if u := c.Source.Git.URL; u != "" && !strings.Contains(u, "://") && !strings.Contains(u, "@") {
			if _, err := os.Stat(u); err != nil {
				warn(lineOf(&root, "source", "git", "url"), "source.git.url: the local repository %s does not exist here (%v)", u, pathErr(err))
			}
		}
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Line < ws[j].Line })
	return ws
}

// weakMask returns why an irc:mask identity proves nothing, or "".
// A mask is only as strong as its host part: the nick and the user name
// are whatever the client sends (a user name starting with ~ was not
// confirmed by identd), the host is what the server saw.
func weakMask(id string) string {
	v, ok := strings.CutPrefix(id, "irc:mask:")
	if !ok {
		return ""
	}
	_, uh, _ := strings.Cut(v, "!")
	user, host, _ := strings.Cut(uh, "@")
	if strings.Trim(host, "*?") == "" {
		return fmt.Sprintf("%q proves nothing: anyone can connect with any nick and user name from any host; name the host or cloak (irc:mask:*!%s@HOST) or use irc:account:", id, user)
	}
	if strings.HasPrefix(user, "~") && strings.ContainsAny(host, "*?") {
		return fmt.Sprintf("%q proves little: %s is a user name no identd confirmed (the ~), and the host is a pattern, so anyone on a matching host can claim it; name the exact host or use irc:account:", id, user)
	}
	return ""
}

// The YAML parser reports an indentation error at the start of the block
// it was reading, often a line or more before the line at fault. For those
// errors the line is found again: the first line, from the block's start
// on, whose indentation matches none of the blocks open above it.
var indentErrors = regexp.MustCompile(`did not find expected (key|'-' indicator)|block mapping|block sequence`)

// fixYAMLLine moves an indentation error to the line at fault.
func fixYAMLLine(p Problem, data []byte) Problem {
	if p.Line == 0 || !indentErrors.MatchString(p.Msg) {
		return p
	}
	var open []int // indentations of the enclosing blocks
	prev := -1     // the column of the previous line's content
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		text := strings.TrimRight(raw, " \r")
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(text) - len(trimmed)
		for len(open) > 0 && open[len(open)-1] > indent {
			open = open[:len(open)-1]
		}
		top := 0
		if len(open) > 0 {
			top = open[len(open)-1]
		}
		if indent < prev && top != indent && line >= p.Line {
			// Dedented to a column no enclosing block uses.
			p.Line = line
			p.Msg = fmt.Sprintf("this line is indented by %d, which lines up with no key above it (%s)", indent, p.Msg)
			return p
		}
		if len(open) == 0 || top < indent {
			open = append(open, indent)
		}
		// "- key: value" opens a block at the key's column too.
		for strings.HasPrefix(trimmed, "- ") {
			rest := strings.TrimLeft(trimmed[2:], " ")
			indent += len(trimmed) - len(rest)
			trimmed = rest
			open = append(open, indent)
		}
		prev = indent
	}
	return p
}

// didYouMean suggests the known key closest to an unknown one, for the
// struct type the YAML decoder named ("config.Pipeline").
func didYouMean(key, typeName string) string {
	best, bestD := "", 3
	for _, k := range keysOf(typeName) {
		if d := editDistance(key, k); d < bestD && d*3 <= len(k) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// keysOf lists the YAML keys of the configuration struct named typeName.
func keysOf(typeName string) []string {
	var found []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		match := t.String() == typeName
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			if match {
				found = append(found, tag)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
	return found
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// one) between a and b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// onThisMachine reports whether host names this machine (a bouncer or a
// test server), where a connection without TLS exposes nothing.
func onThisMachine(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
