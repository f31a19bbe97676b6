package lake

import (
	"context"
	"fmt"
	"path"
	"strconv"

	"github.com/questlog/questlog/internal/lake/pqwrite"
)

// PartWriter writes one Parquet data file of the lake: its rows are built
// with pqwrite.Writer's methods, into a pending file that Publish gives its
// final name part-<partition>-<first>-<last>.parquet, once the last offset
// is known. Close and Publish finish it through the PartWriter, never
// through the pqwrite.Writer.
type PartWriter struct {
	*pqwrite.Writer
	pf     PendingFile
	part   Part
	Schema *Schema // nil for a quarantine file
}

// createdBy is what every file of the lake says made it.
const createdBy = "questlog version 1"

// Files makes the data files of an extract: they share one compression
// codec and one pool of row buffers (see pqwrite.Encoder).
type Files struct {
	enc *pqwrite.Encoder
}

// NewFiles returns a maker of data files compressed with the named codec
// (see pqwrite.Codec).
func NewFiles(compression string) (*Files, error) {
	enc, err := pqwrite.NewEncoder(compression, createdBy)
	if err != nil {
		return nil, err
	}
	return &Files{enc: enc}, nil
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
	return fs.writer(pf, part, schema), nil
}

// writer writes part to pf with the columns of schema (nil: quarantine).
func (fs *Files) writer(pf PendingFile, part Part, schema *Schema) *PartWriter {
	w := &PartWriter{pf: pf, part: part, Schema: schema}
	if schema == nil {
		w.Writer = fs.enc.NewWriter(pf, quarantineSchema(), nil)
	} else {
		w.Writer = fs.enc.NewWriter(pf, schema.Layout().parquet, map[string]string{
			MetaEventType:     schema.EventType,
			MetaSchemaVersion: strconv.Itoa(schema.Version),
		})
	}
	return w
}

// CreateMerge starts the file that merges the files of part's range (a
// compaction's): it has the columns of schema, is written under a name
// that IsMergePending recognises until Publish gives it part's name, and
// its rows are appended in batches (pqwrite.Writer's Append methods), so
// part's range is set now.
func (fs *Files) CreateMerge(ctx context.Context, st Storage, part Part, schema *Schema) (*PartWriter, error) {
	name := part.Name()
	pf, err := st.Create(ctx, path.Dir(name)+"/"+mergePrefix+path.Base(name))
	if err != nil {
		return nil, err
	}
	return fs.writer(pf, part, schema), nil
}

// Part is the file's part as it stands (Last is the last offset written).
func (w *PartWriter) Part() Part { return w.part }

// EndRow ends the row being built, whose offset is last (see
// pqwrite.Writer.EndRow).
func (w *PartWriter) EndRow(last int64) error {
	if err := w.Writer.EndRow(); err != nil {
		return fmt.Errorf("write part %s: %w", w.part.Name(), err)
	}
	w.part.Last = last
	return nil
}

// EndRows ends n rows appended column by column, the last of which has
// offset last or less (see pqwrite.Writer.EndRows). A merge calls it with
// the last offset of the file its rows come from: once that file's rows
// are all appended, the part ends there.
func (w *PartWriter) EndRows(n int, last int64) error {
	if err := w.Writer.EndRows(n); err != nil {
		return fmt.Errorf("write part %s: %w", w.part.Name(), err)
	}
	w.part.Last = last
	return nil
}

// FlushRowGroup writes the buffered rows as a row group, which frees the
// memory they held.
func (w *PartWriter) FlushRowGroup() error {
	if err := w.Writer.FlushRowGroup(); err != nil {
		return fmt.Errorf("write part %s: %w", w.part.Name(), err)
	}
	return nil
}

// Close finishes the file and makes it durable, still unpublished.
func (w *PartWriter) Close() error {
	if err := w.Writer.Close(); err != nil {
		w.pf.Abort()
		return fmt.Errorf("write part %s: %w", w.part.Name(), err)
	}
	return w.pf.Sync()
}

// Publish gives the closed file its final name, making it visible to
// readers. It returns the part and the file's size. The file survives a
// power loss once its directory is synced (Storage.SyncDir).
func (w *PartWriter) Publish() (Part, int64, error) {
	if err := w.pf.Commit(w.part.Name()); err != nil {
		return w.part, 0, err
	}
	return w.part, w.Written(), nil
}

// Abort throws the file away.
func (w *PartWriter) Abort() error { return w.pf.Abort() }
