package config

import (
	"strings"
	"testing"
)

func TestCheckComponents(t *testing.T) {
	root := SourceComponent{Path: "", URL: "https://gerrit.example.org/r/operations/mediawiki-config", Branch: "master"}
	wmf3 := SourceComponent{Path: "php-1.46.0-wmf.3", URL: "https://gerrit.example.org/r/mediawiki/core", Branch: "wmf/1.46.0-wmf.3", Submodules: true}
	for _, tc := range []struct {
		name string
		cs   []SourceComponent
		want []string // one substring per expected problem, in order
	}{
		{"mediawiki shape", []SourceComponent{root, wmf3}, nil},
		{"extension tracked directly", []SourceComponent{root, wmf3,
			{Path: "php-1.46.0-wmf.3/extensions/Foo", URL: "https://gerrit.example.org/r/mediawiki/extensions/Foo", Branch: "wmf/1.46.0-wmf.3"}}, nil},
		{"same path twice", []SourceComponent{root, wmf3, wmf3}, []string{"same path (overlapping paths)"}},
		{"nested in a component that does not follow submodules",
			[]SourceComponent{root, {Path: "php", URL: "x", Branch: "b"}, {Path: "php/ext", URL: "y", Branch: "b"}},
			[]string{`inside component "php", which does not follow submodules`}},
		{"bad paths", []SourceComponent{{Path: "../x", URL: "u", Branch: "b"}, {Path: "a//b", URL: "u", Branch: "b"}, {Path: "a/.git", URL: "u", Branch: "b"}},
			[]string{"must be relative", "must be relative", "must be relative"}},
		{"missing url and branch", []SourceComponent{{Path: "x"}}, []string{"url is required", "branch is required"}},
		{"dash url", []SourceComponent{{Path: "x", URL: "--upload-pack=sh", Branch: "b"}}, []string{"may not start with"}},
		{"names", []SourceComponent{{Name: "core", Path: "a", URL: "u", Branch: "b"}, {Name: "core", Path: "b", URL: "u", Branch: "b"}, {Name: "a:b", Path: "c", URL: "u", Branch: "b"}},
			[]string{`name "core" is taken`, `may not hold ":"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckComponents(tc.cs)
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestSourceComponentsNameTheirLines loads source.components through Parse
// and checks each problem is at its component's line.
func TestSourceComponentsNameTheirLines(t *testing.T) {
	const rest = `hosts:
  stages:
    testservers: [{name: t1, root: /t1}]
    canaries: [{name: c1, root: /c1}]
    production: [{name: p1, root: /p1}]
access: {deployers: [console:alice]}
chat: {console: {user: alice}}
`
	for _, tc := range []struct {
		name, src string
		want      []string // "line N: substring", in order
	}{
		{"mediawiki shape", `source:
  components:
    - {path: "", url: /r/config, branch: master}
    - {path: php-1, url: /r/core, branch: wmf/1, submodules: true}
`, nil},
		{"overlapping paths", `source:
  components:
    - {path: "", url: /r/config, branch: master}
    - path: php-1
      url: /r/core
      branch: wmf/1
    - path: php-1
      url: /r/core2
      branch: wmf/2
`, []string{"line 7: " + `component "php-1": another component has the same path (overlapping paths)`}},
		{"nested in a component that does not follow submodules", `source:
  components:
    - {path: php-1, url: /r/core, branch: wmf/1}
    - {path: php-1/extensions/Foo, url: /r/Foo, branch: wmf/1}
`, []string{"line 4: " + `component "php-1/extensions/Foo" lies inside component "php-1", which does not follow submodules`}},
		{"missing url and branch, bad path", `source:
  components:
    - {path: "", url: /r/config, branch: master}
    - {path: ../up}
`, []string{"line 4: " + `component "../up": the path must be relative`, "line 4: " + "url is required", "line 4: " + "branch is required"}},
		{"git url as well", `source:
  git: {url: /r/app}
  components:
    - {path: "", url: /r/config, branch: master}
`, []string{"line 2: give source.git.url or source.components, not both"}},
		{"project with git", `source:
  components:
    - {path: "", url: /r/config, branch: master, project: operations/mediawiki-config}
`, []string{"line 3: " + "project is read only with source.type gerrit"}},
		{"gerrit projects", `source:
  type: gerrit
  gerrit: {url: https://gerrit.example.org/r, username: bot, password_env: GERRIT_PW}
  components:
    - {path: "", project: operations/mediawiki-config, branch: master}
    - {path: php-1, branch: wmf/1, submodules: true}
`, []string{"line 6: " + "url is required", "line 6: " + "project is required with source.type gerrit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src + rest))
			var got []string
			if ps, ok := err.(Problems); ok {
				for _, p := range ps {
					got = append(got, p.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				line, sub, _ := strings.Cut(w, ": ")
				if !strings.HasPrefix(got[i], line+": ") || !strings.Contains(got[i], sub) {
					t.Errorf("problem %d = %q, want %q", i, got[i], w)
				}
			}
			if tc.want == nil && c.Source.Components[1].Line != 4 {
				t.Errorf("component line = %d, want 4", c.Source.Components[1].Line)
			}
		})
	}
	c, err := Parse([]byte(`source:
  type: gerrit
  gerrit: {url: https://gerrit.example.org/r/, username: bot, password_env: GERRIT_PW}
  components:
    - {path: "", project: operations/mediawiki-config, branch: master}
` + rest))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Source.Components[0].URL, "https://gerrit.example.org/r/operations/mediawiki-config"; got != want {
		t.Errorf("gerrit component url = %q, want %q", got, want)
	}
}
