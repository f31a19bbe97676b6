package lake

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Which data files readers read.
//
// A compaction publishes a merged file whose name covers the offsets of
// the files it replaces, and removes them only later: for a while both are
// in the lake. Within a group (one event type, day and partition, or one
// partition's quarantine) a file whose offset range lies inside another's
// is replaced by it: readers skip it, and compaction removes it once it
// has been replaced for the grace period. An extract's files of a group
// never overlap, and a merge covers whole files, so two files of a group
// whose ranges overlap without one holding the other were not made by
// questlog: Check reports them and readers refuse the lake, rather than
// guess which to count.

// DataFile is a published data file of the lake.
type DataFile struct {
	Part
	Name    string
	Size    int64
	ModTime time.Time // about when it was published
}

// Group is what a data file's offsets are unique within: its part without
// the offsets.
type Group struct {
	EventType string // empty for quarantine
	Date      string // empty for quarantine
	Partition int32
}

// Group is the part's group.
func (p Part) Group() Group {
	return Group{EventType: p.EventType, Date: p.Date, Partition: p.Partition}
}

// Replaced is a data file whose offsets a file of the effective set
// covers: a compaction merged it into By, and removes it once By is older
// than the grace period.
type Replaced struct {
	DataFile
	By DataFile
}

// OverlapError says two files of a group share offsets without one
// holding the other's whole range: no reader can tell which to count.
type OverlapError struct {
	A, B Part
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("%s and %s overlap: offsets %d to %d are in both and neither holds the other's range",
		e.A.Name(), e.B.Name(), max(e.A.First, e.B.First), min(e.A.Last, e.B.Last))
}

// Listing is a lake's data files, resolved.
type Listing struct {
	// Files is the effective set, sorted by name: every record the lake
	// holds is in exactly one of them (with no Overlaps).
	Files []DataFile
	// Replaced are the files a file of Files covers.
	Replaced []Replaced
	// Pending are files being written, or left by a crash: an extract's
	// (see IsPending) or a merge's (see IsMergePending).
	Pending []FileInfo
	// Foreign are files under the data folders whose names are not a
	// data file's.
	Foreign []FileInfo
	// Overlaps are the pairs of files that make the listing ambiguous.
	Overlaps []*OverlapError
	// Retired are the files of the effective set that belong to a day
	// lake retention is dropping (see RetentionDir): readers leave them
	// out, so that they see a whole day or none of it.
	Retired []DataFile
	// retiredDays are the days that had a retention manifest when the
	// files were listed.
	retiredDays map[string]bool
}

// ListData lists the lake's data files (events and quarantine) and
// resolves them (see Resolve).
//
// A listing is a consistent view of the lake as long as listing takes less
// than the compactor's grace period: a merged file is published before the
// files it replaces are removed, and those stay that long; a day that lake
// retention drops is retired (Listing.Retired) before its files are
// removed, and they stay that long too.
func ListData(ctx context.Context, st Storage) (*Listing, error) {
	files, pending, foreign, err := listDataFiles(ctx, st)
	if err != nil {
		return nil, err
	}
	l := &Listing{Pending: pending, Foreign: foreign}
	l.Files, l.Replaced, l.Overlaps = Resolve(files)
	// Listed after the files: a day whose files were partly removed had
	// its manifest written before.
	days, err := retiredDays(ctx, st)
	if err != nil {
		return nil, err
	}
	l.retiredDays = days
	if len(days) > 0 {
		kept := l.Files[:0]
		for _, f := range l.Files {
			if retired(f, days) {
				l.Retired = append(l.Retired, f)
			} else {
				kept = append(kept, f)
			}
		}
		l.Files = kept
	}
	return l, nil
}

// listDataFiles lists the data folders (see DataDirs) and sorts what they
// hold into the data files, unresolved; the files being written or left by
// a crash (see IsPending); and the foreign files, whose names are not a
// data file's.
func listDataFiles(ctx context.Context, st Storage) (files []DataFile, pending, foreign []FileInfo, err error) {
	for _, dir := range DataDirs() {
		infos, err := st.List(ctx, dir)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, fi := range infos {
			if IsPending(fi.Name) {
				pending = append(pending, fi)
				continue
			}
			part, ok := ParsePart(fi.Name)
			if !ok {
				foreign = append(foreign, fi)
				continue
			}
			files = append(files, DataFile{Part: part, Name: fi.Name, Size: fi.Size, ModTime: fi.ModTime})
		}
	}
	return files, pending, foreign, nil
}

// Resolve splits data files into the effective set (sorted by name) and
// the files that one of it replaces: within a group, a file whose offset
// range lies inside another's. Two files of a group that share offsets
// without one holding the other are an overlap; both stay in the
// effective set, and the listing is ambiguous.
func Resolve(files []DataFile) (effective []DataFile, replaced []Replaced, overlaps []*OverlapError) {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b DataFile) int {
		return cmp.Or(
			cmp.Compare(a.EventType, b.EventType), cmp.Compare(a.Date, b.Date), cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.First, b.First), cmp.Compare(b.Last, a.Last), // the wider first
		)
	})
	// Sorted so, a file can only lie inside the effective file of its
	// group that reaches furthest so far.
	var cover *DataFile
	for i := range sorted {
		f := &sorted[i]
		if cover != nil && cover.Group() == f.Group() && f.First <= cover.Last {
			if f.Last <= cover.Last {
				replaced = append(replaced, Replaced{DataFile: *f, By: *cover})
				continue
			}
			overlaps = append(overlaps, &OverlapError{A: cover.Part, B: f.Part})
		}
		effective = append(effective, *f)
		cover = f
	}
	slices.SortFunc(effective, func(a, b DataFile) int { return cmp.Compare(a.Name, b.Name) })
	return effective, replaced, overlaps
}

// Err is the listing's first overlap, or nil: a reader that would count
// some records twice refuses the lake with it.
func (l *Listing) Err() error {
	if len(l.Overlaps) == 0 {
		return nil
	}
	return fmt.Errorf("the lake is ambiguous (see questlog lake check): %w", l.Overlaps[0])
}

// Events are the effective events files, sorted by name.
func (l *Listing) Events() []DataFile {
	return slices.DeleteFunc(slices.Clone(l.Files), func(f DataFile) bool { return f.Quarantined() })
}

// Quarantine are the effective quarantine files, sorted by name.
func (l *Listing) Quarantine() []DataFile {
	return slices.DeleteFunc(slices.Clone(l.Files), func(f DataFile) bool { return !f.Quarantined() })
}

// Names are the names of files.
func Names(files []DataFile) []string {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	return names
}
