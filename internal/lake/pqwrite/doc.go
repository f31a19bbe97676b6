// Package pqwrite writes Parquet files from rows given value by value, and knows nothing of the lake whose files it writes.
package pqwrite

// The format's decisions, which readers of the files rely on:
//
//   - Data pages v2, PLAIN values (dictionaries cost more CPU and memory
//     than they save once compressed), RLE/bit-packed definition levels
//     (no repetition levels: no column is repeated), the values of a page
//     compressed with the file's one codec (see Codec: zstd at its fastest
//     level by default) and its levels not.
//   - Each column chunk's null count, min and max in the footer; the page
//     index (each page's bounds, null count and place) before the footer,
//     so that readers skip row groups and pages. A page of nulls has empty
//     bounds; a float min of zero is -0 and a max of zero +0.
//   - Byte array bounds are cut to maxStatBytes on a UTF-8 character
//     boundary, the max rounded up; a chunk whose long max cannot be
//     rounded up has no column index.
//   - Columns keep the order their schema gives (see Group), where
//     parquet.Group sorts them by name.
//   - A file holds at most MaxRowGroups row groups.
//
// parquet-go's own writer took Go values one by one (a parquet.Value each)
// and buffered them again in its own column buffers before encoding: a
// third of the extract's CPU. Here a row is built value by value into plain
// Go slices per column, and pages are encoded straight from them.
const (
	// MaxRowGroups is how many row groups a file holds at most: each
	// keeps its column chunks' metadata in memory until the footer is
	// written.
	MaxRowGroups = 64

	// maxStatBytes bounds a byte array column's min and max in the footer
	// and the page index: longer ones are cut (the max then rounded up),
	// as the format allows.
	maxStatBytes = 64

	// pageBytes is about how many bytes of PLAIN values a data page holds
	// before compression.
	pageBytes = 128 << 10
)
