package lake

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"
)

// PartWriter writes one Parquet data file of the lake. Rows go to a pending
// file that Publish gives its final name
// part-<partition>-<first>-<last>.parquet, once the last offset is known.
//
// A row is built value by value (String, Int, Float, Bool, Null)
// and ended with EndRow, or thrown away with DropRow. Rows are buffered
// column by column in plain Go slices: a definition level per row and the
// values of the rows that have one. FlushRowGroup and Close encode them as
// Parquet pages straight from those slices (pqfile.go). An extract keeps a
// file open per partition, event type and day, often more than a hundred
// of them, so what an open file costs is what it buffers.
type PartWriter struct {
	pf      PendingFile
	counter countingWriter
	enc     fileEncoder
	cols    []column
	seq     int64 // stamp of the row being built
	bytes   int64 // bytes buffered in cols
	part    Part
	Schema  *Schema // nil for a quarantine file
	rows    int64
	pool    *buffers
	tooBig  bool // the row being built does not fit a row group
}

// column is one leaf column's buffered rows.
type column struct {
	kind   parquet.Kind
	maxDef byte
	defs   []byte   // definition level of each row; maxDef: it has a value
	nums   []uint64 // the values of numeric and boolean columns (floats as bits)
	data   []byte   // the values of byte array columns, back to back
	ends   []uint32 // where each byte array value ends in data

	set     int64 // the row (seq) that last set a value
	nullRow int64 // the row (seq) in which a present struct makes nulls nullDef deep
	nullDef byte
}

type countingWriter struct {
	pf PendingFile
	n  int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.pf.Write(b)
	c.n += int64(n)
	return n, err
}

// pageBytes is about how many bytes of PLAIN values a data page holds
// before compression.
const pageBytes = 128 << 10

// Files makes the data files of an extract: they share one compression
// codec and one pool of row buffers, so that a file opened after another
// closed reuses its memory instead of growing its own from nothing.
type Files struct {
	codec compress.Codec
	pool  buffers
}

// NewFiles returns a maker of data files compressed with the named codec
// (see Codec).
func NewFiles(compression string) (*Files, error) {
	codec, err := Codec(compression)
	if err != nil {
		return nil, err
	}
	return &Files{codec: codec}, nil
}

// Create starts the data file for part (its Last is ignored) with the
// columns of schema, or the quarantine columns when part is a quarantine
// part (schema is then nil).
func (fs *Files) Create(ctx context.Context, st Storage, part Part, schema *Schema) (*PartWriter, error) {
	part.Last = part.First
	pf, err := st.Create(ctx, part.Name())
	if err != nil {
		return nil, err
	}
	w := &PartWriter{pf: pf, part: part, Schema: schema, seq: 1, pool: &fs.pool}
	w.counter.pf = pf
	w.enc = fileEncoder{meta: quarantineMeta(), codec: fs.codec, createdBy: "questlog version 1"}
	if schema != nil {
		w.enc.meta = schema.Layout().meta
		w.enc.kv = []format.KeyValue{
			{Key: MetaEventType, Value: schema.EventType},
			{Key: MetaSchemaVersion, Value: strconv.Itoa(schema.Version)},
		}
	}
	w.cols = make([]column, len(w.enc.meta.leaves))
	for i, leaf := range w.enc.meta.leaves {
		w.cols[i] = column{kind: leaf.kind, maxDef: leaf.maxDef}
	}
	return w, nil
}

// Part is the file's part as it stands (Last is the last offset written).
func (w *PartWriter) Part() Part { return w.part }

// Rows is how many rows were written.
func (w *PartWriter) Rows() int64 { return w.rows }

// RowGroups is how many row groups the file has written (at most
// MaxRowGroups).
func (w *PartWriter) RowGroups() int { return len(w.enc.rowGroups) }

// Buffered is how many bytes the rows not yet written as a row group hold.
func (w *PartWriter) Buffered() int64 { return w.bytes }

// Size is about how many bytes the file takes so far, buffered rows
// included.
func (w *PartWriter) Size() int64 {
	return w.counter.n + w.bytes
}

// String sets the byte array column leaf of the row being built. The bytes
// are copied.
func (w *PartWriter) String(leaf int, b []byte) {
	if len(w.cols[leaf].data)+len(b) > maxColumnBytes {
		w.tooBig = true // EndRow refuses the row
		return
	}
	c := w.take(leaf)
	c.data = w.pool.bytes.grow(c.data, len(b))
	c.data = append(c.data, b...)
	c.ends = w.pool.offsets.grow(c.ends, 1)
	c.ends = append(c.ends, uint32(len(c.data)))
	c.defs = w.pool.bytes.grow(c.defs, 1)
	c.defs = append(c.defs, c.maxDef)
	w.bytes += int64(len(b)) + 5
}

// Int sets the integer (or timestamp, in microseconds) column leaf.
func (w *PartWriter) Int(leaf int, v int64) { w.num(leaf, uint64(v)) }

// maxColumnBytes bounds a column's byte arrays in one row group: their
// offsets are 32-bit. An extract writes a row group long before.
const maxColumnBytes = math.MaxUint32

