package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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

// add appends a problem at line; the sections' checks collect theirs so.
func (ps *Problems) add(line int, format string, args ...any) {
	*ps = append(*ps, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlNotFound = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	yamlType     = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// yamlKinds and goKinds name, in a person's words, what the YAML decoder
// found and what the configuration wanted there (never a Go type name).
var yamlKinds = map[string]string{"int": "a number", "float": "a number", "str": "text", "bool": "true or false",
	"seq": "a list", "map": "a section of settings (key: value)", "null": "empty", "timestamp": "a date"}

func goKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a section of settings (key: value)"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "text"
	case t == "bool":
		return "true or false"
	}
	return "a section of settings (key: value)"
}

// typeMessage says a value of the wrong kind plainly: "`5` is a number,
// but a section of settings (key: value) belongs here".
func typeMessage(m []string) string {
	found := yamlKinds[m[1]]
	if found == "" {
		found = "a " + m[1]
	}
	what := "this"
	if m[2] != "" {
		what = "`" + m[2] + "`"
	}
	return fmt.Sprintf("%s is %s, but %s belongs here", what, found, goKind(m[3]))
}

// toProblem turns one of the YAML decoder's messages into a Problem.
func toProblem(s string) Problem {
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		msg := m[2]
		if f := yamlNotFound.FindStringSubmatch(msg); f != nil {
			msg = fmt.Sprintf("unknown key %q", f[1]) + didYouMean(f[1], f[2]) // warnings.go
		} else if f := yamlType.FindStringSubmatch(msg); f != nil {
			msg = typeMessage(f)
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

// itemLine returns the line of the i-th entry of the sequence at path, or
// 0 when there is none.
func itemLine(root *yaml.Node, i int, path ...string) int {
	if n := find(root, path...); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i].Line
	}
	return 0
}
