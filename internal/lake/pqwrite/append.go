package pqwrite

import (
	"fmt"
	"math"

	"github.com/parquet-go/parquet-go"
)

// Rows can also be appended column by column, many at a time, as a merge
// copies another file's pages: for each leaf column, the definition level
// of each row (AppendLevels or AppendNulls; a required column needs none)
// and the values of the rows that have one (a level equal to the
// column's maximum), then EndRows. Not while a row is being built value
// by value. The Append methods of different leaves may run concurrently
// (a merge decodes columns side by side); EndRows runs after them.

// AppendLevels appends the definition levels of rows of an optional leaf
// column.
func (w *Writer) AppendLevels(leaf int, defs []byte) {
	c := &w.cols[leaf]
	c.defs = w.pool.bytes.grow(c.defs, len(defs))
	c.defs = append(c.defs, defs...)
	c.appended += int64(len(defs))
}

// AppendNulls appends n rows null at definition level def to an optional
// leaf column.
func (w *Writer) AppendNulls(leaf, n int, def byte) {
	c := &w.cols[leaf]
	c.defs = w.pool.bytes.grow(c.defs, n)
	for range n {
		c.defs = append(c.defs, def)
	}
	c.appended += int64(n)
}

// AppendInts appends values to an integer (or timestamp) leaf column.
func (w *Writer) AppendInts(leaf int, v []int64) {
	c := w.values(leaf, len(v))
	for _, x := range v {
		c.nums = append(c.nums, uint64(x))
	}
}

// AppendInt32s appends values to a 32-bit integer leaf column.
func (w *Writer) AppendInt32s(leaf int, v []int32) {
	c := w.values(leaf, len(v))
	for _, x := range v {
		c.nums = append(c.nums, uint64(int64(x)))
	}
}

// AppendFloats appends values to a double leaf column.
func (w *Writer) AppendFloats(leaf int, v []float64) {
	c := w.values(leaf, len(v))
	for _, x := range v {
		c.nums = append(c.nums, math.Float64bits(x))
	}
}

// AppendBool appends one value to a boolean leaf column.
func (w *Writer) AppendBool(leaf int, v bool) {
	c := w.values(leaf, 1)
	n := uint64(0)
	if v {
		n = 1
	}
	c.nums = append(c.nums, n)
}

// values makes room for n values of the numeric or boolean leaf, and
// their levels when it is required.
func (w *Writer) values(leaf, n int) *column {
	c := &w.cols[leaf]
	c.nums = w.pool.nums.grow(c.nums, n)
	c.appended += 8 * int64(n)
	w.required(c, n)
	return c
}

// AppendByteArrays appends values to a byte array leaf column, given as
// parquet-go gives a page's: value i is data[offsets[i]:offsets[i+1]].
func (w *Writer) AppendByteArrays(leaf int, data []byte, offsets []uint32) {
	if len(offsets) < 2 {
		return
	}
	c := &w.cols[leaf]
	first, last := offsets[0], offsets[len(offsets)-1]
	n := len(offsets) - 1
	if int64(len(c.data))+int64(last-first) > maxColumnBytes {
		c.tooBig = true // EndRows refuses the rows
		return
	}
	base := uint32(len(c.data)) - first
	c.data = w.pool.bytes.grow(c.data, int(last-first))
	c.data = append(c.data, data[first:last]...)
	c.ends = w.pool.offsets.grow(c.ends, n)
	for _, o := range offsets[1:] {
		c.ends = append(c.ends, o+base)
	}
	c.appended += int64(last-first) + 4*int64(n)
	w.required(c, n)
}

// AppendByteArray appends one value to a byte array leaf column.
func (w *Writer) AppendByteArray(leaf int, v []byte) {
	w.AppendByteArrays(leaf, v, []uint32{0, uint32(len(v))})
}

// required appends the levels of n values of a required column.
func (w *Writer) required(c *column, n int) {
	if c.maxDef > 0 {
		return
	}
	c.defs = w.pool.bytes.grow(c.defs, n)
	for range n {
		c.defs = append(c.defs, 0)
	}
	c.appended += int64(n)
}

// EndRows ends n rows appended column by column: every leaf column must
// have n more levels, and as many values as of them are at its maximum.
// Rows that do not fit a row group (more than 4 GiB of strings in one
// column) are refused; the writer is then unusable.
func (w *Writer) EndRows(n int) error {
	want := int(w.groupRows) + n
	for i := range w.cols {
		c := &w.cols[i]
		if c.tooBig {
			return fmt.Errorf("more than %d bytes of strings in one column of a row group", maxColumnBytes)
		}
		w.bytes += c.appended
		c.appended = 0
		if len(c.defs) != want {
			return fmt.Errorf("column %d has %d rows, want %d", i, len(c.defs), want)
		}
		values := len(c.nums)
		if c.kind == parquet.ByteArray {
			values = len(c.ends)
		}
		for _, d := range c.defs[c.counted:] {
			if d == c.maxDef {
				c.present++
			}
		}
		c.counted = len(c.defs)
		if values != c.present {
			return fmt.Errorf("column %d has %d values for %d rows with one", i, values, c.present)
		}
	}
	w.groupRows += int64(n)
	w.rows += int64(n)
	return nil
}
