package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigComponentsOnline runs check-config on composite sources
// over real repositories: each online problem (an unreachable remote, a
// missing branch, a component inside a submodule it does not own, one
// over a directory of core's own files) is at its component's line.
func TestCheckConfigComponentsOnline(t *testing.T) {
	t.Parallel()
	r := newMWRepos(t)
	dir := t.TempDir()
	root := `    - {path: "", url: ` + r.config + `, branch: master}
`
	core := `    - {path: php-1, url: ` + r.core + `, branch: wmf/1, submodules: true}
`
	for _, tc := range []struct {
		name, comps string
		code        int
		want        []string
	}{
		{"mediawiki shape", root + core, 0, []string{"source git, 2 component(s), every remote answered"}},
		{"extension tracked directly", root + core + `    - {path: php-1/extensions/Foo, url: ` + r.ext + `, branch: wmf/1}
`, 0, []string{"3 component(s)"}},
		{"unreachable remote", root + `    - {path: php-2, url: ` + filepath.Join(r.base, "nowhere") + `, branch: wmf/2}
`, 1, []string{"1 problem(s)", "line 7: source.components: component php-2: its remote " + filepath.Join(r.base, "nowhere") + " cannot be reached"}},
		{"missing branch", root + `    - {path: php-2, url: ` + r.core + `, branch: wmf/2}
`, 1, []string{"line 7: source.components: component php-2: " + r.core + " has no branch wmf/2"}},
		{"inside a submodule it does not own", root + core + `    - {path: php-1/extensions/Foo/lib, url: ` + r.ext + `, branch: wmf/1}
`, 1, []string{"line 8: source.components: component php-1/extensions/Foo/lib lies inside submodule php-1/extensions/Foo of component php-1, which it does not own; configure it at php-1/extensions/Foo or not at all"}},
		{"over core's own directory", root + core + `    - {path: php-1/includes, url: ` + r.ext + `, branch: wmf/1}
`, 1, []string{"line 8: source.components: component php-1/includes lies inside component php-1 at a path that is not one of its submodules (overlapping paths)"}},
		{"same path twice (offline check)", root + core + core, 1, []string{`line 8: source.components: component "php-1": another component has the same path (overlapping paths)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(configYAML(dir, "source:\n  components:\n"+tc.comps)), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := realMain([]string{"check-config", "--config", path}, nil, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.code, out.String(), errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String()+errOut.String(), w) {
					t.Errorf("check-config output lacks %q:\n%s%s", w, out.String(), errOut.String())
				}
			}
		})
	}
}
