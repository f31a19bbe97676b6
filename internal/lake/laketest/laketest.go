// Package laketest builds lakes of generated game events, laid out as package lake lays them out, for the tests and benchmarks of extract, query and report.
package laketest

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake"
)

// Prices are the default catalog's base prices (DESIGN.md, "Default economy").
var Prices = map[string]int64{
	"sword": 50, "shield": 40, "potion": 5, "bow": 45,
	"armor": 120, "helmet": 30, "staff": 60, "ring": 80,
}

// Qualities are the default catalog's qualities, cheapest first.
var Qualities = []string{"common", "uncommon", "rare", "epic", "legendary"}

var multiplier = map[string]int64{"common": 1, "uncommon": 2, "rare": 4, "epic": 8, "legendary": 16}

var items = []string{"armor", "bow", "helmet", "potion", "ring", "shield", "staff", "sword"}

// Config shapes a generated game.
type Config struct {
	Players int           // default 50
	Events  int           // default 2000
	Start   time.Time     // default 2026-01-01T10:00:00Z
	Span    time.Duration // time from the first to the last event, default 30m
	Seed    uint64        // default 1
	Guilds  int           // default 5
}

func (c *Config) defaults() {
	if c.Players <= 0 {
		c.Players = 50
	}
	if c.Events <= 0 {
		c.Events = 2000
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	}
	if c.Span <= 0 {
		c.Span = 30 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Guilds <= 0 {
		c.Guilds = 5
	}
}

type player struct {
	name      string
	signedUp  bool
	session   bool
	gold      int64
	inventory map[string]int64 // "item/quality" -> quantity
	cart      map[string]int64
	guild     string
}

// Generate plays a game by the default economy's rules and calls emit with
// every event in time order, ok and failed. The event is reused after emit
// returns.
func Generate(cfg Config, emit func(*event.Event) error) error {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	var ids event.IDs
	players := make([]*player, cfg.Players)
	for i := range players {
		players[i] = &player{name: fmt.Sprintf("player%04d", i), inventory: map[string]int64{}, cart: map[string]int64{}}
	}
	step := cfg.Span / time.Duration(max(cfg.Events-1, 1))
	var ev event.Event
	for i := range cfg.Events {
		now := cfg.Start.Add(time.Duration(i) * step)
		p := players[rng.IntN(len(players))]
		ev = event.Event{
			ID: ids.New(now), Time: now, Status: event.StatusOK,
			HTTP: event.HTTP{Method: "POST", Host: "127.0.0.1:5000", UserAgent: "questlog-fixture/1", Accept: "*/*", RemoteAddr: "127.0.0.1:40000"},
		}
		play(rng, p, &ev, cfg.Guilds)
		if ev.HTTP.Path == "" {
			ev.HTTP.Path = "/v1/" + ev.Type
		}
		if err := emit(&ev); err != nil {
			return err
		}
	}
	return nil
}

// play decides p's next action and fills ev with its outcome.
func play(rng *rand.Rand, p *player, ev *event.Event, guilds int) {
	if !p.signedUp {
		ev.Type = event.TypeSignup
		ev.User = p.name
		p.signedUp, p.session, p.gold = true, true, 1000
		ev.GoldAfter = event.Some(p.gold)
		return
	}
	if !p.session {
		switch r := rng.IntN(10); {
		case r < 2: // acts without a session: the API cannot tell who asked
			ev.Type = []string{event.TypeBuyItem, event.TypeJoinGuild, event.TypeCheckout}[rng.IntN(3)]
			ev.Fail("unauthenticated")
		case r < 3:
			ev.Type, ev.User = event.TypeLogin, p.name
			ev.Fail("bad_password")
		case r < 4:
			ev.Type, ev.HTTP.Method, ev.HTTP.Path = event.TypeViewCatalog, "GET", "/v1/items"
		case r < 5:
			ev.Type, ev.HTTP.Method, ev.HTTP.Path = event.TypeDefault, "GET", "/"
		default:
			ev.Type, ev.User = event.TypeLogin, p.name
			p.session = true
			ev.GoldAfter = event.Some(p.gold)
		}
		return
	}
	ev.User = p.name
	item, quality := items[rng.IntN(len(items))], Qualities[min(rng.IntN(8), 4)]
	key := item + "/" + quality
	price := Prices[item] * multiplier[quality]
	switch r := rng.IntN(100); {
	case r < 35:
		ev.Type = event.TypeBuyItem
		qty := int64(1 + rng.IntN(3))
		if rng.IntN(40) == 0 {
			ev.ItemType, ev.Quality, ev.Quantity = "dragon", quality, event.Some(qty)
			ev.Fail("unknown_item")
			return
		}
		ev.ItemType, ev.Quality, ev.Quantity = item, quality, event.Some(qty)
		ev.UnitPrice, ev.TotalPrice = event.Some(price), event.Some(price*qty)
		if price*qty > p.gold {
			ev.GoldAfter = event.Some(p.gold)
			ev.Fail("insufficient_gold")
			return
		}
		p.gold -= price * qty
		p.inventory[key] += qty
		ev.GoldAfter = event.Some(p.gold)
	case r < 45:
		ev.Type = event.TypeSellItem
		ev.ItemType, ev.Quality, ev.Quantity = item, quality, event.Some(1)
		ev.UnitPrice, ev.TotalPrice = event.Some(price/2), event.Some(price/2)
		if p.inventory[key] < 1 {
			ev.GoldAfter = event.Some(p.gold)
			ev.Fail("insufficient_items")
			return
		}
		p.inventory[key]--
		p.gold += price / 2
		ev.GoldAfter = event.Some(p.gold)
	case r < 55:
		ev.Type = event.TypeCartAdd
		ev.ItemType, ev.Quality, ev.Quantity, ev.UnitPrice = item, quality, event.Some(1), event.Some(price)
		p.cart[key]++
		ev.CartSize = event.Some(units(p.cart))
	case r < 58:
		ev.Type = event.TypeCartRemove
		ev.ItemType, ev.Quality = item, quality
		if p.cart[key] == 0 {
			ev.CartSize = event.Some(units(p.cart))
			ev.Fail("not_in_cart")
			return
		}
		ev.Quantity = event.Some(p.cart[key])
		delete(p.cart, key)
		ev.CartSize = event.Some(units(p.cart))
	case r < 65:
		ev.Type = event.TypeCheckout
		var total int64
		for k, q := range p.cart {
			it, ql, _ := strings.Cut(k, "/")
			total += Prices[it] * multiplier[ql] * q
		}
		ev.CartSize, ev.ItemCount = event.Some(units(p.cart)), event.Some(int64(len(p.cart)))
		switch {
		case len(p.cart) == 0:
			ev.Fail("empty_cart")
		case total > p.gold:
			ev.TotalPrice = event.Some(total)
			ev.Fail("insufficient_gold")
		default:
			ev.TotalPrice = event.Some(total)
			p.gold -= total
			for k, q := range p.cart {
				p.inventory[k] += q
			}
			p.cart = map[string]int64{}
		}
		ev.GoldAfter = event.Some(p.gold)
	case r < 72:
		ev.Type = event.TypeJoinGuild
		ev.Guild = fmt.Sprintf("guild%d", rng.IntN(guilds))
		if p.guild != "" {
			ev.Fail("already_in_guild")
			return
		}
		p.guild = ev.Guild
	case r < 76:
		ev.Type = event.TypeLeaveGuild
		if p.guild == "" {
			ev.Fail("not_in_guild")
			return
		}
		ev.Guild, p.guild = p.guild, ""
	case r < 84:
		ev.Type, ev.HTTP.Method, ev.HTTP.Path = event.TypeViewInventory, "GET", "/v1/inventory"
		ev.GoldAfter, ev.ItemCount = event.Some(p.gold), event.Some(units(p.inventory))
	case r < 88:
		ev.Type, ev.HTTP.Method, ev.HTTP.Path = event.TypeViewCart, "GET", "/v1/cart"
		ev.CartSize, ev.ItemCount = event.Some(units(p.cart)), event.Some(int64(len(p.cart)))
	case r < 92:
		ev.Type, ev.HTTP.Method, ev.HTTP.Path = event.TypeViewCatalog, "GET", "/v1/items"
	default:
		ev.Type = event.TypeLogout
		p.session = false
	}
}

func units(m map[string]int64) int64 {
	var n int64
	for _, q := range m {
		n += q
	}
	return n
}

// Layout chooses how the Parquet files look.
type Layout struct {
	Partitions int // Kafka partitions the events are spread over by user, default 3
	// TypeOnlyInPath leaves event_type out of the files: the hive key
	// event_type=<type> in the path is then its only source.
	TypeOnlyInPath bool
	// Quarantine is how many invalid records to add to the quarantine.
	Quarantine int
}

// Writer collects events and writes them as a lake: events encoded by
// event.Event's AppendJSON, as the API encodes them, that DuckDB turns into
// Parquet. It knows nothing of the extract or Kafka: the lineage columns are
// made up consistently (partition by player, offsets counting up per
// partition).
type Writer struct {
	dir    string
	layout Layout
	tmp    *os.File
	buf    *bufio.Writer
	line   []byte
	offset []int64
}

// NewWriter starts a lake under dir.
func NewWriter(dir string, layout Layout) (*Writer, error) {
	if layout.Partitions <= 0 {
		layout.Partitions = 3
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make lake %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp("", "laketest-*.ndjson")
	if err != nil {
		return nil, fmt.Errorf("create ndjson: %w", err)
	}
	return &Writer{dir: dir, layout: layout, tmp: tmp, buf: bufio.NewWriterSize(tmp, 1<<20), offset: make([]int64, layout.Partitions)}, nil
}

// Add appends one event, with lineage columns made up from its user.
func (w *Writer) Add(ev *event.Event) error {
	part := 0
	if ev.User != "" {
		h := fnv.New32a()
		h.Write([]byte(ev.User))
		part = int(h.Sum32() % uint32(w.layout.Partitions))
	}
	off := w.offset[part]
	w.offset[part]++
	b := ev.AppendJSON(w.line[:0])
	b = b[:len(b)-1] // reopen the object for the lineage columns
	b = append(b, `,"kafka_partition":`...)
	b = strconv.AppendInt(b, int64(part), 10)
	b = append(b, `,"kafka_offset":`...)
	b = strconv.AppendInt(b, off, 10)
	b = append(b, `,"kafka_timestamp":"`...)
	b = ev.Time.UTC().AppendFormat(b, event.TimeLayout)
	b = append(b, "\"}\n"...)
	w.line = b
	if _, err := w.buf.Write(b); err != nil {
		return fmt.Errorf("write ndjson: %w", err)
	}
	return nil
}

const httpStruct = `STRUCT("method" VARCHAR, "path" VARCHAR, "host" VARCHAR, "user_agent" VARCHAR, "accept" VARCHAR, ` +
	`"remote_addr" VARCHAR, "accept_language" VARCHAR, "accept_encoding" VARCHAR, "content_type" VARCHAR, ` +
	`"referer" VARCHAR, "origin" VARCHAR, "x_forwarded_for" VARCHAR, "x_request_id" VARCHAR, "x_client_version" VARCHAR)`

// columns are the JSON fields read, in the order the files hold them.
var columns = [][2]string{
	{"event_id", "VARCHAR"}, {"event_type", "VARCHAR"}, {"event_time", "TIMESTAMPTZ"},
	{"schema_version", "BIGINT"}, {"user", "VARCHAR"}, {"status", "VARCHAR"},
	{"return_code", "BIGINT"}, {"error", "VARCHAR"}, {"item_type", "VARCHAR"},
	{"quality", "VARCHAR"}, {"quantity", "BIGINT"}, {"unit_price", "BIGINT"},
	{"total_price", "BIGINT"}, {"gold_after", "BIGINT"}, {"guild", "VARCHAR"},
	{"cart_size", "BIGINT"}, {"item_count", "BIGINT"}, {"http", httpStruct},
	{"kafka_partition", "INTEGER"}, {"kafka_offset", "BIGINT"}, {"kafka_timestamp", "TIMESTAMPTZ"},
}

// Close writes the Parquet files: one per event type, day and partition,
// named by lake.Part, each holding only the columns its type uses (as the
// extract's per-type schemas do).
func (w *Writer) Close(ctx context.Context) error {
	defer os.Remove(w.tmp.Name())
	if err := w.buf.Flush(); err != nil {
		w.tmp.Close()
		return fmt.Errorf("write ndjson: %w", err)
	}
	if err := w.tmp.Close(); err != nil {
		return fmt.Errorf("write ndjson: %w", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the temp table lives in one connection's session
	if _, err := db.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return fmt.Errorf("set time zone: %w", err)
	}
	var spec []string
	for _, c := range columns {
		spec = append(spec, quote(c[0])+": "+quote(c[1]))
	}
	load := "CREATE TEMP TABLE ev AS SELECT *, CAST(event_time AS DATE) AS event_date FROM read_json(" + quote(w.tmp.Name()) +
		", format = 'newline_delimited', columns = {" + strings.Join(spec, ", ") + "})"
	if _, err := db.ExecContext(ctx, load); err != nil {
		return fmt.Errorf("load events: %w", err)
	}

	type group struct {
		typ, date   string
		part        int
		first, last int64
	}
	rows, err := db.QueryContext(ctx, `SELECT event_type, strftime(event_date, '%Y-%m-%d'), kafka_partition, min(kafka_offset), max(kafka_offset)
		FROM ev GROUP BY ALL ORDER BY ALL`)
	if err != nil {
		return fmt.Errorf("group events: %w", err)
	}
	var groups []group
	for rows.Next() {
		var g group
		if err := rows.Scan(&g.typ, &g.date, &g.part, &g.first, &g.last); err != nil {
			rows.Close()
			return fmt.Errorf("group events: %w", err)
		}
		groups = append(groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("group events: %w", err)
	}

	// Per type, the columns some event of it has: one count per column.
	var counts []string
	for _, c := range columns {
		counts = append(counts, "count("+ident(c[0])+")")
	}
	rows, err = db.QueryContext(ctx, "SELECT event_type, "+strings.Join(counts, ", ")+" FROM ev GROUP BY event_type")
	if err != nil {
		return fmt.Errorf("columns by type: %w", err)
	}
	used := map[string][]string{}
	for rows.Next() {
		var typ string
		n := make([]int64, len(columns))
		dest := []any{&typ}
		for i := range n {
			dest = append(dest, &n[i])
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return fmt.Errorf("columns by type: %w", err)
		}
		for i, c := range columns {
			if n[i] > 0 && !(c[0] == "event_type" && w.layout.TypeOnlyInPath) {
				used[typ] = append(used[typ], ident(c[0]))
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("columns by type: %w", err)
	}
	for _, g := range groups {
		file, err := w.create(lake.Part{EventType: g.typ, Date: g.date, Partition: int32(g.part), First: g.first, Last: g.last})
		if err != nil {
			return err
		}
		q := "COPY (SELECT " + strings.Join(used[g.typ], ", ") + " FROM ev WHERE event_type = " + quote(g.typ) +
			" AND event_date = DATE " + quote(g.date) + " AND kafka_partition = " + strconv.Itoa(g.part) +
			" ORDER BY kafka_offset) TO " + quote(file) + " (FORMAT parquet)"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	if w.layout.Quarantine > 0 {
		n := w.layout.Quarantine
		off := w.offset[0]
		file, err := w.create(lake.Part{Partition: 0, First: off, Last: off + int64(n) - 1})
		if err != nil {
			return err
		}
		q := fmt.Sprintf(`COPY (SELECT 0::INTEGER AS kafka_partition, %d + i AS kafka_offset, TIMESTAMPTZ '2026-01-01 10:00:00+00' AS kafka_timestamp,
			'{"event_type": broken ' || i AS value, 'invalid character ''b'' looking for beginning of value' AS error
			FROM range(%d) t(i)) TO %s (FORMAT parquet)`, off, n, quote(file))
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	return nil
}

// create makes the folders of part's file and returns its path.
func (w *Writer) create(part lake.Part) (string, error) {
	file := filepath.Join(w.dir, filepath.FromSlash(part.Name()))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", fmt.Errorf("make lake folder: %w", err)
	}
	return file, nil
}

// Build generates a game with cfg, writes it as a lake under dir, and calls
// seen (when not nil) with every event written, for tests to count on.
func Build(ctx context.Context, dir string, cfg Config, layout Layout, seen func(*event.Event)) error {
	w, err := NewWriter(dir, layout)
	if err != nil {
		return err
	}
	err = Generate(cfg, func(ev *event.Event) error {
		if seen != nil {
			seen(ev)
		}
		return w.Add(ev)
	})
	if err != nil {
		os.Remove(w.tmp.Name())
		w.tmp.Close()
		return err
	}
	return w.Close(ctx)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
