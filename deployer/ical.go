package deployer

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// ParseICal reads backport windows from an iCalendar file (RFC 5545), the
// subset a window calendar needs: VEVENTs with DTSTART and DTEND (UTC with
// Z, local to a TZID, or floating, read in loc), SUMMARY as the window's
// name, and RRULE FREQ=WEEKLY with BYDAY and UNTIL. A weekly event becomes
// a weekly pattern; any other event a one-off window. Anything it cannot
// honour exactly (another FREQ, INTERVAL, COUNT) is refused with its
// line, rather than read as something else.
func ParseICal(r io.Reader, loc *time.Location) (*Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	// Unfold: a line starting with a space or tab continues the last.
	type line struct {
		n    int
		text string
	}
	var lines []line
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		t := strings.TrimRight(sc.Text(), "\r")
		if (strings.HasPrefix(t, " ") || strings.HasPrefix(t, "\t")) && len(lines) > 0 {
			lines[len(lines)-1].text += t[1:]
			continue
		}
		lines = append(lines, line{n, t})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	s := &Schedule{}
	var ev map[string]string
	var evTZ map[string]string
	var evLine map[string]int
	in := false
	for _, l := range lines {
		if l.text == "" {
			continue
		}
		nameParams, value, ok := strings.Cut(l.text, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not NAME:VALUE", l.n, l.text)
		}
		name, params, _ := strings.Cut(nameParams, ";")
		name = strings.ToUpper(name)
		switch {
		case name == "BEGIN" && strings.EqualFold(value, "VEVENT"):
			in, ev, evTZ, evLine = true, map[string]string{}, map[string]string{}, map[string]int{}
			evLine["BEGIN"] = l.n
			continue
		case name == "END" && strings.EqualFold(value, "VEVENT"):
			if !in {
				return nil, fmt.Errorf("line %d: END:VEVENT without BEGIN:VEVENT", l.n)
			}
			in = false
			if err := addEvent(s, ev, evTZ, evLine, loc); err != nil {
				return nil, err
			}
			continue
		}
		if !in {
			continue
		}
		ev[name], evLine[name] = value, l.n
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(k, "TZID") {
				evTZ[name] = strings.Trim(v, `"`)
			}
		}
	}
	if in {
		return nil, fmt.Errorf("the calendar ends inside a VEVENT")
	}
	return s, nil
}

func icalTime(v, tzid string, loc *time.Location) (time.Time, error) {
	if tzid != "" {
		l, err := time.LoadLocation(tzid)
		if err != nil {
			return time.Time{}, fmt.Errorf("unknown time zone %q", tzid)
		}
		loc = l
	}
	if strings.HasSuffix(v, "Z") {
		return time.Parse("20060102T150405Z", v)
	}
	return time.ParseInLocation("20060102T150405", v, loc)
}

var icalDays = map[string]time.Weekday{"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday, "TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday}

func addEvent(s *Schedule, ev, tz map[string]string, at map[string]int, loc *time.Location) error {
	where := func(k string) string { return fmt.Sprintf("line %d", at[k]) }
	if ev["DTSTART"] == "" {
		return fmt.Errorf("line %d: a VEVENT without DTSTART", at["BEGIN"])
	}
	start, err := icalTime(ev["DTSTART"], tz["DTSTART"], loc)
	if err != nil {
		return fmt.Errorf("%s: DTSTART: %v", where("DTSTART"), err)
	}
	var dur time.Duration
	switch {
	case ev["DTEND"] != "":
		end, err := icalTime(ev["DTEND"], tz["DTEND"], loc)
		if err != nil {
			return fmt.Errorf("%s: DTEND: %v", where("DTEND"), err)
		}
		dur = end.Sub(start)
	case ev["DURATION"] != "":
		d, err := icalDuration(ev["DURATION"])
		if err != nil {
			return fmt.Errorf("%s: DURATION: %v", where("DURATION"), err)
		}
		dur = d
	}
	if dur <= 0 {
		return fmt.Errorf("line %d: the event has no length (DTEND or DURATION after DTSTART)", at["BEGIN"])
	}
	name := strings.ReplaceAll(ev["SUMMARY"], `\,`, ",")
	rule := ev["RRULE"]
	if rule == "" {
		s.OneOff = append(s.OneOff, BackportWindow{Start: start, End: start.Add(dur), Name: name})
		return nil
	}
	ww := WeeklyWindow{Duration: dur, Location: start.Location(), Name: name, At: []Clock{{start.Hour(), start.Minute()}}}
	freq := ""
	for _, part := range strings.Split(rule, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch strings.ToUpper(k) {
		case "FREQ":
			freq = strings.ToUpper(v)
		case "BYDAY":
			for _, d := range strings.Split(v, ",") {
				wd, ok := icalDays[strings.ToUpper(d)]
				if !ok {
					return fmt.Errorf("%s: BYDAY %q is not a plain day (MO, TU, ...)", where("RRULE"), d)
				}
				ww.Days = append(ww.Days, wd)
			}
		case "UNTIL":
			u, err := icalTime(v, "", start.Location())
			if err != nil {
				if u, err = time.ParseInLocation("20060102", v, start.Location()); err != nil {
					return fmt.Errorf("%s: UNTIL %q: %v", where("RRULE"), v, err)
				}
				u = u.Add(24*time.Hour - time.Second)
			}
			ww.Until = u
		case "WKST":
		default:
			return fmt.Errorf("%s: RRULE %s is not supported (only FREQ=WEEKLY with BYDAY and UNTIL)", where("RRULE"), k)
		}
	}
	if freq != "WEEKLY" {
		return fmt.Errorf("%s: RRULE FREQ=%s is not supported (only WEEKLY)", where("RRULE"), freq)
	}
	if len(ww.Days) == 0 {
		ww.Days = []time.Weekday{start.Weekday()}
	}
	s.Weekly = append(s.Weekly, ww)
	return nil
}

// icalDuration reads a DURATION such as PT1H, PT90M or PT1H30M.
func icalDuration(v string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(strings.ToUpper(v), "PT")
	if !ok {
		return 0, fmt.Errorf("%q: only PT…H…M…S durations are supported", v)
	}
	return time.ParseDuration(strings.ToLower(rest))
}
