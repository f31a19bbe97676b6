package lake

import (
	"fmt"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/questlog/questlog/internal/lake/pqwrite"
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

// ColumnsOf maps fields, then the lineage columns, onto the leaf columns
// of a file that has them.
func ColumnsOf(fields []Field) Columns {
	next := 0
	cols := Columns{Fields: columnsOf(fields, &next)}
	cols.Partition, cols.Offset, cols.KafkaTime = next, next+1, next+2
	return cols
}

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
		g := make(pqwrite.Group, len(f.Fields))
		for i, sub := range f.Fields {
			g[i] = pqwrite.Field(sub.Name, nodeOf(sub))
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
		pqwrite.Field(ColPartition, parquet.Int(32)),
		pqwrite.Field(ColOffset, parquet.Int(64)),
		pqwrite.Field(ColTimestamp, parquet.Timestamp(parquet.Microsecond)),
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

// quarantineSchema is the Parquet schema of a quarantine file.
var quarantineSchema = sync.OnceValue(func() *pqwrite.Schema {
	return pqwrite.NewSchema(parquet.NewSchema("quarantine", append(pqwrite.Group(lineage()),
		pqwrite.Field("value", parquet.Leaf(parquet.ByteArrayType)),
		pqwrite.Field("error", parquet.String()),
	)))
})

// Layout is the Parquet shape of one schema version: its columns and its
// Parquet schema. Made once per version (see Schema.Layout).
type Layout struct {
	Columns Columns
	parquet *pqwrite.Schema
}

var layouts sync.Map // *Schema → *Layout; schemas are immutable, so this is a cache, not state

// Layout returns the Parquet shape of this schema version.
func (s *Schema) Layout() *Layout {
	if l, ok := layouts.Load(s); ok {
		return l.(*Layout)
	}
	cols := ColumnsOf(s.Fields)
	g := make(pqwrite.Group, 0, len(s.Fields)+3)
	for _, f := range s.Fields {
		g = append(g, pqwrite.Field(f.Name, nodeOf(f)))
	}
	g = append(g, lineage()...)
	l := &Layout{Columns: cols, parquet: pqwrite.NewSchema(parquet.NewSchema(s.EventType, g))}
	actual, _ := layouts.LoadOrStore(s, l)
	return actual.(*Layout)
}
