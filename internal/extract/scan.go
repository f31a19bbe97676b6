package extract

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// jkind is the JSON type of a scanned value.
type jkind uint8

const (
	jNull jkind = iota
	jBool
	jInt
	jFloat
	jString
	jObject
	jArray
)

// jvalue is one member of a scanned object. Objects are flattened: an
// object member is followed by its own members, up to index end.
type jvalue struct {
	key  []byte
	raw  []byte // string: its unescaped text; object, array, number, literal: its JSON text
	i    int64
	f    float64
	end  int32 // objects: index after the last nested member
	kind jkind
	b    bool
}

// maxDepth bounds object and array nesting, so a hostile record cannot
// exhaust the stack.
const maxDepth = 64

// scanner reads one JSON object into a flat list of members, reusing its
// buffers from record to record. Strings without escapes point into the
// record itself; others are unescaped into scratch, which lives until the
// next scan.
type scanner struct {
	vals    []jvalue
	scratch []byte
}

var errNotObject = errors.New("not a JSON object")

// syntaxError says where a record stops being JSON.
type syntaxError struct {
	msg string
	at  int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.at, e.msg) }

func bad(at int, msg string) error { return &syntaxError{msg: msg, at: at} }

func (s *scanner) scan(b []byte) error {
	s.vals = s.vals[:0]
	s.scratch = s.scratch[:0]
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		if i < len(b) && (b[i] == '[' || b[i] == '"' || b[i] == '-' || b[i] >= '0' && b[i] <= '9' || b[i] == 't' || b[i] == 'f' || b[i] == 'n') {
			return errNotObject
		}
		if i >= len(b) {
			return errors.New("empty record")
		}
		return bad(i, fmt.Sprintf("unexpected %q", b[i]))
	}
	i, err := s.object(b, i, 0)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return bad(i, "data after the object")
	}
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// object scans the object at b[i] == '{' and returns the index after it.
func (s *scanner) object(b []byte, i, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, bad(i, "nested too deep")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, bad(i, "want a field name")
		}
		key, j, err := s.str(b, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return 0, bad(i, "want ':'")
		}
		i = skipWS(b, i+1)
		idx := len(s.vals)
		s.vals = append(s.vals, jvalue{key: key})
		if i, err = s.value(b, i, idx, depth); err != nil {
			return 0, err
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, bad(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, bad(i, "want ',' or '}'")
		}
	}
}

// value scans the value at b[i] into s.vals[idx].
func (s *scanner) value(b []byte, i, idx, depth int) (int, error) {
	if i >= len(b) {
		return 0, bad(i, "want a value")
	}
	switch c := b[i]; {
	case c == '"':
		v, j, err := s.str(b, i)
		if err != nil {
			return 0, err
		}
		s.vals[idx].kind, s.vals[idx].raw = jString, v
		return j, nil
	case c == '{':
		j, err := s.object(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		s.vals[idx].kind, s.vals[idx].raw, s.vals[idx].end = jObject, b[i:j], int32(len(s.vals))
		return j, nil
	case c == '[':
		j, err := s.skip(b, i, depth+1)
		if err != nil {
			return 0, err
		}
		s.vals[idx].kind, s.vals[idx].raw = jArray, b[i:j]
		return j, nil
	case c == 't' || c == 'f' || c == 'n':
		return s.literal(b, i, idx)
	default:
		return s.number(b, i, idx)
	}
}

func (s *scanner) literal(b []byte, i, idx int) (int, error) {
	v := &s.vals[idx]
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			v.raw = b[i : i+len(lit)]
			switch lit {
			case "null":
				v.kind = jNull
			default:
				v.kind, v.b = jBool, lit == "true"
			}
			return i + len(lit), nil
		}
	}
	return 0, bad(i, "unknown literal")
}

