package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// Report is what Check found. A lake is sound when Problems is empty.
type Report struct {
	Topic       string
	Checkpoint  *Checkpoint
	Files       int              // data files read: the effective set
	Replaced    int              // files a merged file replaced, not read (a compaction removes them)
	Merging     int              // merged files being written by a compaction, or left by its crash
	Rows        map[string]int64 // rows per event type
	Quarantined int64
	// Lake retention (see RetentionDir): the days it dropped or is
	// dropping, the files of those days still there (not read), and the
	// records it dropped below the checkpoint (not a loss).
	DroppedDays []string
	Retired     int
	Dropped     int64
	Problems    []string
}

// OK says whether the lake is sound.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 1000 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == 1000 {
		r.Problems = append(r.Problems, "... more problems not shown")
	}
}

// lineageRow is what Check reads of each row.
type lineageRow struct {
	Partition int32 `parquet:"kafka_partition"`
	Offset    int64 `parquet:"kafka_offset"`
}

// checkAttempts bounds how often Check starts over when a file it listed
// was removed before it read it (a compaction removing replaced files).
const checkAttempts = 5

// Check verifies that a lake holds topic exactly once, as far as its
// checkpoint says: for every partition, each offset from the partition's
// start (the log start offset recorded when the extract first read it) up
// to the checkpoint is in exactly one file of the effective set (see
// ListData: files a merged file replaced are not read), and none is past
// it; every file opens, holds the partition and offsets its name says, and
// has the columns of the schema version it records in
// _schemas/<type>.json; no two files overlap partially. It returns an
// error only when the lake cannot be read at all; what is wrong with it is
// in the report. A compaction may run meanwhile: a merge in progress is no
// problem, and when a file listed is removed before it is read, Check
// starts over.
func Check(ctx context.Context, st Storage, topic string) (*Report, error) {
	for attempt := 1; ; attempt++ {
		r, vanished, err := check(ctx, st, topic)
		if err != nil || !vanished {
			return r, err
		}
		if attempt == checkAttempts {
			r.problem("files were removed while they were read, %d times: is a compaction running with a grace period shorter than a check takes?", attempt)
			return r, nil
		}
	}
}

// check is one attempt of Check; vanished says a file was removed while
// it read the lake.
func check(ctx context.Context, st Storage, topic string) (r *Report, vanished bool, err error) {
	r = &Report{Topic: topic, Rows: map[string]int64{}}
	cp, found, err := ReadCheckpoint(ctx, st, topic)
	if err != nil {
		return nil, false, err
	}
	if !found {
		r.problem("no checkpoint in %s/: nothing was extracted from topic %s", PartitionCheckpointsDir(topic), topic)
		return r, false, nil
	}
	l, err := ListData(ctx, st)
	if errors.Is(err, fs.ErrNotExist) {
		return r, true, nil // a folder kept changing while it was listed
	}
	if err != nil {
		return nil, false, err
	}
	// Every offset below the checkpoint read before listing was in a
	// file by then; one that the extract advances meanwhile may vouch
	// for more, and files are past the checkpoint only when past that.
	before := cp
	if cp, _, err = ReadCheckpoint(ctx, st, topic); err != nil {
		return nil, false, err
	}
	r.Checkpoint = cp
	// Listed after the files, so that a file's schema version is in it.
	schemas, err := LoadSchemas(ctx, st)
	if err != nil {
		return nil, false, err
	}
	// The manifests of the days the listing found retired (a day whose
	// files were partly removed had its manifest written before).
	manifests, err := l.manifests(ctx, st)
	if err != nil {
		return nil, false, err
	}
	drop, err := dropped(ctx, st, before, manifests, l.Retired)
	if errors.Is(err, fs.ErrNotExist) {
		return r, true, nil
	}
	if err != nil {
		r.problem("%v", err)
		drop = nil
	}
	for _, m := range manifests {
		r.DroppedDays = append(r.DroppedDays, m.Date)
	}
	r.Retired = len(l.Retired)
	// One bit per offset in [start, next) of each partition.
	seen := map[int32][]uint64{}
	for p, m := range cp.Partitions {
		seen[p] = make([]uint64, (m.Next-m.Start+63)/64)
	}
	for _, fi := range l.Pending {
		if IsMergePending(fi.Name) {
			r.Merging++
			continue
		}
		r.problem("%s: unfinished file left by an interrupted extract (the next extract removes it)", fi.Name)
	}
	for _, fi := range l.Foreign {
		r.problem("%s: not a lake file name", fi.Name)
	}
	for _, o := range l.Overlaps {
		r.problem("%v", o)
	}
	r.Replaced = len(l.Replaced)
	for _, f := range l.Files {
		r.Files++
		if err := checkFile(ctx, st, f.Name, f.Part, schemas, cp, seen, r); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return r, true, nil
			}
			r.problem("%s: %v", f.Name, err)
		}
	}
	parts := make([]int32, 0, len(before.Partitions))
	for p := range before.Partitions {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		m := before.Partitions[p]
		var missing []int64
		n := 0
		d := drop[p]
		var inDropped int64
		for off := m.Start; off < m.Next; off++ {
			i := off - m.Start
			if seen[p][i/64]&(1<<(i%64)) == 0 {
				if d != nil && d.contains(off) {
					inDropped++
					continue
				}
				n++
				if len(missing) < 10 {
					missing = append(missing, off)
				}
			}
		}
		if n > 0 {
			r.problem("partition %d: %d offsets below the checkpoint %d are in no file, e.g. %v", p, n, m.Next, missing)
		}
		if d != nil {
			r.Dropped += d.rows
			// The dropped files held d.rows distinct offsets of their
			// ranges, each in no other file: exactly those are missing
			// there, or something else is too.
			switch {
			case inDropped > d.rows:
				r.problem("partition %d: %d offsets in the ranges of the files lake retention dropped are in no file, but those files held %d rows: %d records lost", p, inDropped, d.rows, inDropped-d.rows)
			case inDropped < d.rows:
				r.problem("partition %d: lake retention dropped files of %d rows, but only %d offsets of their ranges are in no file: some dropped records are still in other files", p, d.rows, inDropped)
			}
		}
	}
	return r, false, nil
}

