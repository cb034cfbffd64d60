package judge

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The Prometheus text exposition format, as far as the judge needs it.
//
// Why not github.com/prometheus/common/expfmt: at v0.73.1 (the version go.mod
// pins) that package imports github.com/pandatix/go-abnf for its OpenMetrics
// parser, and the Go module proxy refuses to serve that module, so nothing
// importing expfmt can be built here. This parser is small, reads the same
// format (HELP/TYPE/other comments, labels with escapes, quoted UTF-8 names
// as text format 1.0 writes them, special float values, timestamps) and, like
// expfmt, rejects the whole body on any malformed line, so an HTML error page
// served with status 200 is an error, not "metric absent".

// series is one sample line: a metric name, its labels and its value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// parseError says which line of a body is malformed and why.
type parseError struct {
	line int
	msg  string
}

func (e *parseError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// maxLine bounds one line; exposition lines are short, a longer one is not
// metrics.
const maxLine = 1 << 20

// parseText reads a text-format body and calls fn for every sample line, in
// order. It stops at the first malformed line, or the first line fn rejects,
// with a *parseError, or with the reader's error.
func parseText(r io.Reader, fn func(series) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseLine(line)
		if err != nil {
			return &parseError{line: n, msg: err.Error()}
		}
		if err := fn(s); err != nil {
			return &parseError{line: n, msg: err.Error()}
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return &parseError{line: n + 1, msg: "line too long"}
		}
		return err
	}
	return nil
}

// parseLine parses `name{label="value",...} value [timestamp]`, where the
// name may instead be the first, quoted, item inside the braces.
func parseLine(line string) (series, error) {
	s := series{}
	p := &lineParser{s: line}
	if isNameStart(p.peek()) {
		s.name = p.name(true)
	}
	afterName := p.i
	p.blank()
	if p.peek() != '{' {
		p.i = afterName
	} else {
		p.i++
		labels, name, err := p.labels()
		if err != nil {
			return s, err
		}
		if name != "" {
			if s.name != "" {
				return s, fmt.Errorf("metric name given twice")
			}
			s.name = name
		}
		s.labels = labels
	}
	if s.name == "" {
		return s, fmt.Errorf("no metric name")
	}
	if p.i < len(p.s) && p.peek() != ' ' && p.peek() != '\t' {
		return s, fmt.Errorf("unexpected %q after metric name", p.peek())
	}
	fields := strings.Fields(p.s[p.i:])
	if len(fields) < 1 || len(fields) > 2 {
		return s, fmt.Errorf("want a value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("bad value %q", fields[0])
	}
	s.value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp %q", fields[1])
		}
	}
	return s, nil
}

type lineParser struct {
	s string
	i int
}

func (p *lineParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *lineParser) blank() {
	for p.peek() == ' ' || p.peek() == '\t' {
		p.i++
	}
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// name reads a bare metric (colon allowed) or label name.
func (p *lineParser) name(colon bool) string {
	start := p.i
	for p.i < len(p.s) && isNameChar(p.s[p.i]) && (colon || p.s[p.i] != ':') {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a double-quoted string with the format's escapes (\\, \", \n).
func (p *lineParser) quoted() (string, error) {
	if p.peek() != '"' {
		return "", fmt.Errorf("want '\"' at column %d", p.i+1)
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.i >= len(p.s) {
				return "", fmt.Errorf("unfinished escape")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case '\\', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("bad escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unterminated string")
}

// labels reads the inside of {...} up to and including '}'. A quoted item
// not followed by '=' is the metric name (text format 1.0's UTF-8 names).
func (p *lineParser) labels() (map[string]string, string, error) {
	labels := map[string]string{}
	metric := ""
	for {
		p.blank()
		switch c := p.peek(); {
		case c == '}':
			p.i++
			return labels, metric, nil
		case c == 0:
			return nil, "", fmt.Errorf("unterminated label set")
		}
		var key string
		quotedKey := p.peek() == '"'
		if quotedKey {
			k, err := p.quoted()
			if err != nil {
				return nil, "", err
			}
			key = k
		} else {
			if !isNameStart(p.peek()) || p.peek() == ':' {
				return nil, "", fmt.Errorf("bad label name at column %d", p.i+1)
			}
			key = p.name(false)
		}
		p.blank()
		if quotedKey && (p.peek() == ',' || p.peek() == '}') {
			if metric != "" || key == "" {
				return nil, "", fmt.Errorf("bad quoted metric name")
			}
			metric = key
		} else {
			if p.peek() != '=' {
				return nil, "", fmt.Errorf("want '=' after label %q", key)
			}
			p.i++
			p.blank()
			v, err := p.quoted()
			if err != nil {
				return nil, "", err
			}
			if _, dup := labels[key]; dup {
				return nil, "", fmt.Errorf("label %q given twice", key)
			}
			labels[key] = v
		}
		p.blank()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
		default:
			return nil, "", fmt.Errorf("want ',' or '}' at column %d", p.i+1)
		}
	}
}
