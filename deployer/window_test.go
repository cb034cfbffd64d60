package deployer

import (
	"strings"
	"testing"
	"time"
)

func TestICalWeeklyAndOneOff(t *testing.T) {
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:UTC afternoon backport\r\n  window\r\nDTSTART;TZID=Europe/Berlin:20250602T150000\r\nDTEND;TZID=Europe/Berlin:20250602T160000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,TH\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nSUMMARY:extra\r\nDTSTART:20250604T090000Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	s, err := ParseICal(strings.NewReader(ics), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Weekly) != 1 || len(s.OneOff) != 1 || s.Weekly[0].Name != "UTC afternoon backport window" {
		t.Fatalf("schedule %+v", s)
	}
	// Monday 2 June 2025 14:30 Berlin (12:30 UTC): before the window.
	now := time.Date(2025, 6, 2, 12, 30, 0, 0, time.UTC)
	if s.Current(now) != nil {
		t.Fatal("a window is open at 14:30 Berlin")
	}
	n := s.Next(now)
	if n == nil || !n.Start.Equal(time.Date(2025, 6, 2, 13, 0, 0, 0, time.UTC)) || n.End.Sub(n.Start) != time.Hour {
		t.Fatalf("next %+v", n)
	}
	if w := s.Current(now.Add(45 * time.Minute)); w == nil || w.Name != "UTC afternoon backport window" {
		t.Fatalf("current at 13:15 UTC: %+v", w)
	}
	// Then Wednesday's one-off, then Thursday's.
	n = s.Next(now.Add(2 * time.Hour))
	if n == nil || n.Name != "extra" {
		t.Fatalf("after Monday's: %+v", n)
	}
	n = s.Next(n.Start)
	if n == nil || n.Start.Weekday() != time.Thursday {
		t.Fatalf("after the extra: %+v", n)
	}
	// Summer time ends: the Berlin window moves in UTC.
	w := s.Next(time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC))
	if w == nil || w.Start.UTC().Hour() != 14 {
		t.Fatalf("November window %+v, want 15:00 CET = 14:00 UTC", w)
	}
}

func TestICalRefusesWhatItCannotHonour(t *testing.T) {
	for _, rule := range []string{"FREQ=DAILY", "FREQ=WEEKLY;INTERVAL=2", "FREQ=WEEKLY;BYDAY=1MO"} {
		ics := "BEGIN:VEVENT\nDTSTART:20250602T130000Z\nDTEND:20250602T140000Z\nRRULE:" + rule + "\nEND:VEVENT\n"
		if _, err := ParseICal(strings.NewReader(ics), nil); err == nil || !strings.Contains(err.Error(), "line 4") {
			t.Errorf("%s: %v, want a refusal naming line 4", rule, err)
		}
	}
}
