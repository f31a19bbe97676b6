package extract_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/lake/pqwrite"
	"github.com/twmb/franz-go/pkg/kgo"
)

const topic = extracttest.Topic

// The helpers of extracttest, as these tests have always spelt them.
var (
	newExtractor = extracttest.NewExtractor
	checkLake    = extracttest.CheckLake
	openDuckDB   = extracttest.OpenDuckDB
	eventsSource = extracttest.Glob
	sameCounts   = extracttest.SameCounts
)

func startBroker(t *testing.T) string { return extracttest.StartBroker(t) }

// produce puts n generated game events (and the given garbage records) on
// the topic, keyed by user as the API does, and waits for every ack.
func produce(t *testing.T, addr string, n int, seed uint64, garbage ...[]byte) *extracttest.Produced {
	t.Helper()
	return produceEdited(t, addr, n, seed, nil, garbage...)
}

// produceEdited is produce with each generated event passed to edit (when
// not nil) first.
func produceEdited(t *testing.T, addr string, n int, seed uint64, edit func(*event.Event), garbage ...[]byte) *extracttest.Produced {
	t.Helper()
	return extracttest.Produce(t, addr, laketest.Config{Events: n, Seed: seed}, edit, garbage...)
}

// duckCounts is the rows per event type as DuckDB reads the lake.
func duckCounts(t *testing.T, db *sql.DB, dir string) map[string]int64 {
	t.Helper()
	return extracttest.DuckCounts(t, db, eventsSource(dir))
}

var garbage = [][]byte{
	[]byte("not json at all"),
	[]byte(`{"event_time":"2026-01-01T00:00:00.000000Z","user":"no type"}`),
	[]byte(`[1,2,3]`),
	[]byte(`{"event_type":"buy_item","event_time":"yesterday"}`),
	[]byte(`{"event_type":"../../etc","event_time":"2026-01-01T00:00:00Z"}`),
	[]byte(`{"event_type":"buy_item","event_time":"2026-01-01T00:00:00Z","kafka_offset":5}`),
	[]byte("{\"event_type\":\"buy_item\", \"user\": \"trunc"),
	[]byte("\xff\xfe binary"),
	{},
}

