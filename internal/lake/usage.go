package lake

import (
	"context"
	"fmt"
)

// Usage is what the lake's data files take: every file under the data
// folders (published, replaced by a merge, retired, or pending), as the
// storage lists them.
type Usage struct {
	// Datasets are by top folder: "events" and "quarantine".
	Datasets map[string]Count
	// Types are the events files by event type.
	Types map[string]Count
	// Days is how many days the events files span (event_date folders
	// holding a file), Oldest the first of them (empty without one).
	Days   int
	Oldest string
}

// Count is a number of files and their bytes.
type Count struct {
	Files int64
	Bytes int64
}

// MeasureUsage lists the lake's data folders (one listing each: an object
// store's listing gives sizes for free) and sums what they hold.
func MeasureUsage(ctx context.Context, st Storage) (Usage, error) {
	u := Usage{Datasets: map[string]Count{}, Types: map[string]Count{}}
	days := map[string]bool{}
	for _, dir := range DataDirs() {
		infos, err := st.List(ctx, dir)
		if err != nil {
			return Usage{}, fmt.Errorf("measure the lake: %w", err)
		}
		var c Count
		for _, fi := range infos {
			c.Files++
			c.Bytes += fi.Size
			if dir != EventsDir {
				continue
			}
			eventType, date := EventFolders(fi.Name)
			if eventType == "" || date == "" {
				continue
			}
			t := u.Types[eventType]
			t.Files++
			t.Bytes += fi.Size
			u.Types[eventType] = t
			if !days[date] {
				days[date] = true
				if u.Oldest == "" || date < u.Oldest {
					u.Oldest = date
				}
			}
		}
		u.Datasets[dir] = c
	}
	u.Days = len(days)
	return u, nil
}
