package compact_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/lake/pqwrite"
	"github.com/questlog/questlog/internal/query"
	"github.com/questlog/questlog/internal/report"
)

// day is the first day of the events the tests produce (laketest's
// default start); they span three days.
var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// afterwards is a clock at which every day of the tests' events is over.
func afterwards() time.Time { return day.Add(10 * 24 * time.Hour) }

// quest is a raw event of a type of the tests' own.
func quest(i int, fields string) []byte {
	return fmt.Appendf(nil, `{"event_type":"quest_done","event_time":"2026-01-02T10:%02d:00.000000Z","user":"q%d"%s}`, i%60, i, fields)
}

// questRounds are the quest events of each round: their schema widens
// from round to round (score int then float, detail a struct then a
// string, flag a bool then a string), so that one group's files have
// three schema versions.
var questRounds = []func(i int) []byte{
	func(i int) []byte { return quest(i, fmt.Sprintf(`,"score":%d,"flag":true`, i)) },
	func(i int) []byte { return quest(i, fmt.Sprintf(`,"score":%d.5,"detail":{"a":%d,"b":"x\"y"}`, i, i)) },
	func(i int) []byte { return quest(i, `,"detail":"text","flag":"yes"`) },
}

// smallLake builds a lake as a following extract makes it: many small
// files (a commit every 15 rows of a file) of three days, extracted in
// rounds, with a type whose schema widened between them. It returns the
// lake's folder, the broker's address and what was produced.
func smallLake(t *testing.T, events int) (dir, addr string, want *extracttest.Produced) {
	t.Helper()
	addr = extracttest.StartBroker(t)
	dir = filepath.Join(t.TempDir(), "lake")
	return dir, addr, fillSmallLake(t, addr, dir, events, 40)
}

