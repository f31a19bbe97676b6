package pqwrite

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// probeSchema is a schema of every kind of column the lake writes: strings,
// integers, a struct, booleans, timestamps, each optional, then required
// integers and a timestamp (the lake's lineage columns).
func probeSchema() *parquet.Schema {
	return parquet.NewSchema("probe", Group{
		Field("s", parquet.Optional(parquet.String())),
		Field("n", parquet.Optional(parquet.Int(64))),
		Field("h", parquet.Optional(Group{
			Field("a", parquet.Optional(parquet.String())),
			Field("b", parquet.Optional(parquet.Leaf(parquet.DoubleType))),
		})),
		Field("ok", parquet.Optional(parquet.Leaf(parquet.BooleanType))),
		Field("t", parquet.Optional(parquet.Timestamp(parquet.Microsecond))),
		Field("kafka_partition", parquet.Int(32)),
		Field("kafka_offset", parquet.Int(64)),
		Field("kafka_timestamp", parquet.Timestamp(parquet.Microsecond)),
	})
}

// TestWriterRows writes rows value by value, including the awkward ones (a
// struct present with null fields, a null struct, a key given twice, a
// dropped row, row groups in between), and reads the file back with
// parquet-go, definition levels included.
func TestWriterRows(t *testing.T) {
	// Leaves: s 0, n 1, h.a 2, h.b 3, ok 4, t 5, then the lineage columns.
	w, out := newWriter(t, "zstd", probeSchema(), nil)
	end := func(offset int64) { t.Helper(); endProbeRow(t, w, offset) }

	// 10: every column set.
	setEveryColumn(w)
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
	if err := w.EndRow(); err == nil {
		t.Fatal("EndRow without the required lineage columns: no error")
	}
	if w.Rows() != 5 {
		t.Fatalf("rows %d, want 5", w.Rows())
	}
	pf := closeAndOpen(t, w, out)
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

// setEveryColumn sets every optional column of the probe row being built.
func setEveryColumn(w *Writer) {
	w.String(0, []byte("x"))
	w.Int(1, -5)
	w.Null(2, 4, 1)
	w.String(2, []byte("in"))
	w.Float(3, 2.5)
	w.Bool(4, true)
	w.Int(5, 1_700_000_000_000_000)
}

// endProbeRow sets the lineage columns of the probe row being built, at
// offset, and ends it.
func endProbeRow(t *testing.T, w *Writer, offset int64) {
	t.Helper()
	w.Int(6, 2)
	w.Int(7, offset)
	w.Int(8, 1_000_000*offset)
	if err := w.EndRow(); err != nil {
		t.Fatal(err)
	}
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

// newWriter starts a file of schema s compressed with codec, written to
// the buffer it returns.
func newWriter(t *testing.T, codec string, s *parquet.Schema, kv map[string]string) (*Writer, *bytes.Buffer) {
	t.Helper()
	enc, err := NewEncoder(codec, "pqwrite test")
	if err != nil {
		t.Fatal(err)
	}
	out := new(bytes.Buffer)
	return enc.NewWriter(out, NewSchema(s), kv), out
}

// closeAndOpen closes w, whose file is in out, and opens the file with
// parquet-go.
func closeAndOpen(t *testing.T, w *Writer, out *bytes.Buffer) *parquet.File {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(out.Len()) {
		t.Errorf("Written says %d bytes, the file has %d", w.Written(), out.Len())
	}
	pf, err := parquet.OpenFile(bytes.NewReader(out.Bytes()), int64(out.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

// TestAppendRowsColumnByColumn: rows appended column by column make the
// same file, byte for byte, as the same rows built value by value; and
// EndRows refuses columns that disagree on their rows.
func TestAppendRowsColumnByColumn(t *testing.T) {
	// Leaves: s 0, n 1, h.a 2, h.b 3, ok 4, t 5, then the lineage columns.
	byRow, rowOut := newWriter(t, "zstd", probeSchema(), map[string]string{"k": "v"})
	setEveryColumn(byRow)
	endProbeRow(t, byRow, 10)
	byRow.Null(2, 4, 1)
	endProbeRow(t, byRow, 11)
	byRow.String(0, []byte(""))
	byRow.Int(1, 2)
	byRow.Bool(4, false)
	endProbeRow(t, byRow, 12)

	byColumn, colOut := newWriter(t, "zstd", probeSchema(), map[string]string{"k": "v"})
	byColumn.AppendLevels(0, []byte{1, 0, 1})
	byColumn.AppendByteArrays(0, []byte("?x"), []uint32{1, 2, 2}) // offsets need not start at 0
	byColumn.AppendLevels(1, []byte{1, 0, 1})
	byColumn.AppendInts(1, []int64{-5, 2})
	byColumn.AppendLevels(2, []byte{2, 1, 0})
	byColumn.AppendByteArray(2, []byte("in"))
	byColumn.AppendLevels(3, []byte{2})
	byColumn.AppendNulls(3, 1, 1)
	byColumn.AppendNulls(3, 1, 0)
	byColumn.AppendFloats(3, []float64{2.5})
	byColumn.AppendLevels(4, []byte{1, 0, 1})
	byColumn.AppendBool(4, true)
	byColumn.AppendBool(4, false)
	byColumn.AppendLevels(5, []byte{1, 0, 0})
	byColumn.AppendInts(5, []int64{1_700_000_000_000_000})
	byColumn.AppendInt32s(6, []int32{2, 2, 2})
	byColumn.AppendInts(7, []int64{10, 11, 12})
	byColumn.AppendInts(8, []int64{10_000_000, 11_000_000, 12_000_000})
	if err := byColumn.EndRows(3); err != nil {
		t.Fatal(err)
	}
	if byColumn.Rows() != 3 || byColumn.Buffered() != byRow.Buffered() {
		t.Errorf("by column: %d rows, %d bytes buffered; by row: %d, %d", byColumn.Rows(), byColumn.Buffered(), byRow.Rows(), byRow.Buffered())
	}
	closeAndOpen(t, byRow, rowOut)
	closeAndOpen(t, byColumn, colOut)
	if !bytes.Equal(rowOut.Bytes(), colOut.Bytes()) {
		t.Errorf("the files differ: %d bytes by row, %d by column", rowOut.Len(), colOut.Len())
	}

	t.Run("columns that disagree are refused", func(t *testing.T) {
		for name, fill := range map[string]func(w *Writer){
			"a column short of rows": func(w *Writer) { w.AppendLevels(0, []byte{1}) },
			"a value missing":        func(w *Writer) { w.AppendLevels(0, []byte{1, 1}); w.AppendByteArray(0, []byte("a")) },
		} {
			w, _ := newWriter(t, "none", probeSchema(), nil)
			fill(w)
			for leaf := 1; leaf <= 5; leaf++ {
				w.AppendNulls(leaf, 2, 0)
			}
			w.AppendInt32s(6, []int32{0, 0})
			w.AppendInts(7, []int64{0, 1})
			w.AppendInts(8, []int64{0, 1})
			if err := w.EndRows(2); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
	})
}
