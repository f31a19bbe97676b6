package extract

import (
	"time"

	"github.com/questlog/questlog/internal/lake"
)

// fill sets the values of w's next row for cols from the members
// vals[from:to] of one object at nesting depth (1 for the event's own
// fields). eventTime is the event's event_time, which envelope parsed. It
// reports false when a value does not fit its column or has no column: the
// schema must widen first (the caller then drops the row).
func fill(w *lake.PartWriter, cols []lake.Column, vals []jvalue, from, to int, depth int, eventTime int64) bool {
	hint := 0
	for i := from; i < to; i++ {
		v := &vals[i]
		next := i + 1
		if v.kind == jObject {
			next = int(v.end)
		}
		c := find(cols, v.key, hint)
		if c < 0 {
			if depth == 1 && string(v.key) == lake.ColEventType {
				continue // the event_type=<type> directory holds it
			}
			if !needsColumn(vals, i) {
				i = next - 1
				continue // a null says nothing about a column's type
			}
			return false
		}
		hint = c + 1
		col := &cols[c]
		if v.kind == jNull {
			w.Null(col.Leaf, col.Leaf+col.Leaves, depth-1)
			i = next - 1
			continue
		}
		switch col.Kind {
		case lake.KindString:
			w.String(col.Leaf, v.raw)
		case lake.KindInt:
			if v.kind != jInt {
				return false
			}
			w.Int(col.Leaf, v.i)
		case lake.KindFloat:
			f := v.f
			switch v.kind {
			case jInt:
				f = float64(v.i)
			case jFloat:
			default:
				return false
			}
			w.Float(col.Leaf, f)
		case lake.KindBool:
			if v.kind != jBool {
				return false
			}
			w.Bool(col.Leaf, v.b)
		case lake.KindTimestamp:
			if v.kind != jString {
				return false
			}
			t := eventTime // every event_time member parsed, the last kept
			if depth > 1 || string(v.key) != lake.ColEventTime {
				var ok bool
				if t, ok = parseTime(v.raw); !ok {
					return false
				}
			}
			w.Int(col.Leaf, t)
		case lake.KindStruct:
			if v.kind != jObject {
				return false
			}
			w.Null(col.Leaf, col.Leaf+col.Leaves, depth) // present, its fields null until set
			if !fill(w, col.Fields, vals, i+1, next, depth+1, eventTime) {
				return false
			}
		default:
			return false
		}
		i = next - 1
	}
	return true
}

// needsColumn reports whether vals[i] holds anything but nulls.
func needsColumn(vals []jvalue, i int) bool {
	switch vals[i].kind {
	case jNull:
		return false
	case jObject:
		for j := i + 1; j < int(vals[i].end); j++ {
			if needsColumn(vals, j) {
				return true
			}
			if vals[j].kind == jObject {
				j = int(vals[j].end) - 1
			}
		}
		return false
	}
	return true
}

// find returns the index of the column named key, trying hint first:
// events of one type list their fields in the same order.
func find(cols []lake.Column, key []byte, hint int) int {
	if hint < len(cols) && cols[hint].Name == string(key) {
		return hint
	}
	for i := range cols {
		if cols[i].Name == string(key) {
			return i
		}
	}
	return -1
}

// shape is the fields vals[from:to] need, for widening a schema. Nulls
// need nothing; arrays are kept as JSON text; event_time is a timestamp.
func shape(vals []jvalue, from, to int, top bool) []lake.Field {
	var out []lake.Field
	for i := from; i < to; i++ {
		v := &vals[i]
		if top && string(v.key) == lake.ColEventType {
			continue // the event_type=<type> directory holds it
		}
		f := lake.Field{Name: string(v.key)}
		switch v.kind {
		case jNull:
			continue
		case jBool:
			f.Kind = lake.KindBool
		case jInt:
			f.Kind = lake.KindInt
		case jFloat:
			f.Kind = lake.KindFloat
		case jString, jArray:
			f.Kind = lake.KindString
			if top && f.Name == lake.ColEventTime && v.kind == jString {
				f.Kind = lake.KindTimestamp
			}
		case jObject:
			f.Kind = lake.KindStruct
			f.Fields = shape(vals, i+1, int(v.end), false)
			i = int(v.end) - 1
			if len(f.Fields) == 0 {
				continue // {} or all nulls: nothing to make a column of yet
			}
		}
		out = append(out, f)
	}
	return out
}

// parseTime reads an RFC 3339 time as microseconds since the epoch. The
// envelope's own layout (2006-01-02T15:04:05.000000Z) takes a fast path.
func parseTime(b []byte) (int64, bool) {
	if us, ok := parseZulu(b); ok {
		return us, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// parseZulu parses YYYY-MM-DDTHH:MM:SS[.ffffff...]Z.
func parseZulu(b []byte) (int64, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	s, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	us := 0
	if rest := b[19 : len(b)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 {
			return 0, false
		}
		digits := rest[1:]
		for k, c := range digits {
			if c < '0' || c > '9' {
				return 0, false
			}
			if k < 6 {
				us = us*10 + int(c-'0')
			}
		}
		for k := len(digits); k < 6; k++ {
			us *= 10
		}
	}
	days := daysFromCivil(y, mo, d)
	return ((days*24+int64(h))*60+int64(mi))*60_000_000 + int64(s)*1_000_000 + int64(us), true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// appendDate appends the UTC date of a microsecond timestamp as YYYY-MM-DD.
func appendDate(b []byte, us int64) []byte {
	return time.UnixMicro(us).UTC().AppendFormat(b, time.DateOnly)
}