// fillSmallLake fills the lake at loc (a folder or an s3:// location)
// through the broker at addr in rounds, each of events/3 events and
// quests quest events of that round's schema, extracted with a commit
// every 15 rows; it returns what was produced.
func fillSmallLake(t *testing.T, addr, loc string, events, quests int) *extracttest.Produced {
	t.Helper()
	var want *extracttest.Produced
	for r, round := range questRounds {
		var raw [][]byte
		for i := range quests {
			raw = append(raw, round(i))
		}
		p := extracttest.Produce(t, addr, laketest.Config{Events: events / len(questRounds), Seed: uint64(r + 1)}, nil, raw...)
		p.PerType["quest_done"] += int64(len(raw))
		if want == nil {
			want = p
		} else {
			want.Add(p)
		}
		if _, err := extracttest.NewExtractor(t, addr, loc, extract.MaxRows(15)).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// crashAt is a hook that fails a pass with errCrash the nth time it
// reaches point.
func crashAt(point compact.Point, nth int) compact.Option {
	n := 0
	return compact.WithHook(func(p compact.Point, _ lake.Part) error {
		if p == point {
			if n++; n == nth {
				return errCrash
			}
		}
		return nil
	})
}

func newCompactor(t *testing.T, dir string, opts ...compact.Option) *compact.Compactor {
	t.Helper()
	c, err := compact.New(lake.Dir(dir), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// filesPerGroup is the most files any group of the lake in the folder
// dir has in its effective set, and the files of the effective set.
func filesPerGroup(t *testing.T, dir string) (most, files int) {
	t.Helper()
	return filesPerGroupIn(t, lake.Dir(dir))
}

// filesPerGroupIn is filesPerGroup for the lake in st.
func filesPerGroupIn(t *testing.T, st lake.Storage) (most, files int) {
	t.Helper()
	l, err := lake.ListData(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	n := map[lake.Group]int{}
	for _, f := range l.Events() {
		n[f.Group()]++
		most = max(most, n[f.Group()])
	}
	return most, len(l.Events())
}

// fingerprint sums a hash of every event's lineage and main fields, as
// the query package's events view reads them.
const fingerprint = `SELECT count(*), sum(hash(kafka_partition, kafka_offset, event_id, "user", status, item_type, quantity, http.user_agent, event_date)) FROM events`

// readersAgree checks that questlog's readers, lake check and the query
// package's views, each count every record produced once, and that the
// events view's fingerprint is print (when not empty).
func readersAgree(t *testing.T, dir string, want *extracttest.Produced, print string) *lake.Report {
	t.Helper()
	r, _ := readersAgreeAt(t, dir, want, print)
	return r
}

// readersAgreeAt is readersAgree for the lake at loc (a folder or an
// s3:// location), its query views opened with opts; it also returns the
// events view's fingerprint.
func readersAgreeAt(t *testing.T, loc string, want *extracttest.Produced, print string, opts ...query.Option) (*lake.Report, string) {
	t.Helper()
	r := extracttest.CheckLake(t, loc)
	extracttest.SameCounts(t, "lake check", r.Rows, want.PerType)
	db, err := query.Open(context.Background(), loc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]int64{}
	for typ := range want.PerType {
		got[typ] = count(t, db, `SELECT count(*) FROM "`+typ+`"`)
	}
	extracttest.SameCounts(t, "query's views", got, want.PerType)
	now := fingerprintOf(t, db)
	if print != "" && now != print {
		t.Errorf("the events view's fingerprint is %s, was %s", now, print)
	}
	return r, now
}

func count(t *testing.T, db *query.DB, q string) int64 {
	t.Helper()
	res, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res.Rows[0][0].(int64)
}

func fingerprintOf(t *testing.T, db *query.DB) string {
	t.Helper()
	res, err := db.Query(context.Background(), fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(res.Rows[0]...)
}

// fingerprintOfLake opens the lake's views and takes their fingerprint.
func fingerprintOfLake(t *testing.T, dir string) string {
	t.Helper()
	db, err := query.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return fingerprintOf(t, db)
}

// onePerOffset is the README's query for a reader that globs the folder
// and is exact at every instant: one row per offset.
func onePerOffset(dir string) string {
	return "(SELECT DISTINCT ON (kafka_partition, kafka_offset) event_type FROM " + extracttest.Glob(dir) + ")"
}

// globbersAgree checks that a reader that only globs the folder counts
// every record once: true once no replaced file is left.
func globbersAgree(t *testing.T, dir string, want *extracttest.Produced) {
	t.Helper()
	extracttest.SameCounts(t, "duckdb globbing the folder", extracttest.DuckCounts(t, extracttest.OpenDuckDB(t), extracttest.Glob(dir)), want.PerType)
}

func TestCompactMergesEveryGroupOfAClosedDay(t *testing.T) {
	t.Parallel()
	dir, _, want := smallLake(t, 900)
	print := fingerprintOfLake(t, dir)
	most, before := filesPerGroup(t, dir)
	c := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mostAfter, after := filesPerGroup(t, dir)
	t.Logf("%d files (at most %d a group) into %d (at most %d): %d merges of %d files, %d rows, %d removed, %d → %d bytes, in %s",
		before, most, after, mostAfter, len(sum.Merges), sum.Files(), sum.Rows, sum.Removed, sum.In, sum.Out, sum.Duration)
	if mostAfter > 2 || len(sum.Skipped) > 0 || sum.Removed != sum.Files() {
		t.Errorf("at most %d files a group after compacting closed days, want 2 at most; %d of %d merged files removed; skipped %v",
			mostAfter, sum.Removed, sum.Files(), sum.Skipped)
	}
	readersAgree(t, dir, want, print)
	globbersAgree(t, dir, want)
	checkFileLayout(t, dir)

	again, err := c.Compact(context.Background())
	if err != nil || len(again.Merges) > 0 || again.Removed > 0 {
		t.Errorf("a second pass: %d merges, %d removed, %v; want nothing to do", len(again.Merges), again.Removed, err)
	}
}

// checkFileLayout: the merged files are as the extract writes its files:
// at most pqwrite.MaxRowGroups row groups, every column chunk with its
// statistics and page index.
func checkFileLayout(t *testing.T, dir string) {
	t.Helper()
	l, err := lake.ListData(context.Background(), lake.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range l.Events() {
		file, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		pf, err := parquet.OpenFile(file, f.Size)
		if err != nil {
			t.Fatal(err)
		}
		md := pf.Metadata()
		if len(md.RowGroups) > pqwrite.MaxRowGroups {
			t.Errorf("%s: %d row groups", f.Name, len(md.RowGroups))
		}
		for _, rg := range md.RowGroups {
			for _, cc := range rg.Columns {
				if cc.OffsetIndexOffset == 0 || cc.ColumnIndexOffset == 0 || cc.MetaData.Statistics.NullCount < 0 {
					t.Errorf("%s: column %v has no page index", f.Name, cc.MetaData.PathInSchema)
				}
			}
		}
		file.Close()
	}
}

// TestCompactWidensOlderSchemaVersions: the merged quest_done files have
// the type's current schema, and the rows written with older versions
// have their values widened as the extract would have written them.
func TestCompactWidensOlderSchemaVersions(t *testing.T) {
	t.Parallel()
	dir, _, _ := smallLake(t, 300)
	const q = `SELECT count(*) FILTER (score = kafka_offset * 0 + CAST(regexp_extract("user", '[0-9]+') AS INT) AND flag = 'true' AND detail IS NULL),
		count(*) FILTER (score = CAST(regexp_extract("user", '[0-9]+') AS INT) + 0.5 AND flag IS NULL AND detail = '{"a":' || regexp_extract("user", '[0-9]+') || ',"b":"x\"y"}'),
		count(*) FILTER (score IS NULL AND flag = 'yes' AND detail = 'text')
		FROM quest_done`
	rounds := func() string {
		db, err := query.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res.Rows[0]...)
	}
	if got := rounds(); got != "40 40 40" {
		t.Fatalf("before compaction, rows of each round: %s, want 40 each", got)
	}
	sum, err := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0)).Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var quests int
	for _, m := range sum.Merges {
		if m.Into.EventType == "quest_done" {
			quests += len(m.From)
		}
	}
	if quests < 3 {
		t.Fatalf("%d quest_done files merged, want the three rounds' at least", quests)
	}
	if got := rounds(); got != "40 40 40" {
		t.Errorf("after compaction, rows of each round with their values widened: %s, want 40 each", got)
	}
	extracttest.CheckLake(t, dir)
}

var errCrash = errors.New("simulated crash")

// TestCrashAtEveryStepKeepsEveryRecordOnce crashes a compaction at each
// step of a merge: questlog's readers count every record once right
// after the crash; the extract's recovery, run next, removes no merged
// file; the next pass finishes the job; and then a reader that globs the
// folder counts every record once too.
func TestCrashAtEveryStepKeepsEveryRecordOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		point compact.Point
		nth   int // crash the nth time the point is reached
	}{
		{"a merged file written, not published", compact.Written, 1},
		{"a later merged file written, not published", compact.Written, 6},
		{"a merged file published, its inputs still there", compact.Published, 1},
		{"a later merged file published", compact.Published, 4},
		{"the first replaced file removed", compact.Removed, 1},
		{"replaced files half removed", compact.Removed, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has its own broker and lake: they run side by
			// side, and the package's slowest test takes less time.
			t.Parallel()
			dir, addr, want := smallLake(t, 360)
			print := fingerprintOfLake(t, dir)

			// Phase 1: the compaction crashes.
			crash := crashAt(tt.point, tt.nth)
			_, err := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0), crash).Compact(context.Background())
			if !errors.Is(err, errCrash) {
				t.Fatalf("compaction: %v, want the simulated crash", err)
			}

			// Phase 2: questlog's readers count every record once.
			r := readersAgree(t, dir, want, print)
			if tt.point == compact.Written && r.Merging == 0 {
				t.Error("no pending merged file after a crash before publishing it")
			}
			if tt.point != compact.Written {
				if r.Replaced == 0 {
					t.Error("no replaced file after a crash before removing them all")
				}
				// A reader that globs counts the replaced files' records
				// twice, unless it keeps one row per offset (README).
				db := extracttest.OpenDuckDB(t)
				if d := extracttest.CountsDiffer(extracttest.DuckCounts(t, db, extracttest.Glob(dir)), want.PerType); d == "" {
					t.Error("globbing the folder while replaced files are there counts every record once: the test proves nothing")
				}
				extracttest.SameCounts(t, "globbing, one row per offset", extracttest.DuckCounts(t, db, onePerOffset(dir)), want.PerType)
			}

			// Phase 3: an extract starts (as up does after a crash); its
			// recovery removes no merged file, and readers still agree.
			merged := mergedFiles(t, dir)
			if _, err := extracttest.NewExtractor(t, addr, dir).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if after := mergedFiles(t, dir); after != merged {
				t.Errorf("after the extract's recovery %d merged files, before %d", after, merged)
			}
			readersAgree(t, dir, want, print)

			// Phase 4: the next pass finishes; no file is left behind, and
			// even a reader that globs the folder agrees.
			sum, err := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0)).Compact(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if most, _ := filesPerGroup(t, dir); most > 2 {
				t.Errorf("after the next pass a group has %d files", most)
			}
			readersAgree(t, dir, want, print)
			globbersAgree(t, dir, want)
			if r := extracttest.CheckLake(t, dir); r.Replaced != 0 || r.Merging != 0 {
				t.Errorf("after the next pass %d replaced files and %d pending merges are left (it removed %d)", r.Replaced, r.Merging, sum.Removed)
			}
		})
	}
}

