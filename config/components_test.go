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
