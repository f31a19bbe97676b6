package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// files makes data files from names.
func files(t *testing.T, names ...string) []DataFile {
	t.Helper()
	out := make([]DataFile, len(names))
	for i, n := range names {
		p, ok := ParsePart(n)
		if !ok {
			t.Fatalf("%s is not a data file name", n)
		}
		out[i] = DataFile{Part: p, Name: n}
	}
	return out
}

// TestResolve: within a group, a file whose range lies inside another's is
// replaced by it; a partial overlap is reported; groups never interact.
func TestResolve(t *testing.T) {
	const dir = "events/event_type=buy_item/event_date=2026-11-29/"
	const other = "events/event_type=sell_item/event_date=2026-11-29/"
	tests := []struct {
		name      string
		files     []string
		effective []string
		replaced  map[string]string // file: by
		overlaps  int
	}{
		{"an extract's files are all read",
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-8-9.parquet", dir + "part-1-1-5.parquet"},
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-8-9.parquet", dir + "part-1-1-5.parquet"}, nil, 0},
		{"a merged file replaces the files of its range",
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-8-9.parquet", dir + "part-0-1-9.parquet", dir + "part-0-12-20.parquet"},
			[]string{dir + "part-0-1-9.parquet", dir + "part-0-12-20.parquet"},
			map[string]string{dir + "part-0-1-5.parquet": dir + "part-0-1-9.parquet", dir + "part-0-8-9.parquet": dir + "part-0-1-9.parquet"}, 0},
		{"a merge of merged files replaces them all",
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-8-9.parquet", dir + "part-0-1-9.parquet", dir + "part-0-12-20.parquet", dir + "part-0-1-20.parquet"},
			[]string{dir + "part-0-1-20.parquet"},
			map[string]string{dir + "part-0-1-5.parquet": dir + "part-0-1-20.parquet", dir + "part-0-8-9.parquet": dir + "part-0-1-20.parquet",
				dir + "part-0-1-9.parquet": dir + "part-0-1-20.parquet", dir + "part-0-12-20.parquet": dir + "part-0-1-20.parquet"}, 0},
		{"a range ending where the next begins is no overlap",
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-6-6.parquet"},
			[]string{dir + "part-0-1-5.parquet", dir + "part-0-6-6.parquet"}, nil, 0},
		{"other groups with the same offsets are other records",
			[]string{dir + "part-0-1-9.parquet", other + "part-0-2-3.parquet", dir + "part-1-2-3.parquet", "quarantine/part-0-4-4.parquet"},
			[]string{dir + "part-0-1-9.parquet", dir + "part-1-2-3.parquet", other + "part-0-2-3.parquet", "quarantine/part-0-4-4.parquet"}, nil, 0},
		{"quarantine files are resolved too",
			[]string{"quarantine/part-0-4-4.parquet", "quarantine/part-0-4-9.parquet"},
			[]string{"quarantine/part-0-4-9.parquet"}, map[string]string{"quarantine/part-0-4-4.parquet": "quarantine/part-0-4-9.parquet"}, 0},
		{"a partial overlap is an error, not resolved",
			[]string{dir + "part-0-1-9.parquet", dir + "part-0-5-12.parquet"},
			[]string{dir + "part-0-1-9.parquet", dir + "part-0-5-12.parquet"}, nil, 1},
		{"a partial overlap inside a file that holds both is resolved",
			[]string{dir + "part-0-1-9.parquet", dir + "part-0-5-12.parquet", dir + "part-0-1-12.parquet"},
			[]string{dir + "part-0-1-12.parquet"},
			map[string]string{dir + "part-0-1-9.parquet": dir + "part-0-1-12.parquet", dir + "part-0-5-12.parquet": dir + "part-0-1-12.parquet"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			effective, replaced, overlaps := Resolve(files(t, tt.files...))
			if got := Names(effective); !slices.Equal(got, tt.effective) {
				t.Errorf("effective %q, want %q", got, tt.effective)
			}
			got := map[string]string{}
			for _, r := range replaced {
				got[r.Name] = r.By.Name
			}
			if len(got) != len(tt.replaced) {
				t.Errorf("replaced %v, want %v", got, tt.replaced)
			}
			for f, by := range tt.replaced {
				if got[f] != by {
					t.Errorf("%s replaced by %q, want %q", f, got[f], by)
				}
			}
			if len(overlaps) != tt.overlaps {
				t.Errorf("overlaps %v, want %d", overlaps, tt.overlaps)
			}
		})
	}
}

func TestListDataSortsOutPendingAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"events/event_type=buy_item/event_date=2026-11-29/part-0-1-5.parquet",
		"events/event_type=buy_item/event_date=2026-11-29/part-0-6-9.parquet",
		"events/event_type=buy_item/event_date=2026-11-29/part-0-1-9.parquet",
		"events/event_type=buy_item/event_date=2026-11-29/.pending-0a1b2c3d4e5f-part-0-10-12.parquet.tmp",
		"events/event_type=buy_item/event_date=2026-11-29/.pending-0a1b2c3d4e5f-merge-part-0-1-12.parquet.tmp",
		"events/event_type=buy_item/event_date=2026-11-29/notes.txt",
		"quarantine/part-0-13-13.parquet",
		"_checkpoints/events.json",
	}
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ListData(context.Background(), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := Names(l.Files); !slices.Equal(got, []string{names[2], names[6]}) {
		t.Errorf("files %q", got)
	}
	if got := Names(l.Events()); !slices.Equal(got, []string{names[2]}) {
		t.Errorf("events %q", got)
	}
	if got := Names(l.Quarantine()); !slices.Equal(got, []string{names[6]}) {
		t.Errorf("quarantine %q", got)
	}
	if len(l.Replaced) != 2 || len(l.Pending) != 2 || len(l.Foreign) != 1 || l.Err() != nil {
		t.Errorf("replaced %v, pending %v, foreign %v, err %v", l.Replaced, l.Pending, l.Foreign, l.Err())
	}
	for _, fi := range l.Pending {
		if IsMergePending(fi.Name) != strings.Contains(fi.Name, "merge-") {
			t.Errorf("IsMergePending(%s) = %v", fi.Name, IsMergePending(fi.Name))
		}
	}
	if l.Files[0].Size != int64(len(names[2])) || l.Files[0].ModTime.IsZero() {
		t.Errorf("file info %+v", l.Files[0])
	}
}