// Float sets the double column leaf.
func (w *PartWriter) Float(leaf int, v float64) { w.num(leaf, math.Float64bits(v)) }

// Bool sets the boolean column leaf.
func (w *PartWriter) Bool(leaf int, v bool) {
	var n uint64
	if v {
		n = 1
	}
	w.num(leaf, n)
}

func (w *PartWriter) num(leaf int, v uint64) {
	c := w.take(leaf)
	c.nums = w.pool.nums.grow(c.nums, 1)
	c.nums = append(c.nums, v)
	c.defs = w.pool.bytes.grow(c.defs, 1)
	c.defs = append(c.defs, c.maxDef)
	w.bytes += 9
}

// take returns the column leaf, ready for the row's value: a value the row
// set before (a JSON object may repeat a key; the last one wins) is
// removed first.
func (w *PartWriter) take(leaf int) *column {
	c := &w.cols[leaf]
	if c.set == w.seq {
		w.pop(c)
	}
	c.set = w.seq
	return c
}

// pop removes the last row's value of c.
func (w *PartWriter) pop(c *column) {
	n := len(c.defs) - 1
	if c.defs[n] == c.maxDef {
		if c.kind == parquet.ByteArray {
			e := len(c.ends) - 1
			v := c.value(e)
			w.bytes -= int64(len(v)) + 4
			c.data, c.ends = c.data[:len(c.data)-len(v)], c.ends[:e]
		} else {
			c.nums = c.nums[:len(c.nums)-1]
			w.bytes -= 8
		}
	}
	c.defs = c.defs[:n]
	w.bytes--
	c.set = 0
}

// Null makes the leaves [from, to) of the row being built null at
// definition level def, undoing any value set before in the same row (a
// repeated JSON key: the last one wins). A JSON null gives a column (a
// struct's columns included) def = the depth of the object holding the
// null; a struct present in the row gives its columns def = its own depth,
// so that those left unset are null inside a present struct rather than
// absent with it.
func (w *PartWriter) Null(from, to, def int) {
	for l := from; l < to; l++ {
		c := &w.cols[l]
		if c.set == w.seq {
			w.pop(c)
		}
		c.nullRow, c.nullDef = w.seq, byte(def)
	}
}

// EndRow ends the row being built, whose offset is last: every column not
// set is null.
func (w *PartWriter) EndRow(last int64) error {
	if w.tooBig {
		w.DropRow()
		return fmt.Errorf("write %s: more than %d bytes of strings in one column of a row group", w.part.Name(), maxColumnBytes)
	}
	for i := range w.cols {
		if c := &w.cols[i]; c.maxDef == 0 && c.set != w.seq { // a required column
			w.DropRow()
			return fmt.Errorf("write %s: no value for required column %d", w.part.Name(), i)
		}
	}
	for i := range w.cols {
		c := &w.cols[i]
		if c.set == w.seq {
			continue
		}
		def := byte(0)
		if c.nullRow == w.seq {
			def = c.nullDef
		}
		c.defs = w.pool.bytes.grow(c.defs, 1)
		c.defs = append(c.defs, def)
		w.bytes++
	}
	w.seq++
	w.rows++
	w.part.Last = last
	return nil
}

// DropRow throws away the values set since the last EndRow.
func (w *PartWriter) DropRow() {
	for i := range w.cols {
		if c := &w.cols[i]; c.set == w.seq {
			w.pop(c)
		}
	}
	w.seq++
	w.tooBig = false
}

// FlushRowGroup writes the buffered rows as a row group, which frees the
// memory they held.
func (w *PartWriter) FlushRowGroup() error {
	if err := w.enc.writeRowGroup(&w.counter, w.cols, w.pool); err != nil {
		return fmt.Errorf("write %s: %w", w.part.Name(), err)
	}
	w.bytes = 0
	return nil
}

// value is the byte array column's value i.
func (c *column) value(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]]
}

// reset empties the column, its buffers back in the pool.
func (c *column) reset(pool *buffers) {
	pool.bytes.put(c.defs)
	pool.bytes.put(c.data)
	pool.nums.put(c.nums)
	pool.offsets.put(c.ends)
	*c = column{kind: c.kind, maxDef: c.maxDef}
}

// Close finishes the file and makes it durable, still unpublished.
func (w *PartWriter) Close() error {
	if err := w.FlushRowGroup(); err != nil {
		w.pf.Abort()
		return err
	}
	if err := w.enc.writeFooter(&w.counter); err != nil {
		w.pf.Abort()
		return fmt.Errorf("write %s: %w", w.part.Name(), err)
	}
	// A closed file may wait for its commit a while: keep only what
	// Publish needs.
	w.cols, w.enc = nil, fileEncoder{}
	return w.pf.Sync()
}

// Publish gives the closed file its final name, making it visible to
// readers. It returns the part and the file's size. The file survives a
// power loss once its directory is synced (Storage.SyncDir).
func (w *PartWriter) Publish() (Part, int64, error) {
	if err := w.pf.Commit(w.part.Name()); err != nil {
		return w.part, 0, err
	}
	return w.part, w.counter.n, nil
}

// Abort throws the file away.
func (w *PartWriter) Abort() error { return w.pf.Abort() }
