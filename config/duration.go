package config

import (
	"fmt"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes them ("15m", "2s").
// A value that does not parse is kept with its line, so that decoding goes
// on and every problem of the file is reported at once.
type Duration struct {
	time.Duration
	bad  string
	line int
	zero bool   // written as 0 in the file
	void string // why 0 was refused (orDefault)
}

// Dur makes a Duration.
func Dur(d time.Duration) Duration { return Duration{Duration: d} }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return d.Duration }

// UnmarshalYAML parses "15m"-style durations and refuses bare numbers,
// which would silently mean nanoseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil || n.Kind != yaml.ScalarNode:
		d.bad, d.line = fmt.Sprintf("%q is not a duration (write it like 90s, 15m or 1h)", n.Value), n.Line
	case v < 0:
		d.bad, d.line = fmt.Sprintf("duration %q is negative", n.Value), n.Line
	default:
		*d = Duration{Duration: v, zero: v == 0, line: n.Line}
	}
	return nil
}

// durationProblems finds every Duration that did not parse.
func durationProblems(v reflect.Value) Problems {
	return durationsWith(v, func(d Duration) string { return d.bad })
}

// voidDurations finds every Duration written as 0 where 0 means nothing
// (after orDefault).
func voidDurations(v reflect.Value) Problems {
	return durationsWith(v, func(d Duration) string { return d.void })
}

// durationsWith finds every Duration for which problem says something.
func durationsWith(v reflect.Value, problem func(Duration) string) Problems {
	var ps Problems
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			ps = append(ps, durationsWith(v.Elem(), problem)...)
		}
	case reflect.Struct:
		if d, ok := v.Interface().(Duration); ok {
			if msg := problem(d); msg != "" {
				ps = append(ps, Problem{Line: d.line, Msg: msg})
			}
			return ps
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				ps = append(ps, durationsWith(v.Field(i), problem)...)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			ps = append(ps, durationsWith(v.Index(i), problem)...)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			ps = append(ps, durationsWith(v.MapIndex(k), problem)...)
		}
	}
	return ps
}

// orDefault sets d to def when it is 0: not in the file, or not a
// duration (reported apart), or written as 0, which is reported too: none
// of these durations means anything at 0, and taking the default without
// a word would hide what the file says.
func (d *Duration) orDefault(def time.Duration) {
	if d.D() != 0 {
		return
	}
	void := ""
	if d.zero {
		void = fmt.Sprintf("a duration of 0 means nothing here; leave it out for the default (%s)", def)
	}
	*d = Duration{Duration: def, line: d.line, void: void}
}

// setDefault sets *v to def when it is the zero value: not in the file.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
