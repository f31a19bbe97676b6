package report

import (
	"fmt"
	"strings"
	"time"
)

// ParseTime reads a --since or --until value: an RFC 3339 time
// (2026-01-02T15:04:05Z), a UTC date or minute (2026-01-02, 2026-01-02 15:04),
// or a duration before now (90m, 24h). Empty is the zero time: unbounded.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("time %q: a duration before now must be positive", s)
		}
		return now.Add(-d).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-01-02T15:04:05Z), a UTC date (2026-01-02), or a duration before now (90m)", s)
}

// ParseWindow reads --since and --until and checks that they make a window.
func ParseWindow(since, until string, now time.Time) (Window, error) {
	var w Window
	var err error
	if w.Since, err = ParseTime(since, now); err != nil {
		return Window{}, fmt.Errorf("--since: %w", err)
	}
	if w.Until, err = ParseTime(until, now); err != nil {
		return Window{}, fmt.Errorf("--until: %w", err)
	}
	if !w.Since.IsZero() && !w.Until.IsZero() && !w.Since.Before(w.Until) {
		return Window{}, fmt.Errorf("--since %s is not before --until %s", w.Since.Format(time.RFC3339), w.Until.Format(time.RFC3339))
	}
	return w, nil
}
