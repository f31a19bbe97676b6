package compact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/parquet-go/parquet-go"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/pqwrite"
)

// rowGroupBytes is how many bytes of rows a merged file buffers before it
// writes a row group: the extract's size.
const rowGroupBytes = 8 << 20

// readWhole is the size up to which an input file is read into memory in
// one read rather than page by page.
const readWhole = 4 << 20

// input is one file of a run, opened.
type input struct {
	file    lake.DataFile
	pf      *parquet.File
	cols    lake.Columns
	closer  io.Closer
	rawSize int64 // uncompressed bytes of its row groups
}

// open opens an input file and checks that it is one of the group's,
// written with a version of schema.
func (c *Compactor) open(ctx context.Context, f lake.DataFile, schema *lake.Schema) (*input, error) {
	in := &input{file: f}
	var (
		r    io.ReaderAt
		size int64
	)
	if f.Size <= readWhole {
		b, err := c.cfg.lake.ReadFile(ctx, f.Name)
		if err != nil {
			return nil, &inputError{err}
		}
		r, size = bytes.NewReader(b), int64(len(b))
	} else {
		file, err := c.cfg.lake.Open(ctx, f.Name)
		if err != nil {
			return nil, &inputError{err}
		}
		r, size, in.closer = file, file.Size(), file
	}
	if err := in.read(r, size, schema); err != nil {
		in.close()
		return nil, &inputError{fmt.Errorf("read %s: %w", f.Name, err)}
	}
	return in, nil
}

func (in *input) read(r io.ReaderAt, size int64, schema *lake.Schema) error {
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return err
	}
	if t, _ := pf.Lookup(lake.MetaEventType); t != schema.EventType {
		return fmt.Errorf("it holds event type %q", t)
	}
	v, _ := pf.Lookup(lake.MetaSchemaVersion)
	if version, err := strconv.Atoi(v); err != nil || schema.FieldsOf(version) == nil {
		return fmt.Errorf("its schema version %q is not in %s", v, lake.SchemaName(schema.EventType))
	}
	fields, err := lake.FieldsOfParquet(pf.Schema())
	if err != nil {
		return err
	}
	n := len(fields) - len(lake.LineageFields)
	if n < 0 || !slices.EqualFunc(fields[n:], lake.LineageFields, func(a, b lake.Field) bool { return a.Name == b.Name && a.Kind == b.Kind }) {
		return errors.New("it does not end with the lineage columns")
	}
	in.pf, in.cols = pf, lake.ColumnsOf(fields[:n])
	for _, rg := range pf.Metadata().RowGroups {
		in.rawSize += rg.TotalByteSize
	}
	return nil
}

func (in *input) close() {
	if in.closer != nil {
		in.closer.Close()
	}
}

// output is a merged file being written.
type output struct {
	w      *lake.PartWriter
	from   []lake.DataFile
	leaves int
	levels []byte // each leaf's maximal definition level

	scratch []scratch // one for each of the goroutines that copy columns
}

// scratch holds values converted on their way.
type scratch struct {
	defs   []byte
	floats []float64
	text   []byte
}

// merge merges a run of a group's files into one or more files of the
// same group (cut between inputs at about the target size) and publishes
// each; with no grace period it removes the inputs of each at once.
func (c *Compactor) merge(ctx context.Context, run []lake.DataFile, schema *lake.Schema, sum *Summary) (err error) {
	var out *output
	defer func() {
		// A hook's crash leaves the pending file, as a crash would.
		if out != nil && !errors.Is(err, errHook) {
			out.w.Abort()
		}
	}()
	for _, f := range run {
		if err := ctx.Err(); err != nil {
			return err
		}
		in, err := c.open(ctx, f, schema)
		if err != nil {
			return err
		}
		if out != nil && (out.w.Size() >= c.cfg.target || out.w.RowGroups()+rowGroupsOf(in) >= pqwrite.MaxRowGroups) {
			if err := c.finish(ctx, out, sum); err != nil {
				in.close()
				return err
			}
			out = nil
		}
		if out == nil {
			if out, err = c.create(ctx, f, schema); err != nil {
				in.close()
				return err
			}
		}
		err = out.copyRows(ctx, in, schema)
		in.close()
		if err != nil {
			return err
		}
	}
	if out == nil {
		return nil
	}
	last := out
	out = nil
	return c.finish(ctx, last, sum)
}

