package pqwrite

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// checkLevels encodes levels and decodes them with parquet-go's RLE
// decoder: the same levels must come back, then at most the zeros that
// pad the last bit-packed group.
func checkLevels(t *testing.T, levels []byte, width int) {
	t.Helper()
	enc := appendLevels(nil, levels, width)
	dec, err := (&rle.Encoding{BitWidth: width}).DecodeLevels(nil, enc)
	if err != nil {
		t.Fatalf("decode %v (width %d): %v", levels, width, err)
	}
	if len(dec) < len(levels) || len(dec) >= len(levels)+8 || !bytes.Equal(dec[:len(levels)], levels) {
		t.Fatalf("levels %v (width %d) decode as %v", levels, width, dec)
	}
	for _, v := range dec[len(levels):] {
		if v != 0 {
			t.Fatalf("levels %v (width %d): padding %v", levels, width, dec[len(levels):])
		}
	}
}

func TestAppendLevels(t *testing.T) {
	rep := func(v byte, n int) []byte { return bytes.Repeat([]byte{v}, n) }
	tests := []struct {
		name   string
		levels []byte
		width  int
		max    int // most bytes the encoding may take
	}{
		{"one", []byte{1}, 1, 2},
		{"a long run", rep(1, 100_000), 1, 4},
		{"short runs bit-packed", []byte{0, 1, 1, 0, 1, 0, 0, 1, 1, 1}, 1, 3},
		{"a run after a partial group", append([]byte{0, 1, 0}, rep(1, 20)...), 1, 4},
		{"a run starting inside a group", append([]byte{0, 1, 0, 1, 0}, rep(0, 30)...), 1, 5},
		{"alternating", bytes.Repeat([]byte{0, 1}, 1000), 1, 252},
		{"width 2", append(bytes.Repeat([]byte{0, 1, 2}, 7), rep(2, 9)...), 2, 10},
		{"width 3", []byte{7, 0, 5, 3, 3, 3, 1, 6, 2}, 3, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLevels(t, tt.levels, tt.width)
			if n := len(appendLevels(nil, tt.levels, tt.width)); n > tt.max {
				t.Errorf("%d bytes, want at most %d", n, tt.max)
			}
		})
	}
}

func FuzzAppendLevels(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0}, uint8(1))
	f.Add([]byte{3, 2, 1, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, w uint8) {
		width := int(w%8) + 1
		levels := make([]byte, len(b))
		for i, v := range b {
			// Mostly runs: keep the previous level unless v says otherwise.
			switch {
			case i > 0 && v&0x80 == 0:
				levels[i] = levels[i-1]
			default:
				levels[i] = v & byte(1<<width-1)
			}
		}
		checkLevels(t, levels, width)
	})
}