// mergedFiles counts the lake's files and pending files that a merge
// made.
func mergedFiles(t *testing.T, dir string) int {
	t.Helper()
	l, err := lake.ListData(context.Background(), lake.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range l.Pending {
		if lake.IsMergePending(p.Name) {
			n++
		}
	}
	for _, f := range append(l.Files, replacedFiles(l)...) {
		// An extract's file holds one commit: at most 15 rows.
		if f.Last-f.First >= 200 {
			n++
		}
	}
	return n
}

func replacedFiles(l *lake.Listing) []lake.DataFile {
	var out []lake.DataFile
	for _, r := range l.Replaced {
		out = append(out, r.DataFile)
	}
	return out
}

// TestReadersCountEveryRecordOnceWhileCompacting runs questlog's readers
// over and over while passes merge the lake's files and remove those they
// replaced: lake check, an interactive query's views and the dashboard
// never count a record twice or miss one. With a grace period longer than
// a read, every read succeeds; with none, a read that meets files removed
// under it again and again may fail, saying so, but is never wrong.
func TestReadersCountEveryRecordOnceWhileCompacting(t *testing.T) {
	t.Run("with a grace period", func(t *testing.T) {
		const grace = 4 * time.Second
		failed := readWhileCompacting(t, grace, func(pass int) {
			if pass > 0 {
				time.Sleep(grace + grace/4) // the files replaced by the last pass go
			}
		})
		if failed > 0 {
			t.Errorf("%d reads failed", failed)
		}
	})
	t.Run("without a grace period", func(t *testing.T) {
		failed := readWhileCompacting(t, 0, func(int) {})
		t.Logf("%d reads failed, every one saying so", failed)
	})
}

// readWhileCompacting compacts a lake in passes (the first day over, then
// the second, then all; then once more to remove what is left), calling
// between before each, while readers read; it fails the test on a wrong
// answer and returns how many reads failed.
func readWhileCompacting(t *testing.T, grace time.Duration, between func(pass int)) (failed int64) {
	ctx := context.Background()
	dir, _, want := smallLake(t, 600)
	print := fingerprintOfLake(t, dir)
	var total int64
	for _, n := range want.PerType {
		total += n
	}
	db, err := query.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dash, err := report.NewDashboard(ctx, dir, nil, report.WithRefresh(time.Nanosecond), report.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	eventsFigure := regexp.MustCompile(`<span class="value">([0-9,]+)</span><span class="label">events</span>`)
	// Each reader returns a wrong answer, or the error that stopped it.
	readers := map[string]func() (wrong string, err error){
		"lake check": func() (string, error) {
			r, err := lake.Check(ctx, lake.Dir(dir), extracttest.Topic)
			if err != nil {
				return "", err
			}
			if !r.OK() {
				return "", fmt.Errorf("problems: %v", r.Problems)
			}
			return extracttest.CountsDiffer(r.Rows, want.PerType), nil
		},
		"query": func() (string, error) {
			res, err := db.Query(ctx, fingerprint)
			if err != nil {
				return "", err
			}
			if got := fmt.Sprint(res.Rows[0]...); got != print {
				return fmt.Sprintf("fingerprint %s, want %s", got, print), nil
			}
			return "", nil
		},
		"dashboard": func() (string, error) {
			rec := httptest.NewRecorder()
			dash.ServeHTTP(rec, httptest.NewRequest("GET", "/dashboard/report", nil))
			m := eventsFigure.FindStringSubmatch(rec.Body.String())
			if m == nil {
				return "", fmt.Errorf("no events figure: %d %.300s", rec.Code, rec.Body.String())
			}
			if got := strings.ReplaceAll(m[1], ",", ""); got != fmt.Sprint(total) {
				return fmt.Sprintf("%s events, want %d", got, total), nil
			}
			return "", nil
		},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, failures atomic.Int64
	for name, read := range readers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				wrong, err := read()
				switch {
				case wrong != "":
					t.Errorf("%s while compacting: %s", name, wrong)
				case err != nil:
					if failures.Add(1) == 1 {
						t.Logf("%s while compacting failed (the first failure): %.300v", name, err)
					}
				}
				reads.Add(1)
			}
		})
	}
	merged := 0
	for pass, at := range []time.Time{day.Add(25 * time.Hour), day.Add(49 * time.Hour), afterwards(), afterwards()} {
		between(pass)
		sum, err := newCompactor(t, dir, compact.Clock(func() time.Time { return at }), compact.Grace(grace)).Compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		merged += sum.Files()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d files merged; %d reads while compacting, %d failed", merged, reads.Load(), failures.Load())
	readersAgree(t, dir, want, print)
	globbersAgree(t, dir, want)
	return failures.Load()
}

