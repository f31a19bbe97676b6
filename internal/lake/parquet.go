package lake

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// Metadata keys every events file carries, so a reader (and Check) can tell
// which schema version wrote it.
const (
	MetaEventType     = "questlog.event_type"
	MetaSchemaVersion = "questlog.schema_version"
)

// Column says where a schema field lives in a Parquet row: the index of
// its leaf column, or for a struct the columns of its fields.
type Column struct {
	Name   string
	Kind   Kind
	Leaf   int      // leaf column index; for a struct, its first leaf
	Fields []Column // struct fields
	Leaves int      // leaf columns it spans (1 for a scalar)
}

// Columns maps a schema onto Parquet leaf columns: its fields in order, then
// the lineage columns.
type Columns struct {
	Fields                       []Column
	Partition, Offset, KafkaTime int // leaf indexes of the lineage columns
}

func columnsOf(fields []Field, next *int) []Column {
	cols := make([]Column, len(fields))
	for i, f := range fields {
		c := Column{Name: f.Name, Kind: f.Kind, Leaf: *next}
		if f.Kind == KindStruct {
			c.Fields = columnsOf(f.Fields, next)
			c.Leaves = *next - c.Leaf
		} else {
			*next++
			c.Leaves = 1
		}
		cols[i] = c
	}
	return cols
}

// group is a Parquet group whose columns keep the order given, where
// parquet.Group sorts them by name: the lake's columns read in the order
// the events hold them, and only ever grow at the end.
type group []parquet.Field

func (g group) ID() int                     { return 0 }
func (g group) String() string              { return "group(" + strconv.Itoa(len(g)) + " fields)" }
func (g group) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g group) Optional() bool              { return false }
func (g group) Repeated() bool              { return false }
func (g group) Required() bool              { return true }
func (g group) Leaf() bool                  { return false }
func (g group) Fields() []parquet.Field     { return g }
func (g group) Encoding() encoding.Encoding { return nil }
func (g group) Compression() compress.Codec { return nil }
func (g group) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

type named struct {
	parquet.Node
	name string
}

func (n named) Name() string                      { return n.name }
func (n named) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// nodeOf is the Parquet node of a field: optional, of the field's type.
// (Encodings are the page writer's: PLAIN for every column.)
func nodeOf(f Field) parquet.Node {
	var n parquet.Node
	switch f.Kind {
	case KindBool:
		n = parquet.Leaf(parquet.BooleanType)
	case KindInt:
		n = parquet.Int(64)
	case KindFloat:
		n = parquet.Leaf(parquet.DoubleType)
	case KindTimestamp:
		n = parquet.Timestamp(parquet.Microsecond)
	case KindStruct:
		g := make(group, len(f.Fields))
		for i, sub := range f.Fields {
			g[i] = named{nodeOf(sub), sub.Name}
		}
		n = g
	default:
		n = parquet.String()
	}
	return parquet.Optional(n)
}

// lineage are the columns every events file ends with.
func lineage() []parquet.Field {
	return []parquet.Field{
		named{parquet.Int(32), ColPartition},
		named{parquet.Int(64), ColOffset},
		named{parquet.Timestamp(parquet.Microsecond), ColTimestamp},
	}
}

// FieldsOfParquet reads a Parquet schema back as fields (lineage columns
// included), for comparing a file with its recorded schema.
func FieldsOfParquet(n parquet.Node) ([]Field, error) {
	var out []Field
	for _, f := range n.Fields() {
		k, err := kindOfNode(f)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name(), err)
		}
		fd := Field{Name: f.Name(), Kind: k}
		if k == KindStruct {
			if fd.Fields, err = FieldsOfParquet(f); err != nil {
				return nil, fmt.Errorf("column %s: %w", f.Name(), err)
			}
		}
		out = append(out, fd)
	}
	return out, nil
}