func TestStringBounds(t *testing.T) {
	long := strings.Repeat("a", maxStatBytes)
	// "a" then "é" (2 bytes) repeated: byte maxStatBytes is inside an é.
	accented := "a" + strings.Repeat("é", maxStatBytes)
	tests := []struct {
		in, min, max string
		roundable    bool
	}{
		{"short", "short", "short", true},
		{long, long, long, true},
		{long + "a", long, long[:maxStatBytes-1] + "b", true},
		{"ab" + strings.Repeat("\xff", maxStatBytes), "ab" + strings.Repeat("\xff", maxStatBytes-2), "ac", true},
		// The cut ends on a whole "é": it becomes "ê".
		{accented, accented[:maxStatBytes-1], accented[:maxStatBytes-3] + "ê", true},
		// No ASCII at all: 3-byte and 4-byte characters round up too.
		{strings.Repeat("€", 30), strings.Repeat("€", 21), strings.Repeat("€", 20) + "₭", true},
		{strings.Repeat("😀", 20), strings.Repeat("😀", 16), strings.Repeat("😀", 15) + "😁", true},
		// U+007F's successor takes 2 bytes: past the limit, so the
		// character before it goes up instead.
		{strings.Repeat("a", maxStatBytes-1) + "\x7f" + "b", strings.Repeat("a", maxStatBytes-1) + "\x7f", strings.Repeat("a", maxStatBytes-2) + "b", true},
		// The last character before U+E000 is U+D7FF: surrogates are skipped.
		{strings.Repeat("\ud7ff", 22), strings.Repeat("\ud7ff", 21), strings.Repeat("\ud7ff", 20) + "\ue000", true},
		{strings.Repeat(string(rune(0x10ffff)), 17), strings.Repeat(string(rune(0x10ffff)), 16), "", false},
		{strings.Repeat("\xff", maxStatBytes+1), strings.Repeat("\xff", maxStatBytes), "", false},
	}
	for _, tt := range tests {
		if got := string(cut([]byte(tt.in))); got != tt.min {
			t.Errorf("cut(%q) = %q, want %q", tt.in, got, tt.min)
		}
		got, ok := roundUp([]byte(tt.in))
		if ok != tt.roundable || string(got) != tt.max {
			t.Errorf("roundUp(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.max, tt.roundable)
		}
		if ok && (bytes.Compare(got, []byte(tt.in)) < 0 || !utf8.Valid(got) && utf8.ValidString(tt.in)) {
			t.Errorf("roundUp(%q) = %q: below the value, or not UTF-8", tt.in, got)
		}
	}
}

// TestFloatBounds: a zero min is written -0 and a zero max +0.
func TestFloatBounds(t *testing.T) {
	negZero := math.Copysign(0, -1)
	tests := []struct {
		values []float64
		lo, hi float64
	}{
		{[]float64{1.5, -2, 3}, -2, 3},
		{[]float64{0, 5}, negZero, 5},
		{[]float64{-3, negZero}, -3, 0},
		{[]float64{negZero, 0}, negZero, 0},
		{[]float64{0}, negZero, 0},
	}
	for _, tt := range tests {
		var st stats
		for _, v := range tt.values {
			st.float(v)
		}
		lo, hi := st.bounds(parquet.Double)
		gotLo := math.Float64frombits(binary.LittleEndian.Uint64(lo))
		gotHi := math.Float64frombits(binary.LittleEndian.Uint64(hi))
		if gotLo != tt.lo || math.Signbit(gotLo) != math.Signbit(tt.lo) || gotHi != tt.hi || math.Signbit(gotHi) != math.Signbit(tt.hi) {
			t.Errorf("bounds of %v = %v, %v; want %v, %v", tt.values, gotLo, gotHi, tt.lo, tt.hi)
		}
	}
}

// TestWriterPagesAndStatistics writes enough rows for several pages per
// column chunk and two row groups, with nulls at random, in each codec,
// and reads every value back with parquet-go, and each chunk's null count,
// min and max from the footer.
func TestWriterPagesAndStatistics(t *testing.T) {
	for _, codec := range []string{"zstd", "snappy", "none"} {
		t.Run(codec, func(t *testing.T) { testPagesAndStatistics(t, codec) })
	}
}

func testPagesAndStatistics(t *testing.T, codec string) {
	schema := parquet.NewSchema("probe", Group{
		Field("s", parquet.Optional(parquet.String())),
		Field("n", parquet.Optional(parquet.Int(64))),
		Field("f", parquet.Optional(parquet.Leaf(parquet.DoubleType))),
		Field("ok", parquet.Optional(parquet.Leaf(parquet.BooleanType))),
		Field("h", parquet.Optional(Group{Field("a", parquet.Optional(parquet.String()))})),
		Field("kafka_partition", parquet.Int(32)),
		Field("kafka_offset", parquet.Int(64)),
		Field("kafka_timestamp", parquet.Timestamp(parquet.Microsecond)),
	})
	// Leaves: s 0, n 1, f 2, ok 3, h.a 4, then the lineage columns 5, 6, 7.
	w, out := newWriter(t, codec, schema, map[string]string{"questlog.schema_version": "3", "questlog.event_type": "probe"})
	const rows = 40_000
	rng := rand.New(rand.NewPCG(1, 2))
	var want []string // each row as cell() shows it
	for r := range rows {
		var cells []string
		if rng.IntN(4) > 0 {
			s := fmt.Sprintf("player-%05d", rng.IntN(100_000))
			switch r {
			case 7:
				s = strings.Repeat("z", 3*maxStatBytes) // a long max, rounded up
			case rows - 7:
				s = strings.Repeat("A", maxStatBytes+20) // a long min, cut
			}
			w.String(0, []byte(s))
			cells = append(cells, "1:"+s)
		} else {
			cells = append(cells, "0:-")
		}
		if rng.IntN(3) > 0 {
			n := rng.Int64N(1_000_000) - 500_000
			w.Int(1, n)
			cells = append(cells, fmt.Sprintf("1:%d", n))
		} else {
			cells = append(cells, "0:-")
		}
		if r%5 > 0 {
			f := rng.NormFloat64() * 100
			if r == 11 {
				f = math.Copysign(0, -1)
			}
			w.Float(2, f)
			cells = append(cells, fmt.Sprintf("1:%g", f))
		} else {
			cells = append(cells, "0:-")
		}
		if r%7 > 0 {
			b := rng.IntN(2) == 0
			w.Bool(3, b)
			cells = append(cells, fmt.Sprintf("1:%t", b))
		} else {
			cells = append(cells, "0:-")
		}
		switch r % 3 {
		case 0: // absent struct
			cells = append(cells, "0:-")
		case 1: // present struct, null field
			w.Null(4, 4+1, 1)
			cells = append(cells, "1:-")
		case 2:
			w.Null(4, 4+1, 1)
			s := fmt.Sprintf("guild %d", rng.IntN(50))
			w.String(4, []byte(s))
			cells = append(cells, "2:"+s)
		}
		w.Int(5, 1)
		w.Int(6, int64(r))
		w.Int(7, int64(r)*1000)
		cells = append(cells, "0:1", fmt.Sprintf("0:%d", r), fmt.Sprintf("0:%d", r*1000))
		if err := w.EndRow(); err != nil {
			t.Fatal(err)
		}
		want = append(want, strings.Join(cells, " "))
		if r == rows/2 {
			if err := w.FlushRowGroup(); err != nil {
				t.Fatal(err)
			}
		}
	}
	pf := closeAndOpen(t, w, out)
	md := pf.Metadata()
	if md.NumRows != rows || len(md.RowGroups) != 2 {
		t.Fatalf("%d rows in %d row groups, want %d in 2", md.NumRows, len(md.RowGroups), rows)
	}
	// Key-value metadata sorted by key, and the schema as it was given.
	if kv := fmt.Sprint(md.KeyValueMetadata); kv != "[{questlog.event_type probe} {questlog.schema_version 3}]" {
		t.Errorf("key/value metadata %s", kv)
	}
	if got, want := pf.Schema().String(), schema.String(); got != want {
		t.Errorf("schema read back\n%s\nwant\n%s", got, want)
	}

	var got [][]parquet.Value
	for gi, rg := range pf.RowGroups() {
		rs := rg.Rows()
		buf := make([]parquet.Row, 1000)
		for {
			n, err := rs.ReadRows(buf)
			for _, row := range buf[:n] {
				got = append(got, slices.Clone(row))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("row group %d: %v", gi, err)
			}
		}
		rs.Close()
		// Each chunk's statistics against the values of its rows.
		first := int(md.RowGroups[0].NumRows) * gi
		for leaf, cc := range md.RowGroups[gi].Columns {
			var nulls int64
			var lo, hi parquet.Value
			for _, row := range got[first:] {
				v := row[leaf]
				if v.IsNull() {
					nulls++
					continue
				}
				if lo.IsNull() || compare(v, lo) < 0 {
					lo = v
				}
				if hi.IsNull() || compare(v, hi) > 0 {
					hi = v
				}
			}
			s := cc.MetaData.Statistics
			if s.NullCount != nulls || cc.MetaData.NumValues != int64(len(got)-first) {
				t.Errorf("row group %d column %d: %d nulls of %d values, want %d of %d", gi, leaf, s.NullCount, cc.MetaData.NumValues, nulls, len(got)-first)
			}
			wantLo, wantHi := lo.Bytes(), hi.Bytes()
			if lo.Kind() == parquet.ByteArray {
				wantLo = cut(wantLo)
				wantHi, _ = roundUp(wantHi)
			}
			if !bytes.Equal(s.MinValue, wantLo) || !bytes.Equal(s.MaxValue, wantHi) {
				t.Errorf("row group %d column %d: min %q max %q, want %q %q", gi, leaf, s.MinValue, s.MaxValue, wantLo, wantHi)
			}
		}
	}
	if len(got) != rows {
		t.Fatalf("read %d rows, want %d", len(got), rows)
	}
	for r, row := range got {
		var cells []string
		for _, v := range row {
			cells = append(cells, cell(v))
		}
		if g := strings.Join(cells, " "); g != want[r] {
			t.Fatalf("row %d: %s\nwant    %s", r, g, want[r])
		}
	}
	// Several pages per chunk: the string column holds ~400 KB per group.
	if pages := countPages(t, pf, 0); pages < 4 {
		t.Errorf("%d pages in column s, want several", pages)
	}
	checkPageIndex(t, pf)
}

// checkPageIndex compares each page of pf with its entries in the page
// index: where it starts, its first row, its null count and bounds.
func checkPageIndex(t *testing.T, pf *parquet.File) {
	t.Helper()
	cis, ois := pf.ColumnIndexes(), pf.OffsetIndexes()
	columns := len(pf.Metadata().RowGroups[0].Columns)
	if want := len(pf.RowGroups()) * columns; len(cis) != want || len(ois) != want {
		t.Fatalf("%d column indexes and %d offset indexes, want %d", len(cis), len(ois), want)
	}
	for gi, rg := range pf.RowGroups() {
		for leaf, chunk := range rg.ColumnChunks() {
			ci, oi := cis[gi*columns+leaf], ois[gi*columns+leaf]
			pages := chunk.Pages()
			row := int64(0)
			for k := 0; ; k++ {
				p, err := pages.ReadPage()
				if err == io.EOF {
					if k != len(oi.PageLocations) || k != len(ci.NullPages) {
						t.Errorf("row group %d column %d: %d pages, the index has %d and %d", gi, leaf, k, len(oi.PageLocations), len(ci.NullPages))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if k >= len(oi.PageLocations) || k >= len(ci.NullPages) {
					t.Fatalf("row group %d column %d: page %d is not in the index", gi, leaf, k)
				}
				at := fmt.Sprintf("row group %d column %d page %d", gi, leaf, k)
				loc := oi.PageLocations[k]
				if loc.FirstRowIndex != row {
					t.Errorf("%s: first row %d, want %d", at, loc.FirstRowIndex, row)
				}
				// The location holds a page header and the page it announces.
				raw := make([]byte, loc.CompressedPageSize)
				if _, err := pf.ReadAt(raw, loc.Offset); err != nil {
					t.Fatalf("%s: read at %d: %v", at, loc.Offset, err)
				}
				var h format.PageHeader
				r := bytes.NewReader(raw)
				if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(r)).Decode(&h); err != nil {
					t.Fatalf("%s: page header at %d: %v", at, loc.Offset, err)
				}
				if h.Type != format.DataPageV2 || int(h.CompressedPageSize) != r.Len() {
					t.Errorf("%s: at %d a %v page header announcing %d bytes, %d left in the location", at, loc.Offset, h.Type, h.CompressedPageSize, r.Len())
				}
				if ci.NullCounts[k] != p.NumNulls() || ci.NullPages[k] != (p.NumNulls() == p.NumValues()) {
					t.Errorf("%s: %d nulls (null page %v), the page has %d of %d", at, ci.NullCounts[k], ci.NullPages[k], p.NumNulls(), p.NumValues())
				}
				lo, hi, ok := p.Bounds()
				wantLo, wantHi := []byte{}, []byte{}
				if ok {
					wantLo, wantHi = lo.Bytes(), hi.Bytes()
					if lo.Kind() == parquet.ByteArray {
						wantLo = cut(wantLo)
						wantHi, _ = roundUp(wantHi)
					}
				}
				if !bytes.Equal(ci.MinValues[k], wantLo) || !bytes.Equal(ci.MaxValues[k], wantHi) {
					t.Errorf("%s: bounds %q %q, want %q %q", at, ci.MinValues[k], ci.MaxValues[k], wantLo, wantHi)
				}
				row += p.NumRows()
				parquet.Release(p)
			}
			pages.Close()
		}
	}
}

// compare orders two values of one column as Parquet's type-defined order
// does. (The float column's bounds are never zero.)
func compare(a, b parquet.Value) int {
	switch a.Kind() {
	case parquet.ByteArray:
		return bytes.Compare(a.ByteArray(), b.ByteArray())
	case parquet.Double:
		return cmpOrdered(a.Double(), b.Double())
	case parquet.Boolean:
		return boolInt(a.Boolean()) - boolInt(b.Boolean())
	case parquet.Int32:
		return cmpOrdered(a.Int32(), b.Int32())
	default:
		return cmpOrdered(a.Int64(), b.Int64())
	}
}

func cmpOrdered[T int32 | int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// countPages counts the data pages of a leaf column across the file.
func countPages(t *testing.T, pf *parquet.File, leaf int) int {
	t.Helper()
	n := 0
	for _, rg := range pf.RowGroups() {
		pages := rg.ColumnChunks()[leaf].Pages()
		for {
			p, err := pages.ReadPage()
			if err != nil {
				break
			}
			parquet.Release(p)
			n++
		}
		pages.Close()
	}
	return n
}