// TestListDataWhileAMergeIsPublished: a merge publishes its file and
// removes its inputs (at once, with no grace period) after a listing read
// their folder and before it stat-ed the files. The listing must hold the
// inputs or the merged file, never neither: it read the folder again.
// Before, it skipped the removed inputs and never saw the merged file, and
// a reader (the dashboard's snapshot, say) counted the lake short without
// a word.
func TestListDataWhileAMergeIsPublished(t *testing.T) {
	dir := t.TempDir()
	const folder = "events/event_type=buy_item/event_date=2026-11-29/"
	pending := folder + ".pending-0a1b2c3d4e5f-merge-part-0-1-9.parquet.tmp"
	inputs := []string{folder + "part-0-1-5.parquet", folder + "part-0-6-9.parquet"}
	merged, other := folder+"part-0-1-9.parquet", folder+"part-0-10-12.parquet"
	for _, n := range append([]string{pending, other}, inputs...) {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	published := false
	afterReadDir = func(d string) {
		if published || filepath.Base(d) != "event_date=2026-11-29" {
			return
		}
		published = true
		if err := os.Rename(filepath.Join(dir, pending), filepath.Join(dir, merged)); err != nil {
			t.Error(err)
		}
		for _, n := range inputs {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { afterReadDir = nil })
	l, err := ListData(context.Background(), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !published {
		t.Fatal("the merge was not published while listing")
	}
	if got, want := Names(l.Events()), []string{merged, other}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if len(l.Pending) != 0 || len(l.Replaced) != 0 {
		t.Errorf("pending %v, replaced %v", l.Pending, l.Replaced)
	}
}

// A folder that gains a file while it is read is read again: its names,
// read a second time after its files were stat-ed, differ. (A folder too
// large for one read could otherwise miss both a merge's inputs, removed,
// and its file, published meanwhile.)
func TestListReadsAFolderAgainWhenItGainsAFile(t *testing.T) {
	dir := t.TempDir()
	const folder = "events/event_type=buy_item/event_date=2026-11-29/"
	merged, other := folder+"part-0-1-9.parquet", folder+"part-0-10-12.parquet"
	write := func(n string) {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			t.Error(err)
		}
	}
	write(other)
	published := false
	afterReadDir = func(d string) {
		if !published && filepath.Base(d) == "event_date=2026-11-29" {
			published = true
			write(merged) // a name the first read did not see
		}
	}
	t.Cleanup(func() { afterReadDir = nil })
	files, err := Dir(dir).List(context.Background(), "events")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if want := []string{merged, other}; !slices.Equal(names, want) {
		t.Errorf("listed %q, want %q", names, want)
	}
}

// Listing a folder whose files are being removed by the thousand (lake
// retention dropping a day) waits until it stands still instead of
// failing: a read that meets a removal is read again, backing off.
//
// The removals start only once a listing has read the folder, and that
// listing stats its files only after the first removals, so it meets a
// change for certain whatever the machine's load: the test fails if no
// listing read the folder again. Each listing must also hold what the
// folder held at some instant: the files not yet removed, all of them.
func TestListWaitsOutAFolderBeingEmptied(t *testing.T) {
	const listers, total = 8, 3000
	dir := t.TempDir()
	folder := filepath.Join(dir, "events", "event_type=buy_item", "event_date=2026-11-29")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string // in the order they are removed
	for i := range total {
		n := fmt.Sprintf("part-0-%d-%d.parquet", i, i)
		if err := os.WriteFile(filepath.Join(folder, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	// The first read of the folder starts the removals (read) and waits
	// for the first ten (someRemoved) before its listing stats the files.
	var (
		reads       atomic.Int64 // of the folder, by all the listings
		firstRead   sync.Once
		read        = make(chan struct{})
		someRemoved = make(chan struct{})
		removedSome sync.Once
	)
	afterReadDir = func(d string) {
		if d != folder {
			return
		}
		reads.Add(1)
		firstRead.Do(func() {
			close(read)
			<-someRemoved
		})
	}
	t.Cleanup(func() { afterReadDir = nil })
	removed := make(chan error, 1)
	go func() {
		defer removedSome.Do(func() { close(someRemoved) }) // on an error too
		<-read
		for i, n := range names {
			if err := os.Remove(filepath.Join(folder, n)); err != nil {
				removed <- err
				return
			}
			if i == 9 {
				removedSome.Do(func() { close(someRemoved) })
			}
		}
		removed <- nil
	}()
	type listed struct {
		files []FileInfo
		err   error
	}
	results := make(chan listed, listers)
	for range listers {
		go func() {
			files, err := Dir(dir).List(context.Background(), "events")
			results <- listed{files, err}
		}()
	}
	for range listers {
		r := <-results
		if r.err != nil {
			t.Errorf("list while the folder empties: %v", r.err)
			continue
		}
		// At every instant the folder held the files not yet removed:
		// names[k:] for some k.
		got := make([]string, len(r.files))
		for i, f := range r.files {
			got[i] = f.Name
		}
		want := make([]string, 0, len(got))
		for _, n := range names[max(total-len(got), 0):] {
			want = append(want, "events/event_type=buy_item/event_date=2026-11-29/"+n)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("a listing of %d files is not what the folder held at any instant (the %d removed last)", len(got), len(want))
		}
	}
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n <= listers {
		t.Errorf("the folder was read %d times by %d listings: none read it again, none met a removal", n, listers)
	}
}
