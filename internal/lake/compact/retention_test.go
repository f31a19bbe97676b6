package compact_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
)

// The days of the retention tests' events: laketest's three days. At
// dropClock, with a day's retention, the first is dropped and the others
// are kept.
const (
	day1 = "2026-01-01"
	day2 = "2026-01-02"
)

func dropClock() time.Time { return day.Add(60 * time.Hour) } // 2026-01-03T12:00Z

// retentionLake is a lake of three days of events in small files, and
// three quarantined records whose file was written on the first day.
// It returns the lake's folder, the broker's address, and the events per
// day as the query package counts them.
func retentionLake(t *testing.T) (dir, addr string, perDay map[string]int64) {
	t.Helper()
	addr = extracttest.StartBroker(t)
	dir = filepath.Join(t.TempDir(), "lake")
	extracttest.Produce(t, addr, laketest.Config{Events: 1200}, nil, []byte("not json"), []byte(`{"event_type":`), []byte("{}}"))
	if _, err := extracttest.NewExtractor(t, addr, dir, extract.MaxRows(40)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	quarantine, err := filepath.Glob(filepath.Join(dir, "quarantine", "*.parquet"))
	if err != nil || len(quarantine) == 0 {
		t.Fatalf("no quarantine file (%v)", err)
	}
	for _, f := range quarantine {
		written := day.Add(20 * time.Hour)
		if err := os.Chtimes(f, written, written); err != nil {
			t.Fatal(err)
		}
	}
	return dir, addr, eventsPerDay(t, dir)
}

// eventsPerDay counts the events of each day as questlog query sees them.
func eventsPerDay(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	return extracttest.ViewCounts(t, dir, "CAST(event_date AS VARCHAR)")
}

// dayFiles are the published files left of a day's folders.
func dayFiles(t *testing.T, dir, date string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "events", "*", "event_date="+date, "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func without(m map[string]int64, key string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// sameDays fails the test unless got and want count the same events each day.
func sameDays(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if d := extracttest.CountsDiffer(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// checkDropped runs lake check: clean, and accounting for day1 and the
// quarantine as dropped by retention.
func checkDropped(t *testing.T, dir string, perDay map[string]int64) *lake.Report {
	t.Helper()
	return checkCounts(t, dir, lakeCounts{
		droppedDays: []string{day1},
		dropped:     perDay[day1] + 3, // and the 3 quarantined records
		rows:        perDay[day2] + perDay["2026-01-03"],
	})
}

// lakeCounts are what lake check should count: the days retention
// dropped and their records, the rows kept, and the quarantined records.
type lakeCounts struct {
	droppedDays               []string
	dropped, rows, quarantine int64
}

// checkCounts runs lake check: clean, and counting want.
func checkCounts(t *testing.T, dir string, want lakeCounts) *lake.Report {
	t.Helper()
	r := extracttest.CheckLake(t, dir)
	if !slices.Equal(r.DroppedDays, want.droppedDays) {
		t.Errorf("lake check: dropped days %v, want %v", r.DroppedDays, want.droppedDays)
	}
	if r.Dropped != want.dropped {
		t.Errorf("lake check: %d records dropped by retention, want %d", r.Dropped, want.dropped)
	}
	var kept int64
	for _, n := range r.Rows {
		kept += n
	}
	if kept != want.rows || r.Quarantined != want.quarantine {
		t.Errorf("lake check: %d rows and %d quarantined, want %d and %d", kept, r.Quarantined, want.rows, want.quarantine)
	}
	return r
}

func TestLakeRetentionDropsWholeOldDays(t *testing.T) {
	t.Parallel()
	dir, _, perDay := retentionLake(t)
	if len(perDay) != 3 {
		t.Fatalf("events on days %v, want three days", perDay)
	}
	c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Retention.Retired, []string{day1}) || !slices.Equal(sum.Retention.Dropped, []string{day1}) {
		t.Errorf("retired %v and dropped %v, want %s", sum.Retention.Retired, sum.Retention.Dropped, day1)
	}
	if want := perDay[day1] + 3; sum.Retention.Rows != want {
		t.Errorf("retention accounted for %d rows, want %d", sum.Retention.Rows, want)
	}
	if left := dayFiles(t, dir, day1); len(left) > 0 {
		t.Errorf("files of %s left: %v", day1, left)
	}
	if dirs, _ := filepath.Glob(filepath.Join(dir, "events", "*", "event_date="+day1)); len(dirs) > 0 {
		t.Errorf("folders of %s left: %v", day1, dirs)
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "quarantine", "*.parquet")); len(q) > 0 {
		t.Errorf("quarantine files of %s left: %v", day1, q)
	}
	sameDays(t, "query after the drop", eventsPerDay(t, dir), without(perDay, day1))
	checkDropped(t, dir, perDay)

	// A second pass has nothing more to do, and the lake stays as sound.
	sum, err = c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Retention.Retired)+sum.Retention.Removed > 0 {
		t.Errorf("second pass: %+v", sum.Retention)
	}
	checkDropped(t, dir, perDay)
}

// A crash at any point of removing a day's files leaves the day whole to
// no reader: they all see none of it, lake check counts it as dropped,
// and the next pass removes the rest.
func TestLakeRetentionCrashMidDropIsFinishedNextPass(t *testing.T) {
	t.Parallel()
	for _, after := range []int{1, 7, 30} {
		t.Run(fmt.Sprintf("crash after %d removals", after), func(t *testing.T) {
			dir, _, perDay := retentionLake(t)
			removed := 0
			crash := errors.New("crash")
			c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock),
				compact.WithDropHook(func(string) error {
					removed++
					if removed == after {
						return crash
					}
					return nil
				}))
			if _, err := c.Compact(context.Background()); !errors.Is(err, crash) {
				t.Fatalf("pass: %v, want the crash", err)
			}
			if len(dayFiles(t, dir, day1)) == 0 {
				t.Fatalf("nothing of %s left after %d removals: make the crash earlier", day1, after)
			}
			sameDays(t, "query after the crash", eventsPerDay(t, dir), without(perDay, day1))
			checkDropped(t, dir, perDay)

			c = newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
			sum, err := c.Compact(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Retention.Retired) > 0 {
				t.Errorf("the next pass retired %v again", sum.Retention.Retired)
			}
			if left := dayFiles(t, dir, day1); len(left) > 0 {
				t.Errorf("files of %s left after the next pass: %v", day1, left)
			}
			sameDays(t, "query after the next pass", eventsPerDay(t, dir), without(perDay, day1))
			checkDropped(t, dir, perDay)
		})
	}
}

