// Package extracttest builds lakes as the extract writes them, from generated game events produced to an in-process Kafka broker, and checks them, for the tests of the extract, compaction and the lake's readers.
package extracttest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
)

// Topic is the topic StartBroker creates.
const Topic = "events"

// StartBroker starts an in-process Kafka broker with a 4-partition topic
// and returns its address; it stops with the test.
func StartBroker(t testing.TB) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, Topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// Produced is what a test put on the topic, to compare the lake with.
type Produced struct {
	Events  map[string]event.Event // by event_id
	PerType map[string]int64
	Raw     int // records given as raw bytes
}

// Add counts more records in p.
func (p *Produced) Add(more *Produced) {
	for id, ev := range more.Events {
		p.Events[id] = ev
	}
	for k, v := range more.PerType {
		p.PerType[k] += v
	}
	p.Raw += more.Raw
}

// Produce puts the game events cfg generates (each passed to edit first,
// when not nil), then the raw records, on the topic, keyed by user as the
// API does, and waits for every ack. Players default to 40 and the span
// to 50 hours, so that the events spread over three days.
func Produce(t testing.TB, addr string, cfg laketest.Config, edit func(*event.Event), raw ...[]byte) *Produced {
	t.Helper()
	if cfg.Players == 0 {
		cfg.Players = 40
	}
	if cfg.Span == 0 {
		cfg.Span = 50 * time.Hour
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(Topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := &Produced{Events: map[string]event.Event{}, PerType: map[string]int64{}, Raw: len(raw)}
	var recs []*kgo.Record
	err = laketest.Generate(cfg, func(ev *event.Event) error {
		if edit != nil {
			edit(ev)
		}
		got.Events[ev.ID] = *ev
		got.PerType[ev.Type]++
		recs = append(recs, &kgo.Record{Key: ev.Key(), Value: ev.AppendJSON(nil)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range raw {
		// raw records go in between events, on every partition
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint("g", i)), Value: r})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return got
}

// NewExtractor returns an extractor from the broker at addr into the lake
// at dir (a folder or an s3:// location).
func NewExtractor(t testing.TB, addr, dir string, opts ...extract.Option) *extract.Extractor {
	t.Helper()
	st, err := lake.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := extract.New(append([]extract.Option{extract.Brokers(addr), extract.Lake(st)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// CheckLake runs lake.Check on the lake at dir (a folder or an s3://
// location) and fails the test on any problem; it returns the report
// (rows per type, quarantined).
func CheckLake(t testing.TB, dir string) *lake.Report {
	t.Helper()
	st, err := lake.Locate(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := lake.Check(context.Background(), st, Topic)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("lake check:\n%s", strings.Join(r.Problems, "\n"))
	}
	return r
}

// OpenDuckDB opens an in-memory DuckDB that shows times in UTC.
func OpenDuckDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return db
}

// Glob is a read_parquet of every events file in the lake in dir, as an
// external reader that only globs the folder reads it.
func Glob(dir string) string {
	return "read_parquet('" + filepath.ToSlash(dir) + "/events/*/*/*.parquet', hive_partitioning = true, union_by_name = true)"
}

// DuckCounts is the rows per event type as DuckDB reads src.
func DuckCounts(t testing.TB, db *sql.DB, src string) map[string]int64 {
	t.Helper()
	rows, err := db.Query("SELECT event_type, count(*) FROM " + src + " GROUP BY ALL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var typ string
		var n int64
		if err := rows.Scan(&typ, &n); err != nil {
			t.Fatal(err)
		}
		got[typ] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// ViewCounts is the rows of the events view per key (an SQL expression
// of type VARCHAR, e.g. event_type) as questlog query counts them in the
// lake at loc (a folder or an s3:// location), opened with opts.
func ViewCounts(t testing.TB, loc, key string, opts ...query.Option) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	db, err := query.Open(ctx, loc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Query(ctx, "SELECT "+key+", count(*) FROM events GROUP BY ALL")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, row := range res.Rows {
		got[row[0].(string)] = row[1].(int64)
	}
	return got
}

// SameCounts fails the test, saying what, when two counts per type
// differ.
func SameCounts(t testing.TB, what string, got, want map[string]int64) {
	t.Helper()
	if d := CountsDiffer(got, want); d != "" {
		t.Errorf("%s per type differ:\n%s", what, d)
	}
}

// CountsDiffer says how two counts per type differ, or "" when they do not.
func CountsDiffer(got, want map[string]int64) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if got[k] != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: got %d, want %d", k, got[k], want[k]))
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "\n")
}