func TestExtractOnceReadByDuckDB(t *testing.T) {
	addr := startBroker(t)
	want := produce(t, addr, 3000, 1, garbage...)
	dir := filepath.Join(t.TempDir(), "lake")

	sum, err := newExtractor(t, addr, dir).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != int64(len(want.Events)+len(garbage)) || sum.Quarantined != int64(len(garbage)) {
		t.Errorf("summary: %d records, %d quarantined; want %d, %d", sum.Records, sum.Quarantined, len(want.Events)+len(garbage), len(garbage))
	}
	sameCounts(t, "summary", sum.PerType, want.PerType)
	r := checkLake(t, dir)
	sameCounts(t, "lake check", r.Rows, want.PerType)
	if r.Quarantined != int64(len(garbage)) {
		t.Errorf("lake check: %d quarantined, want %d", r.Quarantined, len(garbage))
	}

	db := openDuckDB(t)
	sameCounts(t, "duckdb", duckCounts(t, db, dir), want.PerType)

	// Every field of every event, as DuckDB reads it.
	rows, err := db.Query(`SELECT event_id, event_type, event_time, event_date, schema_version, "user", status, return_code, error,
		item_type, quality, quantity, unit_price, total_price, gold_after, guild, cart_size, item_count,
		http.method, http.path, http.host, http.user_agent, http.remote_addr, kafka_partition, kafka_offset, kafka_timestamp
		FROM ` + eventsSource(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var (
			id, typ, status, method, path, host, ua, remote string
			user, errStr, item, quality, guild              sql.NullString
			qty, unit, total, gold, cart, count             sql.NullInt64
			evTime, kTime, date                             time.Time
			schemaVersion, returnCode, offset               int64
			partition                                       int32
		)
		if err := rows.Scan(&id, &typ, &evTime, &date, &schemaVersion, &user, &status, &returnCode, &errStr,
			&item, &quality, &qty, &unit, &total, &gold, &guild, &cart, &count,
			&method, &path, &host, &ua, &remote, &partition, &offset, &kTime); err != nil {
			t.Fatal(err)
		}
		seen++
		ev, ok := want.Events[id]
		if !ok {
			t.Fatalf("event %s in the lake was never produced", id)
		}
		str := func(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
		num := func(i event.Int) sql.NullInt64 { return sql.NullInt64{Int64: i.V, Valid: i.Set} }
		got := []any{typ, evTime.UnixMicro(), date.Format(time.DateOnly), schemaVersion, user, status, returnCode, errStr,
			item, quality, qty, unit, total, gold, guild, cart, count, method, path, host, ua, remote}
		exp := []any{ev.Type, ev.Time.UnixMicro(), ev.Time.UTC().Format(time.DateOnly), int64(event.SchemaVersion), str(ev.User), ev.Status, int64(ev.ReturnCode()), str(ev.Error),
			str(ev.ItemType), str(ev.Quality), num(ev.Quantity), num(ev.UnitPrice), num(ev.TotalPrice), num(ev.GoldAfter), str(ev.Guild), num(ev.CartSize), num(ev.ItemCount),
			ev.HTTP.Method, ev.HTTP.Path, ev.HTTP.Host, ev.HTTP.UserAgent, ev.HTTP.RemoteAddr}
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("event %s column %d = %v, want %v", id, i, got[i], exp[i])
			}
		}
		if partition < 0 || partition > 3 || offset < 0 || kTime.IsZero() {
			t.Fatalf("event %s lineage: partition %d offset %d timestamp %v", id, partition, offset, kTime)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want.Events) {
		t.Errorf("DuckDB read %d events, want %d", seen, len(want.Events))
	}

	// Filters, which DuckDB answers skipping row groups by the footers'
	// min and max: a wrong bound would lose rows.
	users := map[string]int{}
	bigOrders := 0
	for _, ev := range want.Events {
		if ev.User != "" {
			users[ev.User]++
		}
		if ev.Quantity.Set && ev.Quantity.V >= 3 {
			bigOrders++
		}
	}
	checked := 0
	for user, n := range users {
		var got int
		if err := db.QueryRow(`SELECT count(*) FROM `+eventsSource(dir)+` WHERE "user" = ?`, user).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("DuckDB: %d events of user %s, want %d", got, user, n)
		}
		if checked++; checked == 5 {
			break
		}
	}
	var got int
	if err := db.QueryRow(`SELECT count(*) FROM ` + eventsSource(dir) + ` WHERE quantity >= 3`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != bigOrders || bigOrders == 0 {
		t.Errorf("DuckDB: %d events with quantity >= 3, want %d (and some)", got, bigOrders)
	}

	// The quarantine keeps the raw bytes and says why.
	var n int
	var value []byte
	var why string
	err = db.QueryRow(`SELECT count(*) OVER (), value, error FROM read_parquet('`+filepath.ToSlash(dir)+`/quarantine/*.parquet') WHERE error LIKE '%event_time%RFC 3339%'`).Scan(&n, &value, &why)
	if err != nil {
		t.Fatal(err)
	}
	if string(value) != string(garbage[3]) {
		t.Errorf("quarantined value %q, want %q (error %q)", value, garbage[3], why)
	}

	// A second run finds nothing new and changes nothing.
	sum, err = newExtractor(t, addr, dir).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 0 || sum.Files != 0 {
		t.Errorf("second run: %+v, want nothing", sum)
	}
	sameCounts(t, "lake check after rerun", checkLake(t, dir).Rows, want.PerType)
}

var errCrash = errors.New("simulated crash")

// crashThenRerun runs the extract from the broker at addr into the lake
// at loc with opts, crashed the nth time it reaches point; then more
// events arrive (more produces them) and it runs again to the end. Lake
// check must then count every record of want and more once, and the
// three garbage records want holds quarantined; want has more added.
func crashThenRerun(t *testing.T, addr, loc string, want *extracttest.Produced, point extract.Point, nth int, opts []extract.Option, more func() *extracttest.Produced) {
	t.Helper()
	// Phase 1: crash. Small files make several commits per partition.
	n := 0
	crash := extract.WithHook(func(p extract.Point, _ int32, _ lake.Part) error {
		if p == point {
			if n++; n == nth {
				return errCrash
			}
		}
		return nil
	})
	_, err := newExtractor(t, addr, loc, append(opts, crash)...).Run(context.Background())
	if !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v, want the simulated crash", err)
	}

	// Phase 2: more events arrive, and the extract runs again.
	for k, v := range more().PerType {
		want.PerType[k] += v
	}
	if _, err := newExtractor(t, addr, loc, opts...).Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Phase 3: every record is there once.
	r := checkLake(t, loc)
	sameCounts(t, "lake check", r.Rows, want.PerType)
	if r.Quarantined != 3 {
		t.Errorf("quarantined %d, want 3", r.Quarantined)
	}
}