func kindOfNode(n parquet.Node) (Kind, error) {
	if n.Repeated() {
		return "", fmt.Errorf("repeated columns are not written by questlog")
	}
	if !n.Leaf() {
		return KindStruct, nil
	}
	t := n.Type()
	lt := t.LogicalType()
	switch {
	case t.Kind() == parquet.Boolean:
		return KindBool, nil
	case t.Kind() == parquet.Double:
		return KindFloat, nil
	case lt != nil && isTimestamp(lt):
		ts := lt.Value.(*format.TimestampType)
		if _, micros := ts.Unit.Value.(*format.MicroSeconds); !micros || !ts.IsAdjustedToUTC {
			return "", fmt.Errorf("timestamp is %s, want microseconds adjusted to UTC", t)
		}
		return KindTimestamp, nil
	case t.Kind() == parquet.Int64:
		return KindInt, nil
	case t.Kind() == parquet.Int32:
		return "int32", nil
	case t.Kind() == parquet.ByteArray && lt != nil && isString(lt):
		return KindString, nil
	case t.Kind() == parquet.ByteArray:
		return "bytes", nil
	}
	return "", fmt.Errorf("unexpected type %s", t)
}

func isTimestamp(lt *format.LogicalType) bool { _, ok := lt.Value.(*format.TimestampType); return ok }
func isString(lt *format.LogicalType) bool    { _, ok := lt.Value.(*format.StringType); return ok }

// LineageFields are the lineage columns as FieldsOfParquet reads them.
var LineageFields = []Field{{Name: ColPartition, Kind: "int32"}, {Name: ColOffset, Kind: KindInt}, {Name: ColTimestamp, Kind: KindTimestamp}}

// QuarantineFields are the columns of a quarantine file: where the record
// was, its raw bytes and why it could not be read as an event.
var QuarantineFields = []Field{
	{Name: ColPartition, Kind: "int32"}, {Name: ColOffset, Kind: KindInt}, {Name: ColTimestamp, Kind: KindTimestamp},
	{Name: "value", Kind: "bytes"}, {Name: "error", Kind: KindString},
}

// Quarantine column indexes.
const (
	QColPartition = iota
	QColOffset
	QColTimestamp
	QColValue
	QColError
)

// quarantineMeta is the Parquet shape of a quarantine file.
var quarantineMeta = sync.OnceValue(func() *fileMeta {
	return newFileMeta(parquet.NewSchema("quarantine", group{
		named{parquet.Int(32), ColPartition},
		named{parquet.Int(64), ColOffset},
		named{parquet.Timestamp(parquet.Microsecond), ColTimestamp},
		named{parquet.Leaf(parquet.ByteArrayType), "value"},
		named{parquet.String(), "error"},
	}))
})

// Layout is the Parquet shape of one schema version: its columns and its
// Parquet schema. Made once per version (see Schema.Layout).
type Layout struct {
	Columns Columns
	meta    *fileMeta // the Parquet schema flattened, as footers list it
}

var layouts sync.Map // *Schema → *Layout; schemas are immutable, so this is a cache, not state

// Layout returns the Parquet shape of this schema version.
func (s *Schema) Layout() *Layout {
	if l, ok := layouts.Load(s); ok {
		return l.(*Layout)
	}
	next := 0
	cols := Columns{Fields: columnsOf(s.Fields, &next)}
	cols.Partition, cols.Offset, cols.KafkaTime = next, next+1, next+2
	g := make(group, 0, len(s.Fields)+3)
	for _, f := range s.Fields {
		g = append(g, named{nodeOf(f), f.Name})
	}
	g = append(g, lineage()...)
	l := &Layout{Columns: cols, meta: newFileMeta(parquet.NewSchema(s.EventType, g))}
	actual, _ := layouts.LoadOrStore(s, l)
	return actual.(*Layout)
}

// Codec names a compression codec: "zstd" (default), "snappy" or "none".
func Codec(name string) (compress.Codec, error) {
	switch strings.ToLower(name) {
	case "", "zstd":
		return newZstdCodec()
	case "snappy":
		return &snappy.Codec{}, nil
	case "none", "uncompressed":
		return &parquet.Uncompressed, nil
	}
	return nil, fmt.Errorf("unknown compression %q: want zstd, snappy or none", name)
}
