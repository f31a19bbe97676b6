package pqwrite

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"
)

// Encoder makes the Writers of one process: they share one compression
// codec and one pool of row buffers, so that a file opened after another
// closed reuses its memory instead of growing its own from nothing. Safe
// for concurrent use.
type Encoder struct {
	codec     compress.Codec
	createdBy string
	pool      buffers
}

// NewEncoder returns an encoder whose files are compressed with the named
// codec (see Codec) and say createdBy made them.
func NewEncoder(compression, createdBy string) (*Encoder, error) {
	codec, err := Codec(compression)
	if err != nil {
		return nil, err
	}
	return &Encoder{codec: codec, createdBy: createdBy}, nil
}

// Writer writes one Parquet file to an io.Writer.
//
// A row is built value by value (String, Int, Float, Bool, Null) and ended
// with EndRow, or thrown away with DropRow. Rows are buffered column by
// column in plain Go slices: a definition level per row and the values of
// the rows that have one. FlushRowGroup and Close encode them as Parquet
// pages straight from those slices. An extract keeps a file open per
// partition, event type and day, often more than a hundred of them, so
// what an open file costs is what it buffers. A Writer is for one
// goroutine at a time.
type Writer struct {
	out   countingWriter
	enc   fileEncoder
	cols  []column
	seq   int64 // stamp of the row being built
	bytes int64 // bytes buffered in cols
	rows  int64
	// groupRows are the rows buffered in cols: those of the row group
	// being built.
	groupRows int64
	pool      *buffers
	tooBig    bool // the row being built does not fit a row group
}

