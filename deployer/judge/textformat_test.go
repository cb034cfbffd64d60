package judge

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want series
	}{
		{`up 1`, series{name: "up", value: 1}},
		{`http_requests_total{code="200",method="get"} 1027`, series{"http_requests_total", map[string]string{"code": "200", "method": "get"}, 1027}},
		{`http_requests_total{ code = "500" , } 3 1712345678000`, series{"http_requests_total", map[string]string{"code": "500"}, 3}},
		{`x{path="/a \"b\"\\c\nd"} 2`, series{"x", map[string]string{"path": "/a \"b\"\\c\nd"}, 2}},
		{`x{} 1.5e3`, series{"x", map[string]string{}, 1500}},
		{`ns:rule:rate5m{job="a"} -Inf`, series{"ns:rule:rate5m", map[string]string{"job": "a"}, math.Inf(-1)}},
		{`{"http.requests.total", code="503"} 4`, series{"http.requests.total", map[string]string{"code": "503"}, 4}},
		{`x{"dotted.label"="v", code="500"} 4`, series{"x", map[string]string{"dotted.label": "v", "code": "500"}, 4}},
		{"x\t{a=\"b\"}\t7", series{"x", map[string]string{"a": "b"}, 7}},
	} {
		got, err := parseLine(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.line, got, tc.want)
		}
	}
	for _, line := range []string{
		`<html><body>502 Bad Gateway</body></html>`,
		`x`,
		`x{code="500"}`,
		`x{code="500"} abc`,
		`x{code="500"} 1 2 3`,
		`x{code="500"} 1 1.5`,
		`x{code=500} 1`,
		`x{code="500" 1`,
		`x{code="500} 1`,
		`x{code="5\q"} 1`,
		`x{code="1",code="2"} 1`,
		`x{1code="1"} 1`,
		`x{code="1"}1`,
		`x{"a", "b"} 1`,
		`x{"y"} 1`,
		`{code="1"} 1`,
		`9x 1`,
	} {
		if s, err := parseLine(line); err == nil {
			t.Errorf("%q parsed as %#v, want an error", line, s)
		}
	}
}

func TestParseTextReportsTheLine(t *testing.T) {
	body := "# HELP a b\n\nup 1\nbroken{\nup 2\n"
	var n int
	err := parseText(strings.NewReader(body), func(series) error { n++; return nil })
	var pe *parseError
	if !errors.As(err, &pe) || pe.line != 4 {
		t.Fatalf("err = %v, want a parse error on line 4", err)
	}
	if n != 1 {
		t.Errorf("%d series before the error, want 1", n)
	}
}
