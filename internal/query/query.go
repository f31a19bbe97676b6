// Package query runs SQL over the questlog lake with DuckDB, behind ready-made
// views: events (every type, union by name), one view per event type,
// quarantine, and the classic stack's subsets events_item, events_guild and
// events_user.
//
// It reads the lake's files and nothing else: it knows nothing of Kafka, the
// API or how the files were written, and asks package lake where they are. A
// view whose event type has no files yet exists and is empty.
package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake"
)

// Subset views of the classic stack: the item, guild and user events.
var subsets = []struct {
	name  string
	types []string
}{
	{"events_item", []string{event.TypeBuyItem, event.TypeSellItem, event.TypeCartAdd, event.TypeCartRemove, event.TypeCheckout}},
	{"events_guild", []string{event.TypeJoinGuild, event.TypeLeaveGuild}},
	{"events_user", []string{event.TypeSignup, event.TypeLogin, event.TypeLogout}},
}

// KnownTypes are the event types that always have a view, files or not.
var KnownTypes = []string{
	event.TypeDefault, event.TypeSignup, event.TypeLogin, event.TypeLogout,
	event.TypeBuyItem, event.TypeSellItem, event.TypeCartAdd, event.TypeCartRemove,
	event.TypeCheckout, event.TypeJoinGuild, event.TypeLeaveGuild,
	event.TypeViewInventory, event.TypeViewCatalog, event.TypeViewCart,
}

// column is one column every event view has, whether or not a file holds it,
// so that a query naming it works before the first such event arrives.
type column struct {
	name, sqlType string
}

var httpType = `STRUCT("method" VARCHAR, "path" VARCHAR, "host" VARCHAR, "user_agent" VARCHAR, "accept" VARCHAR, ` +
	`"remote_addr" VARCHAR, "accept_language" VARCHAR, "accept_encoding" VARCHAR, "content_type" VARCHAR, ` +
	`"referer" VARCHAR, "origin" VARCHAR, "x_forwarded_for" VARCHAR, "x_request_id" VARCHAR, "x_client_version" VARCHAR)`

// eventColumns are the envelope, event, lineage and partition columns in the
// order the views show them; columns a file adds beyond these follow.
var eventColumns = []column{
	{"event_id", "VARCHAR"},
	{"event_type", "VARCHAR"},
	{"event_time", "TIMESTAMPTZ"},
	{"schema_version", "BIGINT"},
	{"user", "VARCHAR"},
	{"status", "VARCHAR"},
	{"return_code", "BIGINT"},
	{"error", "VARCHAR"},
	{"item_type", "VARCHAR"},
	{"quality", "VARCHAR"},
	{"quantity", "BIGINT"},
	{"unit_price", "BIGINT"},
	{"total_price", "BIGINT"},
	{"gold_after", "BIGINT"},
	{"guild", "VARCHAR"},
	{"cart_size", "BIGINT"},
	{"item_count", "BIGINT"},
	{"http", httpType},
	{"kafka_partition", "INTEGER"},
	{"kafka_offset", "BIGINT"},
	{"kafka_timestamp", "TIMESTAMPTZ"},
	{"event_date", "DATE"},
}

// quarantineColumns are what an empty quarantine view shows.
var quarantineColumns = []column{
	{"kafka_partition", "INTEGER"},
	{"kafka_offset", "BIGINT"},
	{"kafka_timestamp", "TIMESTAMPTZ"},
	{"value", "BLOB"}, // the record's raw bytes, which may not be text
	{"error", "VARCHAR"},
}

// DB is a DuckDB database whose views read one lake. Safe for concurrent
// use; Refresh rebuilds the views while queries wait.
type DB struct {
	lake string
	db   *sql.DB

	mu    sync.RWMutex // held for writing while views are rebuilt
	views []string
}

// Option configures Open.
type Option func(*options)

type options struct {
	noViews bool
}

// WithoutViews opens the lake without creating its views, for callers that
// read files themselves (EventFiles, SelectEvents): building the views reads
// every file's footer. Default: the views are created.
func WithoutViews() Option { return func(o *options) { o.noViews = true } }