// During the grace period a retired day's files are still there, for
// readers that listed the lake before; questlog's readers no longer count
// them. A file an extract far behind publishes into the retired day is
// added to its manifest before it is removed.
func TestLakeRetentionGraceAndLateFiles(t *testing.T) {
	t.Parallel()
	dir, addr, perDay := retentionLake(t)
	c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(time.Hour), compact.Clock(dropClock))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sum.Retention.Retired, []string{day1}) || sum.Retention.Removed != 0 {
		t.Fatalf("retention: %+v, want %s retired and nothing removed yet", sum.Retention, day1)
	}
	if len(dayFiles(t, dir, day1)) == 0 {
		t.Fatalf("the files of %s went before their grace period", day1)
	}
	sameDays(t, "query during the grace period", eventsPerDay(t, dir), without(perDay, day1))
	if r := checkDropped(t, dir, perDay); r.Retired == 0 {
		t.Errorf("lake check: no retired file counted, want those of %s", day1)
	}

	// An extract far behind writes more of the retired day.
	late := extracttest.Produce(t, addr, laketest.Config{Events: 200, Seed: 9, Span: time.Hour}, nil)
	if _, err := extracttest.NewExtractor(t, addr, dir, extract.MaxRows(40)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var lateRows int64
	for _, n := range late.PerType {
		lateRows += n
	}
	sameDays(t, "query after late files", eventsPerDay(t, dir), without(perDay, day1))
	perDay[day1] += lateRows
	checkDropped(t, dir, perDay)

	c = newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
	sum, err = c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Retention.Rows != lateRows || !slices.Equal(sum.Retention.Dropped, []string{day1}) {
		t.Errorf("retention: %+v, want the %d late rows added to %s and the day dropped", sum.Retention, lateRows, day1)
	}
	if left := dayFiles(t, dir, day1); len(left) > 0 {
		t.Errorf("files of %s left: %v", day1, left)
	}
	checkDropped(t, dir, perDay)
}

