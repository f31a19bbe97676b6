package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestPartWriterPublishesItsPart writes an events part and a quarantine
// part and reads them back where their names say: the offsets they cover,
// the size Publish gives, the key-value metadata and the columns of the
// schema version (or the quarantine columns). A refused row's error names
// the part.
func TestPartWriterPublishesItsPart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := NewFiles("zstd")
	if err != nil {
		t.Fatal(err)
	}
	sc := &Schema{EventType: "probe", Version: 3, Fields: []Field{
		{Name: "s", Kind: KindString},
		{Name: "n", Kind: KindInt},
		{Name: "f", Kind: KindFloat},
		{Name: "ok", Kind: KindBool},
		{Name: "t", Kind: KindTimestamp},
		{Name: "h", Kind: KindStruct, Fields: []Field{{Name: "a", Kind: KindString}}},
	}}
	cols := sc.Layout().Columns

	t.Run("events", func(t *testing.T) {
		w, err := files.Create(ctx, st, Part{EventType: "probe", Date: "2026-03-01", Partition: 2, First: 10, Last: 99}, sc)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(10); off < 13; off++ {
			w.String(cols.Fields[0].Leaf, []byte("x"))
			w.Int(cols.Partition, 2)
			w.Int(cols.Offset, off)
			w.Int(cols.KafkaTime, off)
			if err := w.EndRow(off); err != nil {
				t.Fatal(err)
			}
		}
		w.String(cols.Fields[0].Leaf, []byte("no lineage"))
		if err := w.EndRow(13); err == nil || !strings.Contains(err.Error(), "write part events/event_type=probe/event_date=2026-03-01/part-2-10-") {
			t.Errorf("EndRow without lineage: %v, want an error naming the part", err)
		}
		pf := publishAndOpen(t, w, dir, "events/event_type=probe/event_date=2026-03-01/part-2-10-12.parquet")
		kv := map[string]string{}
		for _, e := range pf.Metadata().KeyValueMetadata {
			kv[e.Key] = e.Value
		}
		if kv[MetaEventType] != "probe" || kv[MetaSchemaVersion] != "3" || pf.Metadata().CreatedBy != createdBy {
			t.Errorf("key/value metadata %v, created by %q", kv, pf.Metadata().CreatedBy)
		}
		fields, err := FieldsOfParquet(pf.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if want := append(slices.Clone(sc.Fields), LineageFields...); fmt.Sprint(fields) != fmt.Sprint(want) {
			t.Errorf("schema read back %v, want %v", fields, want)
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		w, err := files.Create(ctx, st, Part{Partition: 1, First: 5}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Int(QColPartition, 1)
		w.Int(QColOffset, 5)
		w.Int(QColTimestamp, 0)
		w.String(QColValue, []byte{0xff})
		w.String(QColError, []byte("not JSON"))
		if err := w.EndRow(5); err != nil {
			t.Fatal(err)
		}
		pf := publishAndOpen(t, w, dir, "quarantine/part-1-5-5.parquet")
		fields, err := FieldsOfParquet(pf.Schema())
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(fields) != fmt.Sprint(QuarantineFields) {
			t.Errorf("schema read back %v, want %v", fields, QuarantineFields)
		}
	})
}

// publishAndOpen closes and publishes w in the lake at dir, checks that it
// is the file name and holds the size Publish gives, and opens it with
// parquet-go.
func publishAndOpen(t *testing.T, w *PartWriter, dir, name string) *parquet.File {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	part, size, err := w.Publish()
	if err != nil {
		t.Fatal(err)
	}
	if part.Name() != name {
		t.Errorf("published %s, want %s", part.Name(), name)
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Errorf("Publish says %d bytes, the file has %d", size, fi.Size())
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return pf
}
