package pqwrite

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// BenchmarkWriter builds rows shaped like the extract's (short strings
// of a few distinct values, ids, integers, a struct, some nulls) value by
// value, and writes them as one file: the Writer's part of the extract,
// without JSON. "none" leaves compression out, to see the encoding alone.
func BenchmarkWriter(b *testing.B) {
	const rows = 20_000
	s := parquet.NewSchema("bench", Group{
		Field("event_id", parquet.Optional(parquet.String())),
		Field("event_time", parquet.Optional(parquet.Timestamp(parquet.Microsecond))),
		Field("user", parquet.Optional(parquet.String())),
		Field("status", parquet.Optional(parquet.String())),
		Field("return_code", parquet.Optional(parquet.Int(64))),
		Field("quantity", parquet.Optional(parquet.Int(64))),
		Field("price", parquet.Optional(parquet.Leaf(parquet.DoubleType))),
		Field("http", parquet.Optional(Group{
			Field("method", parquet.Optional(parquet.String())),
			Field("path", parquet.Optional(parquet.String())),
			Field("ok", parquet.Optional(parquet.Leaf(parquet.BooleanType))),
		})),
		Field("kafka_partition", parquet.Int(32)),
		Field("kafka_offset", parquet.Int(64)),
		Field("kafka_timestamp", parquet.Timestamp(parquet.Microsecond)),
	})
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([][]byte, rows)
	users := make([][]byte, 500)
	for i := range ids {
		ids[i] = fmt.Appendf(nil, "%016x-%08x", r.Uint64(), r.Uint32())
	}
	for i := range users {
		users[i] = fmt.Appendf(nil, "player-%05d", r.IntN(100_000))
	}
	statuses := [][]byte{[]byte("ok"), []byte("not_found"), []byte("conflict")}
	methods := [][]byte{[]byte("GET"), []byte("POST"), []byte("DELETE")}
	paths := [][]byte{[]byte("/v1/players/shop/buy"), []byte("/v1/players/cart"), []byte("/v1/guilds/join")}
	for _, codec := range []string{"none", "zstd"} {
		b.Run(codec, func(b *testing.B) {
			enc, err := NewEncoder(codec, "bench")
			if err != nil {
				b.Fatal(err)
			}
			sc := NewSchema(s)
			b.ReportAllocs()
			for b.Loop() {
				w := enc.NewWriter(io.Discard, sc, nil)
				for i := range rows {
					w.String(0, ids[i])
					w.Int(1, 1_790_000_000_000_000+int64(i)*1000)
					w.String(2, users[i%len(users)])
					w.String(3, statuses[i%3])
					w.Int(4, int64(200+i%3))
					if i%4 == 0 {
						w.Int(5, int64(i%7))
						w.Float(6, float64(i%100)*1.25)
					} else {
						w.Null(5, 7, 0)
					}
					w.Null(7, 10, 1)
					w.String(7, methods[i%3])
					w.String(8, paths[i%3])
					w.Bool(9, i%5 != 0)
					w.Int(10, 3)
					w.Int(11, int64(i))
					w.Int(12, 1_790_000_000_000_000+int64(i)*1000)
					if err := w.EndRow(); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
		})
	}
}
