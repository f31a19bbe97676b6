package lake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Lake retention (--lake-retention) drops whole days.
//
// A day is dropped in two steps. First its manifest,
// _retention/event_date=<day>.json, is written: every file the day holds
// (each event type's files of event_date=<day>, and the quarantine files
// written that day), with its partition, offsets and rows. From then on the
// day is retired: ListData leaves its files out of the effective set (into
// Listing.Retired), so questlog's readers see the whole day or none of it,
// and Check counts the offsets of the manifest's files as dropped by
// retention, not lost. Then, once the manifest is older than the grace
// period (for readers that listed the lake before it was written), the
// files are removed. A crash between the two steps or in the middle of the
// second leaves a manifest whose files are partly there: the next pass
// removes the rest. A file published in a retired day after its manifest
// (an extract far behind) is added to the manifest before it is removed.
//
// A quarantine file has no day in its path: it belongs to the day it was
// written (its modification time, UTC), which is never before any of its
// records was produced.

// RetentionDir holds the manifests of the days dropped by lake retention.
const RetentionDir = "_retention"

// RetentionName is where the manifest of a dropped day lives.
func RetentionName(date string) string { return RetentionDir + "/" + dateKey + date + ".json" }

// retentionDate reads the day back from a manifest's name.
func retentionDate(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, RetentionDir+"/"+dateKey)
	if !ok {
		return "", false
	}
	date, ok := strings.CutSuffix(rest, ".json")
	if !ok || !validDate(date) {
		return "", false
	}
	return date, true
}

func validDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

