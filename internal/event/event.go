// Package event is the one definition of a questlog event: the JSON envelope
// that every consumer of the topic relies on (DESIGN.md, "Event envelope").
//
// It knows nothing of HTTP servers, Kafka or storage: callers fill an Event and
// append its JSON encoding to a buffer they own, which keeps the request path
// free of per-event allocations beyond the buffer itself.
package event

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
)

// SchemaVersion is the envelope version written into every event. It changes
// only when a field is renamed or changes meaning; new fields keep it.
const SchemaVersion = 1

// Event types. A request that fits none of the game's actions is "default".
const (
	TypeDefault    = "default"
	TypeSignup     = "signup"
	TypeLogin      = "login"
	TypeLogout     = "logout"
	TypeBuyItem    = "buy_item"
	TypeSellItem   = "sell_item"
	TypeCartAdd    = "cart_add"
	TypeCartRemove = "cart_remove"
	TypeCheckout   = "checkout"
	TypeJoinGuild  = "join_guild"
	TypeLeaveGuild = "leave_guild"
	// Read-only requests are events too ("every request becomes one event"):
	// they let analysts see what players look at, not only what they change.
	TypeViewInventory = "view_inventory"
	TypeViewCatalog   = "view_catalog"
	TypeViewCart      = "view_cart"
)

// Status values.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// Int is an optional integer field: absent from the JSON unless Set.
type Int struct {
	V   int64
	Set bool
}

// Some returns a present Int.
func Some(v int64) Int { return Int{V: v, Set: true} }

// HTTP describes the request an event came from. Only allow-listed headers are
// kept (see FromRequest); credentials never are.
type HTTP struct {
	Method         string
	Path           string // without the query string, which may carry a password
	Host           string
	UserAgent      string
	Accept         string
	RemoteAddr     string
	AcceptLanguage string
	AcceptEncoding string
	ContentType    string
	Referer        string // scheme, host and path only (no userinfo, query or fragment)
	Origin         string // scheme and host only
	ForwardedFor   string
	RequestID      string
	ClientVersion  string
}

// Event is one record on the topic. Event-specific fields are flat and only
// written when set, so each event type carries exactly its own columns.
type Event struct {
	ID     string
	Type   string
	Time   time.Time
	User   string // empty for anonymous requests
	Status string
	Error  string // machine-readable reason when Status is failed

	ItemType   string
	Quality    string
	Guild      string
	Quantity   Int
	UnitPrice  Int
	TotalPrice Int
	GoldAfter  Int
	CartSize   Int
	ItemCount  Int

	HTTP HTTP
}

// Fail marks the event failed with a machine-readable reason.
func (e *Event) Fail(reason string) {
	e.Status = StatusFailed
	e.Error = reason
}

// ReturnCode is the seed's return_code: 0 ok, 1 failed.
func (e *Event) ReturnCode() int {
	if e.Status == StatusOK {
		return 0
	}
	return 1
}

// Key is the Kafka record key: the username, so one player's events keep
// their order on one partition; empty for anonymous requests.
func (e *Event) Key() []byte {
	if e.User == "" {
		return nil
	}
	return []byte(e.User)
}

// HasID reports whether value, an event as AppendJSON writes it, is the
// event with that ID, without decoding it: AppendJSON writes the ID first.
func HasID(value []byte, id string) bool {
	const head = `{"event_id":"`
	return len(value) > len(head)+len(id) && string(value[:len(head)]) == head &&
		string(value[len(head):len(head)+len(id)]) == id && value[len(head)+len(id)] == '"'
}

// TimeLayout is event_time's format: RFC 3339, UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// appendTime appends t in TimeLayout: what t.UTC().AppendFormat(b,
// TimeLayout) writes, at about a third of its cost (every event has a time).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends the n last decimal digits of v >= 0, zero-padded.
func appendDigits(b []byte, v, n int) []byte {
	b = append(b, make([]byte, n)...)
	for i := len(b) - 1; i >= len(b)-n; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// AppendJSON appends the event's JSON object to b and returns the result.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"event_time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, `","schema_version":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	if e.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, e.User)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, e.Status)
	b = append(b, `,"return_code":`...)
	b = strconv.AppendInt(b, int64(e.ReturnCode()), 10)
	b = appendOptString(b, "error", e.Error)
	b = appendOptString(b, "item_type", e.ItemType)
	b = appendOptString(b, "quality", e.Quality)
	b = appendOptInt(b, "quantity", e.Quantity)
	b = appendOptInt(b, "unit_price", e.UnitPrice)
	b = appendOptInt(b, "total_price", e.TotalPrice)
	b = appendOptInt(b, "gold_after", e.GoldAfter)
	b = appendOptString(b, "guild", e.Guild)
	b = appendOptInt(b, "cart_size", e.CartSize)
	b = appendOptInt(b, "item_count", e.ItemCount)
	b = append(b, `,"http":`...)
	b = e.HTTP.appendJSON(b)
	return append(b, '}')
}

// appendJSON writes every http field, present or not, so that the lake's http
// struct column has the same shape in every file.
func (h *HTTP) appendJSON(b []byte) []byte {
	b = append(b, `{"method":`...)
	b = appendString(b, h.Method)
	for _, f := range [...]struct {
		name, value string
	}{
		{"path", h.Path},
		{"host", h.Host},
		{"user_agent", h.UserAgent},
		{"accept", h.Accept},
		{"remote_addr", h.RemoteAddr},
		{"accept_language", h.AcceptLanguage},
		{"accept_encoding", h.AcceptEncoding},
		{"content_type", h.ContentType},
		{"referer", h.Referer},
		{"origin", h.Origin},
		{"x_forwarded_for", h.ForwardedFor},
		{"x_request_id", h.RequestID},
		{"x_client_version", h.ClientVersion},
	} {
		b = appendKey(b, f.name)
		b = appendString(b, f.value)
	}
	return append(b, '}')
}

func appendOptString(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(appendKey(b, name), v)
}

func appendOptInt(b []byte, name string, v Int) []byte {
	if !v.Set {
		return b
	}
	return strconv.AppendInt(appendKey(b, name), v.V, 10)
}

// appendKey appends a comma and the key of the field name: ,"name":
func appendKey(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// IDs makes event IDs: UUIDv7 strings, unique and sortable by time, with a
// counter in the random bits so IDs from one process are strictly increasing
// even within a millisecond. Safe for concurrent use.
type IDs struct {
	mu     sync.Mutex
	lastMS int64
	seq    uint64 // starts random below 2^60 each millisecond, so it never passes 62 bits
	rand   [8]byte
}

// New returns the next ID for time now.
func (g *IDs) New(now time.Time) string {
	ms := now.UnixMilli()
	g.mu.Lock()
	if ms > g.lastMS {
		g.lastMS = ms
		if _, err := rand.Read(g.rand[:]); err != nil {
			panic("event: crypto/rand failed: " + err.Error()) // never happens on supported platforms
		}
		g.seq = binary.BigEndian.Uint64(g.rand[:]) >> 4 // leave room to count up
	} else {
		ms = g.lastMS // the clock went back or stood still: stay monotonic
		g.seq++
	}
	seq := g.seq
	g.mu.Unlock()

	var u [16]byte
	binary.BigEndian.PutUint64(u[0:8], uint64(ms)<<16)
	// rand_b (62 bits) holds the counter; rand_a holds its top 12 bits, so
	// byte order follows counter order.
	u[6] = 0x70 | byte(seq>>58)&0x0f
	u[7] = byte(seq >> 50)
	binary.BigEndian.PutUint64(u[8:16], seq&0x3fffffffffffffff|0x8000000000000000)
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
