package pqwrite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"sync"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// magic starts and ends every Parquet file.
const magic = "PAR1"

// fileEncoder is a file's state between row groups: where it is, and the
// row groups written so far for the footer.
type fileEncoder struct {
	schema    *Schema
	codec     compress.Codec
	kv        []format.KeyValue
	createdBy string
	rowGroups []format.RowGroup
	// The page index of each row group's column chunks, written before
	// the footer; a chunk without a column index has ok false.
	columnIndexes [][]columnIndex
	offsetIndexes [][]format.OffsetIndex
}

// columnIndex is a column chunk's column index, when it has one: a page
// whose long max cannot be rounded up leaves its chunk without.
type columnIndex struct {
	format.ColumnIndex
	ok bool
}

// scratch is the memory that encoding a page takes, pooled (buffers):
// files are finished concurrently, by the partitions and in the
// background.
type scratch struct {
	levels, values, body []byte
}

// writeRowGroup writes cols as one row group to out (the file's magic
// first) and empties them into pool. Its column chunks are encoded side
// by side (compressing is most of the work), each into a buffer of its
// own, then written in order.
func (e *fileEncoder) writeRowGroup(out *countingWriter, cols []column, pool *buffers) error {
	if out.n == 0 {
		if _, err := out.Write([]byte(magic)); err != nil {
			return err
		}
	}
	rows := len(cols[0].defs)
	if rows == 0 {
		return nil
	}
	if len(e.rowGroups) >= MaxRowGroups {
		return fmt.Errorf("more than %d row groups", MaxRowGroups)
	}
	rg := format.RowGroup{
		Columns:    make([]format.ColumnChunk, len(cols)),
		NumRows:    int64(rows),
		FileOffset: out.n,
		Ordinal:    int16(len(e.rowGroups)),
	}
	cis := make([]columnIndex, len(cols))
	ois := make([]format.OffsetIndex, len(cols))
	chunks := make([]*countingWriter, len(cols))
	errs := make([]error, len(cols))
	workers := min(runtime.GOMAXPROCS(0), len(cols))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s, _ := pool.scratch.Get().(*scratch)
			if s == nil {
				s = new(scratch)
			}
			defer pool.scratch.Put(s)
			for i := w; i < len(cols); i += workers {
				buf, _ := pool.chunks.Get().(*bytes.Buffer)
				if buf == nil {
					buf = new(bytes.Buffer)
				}
				buf.Reset()
				chunks[i] = &countingWriter{w: buf}
				errs[i] = e.writeChunk(chunks[i], &cols[i], &e.schema.leaves[i], &rg.Columns[i], &cis[i], &ois[i], s)
				cols[i].reset(pool)
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range chunks {
			pool.chunks.Put(c.w.(*bytes.Buffer))
		}
	}()
	for i := range cols {
		if errs[i] != nil {
			return fmt.Errorf("column %d: %w", i, errs[i])
		}
		// The chunk was encoded as if at offset 0: move it to where it
		// goes.
		base := out.n
		cc := &rg.Columns[i]
		cc.MetaData.DataPageOffset += base
		for j := range ois[i].PageLocations {
			ois[i].PageLocations[j].Offset += base
		}
		if _, err := out.Write(chunks[i].w.(*bytes.Buffer).Bytes()); err != nil {
			return err
		}
		rg.TotalByteSize += cc.MetaData.TotalUncompressedSize
		rg.TotalCompressedSize += cc.MetaData.TotalCompressedSize
	}
	e.rowGroups = append(e.rowGroups, rg)
	e.columnIndexes = append(e.columnIndexes, cis)
	e.offsetIndexes = append(e.offsetIndexes, ois)
	return nil
}

