package compact

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/questlog/questlog/internal/lake"
)

// A merged file has the columns of its type's current schema; an input
// written with an older version lacks some of them, or holds a column of
// a narrower kind. Each leaf column of the merged file gets its rows from
// a source in each input.

// sourceKind is where a merged file's leaf column gets an input's rows.
type sourceKind int

const (
	// fromLeaf: the input's leaf of the same path, converted when its
	// kind was widened since (int to float, anything to string).
	fromLeaf sourceKind = iota
	// fromNothing: the input lacks the field: null, as deep as the
	// structs the input has around it go.
	fromNothing
	// fromStruct: the input holds a struct where the schema now has a
	// string: its JSON text.
	fromStruct
)

type source struct {
	kind sourceKind
	// in is the input leaf (fromLeaf); for fromNothing and fromStruct
	// the first leaf of the input's struct around the field, or the
	// struct itself, whose levels say how deep each row's structs go (-1:
	// none, a top-level field).
	in   int
	from lake.Kind // fromLeaf: the input leaf's kind
	to   lake.Kind // fromLeaf: the merged file's
	// level is the field's own definition level when present: the
	// number of optional columns on its path, itself included.
	level byte
	// fields are the input struct's fields (fromStruct).
	fields []lake.Column
}

// sources maps the leaves of out, the merged file's columns, onto those
// of in, an input's: one source per leaf of out. It fails when the input
// has a column the schema does not, or a kind the schema cannot widen
// from: the file was not written by this lake's extract.
func sources(out, in lake.Columns, outLeaves int) ([]source, error) {
	srcs := make([]source, outLeaves)
	if err := mapFields(out.Fields, in.Fields, -1, 1, srcs); err != nil {
		return nil, err
	}
	for _, lin := range []struct {
		out, in int
		kind    lake.Kind
	}{{out.Partition, in.Partition, "int32"}, {out.Offset, in.Offset, lake.KindInt}, {out.KafkaTime, in.KafkaTime, lake.KindTimestamp}} {
		srcs[lin.out] = source{kind: fromLeaf, in: lin.in, from: lin.kind, to: lin.kind}
	}
	return srcs, nil
}

// mapFields maps the fields of one struct (or of the top level) at
// definition level, whose input struct's first leaf is presence.
func mapFields(out, in []lake.Column, presence int, level byte, srcs []source) error {
	for _, ic := range in {
		if columnNamed(out, ic.Name) == nil {
			return fmt.Errorf("column %s is not in the schema", ic.Name)
		}
	}
	for _, oc := range out {
		ic := columnNamed(in, oc.Name)
		switch {
		case ic == nil:
			for l := oc.Leaf; l < oc.Leaf+oc.Leaves; l++ {
				srcs[l] = source{kind: fromNothing, in: presence, level: level}
			}
		case oc.Kind == lake.KindStruct && ic.Kind == lake.KindStruct:
			if err := mapFields(oc.Fields, ic.Fields, ic.Leaf, level+1, srcs); err != nil {
				return fmt.Errorf("%s.%w", oc.Name, err)
			}
		case oc.Kind == lake.KindString && ic.Kind == lake.KindStruct:
			srcs[oc.Leaf] = source{kind: fromStruct, in: ic.Leaf, level: level, fields: ic.Fields}
		case oc.Kind == ic.Kind && oc.Kind != lake.KindStruct,
			oc.Kind == lake.KindFloat && ic.Kind == lake.KindInt,
			oc.Kind == lake.KindString:
			srcs[oc.Leaf] = source{kind: fromLeaf, in: ic.Leaf, from: ic.Kind, to: oc.Kind, level: level}
		default:
			return fmt.Errorf("column %s is %s, the schema says %s", oc.Name, ic.Kind, oc.Kind)
		}
	}
	return nil
}

func columnNamed(cols []lake.Column, name string) *lake.Column {
	for i := range cols {
		if cols[i].Name == name {
			return &cols[i]
		}
	}
	return nil
}

// timeLayout is how a timestamp widened to a string reads: the envelope's
// RFC 3339 in microseconds, UTC.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// appendText appends the text a string column holds for a value the
// extract wrote in a column of kind from, before the column widened to a
// string: what the event's JSON said, as near as the value tells it (a
// float loses its exact spelling: 1.50 becomes 1.5).
func appendText(b []byte, from lake.Kind, v parquet.Value) []byte {
	switch from {
	case lake.KindInt:
		return strconv.AppendInt(b, v.Int64(), 10)
	case lake.KindFloat:
		return appendFloat(b, v.Double())
	case lake.KindBool:
		return strconv.AppendBool(b, v.Boolean())
	case lake.KindTimestamp:
		return time.UnixMicro(v.Int64()).UTC().AppendFormat(b, timeLayout)
	}
	return append(b, v.ByteArray()...)
}

// appendFloat spells a float as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendJSON appends a value of kind k as JSON.
func appendJSON(b []byte, k lake.Kind, v parquet.Value) []byte {
	switch k {
	case lake.KindString, lake.KindTimestamp:
		s, _ := json.Marshal(string(appendText(nil, k, v)))
		return append(b, s...)
	}
	return appendText(b, k, v)
}
