package pqwrite

import (
	"reflect"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// Schema is what every file of one Parquet schema shares: the schema as
// the footer lists it and, per leaf column, its path, type, order and
// maximal definition level. Make it once (NewSchema) and write any number
// of files with it.
type Schema struct {
	elements []format.SchemaElement
	leaves   []leafMeta
	orders   []format.ColumnOrder
}

type leafMeta struct {
	path   []string
	kind   parquet.Kind
	maxDef byte
}

// NewSchema flattens a Parquet schema the way the footer lists it: depth
// first, a group followed by its fields. Leaf columns are numbered in that
// order, from 0: the leaf argument of Writer's methods.
func NewSchema(s *parquet.Schema) *Schema {
	m := &Schema{}
	var walk func(name string, n parquet.Node, path []string, def byte, root bool)
	walk = func(name string, n parquet.Node, path []string, def byte, root bool) {
		e := format.SchemaElement{Name: name}
		if !root {
			rep := format.Required
			if n.Optional() {
				rep = format.Optional
				def++
			}
			e.RepetitionType = thrift.New(rep)
			path = append(path[:len(path):len(path)], name)
		}
		t := n.Type()
		if !n.Leaf() {
			e.NumChildren = thrift.New(int32(len(n.Fields())))
			m.elements = append(m.elements, e)
			for _, f := range n.Fields() {
				walk(f.Name(), f, path, def, false)
			}
			return
		}
		if lt := t.LogicalType(); lt != nil {
			e.LogicalType = *lt
		}
		if pt := t.PhysicalType(); pt != nil {
			e.Type = thrift.New(*pt)
		}
		if ct := t.ConvertedType(); ct != nil {
			e.ConvertedType = thrift.New(*ct)
		}
		m.elements = append(m.elements, e)
		m.leaves = append(m.leaves, leafMeta{path: path, kind: t.Kind(), maxDef: def})
		m.orders = append(m.orders, *t.ColumnOrder())
	}
	walk(s.Name(), s, nil, 0, true)
	return m
}

// Group is a required Parquet group whose fields keep the order given,
// where parquet.Group sorts them by name: a file's columns read in the
// order its writer chose, and a schema that grows keeps its old columns
// first.
type Group []parquet.Field

// Field names a node, as a field of a Group.
func Field(name string, n parquet.Node) parquet.Field { return named{n, name} }

func (g Group) ID() int                     { return 0 }
func (g Group) String() string              { return "group(" + strconv.Itoa(len(g)) + " fields)" }
func (g Group) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g Group) Optional() bool              { return false }
func (g Group) Repeated() bool              { return false }
func (g Group) Required() bool              { return true }
func (g Group) Leaf() bool                  { return false }
func (g Group) Fields() []parquet.Field     { return g }
func (g Group) Encoding() encoding.Encoding { return nil }
func (g Group) Compression() compress.Codec { return nil }
func (g Group) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

type named struct {
	parquet.Node
	name string
}

func (n named) Name() string                      { return n.name }
func (n named) Value(reflect.Value) reflect.Value { return reflect.Value{} }
