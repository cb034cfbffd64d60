package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestExampleIsValid(t *testing.T) {
	c, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if got := len(c.Hosts.Stages["canaries"]); got != 2 {
		t.Errorf("canaries: got %d hosts, want 2", got)
	}
	if c.Pipeline.VerifyTimeout.D().Minutes() != 15 {
		t.Errorf("verify_timeout = %s, want 15m", c.Pipeline.VerifyTimeout.D())
	}
	if !filepath.IsAbs(c.Store.Path) || !filepath.IsAbs(c.Hosts.Stages["production"][0].Root) {
		t.Errorf("relative paths not resolved against the file: %q", c.Store.Path)
	}
}

// TestExampleDocumentsEveryKey fails when an option exists in Config but
// not in config.example.yaml, so the example stays the full reference.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(t reflect.Type, path []string)
	walk = func(typ reflect.Type, path []string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			if typ.Kind() == reflect.Map {
				return // stage names: checked by TestExampleIsValid
			}
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(Duration{}) {
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			p := append(append([]string{}, path...), tag)
			if !hasKey(&root, p) {
				missing = append(missing, strings.Join(p, "."))
				continue
			}
			walk(f.Type, p)
		}
	}
	walk(reflect.TypeOf(Config{}), nil)
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not document: %s", strings.Join(missing, ", "))
	}
}

// hasKey looks a dotted path up, descending into the first element of
// sequences (people, hosts).
func hasKey(n *yaml.Node, path []string) bool {
	if n.Kind == yaml.DocumentNode {
		n = n.Content[0]
	}
	for _, k := range path {
		if n.Kind == yaml.SequenceNode {
			if len(n.Content) == 0 {
				return false
			}
			n = n.Content[0]
		}
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

func TestProblemsNameTheirLines(t *testing.T) {
	src := `bot:
  name: deploybot
  colour: blue
source:
  git:
    url: /srv/upstream
hosts:
  stages:
    testservers:
      - name: a
        root: /tmp/a
      - {name: a, root: /tmp/b}
    canaries: []
    staging:
      - {name: c, root: /tmp/c}
pipeline:
  verify_timeout: 15
  promote_timeout: 3x
access:
  deployers: []
chat:
  console: {user: alice}
canary:
  window: 0s
  interval: 2s
`
	_, err := Parse([]byte(src))
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("got %v (%T), want Problems", err, err)
	}
	want := []string{
		`line 3: unknown key "colour"`,
		`line 8: stage production has no hosts`,
		`line 12: host "a" is listed twice (first at line 10)`,
		`line 13: stage canaries has no hosts`,
		`line 14: unknown stage "staging"`,
		`line 17: "15" is not a duration`,
		`line 18: "3x" is not a duration`,
		`line 20: access.deployers is empty`,
		`line 24: a duration of 0 means nothing here; leave it out for the default (1m0s)`,
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing problem %q in:\n%s", w, got)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(ps), len(want), got)
	}
	for _, p := range ps {
		if p.Line == 0 {
			t.Errorf("problem without a line: %q", p.Msg)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"prefix":         {c.Bot.Prefix, "!"},
		"branch":         {c.Source.Git.Branch, "main"},
		"verify_timeout": {c.Pipeline.VerifyTimeout.D().String(), "15m0s"},
		"window":         {c.Canary.Window.D().String(), "1m0s"},
		"metric":         {c.Canary.Metrics.Metric, "http_requests_total"},
		"sync_retries":   {*c.Pipeline.SyncRetries, 2},
	}
	for name, gw := range checks {
		if gw[0] != gw[1] {
			t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
		}
	}
}

func TestBadYAML(t *testing.T) {
	_, err := Parse([]byte("bot: [unclosed\n"))
	if err == nil || !strings.Contains(err.Error(), "line") {
		t.Fatalf("got %v, want a problem with a line", err)
	}
}

// TestWrongKindsArePlain: a value of the wrong kind is said in a person's
// words, never with the decoder's Go type names.
func TestWrongKindsArePlain(t *testing.T) {
	_, err := Parse([]byte("hosts: 5\nsource: {git: {url: [a, b]}}\npipeline: {batch: {max_rounds: many}}\naccess: {deployers: alice}\n"))
	got := err.Error()
	for _, want := range []string{
		"line 1: `5` is a number, but a section of settings (key: value) belongs here",
		"line 2: this is a list, but text belongs here",
		"line 3: `many` is text, but a whole number belongs here",
		"line 4: `alice` is text, but a list belongs here",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, bad := range []string{"!!", "config.", "unmarshal"} {
		if strings.Contains(got, bad) {
			t.Errorf("the problems show the decoder's words (%q):\n%s", bad, got)
		}
	}
}

// TestWindowDeployersMustNameSomeone: a window's deployers are names in
// people or chat identities; anything else would lock everyone out.
func TestWindowDeployersMustNameSomeone(t *testing.T) {
	src := `source: {git: {url: /x}}
hosts:
  stages:
    testservers: [{name: t, root: /t}]
    canaries: [{name: c, root: /c}]
    production: [{name: p, root: /p}]
access: {deployers: [Alice]}
people:
  - {name: Alice, chat: [console:alice]}
windows:
  weekly:
    - {days: [mon], at: ["13:00"], duration: 60m, deployers: [alice, "irc:account:bob", Carol]}
chat: {console: {user: alice}}
`
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), `windows.weekly[0].deployers: "Carol" is no one's name in people`) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), `"alice"`) || strings.Contains(err.Error(), "irc:account:bob") {
		t.Errorf("a person's name (any case) or an identity was refused: %v", err)
	}
}
