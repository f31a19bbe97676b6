package extract

import (
	"fmt"
	"io"
	"sort"
)

// WriteText prints the summary for people: totals, then records per event
// type, most frequent first.
func (s Summary) WriteText(w io.Writer) error {
	secs := s.Duration.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(s.Records) / secs
	}
	types := make([]string, 0, len(s.PerType))
	for t := range s.PerType {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool {
		a, b := s.PerType[types[i]], s.PerType[types[j]]
		return a > b || a == b && types[i] < types[j]
	})
	width := len("quarantined")
	for _, t := range types {
		width = max(width, len(t)+2)
	}
	var err error
	line := func(name, format string, v any) {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-*s "+format+"\n", width, name, v)
		}
	}
	line("records", "%12d", s.Records)
	line("files", "%12d", s.Files)
	line("bytes", "%12d", s.Bytes)
	line("quarantined", "%12d", s.Quarantined)
	line("seconds", "%12.2f", secs)
	line("records/s", "%12.0f", rate)
	if len(types) > 0 && err == nil {
		_, err = fmt.Fprintln(w, "per event type:")
	}
	for _, t := range types {
		line("  "+t, "%12d", s.PerType[t])
	}
	return err
}