// skipDigits returns the index of the first byte of b at or after i that is
// not an ASCII digit.
func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func (s *scanner) number(b []byte, i, idx int) (int, error) {
	start := i
	neg := false
	if b[i] == '-' {
		neg = true
		i++
	}
	digits := i
	var n uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + uint64(b[i]-'0')
		i++
	}
	nd := i - digits
	if nd == 0 {
		return 0, bad(start, "want a value")
	}
	if nd > 1 && b[digits] == '0' {
		return 0, bad(start, "leading zero")
	}
	isFloat := false
	if i < len(b) && b[i] == '.' {
		isFloat = true
		i++
		f := i
		i = skipDigits(b, i)
		if i == f {
			return 0, bad(i, "want a digit after '.'")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isFloat = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		f := i
		i = skipDigits(b, i)
		if i == f {
			return 0, bad(i, "want a digit in the exponent")
		}
	}
	v := &s.vals[idx]
	v.raw = b[start:i]
	if !isFloat && nd <= 18 {
		v.kind, v.i = jInt, int64(n)
		if neg {
			v.i = -v.i
		}
		return i, nil
	}
	if !isFloat {
		// 19 digits or more: an int64 when it fits, else a float.
		if n, err := strconv.ParseInt(unsafeString(v.raw), 10, 64); err == nil {
			v.kind, v.i = jInt, n
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(unsafeString(v.raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, bad(start, "bad number")
	}
	v.kind, v.f = jFloat, f
	return i, nil
}

// str scans the string at b[i] == '"', returning its unescaped text and
// the index after it. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func (s *scanner) str(b []byte, i int) ([]byte, int, error) {
	start := i + 1
	j := start
	high := false
	for j < len(b) {
		// Most of a string is neither a quote, a backslash, a control
		// character nor UTF-8.
		for j < len(b) && plainByte[b[j]] {
			j++
		}
		if j >= len(b) {
			break
		}
		c := b[j]
		if c == '"' {
			v := b[start:j]
			if high && !utf8.Valid(v) {
				n := len(s.scratch)
				s.scratch = appendValid(s.scratch, v)
				v = s.scratch[n:]
			}
			return v, j + 1, nil
		}
		if c == '\\' {
			return s.strEscaped(b, start, j)
		}
		if c < 0x20 {
			return nil, 0, bad(j, "control character in string")
		}
		if c >= 0x80 {
			high = true
		}
		j++
	}
	return nil, 0, bad(i, "unterminated string")
}

// plainByte says which bytes a string's fast path passes over: not a
// quote, a backslash, a control character (< 0x20) or UTF-8 (>= 0x80). A
// constant table, built once.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strEscaped unescapes a string into scratch, from b[start] with the first
// backslash at b[j].
func (s *scanner) strEscaped(b []byte, start, j int) ([]byte, int, error) {
	n := len(s.scratch)
	out := append(s.scratch, b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out[n:]) {
				fixed := appendValid(nil, out[n:])
				out = append(out[:n], fixed...)
			}
			s.scratch = out
			return out[n:], j + 1, nil
		case c < 0x20:
			return nil, 0, bad(j, "control character in string")
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(b) {
			break
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return nil, 0, bad(j, "bad \\u escape")
			}
			j += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(b, j+2); ok && j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						j += 6
						out = utf8.AppendRune(out, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, 0, bad(j, "bad escape")
		}
		j += 2
	}
	s.scratch = out
	return nil, 0, bad(start-1, "unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func appendValid(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// skip validates the value at b[i] without keeping it (array contents).
func (s *scanner) skip(b []byte, i, depth int) (int, error) {
	if depth >= maxDepth {
		return 0, bad(i, "nested too deep")
	}
	if i >= len(b) {
		return 0, bad(i, "want a value")
	}
	switch b[i] {
	case '[', '{':
		closing := byte(']')
		if b[i] == '{' {
			closing = '}'
		}
		obj := b[i] == '{'
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, nil
		}
		for {
			var err error
			if obj {
				if i >= len(b) || b[i] != '"' {
					return 0, bad(i, "want a field name")
				}
				mark := len(s.scratch)
				if _, i, err = s.str(b, i); err != nil {
					return 0, err
				}
				s.scratch = s.scratch[:mark]
				i = skipWS(b, i)
				if i >= len(b) || b[i] != ':' {
					return 0, bad(i, "want ':'")
				}
				i = skipWS(b, i+1)
			}
			if i, err = s.skip(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, bad(i, "unterminated")
			}
			if b[i] == closing {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, bad(i, "want ','")
			}
			i = skipWS(b, i+1)
		}
	case '"':
		mark := len(s.scratch)
		_, j, err := s.str(b, i)
		s.scratch = s.scratch[:mark]
		return j, err
	}
	// A scalar: scan it into a throwaway slot.
	s.vals = append(s.vals, jvalue{})
	idx := len(s.vals) - 1
	j, err := s.value(b, i, idx, depth)
	s.vals = s.vals[:idx]
	return j, err
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