func checkFile(ctx context.Context, st Storage, name string, part Part, schemas *Schemas, cp *Checkpoint, seen map[int32][]uint64, r *Report) error {
	f, err := st.Open(ctx, name)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := parquet.OpenFile(f, f.Size())
	if err != nil {
		return fmt.Errorf("not a readable Parquet file: %w", err)
	}
	got, err := FieldsOfParquet(pf.Schema())
	if err != nil {
		return err
	}
	if part.Quarantined() {
		if !slices.EqualFunc(got, QuarantineFields, equalField) {
			return fmt.Errorf("columns %s, want the quarantine columns %s", describe(got), describe(QuarantineFields))
		}
	} else {
		if t, _ := pf.Lookup(MetaEventType); t != part.EventType {
			return fmt.Errorf("records event type %q, its directory says %q", t, part.EventType)
		}
		v, _ := pf.Lookup(MetaSchemaVersion)
		version, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("no schema version in its metadata (%q)", v)
		}
		sc := schemas.Get(part.EventType)
		if sc == nil {
			return fmt.Errorf("no schema %s", SchemaName(part.EventType))
		}
		want := sc.FieldsOf(version)
		if want == nil {
			return fmt.Errorf("schema version %d is not in %s", version, SchemaName(part.EventType))
		}
		want = append(slices.Clone(want), LineageFields...)
		if !slices.EqualFunc(got, want, equalField) {
			return fmt.Errorf("columns %s, but version %d of %s says %s", describe(got), version, SchemaName(part.EventType), describe(want))
		}
	}
	mark, inCheckpoint := cp.Partitions[part.Partition]
	rd := parquet.NewGenericReader[lineageRow](pf)
	defer rd.Close()
	buf := make([]lineageRow, 1024)
	var rows int64
	first, last := int64(-1), int64(-1)
	var dups, past, before, wrongPart int64
	for {
		n, err := rd.Read(buf)
		for _, row := range buf[:n] {
			rows++
			if first < 0 {
				first = row.Offset
			}
			last = row.Offset
			if row.Partition != part.Partition {
				wrongPart++
				continue
			}
			switch {
			case !inCheckpoint || row.Offset >= mark.Next:
				past++
			case row.Offset < mark.Start:
				before++
			default:
				i := row.Offset - mark.Start
				bits := seen[part.Partition]
				if bits[i/64]&(1<<(i%64)) != 0 {
					dups++
				}
				bits[i/64] |= 1 << (i % 64)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read rows: %w", err)
		}
	}
	if part.Quarantined() {
		r.Quarantined += rows
	} else {
		r.Rows[part.EventType] += rows
	}
	var errs []error
	if rows == 0 {
		errs = append(errs, errors.New("holds no rows"))
	} else if first != part.First || last != part.Last {
		errs = append(errs, fmt.Errorf("holds offsets %d to %d, its name says %d to %d", first, last, part.First, part.Last))
	}
	if wrongPart > 0 {
		errs = append(errs, fmt.Errorf("%d rows of another partition than %d", wrongPart, part.Partition))
	}
	if dups > 0 {
		errs = append(errs, fmt.Errorf("%d offsets already in another file", dups))
	}
	if past > 0 {
		errs = append(errs, fmt.Errorf("%d offsets at or past the checkpoint (left by an interrupted extract; the next extract removes the file)", past))
	}
	if before > 0 {
		errs = append(errs, fmt.Errorf("%d offsets before partition %d's start %d", before, part.Partition, mark.Start))
	}
	return errors.Join(errs...)
}

func equalField(a, b Field) bool {
	return a.Name == b.Name && a.Kind == b.Kind && slices.EqualFunc(a.Fields, b.Fields, equalField)
}

func describe(fields []Field) string {
	s := "("
	for i, f := range fields {
		if i > 0 {
			s += ", "
		}
		s += f.Name + " " + string(f.Kind)
		if f.Kind == KindStruct {
			s += describe(f.Fields)
		}
	}
	return s + ")"
}

// Types lists the event types the report counted rows of, sorted.
func (r *Report) Types() []string {
	types := make([]string, 0, len(r.Rows))
	for t := range r.Rows {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