// The compactor as a part: Start returns at once and passes run every
// interval; a pass kept out by another compaction's lock is skipped; a
// pass that fails ends the part, said on Failed; Stop stops it.
func TestCompactorIsAPart(t *testing.T) {
	ctx := context.Background()
	dir, _, want := smallLake(t, 300)

	// Another compaction holds the lake: passes are skipped.
	lock, err := lake.LockCompaction(ctx, lake.Dir(dir), extracttest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newCompactor(t, dir).Compact(ctx); !errors.Is(err, lake.ErrCompactionBusy) {
		t.Fatalf("a pass while another compaction holds the lake: %v, want ErrCompactionBusy", err)
	}
	c := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0), compact.Interval(20*time.Millisecond))
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if most, _ := filesPerGroup(t, dir); most == 1 {
		t.Fatal("the lake was compacted while another compaction held it")
	}
	lock.Release()
	deadline := time.Now().Add(30 * time.Second)
	for most, _ := filesPerGroup(t, dir); most > 2 && time.Now().Before(deadline); most, _ = filesPerGroup(t, dir) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Failed():
		t.Fatalf("a stopped compactor reported %v", err)
	default:
	}
	readersAgree(t, dir, want, "")
	if most, _ := filesPerGroup(t, dir); most > 2 {
		t.Errorf("the running compactor left %d files in a group", most)
	}

	// A pass that fails ends the part.
	dir2, _, _ := smallLake(t, 300)
	failing := newCompactor(t, dir2, compact.Clock(afterwards), compact.Interval(time.Millisecond),
		compact.WithHook(func(compact.Point, lake.Part) error { return errCrash }))
	if err := failing.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failing.Failed():
		if !errors.Is(err, errCrash) {
			t.Errorf("Failed delivered %v, want the crash", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a failing compactor reported nothing")
	}
	if err := failing.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, opt := range map[string]compact.Option{
		"a tiny target":    compact.TargetFileSize(1000),
		"no interval":      compact.Interval(0),
		"a negative grace": compact.Grace(-time.Second),
		"an unknown codec": compact.Compression("lz5"),
		"no topic":         compact.Topic(""),
	} {
		if _, err := compact.New(lake.Dir(t.TempDir()), opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