func TestCrashAndRerunKeepsEveryRecordOnce(t *testing.T) {
	tests := []struct {
		name  string
		point extract.Point
		nth   int // crash at the nth time the point is reached
		opts  []extract.Option
	}{
		{"after the first file", extract.AfterFile, 1, nil},
		{"between files of a commit", extract.AfterFile, 5, nil},
		{"between files of a later commit", extract.AfterFile, 30, nil},
		{"before the first checkpoint", extract.BeforeCheckpoint, 1, nil},
		{"before a later checkpoint", extract.BeforeCheckpoint, 5, nil},
		// 16 KiB per partition: files are published before their commit
		// to stay within it.
		{"between files, after row groups written to stay within memory", extract.AfterFile, 12, []extract.Option{extract.MaxRows(1e6), extract.MemoryBudget(64 << 10)}},
		{"before a checkpoint, after row groups written to stay within memory", extract.BeforeCheckpoint, 2, []extract.Option{extract.MaxRows(1e6), extract.MemoryBudget(64 << 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startBroker(t)
			want := produce(t, addr, 600, 2, garbage[:3]...)
			dir := filepath.Join(t.TempDir(), "lake")

			opts := append([]extract.Option{extract.MaxRows(25)}, tt.opts...)
			crashThenRerun(t, addr, dir, want, tt.point, tt.nth, opts, func() *extracttest.Produced { return produce(t, addr, 200, 3) })
			sameCounts(t, "duckdb", duckCounts(t, openDuckDB(t), dir), want.PerType)
		})
	}
}

// TestMemoryBudgetWritesRowGroups: over its memory budget a partition
// writes its largest file's rows as a row group instead of buffering more:
// no more files, and the same rows, also through DuckDB's filters, which
// skip row groups by their bounds: long strings' bounds are cut (the max
// rounded up) and DuckDB takes them. (DuckDB compares bounds by their
// first 8 bytes; TestPartWriterPagesAndStatistics checks them exactly.)
func TestMemoryBudgetWritesRowGroups(t *testing.T) {
	addr := startBroker(t)
	// User agents longer than the footers keep, not ASCII, one per player.
	agent := func(user string) string { return user + strings.Repeat(" Mozilla/5.0 (é)", 5) }
	want := produceEdited(t, addr, 2000, 6, func(ev *event.Event) { ev.HTTP.UserAgent = agent(ev.User) })
	agents := map[string]int{}
	for _, ev := range want.Events {
		agents[agent(ev.User)]++
	}
	var files, groups []int
	for _, budget := range []int64{32 << 20, 64 << 10} {
		dir := filepath.Join(t.TempDir(), "lake")
		sum, err := newExtractor(t, addr, dir, extract.MemoryBudget(budget)).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, sum.Files)
		sameCounts(t, fmt.Sprintf("lake check, budget %d", budget), checkLake(t, dir).Rows, want.PerType)
		db := openDuckDB(t)
		sameCounts(t, fmt.Sprintf("duckdb, budget %d", budget), duckCounts(t, db, dir), want.PerType)
		var n int
		err = db.QueryRow(`SELECT count(*) FROM (SELECT DISTINCT file_name, row_group_id FROM parquet_metadata('` +
			filepath.ToSlash(dir) + `/events/*/*/*.parquet'))`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, n)
		for ua, n := range agents {
			var got int
			if err := db.QueryRow(`SELECT count(*) FROM `+eventsSource(dir)+` WHERE http.user_agent = ?`, ua).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("budget %d: DuckDB finds %d events with user agent %q, want %d", budget, got, ua, n)
			}
		}
	}
	// Files depend on where fetches end a commit, not on the budget.
	if files[1] > files[0]+files[0]/10 || groups[1] <= 2*groups[0] {
		t.Errorf("budget 32 MiB: %d files, %d row groups; 64 KiB: %d files, %d row groups; want about the same files, many more row groups with the small budget",
			files[0], groups[0], files[1], groups[1])
	}
}

