package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestPartWriterRows writes rows value by value, including the awkward
// ones (a struct present with null fields, a null struct, a key given
// twice, a dropped row, row groups in between), and reads the file back
// with parquet-go, definition levels included.
func TestPartWriterRows(t *testing.T) {
	sc := &Schema{EventType: "probe", Version: 1, Fields: []Field{
		{Name: "s", Kind: KindString},
		{Name: "n", Kind: KindInt},
		{Name: "h", Kind: KindStruct, Fields: []Field{{Name: "a", Kind: KindString}, {Name: "b", Kind: KindFloat}}},
		{Name: "ok", Kind: KindBool},
		{Name: "t", Kind: KindTimestamp},
	}}
	cols := sc.Layout().Columns
	// Leaves: s 0, n 1, h.a 2, h.b 3, ok 4, t 5, then the lineage columns.
	w, dir := createPart(t, "zstd", Part{EventType: "probe", Date: "2026-03-01", Partition: 2, First: 10}, sc)
	lineage := func(offset int64) {
		w.Int(cols.Partition, 2)
		w.Int(cols.Offset, offset)
		w.Int(cols.KafkaTime, 1_000_000*offset)
	}
	end := func(offset int64) {
		t.Helper()
		lineage(offset)
		if err := w.EndRow(offset); err != nil {
			t.Fatal(err)
		}
	}

	// 10: every column set.
	w.String(0, []byte("x"))
	w.Int(1, -5)
	w.Null(2, 4, 1)
	w.String(2, []byte("in"))
	w.Float(3, 2.5)
	w.Bool(4, true)
	w.Int(5, 1_700_000_000_000_000)
	end(10)
	// 11: the struct present, its fields null; everything else absent.
	w.Null(2, 4, 1)
	end(11)
	// A row thrown away half built leaves nothing behind.
	w.String(0, []byte("dropped"))
	w.Null(2, 4, 1)
	w.Float(3, 9)
	w.DropRow()
	// 12: a key given twice (the last wins), a struct made null after
	// being present, a value made null.
	w.Int(1, 1)
	w.Int(1, 2)
	w.Null(2, 4, 1)
	w.String(2, []byte("gone"))
	w.Null(2, 4, 0)
	w.String(0, []byte("gone too"))
	w.Null(0, 1, 0)
	end(12)
	if err := w.FlushRowGroup(); err != nil {
		t.Fatal(err)
	}
	// 13: after a row group, a long string.
	long := strings.Repeat("long ", 100_000)
	w.String(0, []byte(long))
	end(13)
	// 14: a struct given twice (a repeated JSON key): the last one wins,
	// fields and all.
	w.Null(2, 4, 1)
	w.String(2, []byte("first"))
	w.Null(2, 4, 1)
	w.Float(3, 1)
	end(14)
	// A row without its lineage is refused and leaves nothing behind.
	w.String(0, []byte("no lineage"))
	if err := w.EndRow(15); err == nil {
		t.Fatal("EndRow without the required lineage columns: no error")
	}
	if w.Rows() != 5 || w.Part().Last != 14 {
		t.Fatalf("rows %d, last %d; want 5, 14", w.Rows(), w.Part().Last)
	}
	pf, _ := closeAndOpen(t, w, dir)
	if n := len(pf.RowGroups()); n != 2 {
		t.Errorf("%d row groups, want 2", n)
	}
	var got []string
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 8)
		n, _ := rows.ReadRows(buf)
		rows.Close()
		for _, row := range buf[:n] {
			var cells []string
			for _, v := range row {
				cells = append(cells, cell(v))
			}
			got = append(got, strings.Join(cells, " "))
		}
	}
	// Each cell: definition level, then the value (- for null).
	want := []string{
		"1:x 1:-5 2:in 2:2.5 1:true 1:1700000000000000 0:2 0:10 0:10000000",
		"0:- 0:- 1:- 1:- 0:- 0:- 0:2 0:11 0:11000000",
		"0:- 1:2 0:- 0:- 0:- 0:- 0:2 0:12 0:12000000",
		fmt.Sprintf("1:<%d bytes>", len(long)) + " 0:- 0:- 0:- 0:- 0:- 0:2 0:13 0:13000000",
		"0:- 0:- 1:- 2:1 0:- 0:- 0:2 0:14 0:14000000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows read back:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	checkPageIndex(t, pf)
}

func cell(v parquet.Value) string {
	if v.IsNull() {
		return fmt.Sprintf("%d:-", v.DefinitionLevel())
	}
	s := v.String()
	if len(s) > 100 {
		s = fmt.Sprintf("<%d bytes>", len(s))
	}
	return fmt.Sprintf("%d:%s", v.DefinitionLevel(), s)
}

// createPart starts the data file for part in a new lake, compressed with
// codec, and returns it with the lake's directory.
func createPart(t *testing.T, codec string, part Part, sc *Schema) (*PartWriter, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := NewFiles(codec)
	if err != nil {
		t.Fatal(err)
	}
	w, err := files.Create(context.Background(), st, part, sc)
	if err != nil {
		t.Fatal(err)
	}
	return w, dir
}

// closeAndOpen closes and publishes w in the lake at dir, and opens the
// file with parquet-go. It returns the size Publish gave.
func closeAndOpen(t *testing.T, w *PartWriter, dir string) (*parquet.File, int64) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	part, size, err := w.Publish()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, part.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return pf, size
}
