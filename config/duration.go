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
		*d = Duration{Duration: v}
	}
	return nil
}

// durationProblems finds every Duration that did not parse.
func durationProblems(v reflect.Value) Problems {
	var ps Problems
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			ps = append(ps, durationProblems(v.Elem())...)
		}
	case reflect.Struct:
		if d, ok := v.Interface().(Duration); ok {
			if d.bad != "" {
				ps = append(ps, Problem{Line: d.line, Msg: d.bad})
			}
			return ps
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				ps = append(ps, durationProblems(v.Field(i))...)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			ps = append(ps, durationProblems(v.Index(i))...)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			ps = append(ps, durationProblems(v.MapIndex(k))...)
		}
	}
	return ps
}

// orDefault sets d to def when it is 0: not in the file (or not a
// duration, which is reported apart).
func (d *Duration) orDefault(def time.Duration) {
	if d.D() == 0 {
		*d = Dur(def)
	}
}

// setDefault sets *v to def when it is the zero value: not in the file.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