// column is one leaf column's buffered rows.
type column struct {
	kind   parquet.Kind
	maxDef byte
	defs   []byte   // definition level of each row; maxDef: it has a value
	nums   []uint64 // the values of numeric and boolean columns (floats as bits)
	data   []byte   // the values of byte array columns, back to back
	ends   []uint32 // where each byte array value ends in data

	// counted of defs were checked by EndRows: present of them have a
	// value.
	counted, present int
	// appended are the bytes appended since the last EndRows; tooBig says
	// they do not fit a row group. Per column, so that columns can be
	// appended to side by side.
	appended int64
	tooBig   bool

	set     int64 // the row (seq) that last set a value
	nullRow int64 // the row (seq) in which a present struct makes nulls nullDef deep
	nullDef byte
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// NewWriter starts a file of schema s written to out, whose footer holds
// the key-value metadata kv (sorted by key). Nothing is written before the
// first row group.
func (e *Encoder) NewWriter(out io.Writer, s *Schema, kv map[string]string) *Writer {
	w := &Writer{out: countingWriter{w: out}, seq: 1, pool: &e.pool}
	w.enc = fileEncoder{schema: s, codec: e.codec, createdBy: e.createdBy}
	for k, v := range kv {
		w.enc.kv = append(w.enc.kv, format.KeyValue{Key: k, Value: v})
	}
	sort.Slice(w.enc.kv, func(i, j int) bool { return w.enc.kv[i].Key < w.enc.kv[j].Key })
	w.cols = make([]column, len(s.leaves))
	for i, leaf := range s.leaves {
		w.cols[i] = column{kind: leaf.kind, maxDef: leaf.maxDef}
	}
	return w
}

// Rows is how many rows were written.
func (w *Writer) Rows() int64 { return w.rows }

// RowGroups is how many row groups the file has written (at most
// MaxRowGroups).
func (w *Writer) RowGroups() int { return len(w.enc.rowGroups) }

// Buffered is how many bytes the rows not yet written as a row group hold.
func (w *Writer) Buffered() int64 { return w.bytes }

// Size is about how many bytes the file takes so far, buffered rows
// included.
func (w *Writer) Size() int64 {
	return w.out.n + w.bytes
}

// Written is how many bytes were written to out.
func (w *Writer) Written() int64 { return w.out.n }

// String sets the byte array column leaf of the row being built. The bytes
// are copied.
func (w *Writer) String(leaf int, b []byte) {
	c := &w.cols[leaf]
	if len(c.data)+len(b) > maxColumnBytes {
		w.tooBig = true // EndRow refuses the row
		return
	}
	w.taken(c)
	// A slice is stored whole only when it grows: s = append(s, v) with
	// room stores only the length, where s = grow(s, n) stored the slice,
	// a pointer written to the heap, which costs a write barrier while
	// the collector runs (and these are most of the extract's stores).
	if len(c.data)+len(b) > cap(c.data) {
		c.data = w.pool.bytes.realloc(c.data, len(b))
	}
	c.data = append(c.data, b...)
	if len(c.ends) == cap(c.ends) {
		c.ends = w.pool.offsets.realloc(c.ends, 1)
	}
	c.ends = append(c.ends, uint32(len(c.data)))
	if len(c.defs) == cap(c.defs) {
		c.defs = w.pool.bytes.realloc(c.defs, 1)
	}
	c.defs = append(c.defs, c.maxDef)
	w.bytes += int64(len(b)) + 5
}

// Int sets the integer (or timestamp, in microseconds) column leaf.
func (w *Writer) Int(leaf int, v int64) { w.num(leaf, uint64(v)) }

// maxColumnBytes bounds a column's byte arrays in one row group: their
// offsets are 32-bit. An extract writes a row group long before.
const maxColumnBytes = math.MaxUint32

// Float sets the double column leaf.
func (w *Writer) Float(leaf int, v float64) { w.num(leaf, math.Float64bits(v)) }

// Bool sets the boolean column leaf.
func (w *Writer) Bool(leaf int, v bool) {
	var n uint64
	if v {
		n = 1
	}
	w.num(leaf, n)
}

func (w *Writer) num(leaf int, v uint64) {
	c := &w.cols[leaf]
	w.taken(c)
	if len(c.nums) == cap(c.nums) { // see String
		c.nums = w.pool.nums.realloc(c.nums, 1)
	}
	c.nums = append(c.nums, v)
	if len(c.defs) == cap(c.defs) {
		c.defs = w.pool.bytes.realloc(c.defs, 1)
	}
	c.defs = append(c.defs, c.maxDef)
	w.bytes += 9
}

// taken readies column c for the row's value: a value the row set before
// (a JSON object may repeat a key; the last one wins) is removed first.
func (w *Writer) taken(c *column) {
	if c.set == w.seq {
		w.pop(c)
	}
	c.set = w.seq
}

// pop removes the last row's value of c.
func (w *Writer) pop(c *column) {
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
func (w *Writer) Null(from, to, def int) {
	for l := from; l < to; l++ {
		c := &w.cols[l]
		if c.set == w.seq {
			w.pop(c)
		}
		c.nullRow, c.nullDef = w.seq, byte(def)
	}
}

// EndRow ends the row being built: every column not set is null. A row
// that lacks a required column's value, or whose strings do not fit a row
// group, is dropped and refused.
func (w *Writer) EndRow() error {
	if w.tooBig {
		w.DropRow()
		return fmt.Errorf("more than %d bytes of strings in one column of a row group", maxColumnBytes)
	}
	for i := range w.cols {
		if c := &w.cols[i]; c.maxDef == 0 && c.set != w.seq { // a required column
			w.DropRow()
			return fmt.Errorf("no value for required column %d", i)
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
		if len(c.defs) == cap(c.defs) {
			c.defs = w.pool.bytes.realloc(c.defs, 1)
		}
		c.defs = append(c.defs, def)
		w.bytes++
	}
	w.seq++
	w.rows++
	w.groupRows++
	return nil
}

// DropRow throws away the values set since the last EndRow.
func (w *Writer) DropRow() {
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
func (w *Writer) FlushRowGroup() error {
	if err := w.enc.writeRowGroup(&w.out, w.cols, w.pool); err != nil {
		return fmt.Errorf("write row group: %w", err)
	}
	w.bytes, w.groupRows = 0, 0
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

// Close writes the buffered rows and the footer. It neither syncs nor
// closes out; the Writer keeps only what Written needs.
func (w *Writer) Close() error {
	if err := w.FlushRowGroup(); err != nil {
		return err
	}
	if err := w.enc.writeFooter(&w.out); err != nil {
		return fmt.Errorf("write footer: %w", err)
	}
	w.cols, w.enc = nil, fileEncoder{}
	return nil
}
