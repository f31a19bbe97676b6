package pqwrite

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/parquet-go/parquet-go"
)

// A string column whose values are long and begin with no ASCII byte
// (accents, the euro sign, emoji) keeps its statistics and its column
// index, as DuckDB reads them: its min and max bound every value, and a
// filter on the largest value finds it (a max rounded down would make
// DuckDB skip the row group).
func TestLongNonASCIIStringStatsReadByDuckDB(t *testing.T) {
	values := []string{
		strings.Repeat("é", 40),
		strings.Repeat("€", 30),
		strings.Repeat("😀", 20), // the largest
		"ascii",
	}
	s := parquet.NewSchema("probe", Group{
		Field("s", parquet.Optional(parquet.String())),
		Field("kafka_partition", parquet.Int(32)),
		Field("kafka_offset", parquet.Int(64)),
		Field("kafka_timestamp", parquet.Timestamp(parquet.Microsecond)),
	})
	w, out := newWriter(t, "zstd", s, nil)
	for i, v := range values {
		w.String(0, []byte(v))
		w.Int(1, 0)
		w.Int(2, int64(i))
		w.Int(3, 0)
		if err := w.EndRow(); err != nil {
			t.Fatal(err)
		}
	}
	pf := closeAndOpen(t, w, out)
	checkPageIndex(t, pf)
	ci := pf.ColumnIndexes()[0]
	if len(ci.MinValues) != 1 || len(ci.MaxValues[0]) == 0 || string(ci.MaxValues[0]) < values[2] {
		t.Errorf("column index of s: min %q max %q; want a max at or above %q", ci.MinValues, ci.MaxValues, values[2])
	}
	path := filepath.Join(t.TempDir(), "probe.parquet")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lo, hi sql.NullString
	err = db.QueryRow(`SELECT stats_min_value, stats_max_value FROM parquet_metadata(?) WHERE path_in_schema = 's'`, path).Scan(&lo, &hi)
	if err != nil {
		t.Fatal(err)
	}
	if !lo.Valid || !hi.Valid {
		t.Fatalf("DuckDB finds no statistics for s: min %v max %v", lo, hi)
	}
	for _, v := range values {
		if v < lo.String || v > hi.String {
			t.Errorf("%.12q… is outside the statistics [%.12q…, %.12q…]", v, lo.String, hi.String)
		}
	}
	for _, v := range values {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM read_parquet(?) WHERE s = ?`, path, v).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("DuckDB finds %d rows where s = %.12q…, want 1", n, v)
		}
	}
}

// stats.bytes settles most values by their first byte; its bounds are
// those of a plain comparison of every value, empty strings and values
// sharing a first byte with a bound included.
func TestStatsBytesBounds(t *testing.T) {
	tests := []struct {
		name     string
		values   []string
		min, max string
	}{
		{"one", []string{"m"}, "m", "m"},
		{"empty first", []string{"", "b", "a"}, "", "b"},
		{"empty later", []string{"b", "a", ""}, "", "b"},
		{"empty only", []string{"", ""}, "", ""},
		{"same first byte, smaller", []string{"ab", "aa"}, "aa", "ab"},
		{"same first byte, larger", []string{"aa", "ab"}, "aa", "ab"},
		{"prefix of the min", []string{"abc", "ab"}, "ab", "abc"},
		{"extends the max", []string{"ab", "abc"}, "ab", "abc"},
		{"first byte between the bounds", []string{"a", "z", "m", "mz"}, "a", "z"},
		{"below then above", []string{"m", "a", "z", "zz", "0"}, "0", "zz"},
		{"high bytes", []string{"é", "e", "\xff", "ea"}, "e", "\xff"},
		{"one value min and max", []string{"q", "q", "q"}, "q", "q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st stats
			for _, v := range tt.values {
				st.bytes([]byte(v))
			}
			if !st.set || string(st.bmin) != tt.min || string(st.bmax) != tt.max {
				t.Errorf("bounds of %q: [%q, %q], want [%q, %q]", tt.values, st.bmin, st.bmax, tt.min, tt.max)
			}
		})
	}
}

// FuzzStatsBytes checks stats.bytes against a plain comparison of every
// value, on values cut from the input at its NUL bytes (run with -fuzz;
// plain go test runs the seeds).
func FuzzStatsBytes(f *testing.F) {
	for _, seed := range []string{"", "a\x00b", "b\x00\x00a", "ab\x00aa\x00abc", "\xff\x00e\x00é\x00ea", "m\x00a\x00z\x00zz\x000"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		values := bytes.Split(in, []byte{0})
		var st stats
		lo, hi := values[0], values[0]
		for _, v := range values {
			st.bytes(v)
			if bytes.Compare(v, lo) < 0 {
				lo = v
			}
			if bytes.Compare(v, hi) > 0 {
				hi = v
			}
		}
		if !bytes.Equal(st.bmin, lo) || !bytes.Equal(st.bmax, hi) {
			t.Errorf("bounds of %q: [%q, %q], want [%q, %q]", values, st.bmin, st.bmax, lo, hi)
		}
	})
}