// rowGroupsOf is about how many row groups an input's rows make.
func rowGroupsOf(in *input) int { return int(in.rawSize/rowGroupBytes) + 1 }

// create starts a merged file whose first input is first.
func (c *Compactor) create(ctx context.Context, first lake.DataFile, schema *lake.Schema) (*output, error) {
	w, err := c.files.CreateMerge(ctx, c.cfg.lake, first.Part, schema)
	if err != nil {
		return nil, err
	}
	cols := schema.Layout().Columns
	out := &output{w: w, leaves: cols.KafkaTime + 1}
	out.levels = make([]byte, out.leaves)
	out.scratch = make([]scratch, min(runtime.GOMAXPROCS(0), out.leaves))
	var walk func(cols []lake.Column, level byte)
	walk = func(cols []lake.Column, level byte) {
		for _, c := range cols {
			if c.Kind == lake.KindStruct {
				walk(c.Fields, level+1)
			} else {
				out.levels[c.Leaf] = level
			}
		}
	}
	walk(cols.Fields, 1)
	return out, nil
}

// copyRows appends every row of in to out, a row group at a time.
func (out *output) copyRows(ctx context.Context, in *input, schema *lake.Schema) error {
	srcs, err := sources(schema.Layout().Columns, in.cols, out.leaves)
	if err != nil {
		return &inputError{fmt.Errorf("read %s: %w", in.file.Name, err)}
	}
	for _, rg := range in.pf.RowGroups() {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Columns are decoded side by side: decompressing is most of the
		// work.
		n := int(rg.NumRows())
		errs := make([]error, len(out.scratch))
		var wg sync.WaitGroup
		for k := range out.scratch {
			wg.Go(func() {
				for leaf := k; leaf < len(srcs); leaf += len(out.scratch) {
					if err := out.copyColumn(leaf, srcs[leaf], rg, n, &out.scratch[k]); err != nil {
						errs[k] = &inputError{fmt.Errorf("read %s: column %d: %w", in.file.Name, leaf, err)}
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := out.w.EndRows(n, in.file.Last); err != nil {
			return err
		}
		if out.w.Buffered() >= rowGroupBytes && out.w.RowGroups() < pqwrite.MaxRowGroups-1 {
			if err := out.w.FlushRowGroup(); err != nil {
				return err
			}
		}
	}
	out.from = append(out.from, in.file)
	return nil
}

// copyColumn appends the n rows of a row group of an input to the merged
// file's leaf, from src.
func (out *output) copyColumn(leaf int, src source, rg parquet.RowGroup, n int, s *scratch) error {
	w := out.w
	switch src.kind {
	case fromNothing:
		if src.in < 0 {
			w.AppendNulls(leaf, n, 0)
			return nil
		}
		return eachPage(rg, src.in, func(p parquet.Page) error {
			defs := p.DefinitionLevels()
			s.defs = s.defs[:0]
			for _, d := range defs {
				s.defs = append(s.defs, min(d, src.level-1))
			}
			w.AppendLevels(leaf, s.defs)
			return nil
		})
	case fromStruct:
		return out.structText(leaf, src, rg, s)
	}
	optional := out.levels[leaf] > 0
	return eachPage(rg, src.in, func(p parquet.Page) error {
		if p.Dictionary() != nil {
			return errors.New("a dictionary-encoded page: not written by questlog")
		}
		if optional {
			w.AppendLevels(leaf, p.DefinitionLevels())
		}
		vals := p.Data()
		switch {
		case src.from == "int32":
			w.AppendInt32s(leaf, vals.Int32())
		case src.from == src.to && (src.to == lake.KindInt || src.to == lake.KindTimestamp):
			w.AppendInts(leaf, vals.Int64())
		case src.from == src.to && src.to == lake.KindFloat:
			w.AppendFloats(leaf, vals.Double())
		case src.from == src.to && src.to == lake.KindString:
			data, offsets := vals.ByteArray()
			w.AppendByteArrays(leaf, data, offsets)
		case src.to == lake.KindFloat: // from int
			s.floats = s.floats[:0]
			for _, v := range vals.Int64() {
				s.floats = append(s.floats, float64(v))
			}
			w.AppendFloats(leaf, s.floats)
		default: // booleans, and anything widened to a string: value by value
			return eachValue(p, func(v parquet.Value) {
				if src.to == lake.KindBool {
					w.AppendBool(leaf, v.Boolean())
					return
				}
				s.text = appendText(s.text[:0], src.from, v)
				w.AppendByteArray(leaf, s.text)
			})
		}
		return nil
	})
}

// eachPage calls fn with each page of a row group's leaf column.
func eachPage(rg parquet.RowGroup, leaf int, fn func(parquet.Page) error) error {
	pages := rg.ColumnChunks()[leaf].Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = fn(p)
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// eachValue calls fn with each value of a page that is not null.
func eachValue(p parquet.Page, fn func(parquet.Value)) error {
	r := p.Values()
	var buf [256]parquet.Value
	for {
		n, err := r.ReadValues(buf[:])
		for _, v := range buf[:n] {
			if !v.IsNull() {
				fn(v)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// structText appends, for each row of a row group, the input's struct as
// JSON text (the schema widened it to a string) or a null as deep as the
// structs around it go.
func (out *output) structText(leaf int, src source, rg parquet.RowGroup, s *scratch) error {
	// The struct's leaves, read whole: a rare path (a struct met a scalar).
	var last int
	var walk func([]lake.Column)
	walk = func(cols []lake.Column) {
		for _, f := range cols {
			if f.Kind == lake.KindStruct {
				walk(f.Fields)
			} else {
				last = max(last, f.Leaf)
			}
		}
	}
	walk(src.fields)
	values := map[int][]parquet.Value{} // by leaf: each row's value, null or not
	for l := src.in; l <= last; l++ {
		err := eachPage(rg, l, func(p parquet.Page) error {
			r := p.Values()
			var buf [256]parquet.Value
			for {
				n, err := r.ReadValues(buf[:])
				for _, v := range buf[:n] {
					values[l] = append(values[l], v.Clone())
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		})
		if err != nil {
			return err
		}
	}
	for row, v := range values[src.in] {
		if d := byte(v.DefinitionLevel()); d < src.level {
			out.w.AppendLevels(leaf, []byte{d})
			continue
		}
		out.w.AppendLevels(leaf, []byte{src.level})
		s.text = appendObject(s.text[:0], src.fields, values, row, src.level)
		out.w.AppendByteArray(leaf, s.text)
	}
	return nil
}

// appendObject appends the JSON object of a struct at definition level
// level present in row: its fields that are not null, in column order.
func appendObject(b []byte, fields []lake.Column, values map[int][]parquet.Value, row int, level byte) []byte {
	b = append(b, '{')
	first := true
	for _, f := range fields {
		v := values[f.Leaf][row]
		if byte(v.DefinitionLevel()) <= level {
			continue // null, or a struct absent
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		name, _ := json.Marshal(f.Name)
		b = append(append(b, name...), ':')
		if f.Kind == lake.KindStruct {
			b = appendObject(b, f.Fields, values, row, level+1)
		} else {
			b = appendJSON(b, f.Kind, v)
		}
	}
	return append(b, '}')
}

// finish closes a merged file, publishes it and syncs its folder; with no
// grace period it then removes its inputs.
func (c *Compactor) finish(ctx context.Context, out *output, sum *Summary) error {
	if err := out.w.Close(); err != nil {
		return err
	}
	part := out.w.Part()
	if err := c.hook(Written, part); err != nil {
		return err
	}
	_, size, err := out.w.Publish()
	if err != nil {
		return err
	}
	m := Merge{Into: part, Size: size, Rows: out.w.Rows(), From: out.from}
	sum.add(m)
	c.cfg.logger.Debug("merged", "files", len(m.From), "into", part.Name(), "rows", m.Rows, "bytes", size)
	dir := path.Dir(part.Name())
	if err := c.cfg.lake.SyncDir(ctx, dir); err != nil {
		return err
	}
	if err := c.hook(Published, part); err != nil {
		return err
	}
	if c.cfg.grace > 0 {
		return nil
	}
	for _, f := range out.from {
		if err := c.remove(ctx, f, sum); err != nil {
			return err
		}
	}
	return c.cfg.lake.SyncDir(ctx, dir)
}
