package query

import (
	"bufio"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/questlog/questlog/internal/event"
)

// Format is how a Result is written.
type Format string

// Output formats.
const (
	FormatTable Format = "table" // aligned columns for a terminal
	FormatCSV   Format = "csv"   // RFC 4180 with a header row
	FormatJSON  Format = "json"  // an array of objects, one per row, keys in column order
)

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatTable, FormatCSV, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q: want table, csv or json", s)
}

// maxCell bounds a table cell; csv and json keep values whole.
const maxCell = 64

// Write writes r to w in format f.
func (r *Result) Write(w io.Writer, f Format) error {
	switch f {
	case FormatCSV:
		return r.writeCSV(w)
	case FormatJSON:
		return r.writeJSON(w)
	case FormatTable, "":
		return r.writeTable(w)
	}
	return fmt.Errorf("unknown format %q", f)
}

func (r *Result) writeTable(w io.Writer) error {
	cells := make([][]string, len(r.Rows))
	width := make([]int, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for i, row := range r.Rows {
		cells[i] = make([]string, len(row))
		for j, v := range row {
			s := "NULL"
			if v != nil {
				s = clipCell(strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(text(v, r.Types[j])))
			}
			cells[i][j] = s
			width[j] = max(width[j], utf8.RuneCountInString(s))
		}
	}
	bw := bufio.NewWriter(w)
	line := func(vals []string, right func(int) bool) {
		for j, s := range vals {
			if j > 0 {
				bw.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(s))
			if right(j) {
				bw.WriteString(pad + s)
			} else if j == len(vals)-1 {
				bw.WriteString(s)
			} else {
				bw.WriteString(s + pad)
			}
		}
		bw.WriteByte('\n')
	}
	line(r.Columns, func(int) bool { return false })
	rule := make([]string, len(width))
	for j, n := range width {
		rule[j] = strings.Repeat("-", n)
	}
	line(rule, func(int) bool { return false })
	for _, row := range cells {
		line(row, func(j int) bool { return numeric(r.Types[j]) })
	}
	noun := "rows"
	if len(r.Rows) == 1 {
		noun = "row"
	}
	fmt.Fprintf(bw, "(%d %s)\n", len(r.Rows), noun)
	return bw.Flush()
}

func (r *Result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.Columns); err != nil {
		return err
	}
	rec := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for j, v := range row {
			rec[j] = ""
			if v != nil {
				rec[j] = text(v, r.Types[j])
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (r *Result) writeJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i, row := range r.Rows {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n{")
		for j, v := range row {
			if j > 0 {
				bw.WriteString(",")
			}
			k, _ := json.Marshal(r.Columns[j])
			bw.Write(k)
			bw.WriteString(":")
			b, err := json.Marshal(jsonValue(v, r.Types[j]))
			if err != nil {
				return fmt.Errorf("encode row %d column %s: %w", i+1, r.Columns[j], err)
			}
			bw.Write(b)
		}
		bw.WriteString("}")
	}
	if len(r.Rows) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// text renders one non-NULL value the way an analyst reads it.
func text(v any, typ string) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return formatTime(x, typ)
	case []byte:
		if typ == "UUID" && len(x) == 16 {
			u := duckdb.UUID(x)
			return u.String()
		}
		if utf8.Valid(x) {
			return string(x)
		}
		return `\x` + hex.EncodeToString(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case *big.Int:
		return x.String()
	case duckdb.Decimal:
		return x.String()
	case map[string]any, []any, duckdb.Map:
		b, err := json.Marshal(jsonValue(x, typ))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

// jsonValue turns a scanned value into what encoding/json writes well.
func jsonValue(v any, typ string) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		return x
	case float64, float32:
		return x
	case time.Time:
		return formatTime(x, typ)
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e, "")
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonValue(e, "")
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, "")
		}
		return out
	}
	return text(v, typ)
}

func formatTime(t time.Time, typ string) string {
	switch typ {
	case "DATE":
		return t.UTC().Format(time.DateOnly)
	case "TIME":
		return t.Format("15:04:05.999999")
	}
	return t.UTC().Format(event.TimeLayout)
}

func numeric(typ string) bool {
	switch typ {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE":
		return true
	}
	return strings.HasPrefix(typ, "DECIMAL")
}

func clipCell(s string) string {
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	r := []rune(s)
	return string(r[:maxCell-1]) + "…"
}