// writeChunk writes the column's rows as one column chunk, in pages of
// about pageBytes of values, and makes its page index.
func (e *fileEncoder) writeChunk(out *countingWriter, c *column, leaf *leafMeta, cc *format.ColumnChunk, ci *columnIndex, oi *format.OffsetIndex, s *scratch) error {
	md := &cc.MetaData
	md.Type = format.Type(leaf.kind)
	md.Encoding = []format.Encoding{format.Plain}
	if c.maxDef > 0 {
		md.Encoding = append(md.Encoding, format.RLE)
	}
	md.PathInSchema = leaf.path
	md.Codec = e.codec.CompressionCodec()
	md.DataPageOffset = out.n // cc.FileOffset stays 0, as the format now asks

	var st stats
	ci.ok = true // BoundaryOrder stays UNORDERED: always true
	vi := 0      // the next value
	for r := 0; r < len(c.defs); {
		first := r
		var ps stats // the page's
		var nulls int
		s.values, r, vi, nulls = c.appendPage(s.values[:0], r, vi, &ps)
		if c.kind == parquet.Boolean {
			s.values = packBools(s.values)
		}
		s.levels = s.levels[:0]
		if c.maxDef > 0 {
			s.levels = appendLevels(s.levels, c.defs[first:r], bits.Len8(c.maxDef))
		}
		loc, headerLen, err := e.writePage(out, s, first, r-first, nulls)
		if err != nil {
			return err
		}
		oi.PageLocations = append(oi.PageLocations, loc)
		md.NumValues += int64(r - first)
		md.TotalUncompressedSize += int64(headerLen + len(s.levels) + len(s.values))
		md.TotalCompressedSize += int64(loc.CompressedPageSize)
		md.Statistics.NullCount += int64(nulls)
		st.merge(&ps, c.kind)
		ci.NullPages = append(ci.NullPages, !ps.set)
		ci.NullCounts = append(ci.NullCounts, int64(nulls))
		// A page of nulls has empty bounds, as the format asks.
		lo, hi := []byte{}, []byte{}
		if ps.set {
			if lo, hi = ps.bounds(c.kind); hi == nil {
				ci.ok = false
			}
		}
		ci.MinValues = append(ci.MinValues, lo)
		ci.MaxValues = append(ci.MaxValues, hi)
	}
	if st.set {
		md.Statistics.MinValue, md.Statistics.MaxValue = st.bounds(c.kind)
	}
	return nil
}

// writePage writes a data page of rows rows (nulls of them null) from the
// levels and values in s, the values compressed (s.values is left as it
// was). It returns where the page is and how long its header is.
func (e *fileEncoder) writePage(out *countingWriter, s *scratch, first, rows, nulls int) (format.PageLocation, int, error) {
	body := s.values
	// A page of nulls has no values to compress.
	compressed := e.codec.CompressionCodec() != format.Uncompressed && len(s.values) > 0
	if compressed {
		var err error
		if s.body, err = e.codec.Encode(s.body[:0], s.values); err != nil {
			return format.PageLocation{}, 0, fmt.Errorf("compress page: %w", err)
		}
		body = s.body
	}
	h := format.PageHeader{
		Type:                 format.DataPageV2,
		UncompressedPageSize: int32(len(s.levels) + len(s.values)),
		CompressedPageSize:   int32(len(s.levels) + len(body)),
		DataPageHeaderV2: thrift.New(format.DataPageHeaderV2{
			NumValues:                  int32(rows),
			NumNulls:                   int32(nulls),
			NumRows:                    int32(rows),
			Encoding:                   format.Plain,
			DefinitionLevelsByteLength: int32(len(s.levels)),
			IsCompressed:               thrift.New(compressed),
			Statistics:                 format.Statistics{NullCount: int64(nulls)},
		}),
	}
	hb, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		return format.PageLocation{}, 0, fmt.Errorf("encode page header: %w", err)
	}
	loc := format.PageLocation{Offset: out.n, CompressedPageSize: int32(len(hb) + len(s.levels) + len(body)), FirstRowIndex: int64(first)}
	for _, b := range [...][]byte{hb, s.levels, body} {
		if _, err := out.Write(b); err != nil {
			return loc, 0, err
		}
	}
	return loc, len(hb), nil
}