// lake check tells what retention dropped from what was lost.
func TestLakeCheckTellsRetentionFromLoss(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"a day's folder removed by hand, without a manifest", func(t *testing.T, dir string) {
			folders, _ := filepath.Glob(filepath.Join(dir, "events", "event_type=buy_item", "event_date="+day2))
			if len(folders) != 1 {
				t.Fatalf("no buy_item folder of %s", day2)
			}
			if err := os.RemoveAll(folders[0]); err != nil {
				t.Fatal(err)
			}
		}, "are in no file"},
		{"a manifest that accounts for fewer rows than its files held", func(t *testing.T, dir string) {
			name := filepath.Join(dir, filepath.FromSlash(lake.RetentionName(day1)))
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			var m lake.RetentionManifest
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m.Files[0].Rows--
			b, _ = json.Marshal(m)
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "records lost"},
		{"a manifest removed by hand", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(lake.RetentionName(day1)))); err != nil {
				t.Fatal(err)
			}
		}, "are in no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _, perDay := retentionLake(t)
			c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
			if _, err := c.Compact(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkDropped(t, dir, perDay)
			tt.damage(t, dir)
			r, err := lake.Check(context.Background(), lake.Dir(dir), extracttest.Topic)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || !strings.Contains(strings.Join(r.Problems, "\n"), tt.want) {
				t.Fatalf("lake check found %q, want a problem saying %q", r.Problems, tt.want)
			}
		})
	}
}

func TestLakeRetentionRefusesTooShort(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 59 * time.Minute, -time.Hour} {
		if err := compact.Validate(compact.LakeRetention(d)); err == nil {
			t.Errorf("LakeRetention(%s) accepted", d)
		}
	}
	for _, d := range []time.Duration{0, time.Hour, 30 * 24 * time.Hour} {
		if err := compact.Validate(compact.LakeRetention(d)); err != nil {
			t.Errorf("LakeRetention(%s): %v", d, err)
		}
	}
}

