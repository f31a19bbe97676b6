package extract

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The event_time column holds the time envelope read (fill does not parse
// it again): the last of repeated members, any RFC 3339 offset converted,
// fractions beyond microseconds cut; a nested member named event_time is
// an ordinary string. DuckDB reads the files.
func TestEventTimeColumn(t *testing.T) {
	tests := []struct {
		name, json string
		typ        string
		wantUS     int64  // event_time, microseconds since the epoch
		wantNested string // s.event_time, for type nested
	}{
		{"zulu with micros", `{"event_type":"t","event_time":"2026-01-02T03:04:05.123456Z","a":1}`, "t",
			time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC).UnixMicro(), ""},
		{"no fraction", `{"event_type":"t","event_time":"2026-01-02T03:04:05Z","a":2}`, "t",
			time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro(), ""},
		{"nanoseconds cut", `{"event_type":"t","event_time":"2026-01-02T03:04:05.123456789Z","a":3}`, "t",
			time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC).UnixMicro(), ""},
		{"an offset", `{"event_type":"t","a":4,"event_time":"2026-01-02T05:04:05.5+02:00"}`, "t",
			time.Date(2026, 1, 2, 3, 4, 5, 500000000, time.UTC).UnixMicro(), ""},
		{"repeated, the last wins", `{"event_type":"t","event_time":"2026-01-01T23:00:00Z","a":5,"event_time":"2026-01-02T01:00:00Z"}`, "t",
			time.Date(2026, 1, 2, 1, 0, 0, 0, time.UTC).UnixMicro(), ""},
		{"nested is a string", `{"event_type":"nested","event_time":"2026-01-02T00:00:01Z","s":{"event_time":"not a time"}}`, "nested",
			time.Date(2026, 1, 2, 0, 0, 1, 0, time.UTC).UnixMicro(), "not a time"},
	}
	ctx := context.Background()
	dir := t.TempDir()
	e, p := newLakePartition(t, dir)
	var recs []*kgo.Record
	for i, tt := range tests {
		recs = append(recs, &kgo.Record{Value: []byte(tt.json), Offset: int64(i), Timestamp: time.Now()})
	}
	if err := p.batch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := p.commit(ctx); err != nil {
		t.Fatal(err)
	}
	if p.quarantined != 0 || e.sum.PerType["t"] != 5 || e.sum.PerType["nested"] != 1 {
		t.Fatalf("counted %v, %d quarantined; want 5 t and 1 nested", e.sum.PerType, p.quarantined)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := filepath.Join(dir, "*", "event_type="+tt.typ, "**", "*.parquet")
			q := `SELECT epoch_us(event_time) FROM read_parquet(?, hive_partitioning = false) WHERE kafka_offset = ?`
			if tt.typ == "nested" {
				q = `SELECT epoch_us(event_time), s.event_time FROM read_parquet(?, hive_partitioning = false) WHERE kafka_offset = ?`
			}
			var us int64
			var nested string
			dest := []any{&us}
			if tt.typ == "nested" {
				dest = append(dest, &nested)
			}
			if err := db.QueryRow(q, files, i).Scan(dest...); err != nil {
				t.Fatal(err)
			}
			if us != tt.wantUS || nested != tt.wantNested {
				t.Errorf("event_time %d, s.event_time %q; want %d, %q", us, nested, tt.wantUS, tt.wantNested)
			}
		})
	}
}