// TestFilesKeepFewRowGroups: a file that has written MaxRowGroups row
// groups (under a tiny memory budget, one event type on one day) is
// finished and a new one begun, and the lake holds the same rows.
func TestFilesKeepFewRowGroups(t *testing.T) {
	addr := startBroker(t)
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := produceEdited(t, addr, 12_000, 7, func(ev *event.Event) { ev.Time = day })
	dir := filepath.Join(t.TempDir(), "lake")
	sum, err := newExtractor(t, addr, dir, extract.MemoryBudget(64<<10)).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "lake check", checkLake(t, dir).Rows, want.PerType)
	db := openDuckDB(t)
	sameCounts(t, "duckdb", duckCounts(t, db, dir), want.PerType)
	var most, full int
	err = db.QueryRow(`SELECT max(n), count(*) FILTER (n = ?) FROM (SELECT file_name, count(DISTINCT row_group_id) AS n
		FROM parquet_metadata('`+filepath.ToSlash(dir)+`/events/*/*/*.parquet') GROUP BY ALL)`, pqwrite.MaxRowGroups).Scan(&most, &full)
	if err != nil {
		t.Fatal(err)
	}
	if most != pqwrite.MaxRowGroups || full == 0 {
		t.Errorf("%d files: at most %d row groups in a file, %d files with %d; want some files full, none fuller",
			sum.Files, most, full, pqwrite.MaxRowGroups)
	}
}

func TestFollowMakesEventsQueryableAndStopsCleanly(t *testing.T) {
	addr := startBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	// A small memory budget: row groups are written while following, and
	// files finished when stopping.
	e := newExtractor(t, addr, dir, extract.Follow(), extract.MaxAge(time.Hour), extract.MemoryBudget(64<<10))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(ctx)
		done <- err
	}()

	want := produce(t, addr, 400, 4)
	// Wait until the follower has read everything, then make it commit.
	for {
		d, _ := e.Progress()
		if d >= 400 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "after flush", checkLake(t, dir).Rows, want.PerType)

	// A second extract on the same lake (extract --once while up follows)
	// is refused and removes nothing the follower wrote.
	second := newExtractor(t, addr, dir)
	if _, err := second.Run(context.Background()); !errors.Is(err, lake.ErrLakeBusy) {
		t.Fatalf("a second extract on a followed lake: %v, want ErrLakeBusy", err)
	}
	sameCounts(t, "after the refused second extract", checkLake(t, dir).Rows, want.PerType)

	more := produce(t, addr, 100, 5)
	for k, v := range more.PerType {
		want.PerType[k] += v
	}
	for {
		if d, _ := e.Progress(); d >= 500 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // stopping commits what it holds
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "after stop", checkLake(t, dir).Rows, want.PerType)
	if err := e.Flush(context.Background()); !errors.Is(err, extract.ErrNotRunning) {
		t.Errorf("Flush after Run: %v, want ErrNotRunning", err)
	}
}

