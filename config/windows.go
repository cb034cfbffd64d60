package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploybot/deploybot/deployer"
)

// Windows holds the backport windows. With none (no weekly entry, no
// one-off window, no iCalendar file) the bot deploys at any time.
type Windows struct {
	// Timezone is the zone the weekly times are in (default UTC).
	Timezone string         `yaml:"timezone"`
	Weekly   []WeeklyWindow `yaml:"weekly"`
	Once     []OnceWindow   `yaml:"once"`
	// ICal is an iCalendar file to read windows from, as well.
	ICal string `yaml:"ical"`
}

// WeeklyWindow is a window on some days of every week, at some times.
type WeeklyWindow struct {
	Days      []string `yaml:"days"` // mon, tue, ...
	At        []string `yaml:"at"`   // "07:00"
	Duration  Duration `yaml:"duration"`
	Name      string   `yaml:"name"`
	Deployers []string `yaml:"deployers"`
}

// OnceWindow is a one-off window.
type OnceWindow struct {
	Start    string   `yaml:"start"` // RFC 3339, or "2006-01-02 15:04" in timezone
	Duration Duration `yaml:"duration"`
	Name     string   `yaml:"name"`
}

// Batch holds the batch and bisection limits (pipeline.batch).
type Batch struct {
	Enabled    bool `yaml:"enabled"`
	MaxChanges int  `yaml:"max_changes"`
	MaxRounds  int  `yaml:"max_rounds"`
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// Schedule builds the windows (nil when none is configured).
func (w *Windows) Schedule() (*deployer.Schedule, error) {
	loc := time.UTC
	if w.Timezone != "" {
		l, err := time.LoadLocation(w.Timezone)
		if err != nil {
			return nil, fmt.Errorf("windows.timezone: unknown time zone %q", w.Timezone)
		}
		loc = l
	}
	s := &deployer.Schedule{}
	for i, ww := range w.Weekly {
		out := deployer.WeeklyWindow{Duration: ww.Duration.D(), Location: loc, Name: ww.Name, Deployers: ww.Deployers}
		for _, d := range ww.Days {
			wd, ok := weekdays[strings.ToLower(d)[:min(3, len(d))]]
			if !ok {
				return nil, fmt.Errorf("windows.weekly[%d].days: %q is not a day (mon, tue, ...)", i, d)
			}
			out.Days = append(out.Days, wd)
		}
		for _, a := range ww.At {
			t, err := time.Parse("15:04", a)
			if err != nil {
				return nil, fmt.Errorf("windows.weekly[%d].at: %q is not a time of day (HH:MM)", i, a)
			}
			out.At = append(out.At, deployer.Clock{Hour: t.Hour(), Minute: t.Minute()})
		}
		if len(out.Days) == 0 || len(out.At) == 0 || out.Duration <= 0 {
			return nil, fmt.Errorf("windows.weekly[%d] needs days, at and a duration", i)
		}
		s.Weekly = append(s.Weekly, out)
	}
	for i, o := range w.Once {
		st, err := time.Parse(time.RFC3339, o.Start)
		if err != nil {
			if st, err = time.ParseInLocation("2006-01-02 15:04", o.Start, loc); err != nil {
				return nil, fmt.Errorf("windows.once[%d].start: %q is neither RFC 3339 nor \"2006-01-02 15:04\"", i, o.Start)
			}
		}
		if o.Duration.D() <= 0 {
			return nil, fmt.Errorf("windows.once[%d] needs a duration", i)
		}
		s.OneOff = append(s.OneOff, deployer.BackportWindow{Start: st, End: st.Add(o.Duration.D()), Name: o.Name})
	}
	if w.ICal != "" {
		f, err := os.Open(w.ICal)
		if err != nil {
			return nil, fmt.Errorf("windows.ical: %v", err)
		}
		defer f.Close()
		ic, err := deployer.ParseICal(f, loc)
		if err != nil {
			return nil, fmt.Errorf("windows.ical %s: %v", w.ICal, err)
		}
		s.Weekly = append(s.Weekly, ic.Weekly...)
		s.OneOff = append(s.OneOff, ic.OneOff...)
	}
	if s.Empty() {
		return nil, nil
	}
	return s, nil
}

func (w *Windows) check(root *yaml.Node) Problems {
	var ps Problems
	// The iCalendar file is read when the bot starts: its path is not
	// resolved against the configuration's directory yet.
	c := *w
	c.ICal = ""
	if _, err := c.Schedule(); err != nil {
		ps.add(lineOf(root, "windows"), "%s", err.Error())
	}
	return ps
}

func (b *Batch) check(root *yaml.Node) Problems {
	var ps Problems
	if b.MaxChanges < 0 || b.MaxChanges == 1 {
		ps.add(lineOf(root, "pipeline", "batch", "max_changes"), "pipeline.batch.max_changes must be at least 2 (0: the default, 8)")
	}
	if b.MaxRounds < 0 {
		ps.add(lineOf(root, "pipeline", "batch", "max_rounds"), "pipeline.batch.max_rounds must not be negative (0: the default, 10)")
	}
	return ps
}
