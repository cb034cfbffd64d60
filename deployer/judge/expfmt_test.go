package judge

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// These pin down what the scrape source accepts and rejects, now that
// expfmt's text parser reads the pages: they were the hand-written parser's
// tests, and any change in expfmt's behaviour on these lines shows up here.

func parseOne(line string) (series, error) {
	var got []series
	err := readSeries(strings.NewReader(line+"\n"), func(s series) error {
		got = append(got, s)
		return nil
	})
	if err != nil {
		return series{}, err
	}
	if len(got) != 1 {
		return series{}, errors.New("not exactly one series")
	}
	return got[0], nil
}

func TestReadSeriesLines(t *testing.T) {
	for _, tc := range []struct {
		line string
		want series
	}{
		{`up 1`, series{name: "up", labels: map[string]string{}, value: 1}},
		{`http_requests_total{code="200",method="get"} 1027`, series{"http_requests_total", map[string]string{"code": "200", "method": "get"}, 1027}},
		{`http_requests_total{ code = "500" , } 3 1712345678000`, series{"http_requests_total", map[string]string{"code": "500"}, 3}},
		{`x{path="/a \"b\"\\c\nd"} 2`, series{"x", map[string]string{"path": "/a \"b\"\\c\nd"}, 2}},
		{`x{} 1.5e3`, series{"x", map[string]string{}, 1500}},
		{`ns:rule:rate5m{job="a"} -Inf`, series{"ns:rule:rate5m", map[string]string{"job": "a"}, math.Inf(-1)}},
		{`{"http.requests.total", code="503"} 4`, series{"http.requests.total", map[string]string{"code": "503"}, 4}},
		{`x{"dotted.label"="v", code="500"} 4`, series{"x", map[string]string{"dotted.label": "v", "code": "500"}, 4}},
		{"x\t{a=\"b\"}\t7", series{"x", map[string]string{"a": "b"}, 7}},
		{`  up 1`, series{name: "up", labels: map[string]string{}, value: 1}},
		// expfmt, unlike the old parser, needs no blank between the label
		// set and the value.
		{`x{code="1"}1`, series{"x", map[string]string{"code": "1"}, 1}},
	} {
		got, err := parseOne(tc.line)
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.line, got, tc.want)
		}
	}
	for _, tc := range []struct{ line, msg string }{
		{`<html><body>502 Bad Gateway</body></html>`, "line 1: invalid metric name"},
		{`x`, "expected float as value"},
		{`x{code="500"}`, "expected float as value"},
		{`x{code="500"} abc`, `expected float as value, got "abc"`},
		{`x{code="500"} 1 2 3`, "spurious string after timestamp"},
		{`x{code="500"} 1 1.5`, `expected integer as timestamp, got "1.5"`},
		{`x{code=500} 1`, `expected '"' at start of label value`},
		{`x{code="500" 1`, "unexpected end of label value"},
		{`x{code="500} 1`, "unescaped new-line"},
		{`x{code="5\q"} 1`, `invalid escape sequence '\q'`},
		{`x{code="1",code="2"} 1`, "duplicate label names"},
		{`x{1code="1"} 1`, "invalid label name"},
		{`x{"a", "b"} 1`, "expected '=' after label name"},
		{`x{"y"} 1`, "expected '=' after label name"},
		{`{code="1"} 1`, "invalid metric name"},
		{`9x 1`, "invalid metric name"},
		// Trailing blanks are read as the start of a missing timestamp.
		{`up 1  `, "expected integer as timestamp"},
	} {
		s, err := parseOne(tc.line)
		if err == nil {
			t.Errorf("%q parsed as %#v, want an error", tc.line, s)
			continue
		}
		var pe *parseError
		if !errors.As(err, &pe) || !strings.Contains(pe.Error(), tc.msg) {
			t.Errorf("%q: error %v, want a parse error containing %q", tc.line, err, tc.msg)
		}
	}
}

func TestReadSeriesReportsTheLine(t *testing.T) {
	body := "# HELP a b\n\nup 1\nbroken{\nup 2\n"
	var n int
	err := readSeries(strings.NewReader(body), func(series) error { n++; return nil })
	var pe *parseError
	if !errors.As(err, &pe) || pe.line != 4 {
		t.Fatalf("err = %v, want a parse error on line 4", err)
	}
	// expfmt reads the whole page before handing out anything, so a
	// malformed page yields no series at all rather than a prefix of them.
	if n != 0 {
		t.Errorf("%d series before the error, want 0", n)
	}
}

func TestReadSeriesSkipsHistogramsAndSummaries(t *testing.T) {
	var names []string
	err := readSeries(strings.NewReader(exposition), func(s series) error {
		names = append(names, s.name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "go_gc_duration_seconds") || strings.HasPrefix(n, "http_request_duration_seconds") {
			t.Errorf("series %s of a summary or histogram was passed on", n)
		}
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "http_requests_total_created") || !strings.Contains(got, "other_requests_total") {
		t.Errorf("series %q lack the untyped families", got)
	}
}