// Open starts an in-memory DuckDB over the lake at location (a directory, or
// s3://bucket/prefix when DuckDB's httpfs extension is available) and creates
// its views. A lake with no files yet is fine: every view exists and is empty.
func Open(ctx context.Context, location string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if location == "" {
		return nil, errors.New("open lake: no location given")
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		// Timestamps show in UTC whatever the machine's zone, as the lake stores
		// them. This runs for every pooled connection, long after Open's ctx.
		if _, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil); err != nil {
			return err
		}
		// Every view and chart reads the same files' footers again; keep
		// them (DuckDB notices when a file changes).
		_, err := execer.ExecContext(context.Background(), "SET parquet_metadata_cache = true", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start duckdb: %w", err)
	}
	d := &DB{lake: strings.TrimRight(location, "/"), db: sql.OpenDB(connector)}
	if o.noViews {
		return d, nil
	}
	if err := d.Refresh(ctx); err != nil {
		d.db.Close()
		return nil, err
	}
	return d, nil
}

// Close releases DuckDB.
func (d *DB) Close() error { return d.db.Close() }

// Lake is the location the views read.
func (d *DB) Lake() string { return d.lake }

// path is where a name (or glob) relative to the lake's root is.
func (d *DB) path(rel string) string { return d.lake + "/" + rel }

// Views lists the view names, sorted.
func (d *DB) Views() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.views)
}

// Refresh rebuilds the views from the files the lake holds now: a new event
// type gets its view, and a column that a type's files gained appears.
// DuckDB re-reads the file list on every query; only the views' columns are
// fixed until the next Refresh.
func (d *DB) Refresh(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	eventsGlob := d.path(lake.EventsGlob)
	files, err := d.glob(ctx, eventsGlob)
	if err != nil {
		return err
	}
	types := slices.Clone(KnownTypes)
	for _, f := range files {
		if t, ok := typeOf(f); ok && !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)

	var views []string
	create := func(name, body string) error {
		if _, err := d.db.ExecContext(ctx, "CREATE OR REPLACE VIEW "+ident(name)+" AS "+body); err != nil {
			return fmt.Errorf("create view %s: %w", name, err)
		}
		views = append(views, name)
		return nil
	}

	// Each type's files are described once; the events view's columns are
	// their union, so no file's footer is read twice here.
	bodies := map[string]string{}
	var union []string
	for _, t := range types {
		if !slices.ContainsFunc(files, func(f string) bool { tt, _ := typeOf(f); return tt == t }) {
			bodies[t] = emptySelect(eventColumns)
			continue
		}
		src := readParquet(d.path(lake.TypeGlob(t)), true)
		present, err := d.columns(ctx, src)
		if err != nil {
			return err
		}
		bodies[t] = viewOver(src, present)
		for _, c := range present {
			if !slices.Contains(union, c) {
				union = append(union, c)
			}
		}
	}
	body := emptySelect(eventColumns)
	if len(files) > 0 {
		body = viewOver(readParquet(eventsGlob, true), union)
	}
	if err := create("events", body); err != nil {
		return err
	}
	for _, t := range types {
		if reserved(t) {
			continue // its events are in the events view
		}
		if err := create(t, bodies[t]); err != nil {
			return err
		}
	}
	for _, s := range subsets {
		quoted := make([]string, len(s.types))
		for i, t := range s.types {
			quoted[i] = literal(t)
		}
		if err := create(s.name, "SELECT * FROM events WHERE event_type IN ("+strings.Join(quoted, ", ")+")"); err != nil {
			return err
		}
	}

	qGlob := d.path(lake.QuarantineGlob)
	qFiles, err := d.glob(ctx, qGlob)
	if err != nil {
		return err
	}
	body = emptySelect(quarantineColumns)
	if len(qFiles) > 0 {
		body = "SELECT * FROM " + readParquet(qGlob, false)
	}
	if err := create("quarantine", body); err != nil {
		return err
	}

	slices.Sort(views)
	d.views = views
	return nil
}

// EventFiles lists the lake's published event files, sorted.
func (d *DB) EventFiles(ctx context.Context) ([]string, error) {
	return d.glob(ctx, d.path(lake.EventsGlob))
}

// QuarantineFiles lists the lake's published quarantine files, sorted.
func (d *DB) QuarantineFiles(ctx context.Context) ([]string, error) {
	return d.glob(ctx, d.path(lake.QuarantineGlob))
}