// DroppedFile is a file a retention manifest accounts for.
type DroppedFile struct {
	Name      string `json:"name"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
	Last      int64  `json:"last"`
	Rows      int64  `json:"rows"`
	Bytes     int64  `json:"bytes"`
}

// RetentionManifest is _retention/event_date=<day>.json: what lake
// retention drops of a day, written before any of it is removed.
type RetentionManifest struct {
	Date string `json:"date"`
	// Updated is when files were last added: none of them is removed
	// before Updated plus the grace period.
	Updated time.Time     `json:"updated"`
	Files   []DroppedFile `json:"files"`
}

// retiredDays lists the days that have a manifest.
func retiredDays(ctx context.Context, st Storage) (map[string]bool, error) {
	infos, err := st.List(ctx, RetentionDir)
	if err != nil {
		return nil, err
	}
	days := map[string]bool{}
	for _, fi := range infos {
		if IsPending(fi.Name) {
			continue
		}
		if d, ok := retentionDate(fi.Name); ok {
			days[d] = true
		}
	}
	return days, nil
}

// retired says whether a file of the effective set belongs to a retired
// day: a quarantined file (which has no event date) to the day it was
// written, as DropOldDays counts it.
func retired(f DataFile, days map[string]bool) bool {
	if f.Quarantined() {
		return days[fileDay(f.ModTime)]
	}
	return days[f.Date]
}

// fileDay is the UTC day of a time.
func fileDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// manifests reads the retention manifests of the days a listing found
// retired (Listing.retiredDays), oldest day first: reading the days the
// listing saw, not listing them again, keeps a day retired in between out
// of both the listed files' count and the dropped days'.
func (l *Listing) manifests(ctx context.Context, st Storage) ([]*RetentionManifest, error) {
	var out []*RetentionManifest
	for _, d := range slices.Sorted(maps.Keys(l.retiredDays)) {
		m, found, err := readManifest(ctx, st, d)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, m)
		}
	}
	return out, nil
}

// readManifest reads date's manifest; found is false, with an empty
// manifest, when there is none. A manifest that is not one (that does not
// decode, or another day's) is an *unreadableError: the day's retention
// stops there, not the lake's other work.
func readManifest(ctx context.Context, st Storage, date string) (m *RetentionManifest, found bool, err error) {
	m = &RetentionManifest{}
	found, err = readJSON(ctx, st, RetentionName(date), "", m)
	var damaged *decodeError
	switch {
	case errors.As(err, &damaged):
		return nil, false, &unreadableError{err}
	case err != nil:
		return nil, false, err
	case !found:
		return &RetentionManifest{Date: date}, false, nil
	case m.Date != date:
		return nil, false, &unreadableError{fmt.Errorf("read %s: it is for day %q", RetentionName(date), m.Date)}
	}
	return m, true, nil
}

func (m *RetentionManifest) write(ctx context.Context, st Storage) error {
	if err := writeJSON(ctx, st, RetentionName(m.Date), m); err != nil {
		return fmt.Errorf("write retention manifest: %w", err)
	}
	return nil
}

// Retention configures DropOldDays.
type Retention struct {
	// Keep is how long the lake keeps a day after it ended: a day goes
	// once it ended more than Keep ago (UTC). At least MinRetention.
	Keep time.Duration
	// Grace is how long a retired day's files stay after its manifest was
	// written, for readers that listed the lake before.
	Grace time.Duration
	// Now replaces time.Now to tell which days are old enough (the grace
	// period is measured on the real clock). For tests.
	Now func() time.Time
	// Hook, when set, is called after each file removed; an error stops
	// the pass there, as a crash would. For tests.
	Hook func(name string) error
	// Topic is the topic whose checkpoint says which files the lake
	// holds: a file past it (written by an extract since interrupted,
	// which removes it when it starts again) is left for a later pass.
	Topic string
}

// MinRetention is the shortest lake retention: today is never dropped,
// and yesterday only once this long into today.
const MinRetention = time.Hour

// ValidateRetention checks a --lake-retention: 0 (keep everything) or at
// least MinRetention.
func ValidateRetention(d time.Duration) error {
	if d != 0 && d < MinRetention {
		return fmt.Errorf("--lake-retention %s: must be 0 (keep everything) or at least %s", d, MinRetention)
	}
	return nil
}

// Cutoff is the first day the lake keeps at now: every earlier day ended
// more than keep ago.
func (r Retention) Cutoff(now time.Time) string {
	return fileDay(now.Add(-r.Keep))
}

// RetentionSummary is what a retention pass did.
type RetentionSummary struct {
	Retired []string // days whose manifest this pass wrote or extended
	Dropped []string // days whose every file is now removed
	Removed int      // files removed
	Bytes   int64    // of the files removed
	Rows    int64    // of the files retired by this pass
	// Skipped are the days left for a later pass, and why: a file of
	// theirs could not be read (or went meanwhile).
	Skipped []error
}

// DropOldDays runs one pass of lake retention (see RetentionDir): it
// retires the days that ended more than r.Keep ago (writing or extending
// their manifests with the files the checkpoint has passed), and removes
// the files of retired days whose grace period is over. The caller makes sure no other retention pass runs (the
// compaction's lock).
func DropOldDays(ctx context.Context, st Storage, r Retention) (RetentionSummary, error) {
	var sum RetentionSummary
	if err := ValidateRetention(r.Keep); err != nil || r.Keep == 0 {
		return sum, err
	}
	if r.Topic == "" {
		return sum, fmt.Errorf("lake retention: no topic given")
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	cutoff := r.Cutoff(r.Now())
	// Read before listing: a file listed below it stays below it.
	cp, _, err := ReadCheckpoint(ctx, st, r.Topic)
	if err != nil {
		return sum, err
	}
	files, _, _, err := listDataFiles(ctx, st)
	if err != nil {
		return sum, err
	}
	var all []DataFile
	for _, f := range files {
		if m, in := cp.Partitions[f.Partition]; !in || f.Last >= m.Next {
			continue // not the lake's yet
		}
		all = append(all, f)
	}
	effective, _, _ := Resolve(all)
	// Per old day: the files it holds (all of them, for removal) and its
	// effective ones (for the manifest).
	type day struct{ all, effective []DataFile }
	days := map[string]*day{}
	at := func(d string) *day {
		if days[d] == nil {
			days[d] = &day{}
		}
		return days[d]
	}
	isEffective := map[string]bool{}
	for _, f := range effective {
		isEffective[f.Name] = true
	}
	for _, f := range all {
		d := f.Date
		if f.Quarantined() {
			if !isEffective[f.Name] {
				continue // replaced: compaction removes it
			}
			d = fileDay(f.ModTime)
		}
		if d >= cutoff {
			continue
		}
		at(d).all = append(at(d).all, f)
		if isEffective[f.Name] {
			at(d).effective = append(at(d).effective, f)
		}
	}
	// Days retired earlier whose files are all gone need nothing more.
	for _, d := range slices.Sorted(maps.Keys(days)) {
		err := dropDay(ctx, st, r, d, days[d].all, days[d].effective, &sum)
		var unreadable *unreadableError
		switch {
		case err == nil:
		case errors.As(err, &unreadable) && ctx.Err() == nil:
			// One bad file must not stop the lake's other work: the
			// day stays, whole, and lake check says what is wrong.
			sum.Skipped = append(sum.Skipped, fmt.Errorf("lake retention skipped day %s: %w", d, err))
		default:
			return sum, err
		}
	}
	return sum, nil
}

// dropDay retires one day (its manifest accounts for every effective file
// of it) and removes its files once the manifest is older than the grace
// period.
func dropDay(ctx context.Context, st Storage, r Retention, date string, all, effective []DataFile, sum *RetentionSummary) error {
	m, _, err := readManifest(ctx, st, date)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range m.Files {
		known[f.Name] = true
	}
	added := false
	for _, f := range effective {
		if known[f.Name] {
			continue
		}
		rows, err := countRows(ctx, st, f.Name)
		if err != nil {
			return &unreadableError{err}
		}
		m.Files = append(m.Files, DroppedFile{Name: f.Name, Partition: f.Partition, First: f.First, Last: f.Last, Rows: rows, Bytes: f.Size})
		sum.Rows += rows
		added = true
	}
	if added {
		slices.SortFunc(m.Files, func(a, b DroppedFile) int { return cmp.Compare(a.Name, b.Name) })
		m.Updated = time.Now().UTC()
		if err := m.write(ctx, st); err != nil {
			return err
		}
		sum.Retired = append(sum.Retired, date)
	}
	if time.Since(m.Updated) < r.Grace {
		return nil
	}
	// Every file of the day, effective or replaced, is accounted for: the
	// effective ones by the manifest, the replaced ones by those.
	dirs := map[string]bool{}
	for _, f := range all {
		if err := st.Remove(ctx, f.Name); err != nil {
			return err
		}
		sum.Removed++
		sum.Bytes += f.Size
		dirs[path.Dir(f.Name)] = true
		if r.Hook != nil {
			if err := r.Hook(f.Name); err != nil {
				return fmt.Errorf("drop day %s: stopped at hook: %w", date, err)
			}
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		if err := st.SyncDir(ctx, dir); err != nil {
			return err
		}
		if rm, ok := st.(dirRemover); ok && dir != QuarantineDir {
			// Best effort: a folder is removed only once empty, and
			// its type's folder with it when that is empty too.
			if rm.removeEmptyDir(dir) == nil {
				_ = rm.removeEmptyDir(path.Dir(dir))
			}
		}
	}
	if len(all) > 0 {
		sum.Dropped = append(sum.Dropped, date)
	}
	return nil
}

// dirRemover is a Storage with folders of its own (Dir), which retention
// removes once empty.
type dirRemover interface {
	removeEmptyDir(dir string) error
}

// unreadableError is a file retention could not read: a data file's rows,
// or a manifest.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return e.err.Error() }
func (e *unreadableError) Unwrap() error { return e.err }

// countRows reads the number of rows in a data file's footer.
func countRows(ctx context.Context, st Storage, name string) (int64, error) {
	f, err := st.Open(ctx, name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	pf, err := parquet.OpenFile(f, f.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("%s: not a readable Parquet file: %w", name, err)
	}
	return pf.NumRows(), nil
}

// droppedRanges is what retention dropped of one partition: the offset
// ranges of the files it dropped (merged where they touch) and how many
// rows they held.
type droppedRanges struct {
	ranges [][2]int64 // sorted, disjoint
	rows   int64
}

func (d *droppedRanges) contains(off int64) bool {
	_, found := slices.BinarySearchFunc(d.ranges, off, func(r [2]int64, off int64) int {
		switch {
		case r[1] < off:
			return -1
		case r[0] > off:
			return 1
		}
		return 0
	})
	return found
}

// dropped accounts, per partition, for what retention dropped or is
// dropping: the files of the manifests and the retired files still there
// (rows: rows of those not in a manifest, read from their footers).
//
// Only files below the checkpoint cp count: one published past it (in a
// retired day, after cp was read) is not the checkpoint's yet.
func dropped(ctx context.Context, st Storage, cp *Checkpoint, manifests []*RetentionManifest, present []DataFile) (map[int32]*droppedRanges, error) {
	var files []DataFile
	rows := map[string]int64{}
	below := func(p Part) bool {
		m, ok := cp.Partitions[p.Partition]
		return ok && p.Last < m.Next
	}
	for _, m := range manifests {
		for _, f := range m.Files {
			part, ok := ParsePart(f.Name)
			if !ok || part.Partition != f.Partition || part.First != f.First || part.Last != f.Last {
				return nil, fmt.Errorf("%s lists %s, not a data file of partition %d, offsets %d to %d", RetentionName(m.Date), f.Name, f.Partition, f.First, f.Last)
			}
			if !below(part) {
				continue
			}
			if _, dup := rows[f.Name]; !dup {
				files = append(files, DataFile{Part: part, Name: f.Name})
			}
			rows[f.Name] = f.Rows
		}
	}
	for _, f := range present {
		if _, ok := rows[f.Name]; ok || !below(f.Part) {
			continue
		}
		n, err := countRows(ctx, st, f.Name)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		rows[f.Name] = n
	}
	// A file a merged file (published in a retired day) covers holds no
	// record of its own.
	effective, _, overlaps := Resolve(files)
	if len(overlaps) > 0 {
		return nil, fmt.Errorf("retired files overlap: %w", overlaps[0])
	}
	out := map[int32]*droppedRanges{}
	slices.SortFunc(effective, func(a, b DataFile) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.First, b.First))
	})
	for _, f := range effective {
		d := out[f.Partition]
		if d == nil {
			d = &droppedRanges{}
			out[f.Partition] = d
		}
		d.rows += rows[f.Name]
		if n := len(d.ranges); n > 0 && f.First <= d.ranges[n-1][1]+1 {
			d.ranges[n-1][1] = max(d.ranges[n-1][1], f.Last)
		} else {
			d.ranges = append(d.ranges, [2]int64{f.First, f.Last})
		}
	}
	return out, nil
}