// appendPage appends to b the PLAIN encoding of the values of rows r on
// (value vi the first of them), until b holds pageBytes or the rows end (a
// boolean as a byte, packed later), and widens st with them. It returns b,
// the next row and value, and how many of the rows were null. A loop per
// kind: this runs once for every value the extract writes.
func (c *column) appendPage(b []byte, r, vi int, st *stats) (_ []byte, _, _, nulls int) {
	defs, maxDef := c.defs, c.maxDef
	switch c.kind {
	case parquet.ByteArray:
		start := uint32(0)
		if vi > 0 {
			start = c.ends[vi-1]
		}
		for ; r < len(defs) && len(b) < pageBytes; r++ {
			if defs[r] != maxDef {
				nulls++
				continue
			}
			end := c.ends[vi]
			v := c.data[start:end]
			start = end
			vi++
			st.bytes(v)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	case parquet.Double:
		for ; r < len(defs) && len(b) < pageBytes; r++ {
			if defs[r] != maxDef {
				nulls++
				continue
			}
			v := c.nums[vi]
			vi++
			st.float(math.Float64frombits(v))
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	case parquet.Int64:
		for ; r < len(defs) && len(b) < pageBytes; r++ {
			if defs[r] != maxDef {
				nulls++
				continue
			}
			v := c.nums[vi]
			vi++
			st.int(int64(v))
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	case parquet.Int32:
		for ; r < len(defs) && len(b) < pageBytes; r++ {
			if defs[r] != maxDef {
				nulls++
				continue
			}
			v := c.nums[vi]
			vi++
			st.int(int64(v))
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	default: // parquet.Boolean
		for ; r < len(defs) && len(b) < pageBytes; r++ {
			if defs[r] != maxDef {
				nulls++
				continue
			}
			v := byte(c.nums[vi])
			vi++
			st.int(int64(v))
			b = append(b, v)
		}
	}
	return b, r, vi, nulls
}

// packBools packs booleans given a byte each into bits, in place.
func packBools(b []byte) []byte {
	n := (len(b) + 7) / 8
	for i := range n {
		var p byte
		for j := 0; j < 8 && 8*i+j < len(b); j++ {
			p |= (b[8*i+j] & 1) << j
		}
		b[i] = p
	}
	return b[:n]
}

// stats are the bounds of a page's or a column chunk's values.
type stats struct {
	set        bool
	imin, imax int64
	fmin, fmax float64
	bmin, bmax []byte // in the column's buffer: valid until it is reset
}

func (s *stats) int(v int64) {
	if !s.set {
		s.set, s.imin, s.imax = true, v, v
		return
	}
	s.imin, s.imax = min(s.imin, v), max(s.imax, v)
}

func (s *stats) float(v float64) {
	if !s.set {
		s.set, s.fmin, s.fmax = true, v, v
		return
	}
	// JSON has no NaN. Zeros are settled in bounds.
	s.fmin, s.fmax = min(s.fmin, v), max(s.fmax, v)
}

func (s *stats) bytes(v []byte) {
	if !s.set {
		s.set, s.bmin, s.bmax = true, v, v
		return
	}
	// The first bytes mostly settle it without a call: v cannot be below
	// the min when its first byte is above the min's, nor above the max
	// when its first byte is below the max's.
	// A value equal to the min is not above the max either: one
	// comparison for a column of one value.
	if len(v) == 0 || len(s.bmin) == 0 || v[0] <= s.bmin[0] {
		switch c := bytes.Compare(v, s.bmin); {
		case c < 0:
			s.bmin = v
			return
		case c == 0:
			return
		}
	}
	if len(v) > 0 && (len(s.bmax) == 0 || v[0] >= s.bmax[0]) {
		if bytes.Compare(v, s.bmax) > 0 {
			s.bmax = v
		}
	}
}

// merge widens s with the bounds of o, a part of the same column.
func (s *stats) merge(o *stats, kind parquet.Kind) {
	switch {
	case !o.set:
	case !s.set:
		*s = *o
	case kind == parquet.ByteArray:
		s.bytes(o.bmin)
		s.bytes(o.bmax)
	case kind == parquet.Double:
		s.float(o.fmin)
		s.float(o.fmax)
	default:
		s.int(o.imin)
		s.int(o.imax)
	}
}

// bounds returns min and max PLAIN encoded (a byte array without its
// length), or nothing when a long max cannot be rounded up.
func (s *stats) bounds(kind parquet.Kind) (lo, hi []byte) {
	switch kind {
	case parquet.ByteArray:
		hi, ok := roundUp(s.bmax)
		if !ok {
			return nil, nil
		}
		// Copies: the column's buffer goes back to the pool.
		return append([]byte{}, cut(s.bmin)...), hi
	case parquet.Int32:
		return binary.LittleEndian.AppendUint32(nil, uint32(s.imin)), binary.LittleEndian.AppendUint32(nil, uint32(s.imax))
	case parquet.Int64:
		return binary.LittleEndian.AppendUint64(nil, uint64(s.imin)), binary.LittleEndian.AppendUint64(nil, uint64(s.imax))
	case parquet.Double:
		// A zero min is written -0 and a zero max +0, as the format asks.
		lo, hi := s.fmin, s.fmax
		if lo == 0 {
			lo = math.Copysign(0, -1)
		}
		if hi == 0 {
			hi = 0
		}
		return binary.LittleEndian.AppendUint64(nil, math.Float64bits(lo)), binary.LittleEndian.AppendUint64(nil, math.Float64bits(hi))
	default: // parquet.Boolean
		return []byte{byte(s.imin)}, []byte{byte(s.imax)}
	}
}

// cut returns the longest prefix of v of at most maxStatBytes that ends
// where a UTF-8 character starts (a string's bound stays valid UTF-8).
func cut(v []byte) []byte {
	if len(v) <= maxStatBytes {
		return v
	}
	n := maxStatBytes
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}

// roundUp returns a copy of the max v, or when it is longer than
// maxStatBytes, a short value greater than it: its cut with the last
// character incremented and what follows dropped (UTF-8 orders bytes as it
// orders characters, so "€€€…" rounds up to "€€₭", and stays valid UTF-8).
// A character that cannot be incremented within maxStatBytes (U+10FFFF,
// or one whose successor is longer and does not fit) is dropped and the one
// before it tried; a byte that is not UTF-8 is incremented as a byte.
// false when nothing can be (v is all 0xff bytes or U+10FFFF).
func roundUp(v []byte) ([]byte, bool) {
	if len(v) <= maxStatBytes {
		return append([]byte{}, v...), true
	}
	b := append([]byte{}, cut(v)...)
	for len(b) > 0 {
		r, size := utf8.DecodeLastRune(b)
		head := b[:len(b)-size]
		if r == utf8.RuneError && size <= 1 {
			if c := b[len(b)-1]; c < 0xff {
				return append(head, c+1), true
			}
			b = head
			continue
		}
		next := r + 1
		if next == 0xd800 { // surrogates are not characters
			next = 0xe000
		}
		if next <= utf8.MaxRune && len(head)+utf8.RuneLen(next) <= maxStatBytes {
			return utf8.AppendRune(head, next), true
		}
		b = head
	}
	return nil, false
}

// appendLevels appends levels in the RLE/bit-packing hybrid encoding at
// the given bit width: runs of eight or more equal levels as RLE runs, the
// rest bit-packed in groups of eight.
func appendLevels(b, levels []byte, width int) []byte {
	for i := 0; i < len(levels); {
		if n := runAt(levels, i); n >= 8 {
			b = binary.AppendUvarint(b, uint64(n)<<1)
			b = append(b, levels[i]) // width ≤ 8: one byte
			i += n
			continue
		}
		// Bit-pack groups of eight until a long run starts a group.
		start := i
		for i < len(levels) && (i == start || runAt(levels, i) < 8) {
			i += 8
		}
		i = min(i, len(levels))
		groups := (i - start + 7) / 8
		b = binary.AppendUvarint(b, uint64(groups)<<1|1)
		b = appendPacked(b, levels[start:i], groups*8, width)
	}
	return b
}

// runAt is the length of the run of equal levels from i.
func runAt(levels []byte, i int) int {
	n := 1
	for i+n < len(levels) && levels[i+n] == levels[i] {
		n++
	}
	return n
}

// appendPacked appends n values (levels, then zeros) width bits each,
// least significant bit first.
func appendPacked(b, levels []byte, n, width int) []byte {
	var acc uint64
	var k int
	for j := range n {
		var v byte
		if j < len(levels) {
			v = levels[j]
		}
		acc |= uint64(v) << k
		k += width
		for k >= 8 {
			b = append(b, byte(acc))
			acc >>= 8
			k -= 8
		}
	}
	if k > 0 {
		b = append(b, byte(acc))
	}
	return b
}

// writeFooter writes the page index, then the file's metadata, their
// length and the magic bytes, in one Write to out: the page index is two
// small structures per column chunk, each a system call written alone.
func (e *fileEncoder) writeFooter(out *countingWriter) error {
	var buf bytes.Buffer
	if err := e.encodeFooter(&countingWriter{w: &buf, n: out.n}); err != nil {
		return err
	}
	_, err := out.Write(buf.Bytes())
	return err
}

// encodeFooter writes the footer to out (see writeFooter).
func (e *fileEncoder) encodeFooter(out *countingWriter) error {
	for g := range e.rowGroups {
		for j := range e.rowGroups[g].Columns {
			ci := &e.columnIndexes[g][j]
			if !ci.ok {
				continue
			}
			cc := &e.rowGroups[g].Columns[j]
			b, err := thrift.Marshal(new(thrift.CompactProtocol), &ci.ColumnIndex)
			if err != nil {
				return fmt.Errorf("encode column index: %w", err)
			}
			cc.ColumnIndexOffset, cc.ColumnIndexLength = out.n, int32(len(b))
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
	}
	for g := range e.rowGroups {
		for j := range e.rowGroups[g].Columns {
			cc := &e.rowGroups[g].Columns[j]
			b, err := thrift.Marshal(new(thrift.CompactProtocol), &e.offsetIndexes[g][j])
			if err != nil {
				return fmt.Errorf("encode offset index: %w", err)
			}
			cc.OffsetIndexOffset, cc.OffsetIndexLength = out.n, int32(len(b))
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
	}
	var rows int64
	for _, rg := range e.rowGroups {
		rows += rg.NumRows
	}
	kv := append([]format.KeyValue{}, e.kv...)
	sort.Slice(kv, func(i, j int) bool { return kv[i].Key < kv[j].Key })
	md := format.FileMetaData{
		Version:          2,
		Schema:           e.schema.elements,
		NumRows:          rows,
		RowGroups:        e.rowGroups,
		KeyValueMetadata: kv,
		CreatedBy:        e.createdBy,
		ColumnOrders:     e.schema.orders,
	}
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		return fmt.Errorf("encode file metadata: %w", err)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)))
	_, err = out.Write(append(b, magic...))
	return err
}