// On an S3 lake (a real S3-compatible server, moto_server), lake
// retention retires and drops the same way: a crash mid-drop leaves no
// reader counting part of the day, lake check tells the drop from a loss,
// and the next pass finishes it.
func TestLakeRetentionOnS3(t *testing.T) {
	srv := s3test.Start(t)
	addr := extracttest.StartBroker(t)
	loc := srv.NewBucket(t)
	want := extracttest.Produce(t, addr, laketest.Config{Events: 600}, nil)
	if _, err := extracttest.NewExtractor(t, addr, loc, extract.MaxRows(40)).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := lake.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	perDay := map[string]int64{}
	for _, ev := range want.Events {
		perDay[ev.Time.UTC().Format(time.DateOnly)]++
	}
	listed := func() (kept, retired int) {
		t.Helper()
		l, err := lake.ListData(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range l.Files {
			if f.Date == day1 {
				t.Errorf("%s is read, though its day is retired", f.Name)
			}
		}
		return len(l.Files), len(l.Retired)
	}
	checked := func() {
		t.Helper()
		r := extracttest.CheckLake(t, loc)
		if r.Dropped != perDay[day1] || !slices.Equal(r.DroppedDays, []string{day1}) {
			t.Errorf("lake check: %d records dropped on days %v, want %d on %s", r.Dropped, r.DroppedDays, perDay[day1], day1)
		}
		var rows int64
		for _, n := range r.Rows {
			rows += n
		}
		if rows != int64(len(want.Events))-perDay[day1] {
			t.Errorf("lake check: %d rows kept, want %d", rows, int64(len(want.Events))-perDay[day1])
		}
	}

	crash := errors.New("crash")
	removed := 0
	c, err := compact.New(st, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock),
		compact.WithDropHook(func(string) error {
			if removed++; removed == 5 {
				return crash
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("pass: %v, want the crash", err)
	}
	if _, retired := listed(); retired == 0 {
		t.Fatal("no retired file left after the crash: crash earlier")
	}
	checked()

	c, err = compact.New(st, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, retired := listed(); retired != 0 {
		t.Errorf("%d files of %s left after the next pass", retired, day1)
	}
	checked()
}

// A file of an old day that cannot be read does not stop the pass (the
// compactor of up would stop with it): the day stays whole, for a later
// pass, and the pass says why.
func TestLakeRetentionSkipsADayWithAnUnreadableFile(t *testing.T) {
	dir, _, _ := retentionLake(t)
	files := dayFiles(t, dir, day1)
	if err := os.WriteFile(files[0], []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if len(sum.Retention.Skipped) != 1 || !strings.Contains(sum.Retention.Skipped[0].Error(), day1) {
		t.Errorf("skipped %v, want day %s", sum.Retention.Skipped, day1)
	}
	if len(sum.Retention.Retired) != 0 || sum.Retention.Removed != 0 {
		t.Errorf("retired %v and removed %d files, want the day whole", sum.Retention.Retired, sum.Retention.Removed)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(lake.RetentionName(day1)))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a manifest of %s: %v", day1, err)
	}
	l, err := lake.ListData(context.Background(), lake.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Retired) != 0 {
		t.Errorf("%d files retired, want none", len(l.Retired))
	}
}

// A retired day whose manifest is damaged (not JSON, a field that does not
// decode, or another day's) is
// skipped with the reason, and the pass goes on (before, it failed, and
// the compactor of up with it): other days are retired, as with an
// unreadable data file, and the manifest is left for a person to look at.
func TestLakeRetentionSkipsADayWithADamagedManifest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, manifest string }{
		{"not JSON", "{\"date\": \"" + day1},
		{"another shape", `{"date": 7}`},
		{"a bad time", `{"date": "` + day1 + `", "updated": "x"}`},
		{"another day", `{"date": "` + day2 + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _, _ := retentionLake(t)
			name := filepath.Join(dir, filepath.FromSlash(lake.RetentionName(day1)))
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(tc.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			sum := passWhenDay2IsOld(t, dir)
			if len(sum.Retention.Skipped) != 1 || !strings.Contains(sum.Retention.Skipped[0].Error(), day1) {
				t.Errorf("skipped %v, want day %s", sum.Retention.Skipped, day1)
			}
			if !slices.Equal(sum.Retention.Retired, []string{day2}) {
				t.Errorf("retired %v, want %s", sum.Retention.Retired, day2)
			}
			if got, err := os.ReadFile(name); err != nil || string(got) != tc.manifest {
				t.Errorf("the damaged manifest was changed: %q, %v", got, err)
			}
		})
	}
}

// passWhenDay2IsOld runs a pass with a day's retention and an hour's grace
// when the second day too is past the retention, and fails the test if the
// pass fails.
func passWhenDay2IsOld(t *testing.T, dir string) compact.Summary {
	t.Helper()
	twoDaysOld := func() time.Time { return dropClock().Add(24 * time.Hour) }
	c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(time.Hour), compact.Clock(twoDaysOld))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	return sum
}

// A day skipped for an unreadable file stays whole, its quarantined
// records included, while a later day is retired: readers see the one and
// not the other. Once the file is mended, lake check counts the skipped
// day's rows and its 3 quarantined records, and only the later day as
// dropped.
func TestLakeRetentionSkippedDayKeepsItsQuarantine(t *testing.T) {
	dir, _, perDay := retentionLake(t)
	files := dayFiles(t, dir, day1)
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := passWhenDay2IsOld(t, dir)
	if !slices.Equal(sum.Retention.Retired, []string{day2}) || len(sum.Retention.Skipped) != 1 {
		t.Fatalf("retired %v, skipped %v: want %s retired and %s skipped", sum.Retention.Retired, sum.Retention.Skipped, day2, day1)
	}
	l, err := lake.ListData(context.Background(), lake.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range l.Retired {
		if f.Quarantined() {
			t.Errorf("%s, quarantined on the skipped day %s, is retired with %s", f.Name, day1, day2)
		}
	}
	if len(l.Quarantine()) == 0 {
		t.Errorf("no quarantined file left visible")
	}
	// Lake check reads every file: with the unreadable one mended, the
	// skipped day must be all there, and only day 2 dropped.
	if err := os.WriteFile(files[0], good, 0o644); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, dir, lakeCounts{
		droppedDays: []string{day2},
		dropped:     perDay[day2],
		rows:        perDay[day1] + perDay["2026-01-03"],
		quarantine:  3,
	})
}

// retireMidCheck is the lake's folder; the first time it lists the
// retention manifests, retention retires a day just after the listing.
type retireMidCheck struct {
	lake.Dir
	once   sync.Once
	retire func()
}

func (s *retireMidCheck) List(ctx context.Context, prefix string) ([]lake.FileInfo, error) {
	infos, err := s.Dir.List(ctx, prefix)
	if prefix == lake.RetentionDir {
		s.once.Do(s.retire)
	}
	return infos, err
}

// A day retired while lake check runs, just after check listed the lake,
// is counted once: as files, the way check listed it, and not also as
// dropped.
func TestLakeCheckCountsADayRetiredMidCheckOnce(t *testing.T) {
	dir, _, _ := retentionLake(t)
	var retired lake.RetentionSummary
	st := &retireMidCheck{Dir: lake.Dir(dir)}
	st.retire = func() {
		var err error
		retired, err = lake.DropOldDays(context.Background(), lake.Dir(dir),
			lake.Retention{Keep: 24 * time.Hour, Grace: time.Hour, Now: dropClock, Topic: extracttest.Topic})
		if err != nil {
			t.Error(err)
		}
	}
	r, err := lake.Check(context.Background(), st, extracttest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(retired.Retired, []string{day1}) {
		t.Fatalf("retention retired %v during the check, want %s", retired.Retired, day1)
	}
	if !r.OK() || r.Dropped != 0 {
		t.Errorf("lake check with %s retired meanwhile: %d dropped, problems %v", day1, r.Dropped, r.Problems)
	}
	if after := extracttest.CheckLake(t, dir); !after.OK() || after.Dropped == 0 {
		t.Errorf("lake check after: %d dropped, problems %v", after.Dropped, after.Problems)
	}
}

// lake check, run over and over while a day is retired and removed file
// by file, always finds the lake sound, and counts either the whole day
// or none of it. Each removal waits until a check has finished since the
// removal before it waited, so that removals never outrun the checks
// however slow the machine: checks run all along the removal, some whole
// between two removals and others across them, though not necessarily one
// whole check after every removal (that doubled the test's checks and made
// it the suite's longest). A fixed pause between removals starved them: a
// check slower than the pause met a removal on every attempt and gave up,
// which is Check's answer to a grace shorter than a check.
func TestLakeCheckIsExactWhileADayIsDropped(t *testing.T) {
	t.Parallel() // paced by its checks, not by the clock
	dir, _, perDay := retentionLake(t)
	var all int64
	for _, n := range perDay {
		all += n
	}
	done := make(chan struct{})
	checked := make(chan struct{}, 1)
	stopped := make(chan struct{}) // the checker returned
	results := make(chan error, 1)
	go func() {
		defer close(stopped)
		results <- checkUntil(done, checked, dir, all, perDay[day1])
	}()
	c := newCompactor(t, dir, compact.LakeRetention(24*time.Hour), compact.Grace(0), compact.Clock(dropClock),
		compact.WithDropHook(func(string) error {
			select {
			case <-checked:
			case <-stopped:
			}
			return nil
		}))
	_, err := c.Compact(context.Background())
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-results; err != nil {
		t.Fatal(err)
	}
}

// checkUntil runs lake check until done is closed: each must be sound and
// count the whole first day (rows, and its 3 quarantined records) or none
// of it (dropped).
func checkUntil(done <-chan struct{}, checked chan<- struct{}, dir string, all, day int64) error {
	for checks := 0; ; checks++ {
		select {
		case <-done:
			if checks == 0 {
				return errors.New("no check ran during the drop")
			}
			return nil
		default:
		}
		r, err := lake.Check(context.Background(), lake.Dir(dir), extracttest.Topic)
		if err != nil {
			return err
		}
		if !r.OK() {
			return fmt.Errorf("check %d: %s", checks, strings.Join(r.Problems, "; "))
		}
		var rows int64
		for _, n := range r.Rows {
			rows += n
		}
		whole := rows == all && r.Quarantined == 3 && r.Dropped == 0
		gone := rows == all-day && r.Quarantined == 0 && r.Dropped == day+3
		if !whole && !gone {
			return fmt.Errorf("check %d: %d rows, %d quarantined, %d dropped: part of the day", checks, rows, r.Quarantined, r.Dropped)
		}
		select {
		case checked <- struct{}{}:
		default:
		}
	}
}