func TestSchemaWidensAndNeverNarrows(t *testing.T) {
	addr := startBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	put := func(values ...string) {
		t.Helper()
		var recs []*kgo.Record
		for _, v := range values {
			// One key: one partition, so the files follow the order below.
			recs = append(recs, &kgo.Record{Key: []byte("k"), Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const head = `{"event_type":"probe","event_time":"2026-03-01T10:00:00.000001Z"`
	dir := filepath.Join(t.TempDir(), "lake")
	run := func() {
		t.Helper()
		if _, err := newExtractor(t, addr, dir).Run(ctx); err != nil {
			t.Fatal(err)
		}
	}

	put(head+`,"n":1,"http":{"path":"/a"}}`, head+`,"n":2,"http":{"path":"/b"},"gone":null}`)
	run()
	// The last event repeats a key (the last value wins) and has a null struct.
	put(head+`,"n":2.5,"http":{"path":"/c","host":"h"},"tags":[1,2]}`, head+`,"n":1,"http":{"path":"/x"},"n":3,"http":null}`)
	run()
	put(head + `,"n":"many","ok":true}`)
	run()

	st, _ := lake.Open(dir)
	schemas, err := lake.LoadSchemas(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	sc := schemas.Get("probe")
	var versions []string
	for _, v := range sc.History {
		versions = append(versions, fmt.Sprintf("v%d %s", v.Version, strings.Join(v.Changes, "; ")))
	}
	want := []string{
		"v1 add event_time timestamp; add n int; add http struct",
		"v2 widen n int to float (seen float); add http.host string; add tags string",
		"v3 widen n float to string (seen string); add ok bool",
	}
	if strings.Join(versions, "\n") != strings.Join(want, "\n") {
		t.Errorf("schema history:\n%s\nwant\n%s", strings.Join(versions, "\n"), strings.Join(want, "\n"))
	}
	checkLake(t, dir)

	// DuckDB reads all versions together; the widest type wins.
	db := openDuckDB(t)
	rows, err := db.Query(`SELECT CAST(n AS VARCHAR), http.path, CAST(tags AS VARCHAR), CAST(ok AS VARCHAR) FROM ` + eventsSource(dir) + ` ORDER BY kafka_offset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var n, path, tags, ok sql.NullString
		if err := rows.Scan(&n, &path, &tags, &ok); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s|%s|%s|%s", n.String, path.String, tags.String, ok.String))
	}
	wantRows := []string{"1|/a||", "2|/b||", "2.5|/c|[1,2]|", "3.0|||", "many|||true"}
	if strings.Join(got, " ") != strings.Join(wantRows, " ") {
		t.Errorf("rows %q, want %q", got, wantRows)
	}
}

func TestLakeCheckFindsWhatIsWrong(t *testing.T) {
	addr := startBroker(t)
	produce(t, addr, 300, 6, garbage[:2]...)
	clean := filepath.Join(t.TempDir(), "lake")
	if _, err := newExtractor(t, addr, clean).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkLake(t, clean)

	firstEventFile := func(dir string) string {
		files, _ := filepath.Glob(filepath.Join(dir, "events", "*", "*", "*.parquet"))
		sort.Strings(files)
		return files[0]
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"a file deleted", func(t *testing.T, dir string) {
			must(t, os.Remove(firstEventFile(dir)))
		}, "are in no file"},
		{"a file copied under another day", func(t *testing.T, dir string) {
			f := firstEventFile(dir)
			other := filepath.Join(filepath.Dir(filepath.Dir(f)), "event_date=1999-01-01")
			must(t, os.MkdirAll(other, 0o755))
			b, err := os.ReadFile(f)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(other, filepath.Base(f)), b, 0o644))
		}, "already in another file"},
		{"a file truncated", func(t *testing.T, dir string) {
			f := firstEventFile(dir)
			b, err := os.ReadFile(f)
			must(t, err)
			must(t, os.WriteFile(f, b[:len(b)/2], 0o644))
		}, "not a readable Parquet file"},
		{"a file renamed", func(t *testing.T, dir string) {
			f := firstEventFile(dir)
			p, _ := lake.ParsePart(strings.TrimPrefix(filepath.ToSlash(f), filepath.ToSlash(dir)+"/"))
			p.Last++
			must(t, os.Rename(f, filepath.Join(filepath.Dir(f), filepath.Base(p.Name()))))
		}, "its name says"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "lake")
			must(t, os.CopyFS(dir, os.DirFS(clean)))
			tt.tamper(t, dir)
			st, _ := lake.Open(dir)
			r, err := lake.Check(context.Background(), st, topic)
			must(t, err)
			if r.OK() || !strings.Contains(strings.Join(r.Problems, "\n"), tt.want) {
				t.Errorf("problems %q, want one saying %q", r.Problems, tt.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