// SelectEvents is a SELECT of the named standard event columns (see the
// events view) from the given event files, each column cast to its standard
// type, NULL where no file has it. With no files it selects no rows, with
// the same column types.
func (d *DB) SelectEvents(ctx context.Context, files []string, cols []string) (string, error) {
	std := make([]column, 0, len(cols))
	for _, name := range cols {
		i := slices.IndexFunc(eventColumns, func(c column) bool { return c.name == name })
		if i < 0 {
			return "", fmt.Errorf("select events: %s is not an event column", name)
		}
		std = append(std, eventColumns[i])
	}
	if len(files) == 0 {
		return emptySelect(std), nil
	}
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = literal(f)
	}
	src := "read_parquet([" + strings.Join(quoted, ", ") + "], hive_partitioning = true, union_by_name = true)"
	present, err := d.columns(ctx, src)
	if err != nil {
		return "", err
	}
	list := make([]string, len(std))
	for i, c := range std {
		if slices.Contains(present, c.name) {
			list[i] = "TRY_CAST(" + ident(c.name) + " AS " + c.sqlType + ") AS " + ident(c.name)
		} else {
			list[i] = "CAST(NULL AS " + c.sqlType + ") AS " + ident(c.name)
		}
	}
	return "SELECT " + strings.Join(list, ", ") + " FROM " + src, nil
}

// viewOver is the body of a view over src whose files hold the columns
// present: the standard columns in order, typed NULL where no file has them,
// then whatever else the files hold.
func viewOver(src string, present []string) string {
	var list []string
	for _, c := range eventColumns {
		if slices.Contains(present, c.name) {
			list = append(list, ident(c.name))
		} else {
			list = append(list, "CAST(NULL AS "+c.sqlType+") AS "+ident(c.name))
		}
	}
	for _, p := range present {
		if !slices.ContainsFunc(eventColumns, func(c column) bool { return c.name == p }) {
			list = append(list, ident(p))
		}
	}
	return "SELECT " + strings.Join(list, ", ") + " FROM " + src
}

func (d *DB) columns(ctx context.Context, src string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", src, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read schema of %s: %w", src, err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", src, err)
	}
	return cols, nil
}

func (d *DB) glob(ctx context.Context, pattern string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT file FROM glob("+literal(pattern)+") ORDER BY file")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", pattern, err)
	}
	defer rows.Close()
	var files []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("list %s: %w", pattern, err)
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", pattern, err)
	}
	return files, nil
}

// typeOf reads the event type from an events file's folders.
func typeOf(file string) (string, bool) {
	t, _ := lake.EventFolders(file)
	return t, t != ""
}

// reserved reports whether an event type's name is taken by another view.
func reserved(t string) bool {
	if t == "events" || t == "quarantine" {
		return true
	}
	return slices.ContainsFunc(subsets, func(s struct {
		name  string
		types []string
	}) bool {
		return s.name == t
	})
}

func readParquet(glob string, hive bool) string {
	if hive {
		return "read_parquet(" + literal(glob) + ", hive_partitioning = true, union_by_name = true)"
	}
	return "read_parquet(" + literal(glob) + ", union_by_name = true)"
}

func emptySelect(cols []column) string {
	list := make([]string, len(cols))
	for i, c := range cols {
		list[i] = "CAST(NULL AS " + c.sqlType + ") AS " + ident(c.name)
	}
	return "SELECT " + strings.Join(list, ", ") + " WHERE false"
}

// ident quotes an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes an SQL string.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Result is a query's answer, held in memory.
type Result struct {
	Columns []string
	Types   []string // DuckDB's type names, e.g. VARCHAR, BIGINT, TIMESTAMP WITH TIME ZONE
	Rows    [][]any
}

// Query runs one SQL statement and returns all its rows. DuckDB's own message
// (a parser or binder error, say) is kept in the error.
func (d *DB) Query(ctx context.Context, q string, args ...any) (*Result, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	res := &Result{Columns: make([]string, len(cols)), Types: make([]string, len(cols))}
	for i, c := range cols {
		res.Columns[i], res.Types[i] = c.Name(), c.DatabaseTypeName()
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read row %d: %w", len(res.Rows)+1, err)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// Exec runs a statement that returns no rows, such as CREATE TABLE.
func (d *DB) Exec(ctx context.Context, q string, args ...any) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, err := d.db.ExecContext(ctx, q, args...)
	return err
}

// Each runs q and calls row with a Scan function for every row, for callers
// that want typed values without a Result.
func (d *DB) Each(ctx context.Context, q string, args []any, row func(scan func(dest ...any) error) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}
