// Package query runs SQL over the questlog lake with DuckDB, behind ready-made
// views: events (every type, union by name), one view per event type (that
// type's columns only, as its schema in _schemas/ says), quarantine, and
// the classic stack's subsets events_item, events_guild and events_user.
//
// It reads the lake's files and nothing else: it knows nothing of Kafka, the
// API or how the files were written, and asks package lake which files to
// read (lake.ListData: the files a compaction replaced are not). Views read
// explicit lists of files, brought up to date before each statement, so a
// record is counted once however the lake is being compacted. A view whose
// event type has no files yet exists and is empty.
//
// DuckDB reads a local lake's files where they are. It would read an
// s3:// lake only through its httpfs extension, which it downloads at run
// time; instead each statement reads local copies of the files it needs,
// kept in a bounded cache (package lakecache) and pinned while it runs.
package query

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/lakecache"
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
	lake  string
	st    lake.Storage
	root  string           // where DuckDB reads the files: the lake's folder, or its cache's
	cache *lakecache.Cache // nil for a local lake
	db    *sql.DB
	keeps bool // keeps views (not WithoutViews)

	mu        sync.RWMutex // held for writing while views are rebuilt
	views     []string
	built     string          // the signature of the listing and schemas the views read
	files     []string        // the files the views read
	viewFiles []lake.DataFile // the same, as the lake lists them

	knownMu sync.Mutex
	known   map[string]lake.DataFile // the files listed last, by name (with a cache)
}

// Option configures Open.
type Option func(*options)

type options struct {
	noViews   bool
	cacheDir  string
	cacheSize int64
	lake      []lake.OpenOption
	memory    int64  // DuckDB's memory_limit in bytes; 0: DuckDB's default
	spillDir  string // DuckDB's temp_directory
}

// WithoutViews opens the lake without creating its views, for callers that
// read files themselves (EventFiles, SelectEvents): building the views reads
// every file's footer. Default: the views are created.
func WithoutViews() Option { return func(o *options) { o.noViews = true } }

// WithMemory bounds the memory DuckDB's buffer manager uses to limit bytes
// (its memory_limit; default 80% of the machine's), past which it writes
// blocks of in-memory tables and of large operators to files in spillDir,
// a directory it creates when it needs one. For a long-lived database
// whose tables grow, such as the dashboard's.
func WithMemory(limit int64, spillDir string) Option {
	return func(o *options) { o.memory, o.spillDir = limit, spillDir }
}

// CacheDir is where the local copies of an s3:// lake's files are kept.
// Default questlog/ in the user's cache directory (os.UserCacheDir).
func CacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// CacheSize bounds the local copies of an s3:// lake's files, in bytes
// (see package lakecache). Default 1 GiB.
func CacheSize(n int64) Option { return func(o *options) { o.cacheSize = n } }

// LakeOptions are given to lake.Locate. Default none.
func LakeOptions(opts ...lake.OpenOption) Option { return func(o *options) { o.lake = opts } }

// DefaultCacheDir is where the local copies of an s3:// lake's files are
// kept unless CacheDir says otherwise.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "questlog-cache")
	}
	return filepath.Join(dir, "questlog")
}

// Open starts an in-memory DuckDB over the lake at location (a directory
// or s3://bucket/prefix) and creates its views. A lake with no files yet
// is fine: every view exists and is empty.
func Open(ctx context.Context, location string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	st, err := lake.Locate(location, o.lake...)
	if err != nil {
		return nil, err
	}
	root := strings.TrimRight(location, "/")
	var cache *lakecache.Cache
	if _, local := st.(lake.Dir); !local {
		if o.cacheDir == "" {
			o.cacheDir = DefaultCacheDir()
		}
		if cache, err = lakecache.Open(st, location, o.cacheDir, o.cacheSize); err != nil {
			return nil, err
		}
		root = filepath.ToSlash(cache.Root())
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		// Timestamps show in UTC whatever the machine's zone, as the lake stores
		// them. This runs for every pooled connection, long after Open's ctx.
		if _, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil); err != nil {
			return err
		}
		// Every view and chart reads the same files' footers again; keep
		// them (DuckDB notices when a file changes).
		settings := []string{"SET parquet_metadata_cache = true"}
		if o.memory > 0 {
			settings = append(settings, fmt.Sprintf("SET memory_limit = '%dKiB'", max(o.memory>>10, 1)),
				"SET temp_directory = "+literal(o.spillDir),
				// Scans of many files at once then need a buffer per
				// thread, not one per file kept in order.
				"SET preserve_insertion_order = false")
		}
		for _, q := range settings {
			if _, err := execer.ExecContext(context.Background(), q, nil); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start duckdb: %w", err)
	}
	d := &DB{lake: strings.TrimRight(location, "/"), st: st, root: root, cache: cache, db: sql.OpenDB(connector), keeps: !o.noViews}
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

// path is where DuckDB reads a file of the lake, by its name relative to
// the lake's root.
func (d *DB) path(rel string) string { return d.root + "/" + rel }

// Name is the lake file a path (as EventFiles gives them) reads.
func (d *DB) Name(path string) (string, bool) { return strings.CutPrefix(path, d.root+"/") }

// pin makes sure the files have local copies (an object store's lake)
// until release is called; nothing to do for a local lake.
func (d *DB) pin(ctx context.Context, files []lake.DataFile) (release func(), err error) {
	if d.cache == nil || len(files) == 0 {
		return func() {}, nil
	}
	p, err := d.cache.Pin(ctx, files)
	if err != nil {
		return nil, err
	}
	return p.Release, nil
}

// remember notes the files of a listing, for filesIn.
func (d *DB) remember(files []lake.DataFile) {
	if d.cache == nil {
		return
	}
	d.knownMu.Lock()
	defer d.knownMu.Unlock()
	if d.known == nil {
		d.known = map[string]lake.DataFile{}
	}
	for _, f := range files {
		d.known[f.Name] = f
	}
}

// filesIn are the lake files that SQL names by their paths (files that
// EventFiles or QuarantineFiles gave); none for a local lake.
func (d *DB) filesIn(sql string) []lake.DataFile {
	if d.cache == nil {
		return nil
	}
	prefix := d.root + "/"
	d.knownMu.Lock()
	defer d.knownMu.Unlock()
	var files []lake.DataFile
	for rest := sql; ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			return files
		}
		rest = rest[i+len(prefix):]
		name, _, _ := strings.Cut(rest, "'")
		if f, ok := d.known[name]; ok {
			files = append(files, f)
		}
	}
}

// Views lists the view names, sorted.
func (d *DB) Views() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.views)
}

// Refresh rebuilds the views from the files the lake holds now. Every
// statement brings them up to date first when the lake's files or schemas
// changed (a new file, a merge, a new event type, a widened schema), so
// Refresh is for callers that want it done now.
func (d *DB) Refresh(ctx context.Context) error { return d.sync(ctx, true) }

// sync rebuilds the views when the lake's effective files or schemas are
// not those they read (or always, with force).
func (d *DB) sync(ctx context.Context, force bool) error {
	for attempt := 1; ; attempt++ {
		l, schemas, sig, err := d.list(ctx)
		if err != nil {
			return err
		}
		d.mu.RLock()
		same := sig == d.built
		d.mu.RUnlock()
		if same && !force {
			return nil
		}
		d.mu.Lock()
		release, err := d.pin(ctx, l.Files)
		if err == nil {
			err = d.build(ctx, l, schemas)
			release()
		}
		if err == nil {
			d.built = sig
		}
		d.mu.Unlock()
		if err == nil || attempt == attempts {
			return err
		}
		// Building reads every file's footer: a file removed meanwhile
		// fails it, and a new listing does not have it.
		if _, _, now, lerr := d.list(ctx); lerr != nil || now == sig {
			return err
		}
	}
}

// list lists the lake's files and schemas, and their signature.
func (d *DB) list(ctx context.Context) (*lake.Listing, *lake.Schemas, string, error) {
	l, err := lake.ListData(ctx, d.st)
	if err != nil {
		return nil, nil, "", err
	}
	if err := l.Err(); err != nil {
		return nil, nil, "", err
	}
	schemas, err := lake.LoadSchemas(ctx, d.st)
	if err != nil {
		return nil, nil, "", err
	}
	d.remember(l.Files)
	return l, schemas, signature(l, schemas), nil
}

// signature identifies a listing's effective files and the schemas'
// versions.
func signature(l *lake.Listing, schemas *lake.Schemas) string {
	h := sha256.New()
	for _, f := range l.Files {
		h.Write([]byte(f.Name))
		h.Write([]byte{0})
	}
	all := schemas.All()
	for _, t := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(h, "%s:%d\x00", t, all[t].Version)
	}
	return string(h.Sum(nil))
}

// build makes the views read the listing's files, with the schemas'
// columns.
func (d *DB) build(ctx context.Context, l *lake.Listing, schemas *lake.Schemas) error {
	byType := map[string][]string{}
	var all []string
	for _, f := range l.Events() {
		byType[f.EventType] = append(byType[f.EventType], d.path(f.Name))
		all = append(all, d.path(f.Name))
	}
	types := slices.Clone(KnownTypes)
	for t := range byType {
		types = append(types, t)
	}
	for t := range schemas.All() {
		types = append(types, t)
	}
	slices.Sort(types)
	types = slices.Compact(types)

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
	var plain, apart []string // the events view's sources: files, and types read apart
	for _, t := range types {
		var src string
		var present []string
		if files := byType[t]; len(files) > 0 {
			var err error
			if src, err = d.typeSource(ctx, files, schemas.Get(t)); err != nil {
				return err
			}
			if src == readParquet(files, true) {
				plain = append(plain, files...)
			} else {
				apart = append(apart, "SELECT * FROM "+src)
			}
			if present, err = d.columns(ctx, src); err != nil {
				return err
			}
			for _, c := range present {
				if !slices.Contains(union, c) {
					union = append(union, c)
				}
			}
		}
		bodies[t] = typeView(src, present, schemas.Get(t))
	}
	body := emptySelect(eventColumns)
	switch {
	case len(apart) > 0:
		if len(plain) > 0 {
			apart = append(apart, "SELECT * FROM "+readParquet(plain, true))
		}
		body = viewOver("("+strings.Join(apart, " UNION ALL BY NAME ")+")", union)
	case len(all) > 0:
		body = viewOver(readParquet(all, true), union)
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
	var qFiles []string
	for _, f := range l.Quarantine() {
		qFiles = append(qFiles, d.path(f.Name))
	}
	body = emptySelect(quarantineColumns)
	if len(qFiles) > 0 {
		body = "SELECT * FROM " + readParquet(qFiles, false)
	}
	if err := create("quarantine", body); err != nil {
		return err
	}

	slices.Sort(views)
	d.views = views
	d.files = append(all, qFiles...)
	d.viewFiles = slices.Clone(l.Files)
	return nil
}

// typeSource is what a type's files read as: one read_parquet, or when
// some of its fields turned from a struct into a string, the files of
// each schema version read apart, those structs as their JSON text (as
// the extract writes an object into a string column, and a compaction
// widens one): DuckDB cannot read a struct and a string as one column.
func (d *DB) typeSource(ctx context.Context, files []string, schema *lake.Schema) (string, error) {
	turned := structsTurnedStrings(schema)
	if len(turned) == 0 {
		return readParquet(files, true), nil
	}
	versions := map[int][]string{}
	q := "SELECT file_name, decode(value) FROM parquet_kv_metadata(" + list(files) + ") WHERE decode(key) = " + literal(lake.MetaSchemaVersion)
	err := d.eachRow(ctx, q, func(scan func(...any) error) error {
		var file, v string
		if err := scan(&file, &v); err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s: schema version %q", file, v)
		}
		versions[n] = append(versions[n], file)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read the schema versions of %s's files: %w", schema.EventType, err)
	}
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		var replace []string
		for _, name := range turned {
			if f := fieldNamed(schema.FieldsOf(v), name); f != nil && f.Kind == lake.KindStruct {
				replace = append(replace, "to_json("+ident(name)+")::VARCHAR AS "+ident(name))
			}
		}
		sel := "SELECT * FROM " + readParquet(versions[v], true)
		if len(replace) > 0 {
			sel = "SELECT * REPLACE (" + strings.Join(replace, ", ") + ") FROM " + readParquet(versions[v], true)
		}
		parts = append(parts, sel)
	}
	return "(" + strings.Join(parts, " UNION ALL BY NAME ") + ")", nil
}

// structsTurnedStrings are the top-level fields that the schema has as
// strings and an earlier version had as structs.
func structsTurnedStrings(schema *lake.Schema) []string {
	if schema == nil {
		return nil
	}
	var out []string
	for _, f := range schema.Fields {
		if f.Kind != lake.KindString {
			continue
		}
		for _, v := range schema.History {
			if old := fieldNamed(v.Fields, f.Name); old != nil && old.Kind == lake.KindStruct {
				out = append(out, f.Name)
				break
			}
		}
	}
	return out
}

// eachRow runs q on the DuckDB itself, views as they are.
func (d *DB) eachRow(ctx context.Context, q string, row func(scan func(dest ...any) error) error) error {
	rows, err := d.db.QueryContext(ctx, q)
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

// typeView is the body of an event type's view over src (empty: the type
// has no files yet), whose files hold the columns present: with a schema,
// the schema's columns only, typed as it says; without one, the standard
// columns and whatever else the files hold.
func typeView(src string, present []string, schema *lake.Schema) string {
	if schema == nil {
		if src == "" {
			return emptySelect(eventColumns)
		}
		return viewOver(src, present)
	}
	var cols []column
	for _, c := range eventColumns {
		if f := fieldNamed(schema.Fields, c.name); f != nil {
			cols = append(cols, column{c.name, sqlType(*f)})
		} else if hiveOrLineage(c.name) {
			cols = append(cols, c)
		}
	}
	for _, f := range schema.Fields {
		if !slices.ContainsFunc(cols, func(c column) bool { return c.name == f.Name }) {
			cols = append(cols, column{f.Name, sqlType(f)})
		}
	}
	if src == "" {
		return emptySelect(cols)
	}
	list := make([]string, len(cols))
	for i, c := range cols {
		switch {
		case !slices.Contains(present, c.name):
			list[i] = "CAST(NULL AS " + c.sqlType + ") AS " + ident(c.name)
		case strings.HasPrefix(c.sqlType, "STRUCT"):
			list[i] = ident(c.name) // as the files' union has it: DuckDB casts structs by position
		default:
			list[i] = "CAST(" + ident(c.name) + " AS " + c.sqlType + ") AS " + ident(c.name)
		}
	}
	return "SELECT " + strings.Join(list, ", ") + " FROM " + src
}

func fieldNamed(fields []lake.Field, name string) *lake.Field {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

// hiveOrLineage says whether a standard column is every event type's:
// a hive key or a lineage column.
func hiveOrLineage(name string) bool {
	switch name {
	case lake.ColEventType, lake.ColEventDate, lake.ColPartition, lake.ColOffset, lake.ColTimestamp:
		return true
	}
	return false
}

// sqlType is DuckDB's type for a schema field.
func sqlType(f lake.Field) string {
	switch f.Kind {
	case lake.KindBool:
		return "BOOLEAN"
	case lake.KindInt:
		return "BIGINT"
	case lake.KindFloat:
		return "DOUBLE"
	case lake.KindTimestamp:
		return "TIMESTAMPTZ"
	case lake.KindStruct:
		parts := make([]string, len(f.Fields))
		for i, sub := range f.Fields {
			parts[i] = ident(sub.Name) + " " + sqlType(sub)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	}
	return "VARCHAR"
}

// EventFiles lists the files of the lake's events that a reader reads
// (files a compaction replaced are not), sorted.
func (d *DB) EventFiles(ctx context.Context) ([]string, error) {
	return d.dataFiles(ctx, (*lake.Listing).Events)
}

// QuarantineFiles lists the quarantine files a reader reads, sorted.
func (d *DB) QuarantineFiles(ctx context.Context) ([]string, error) {
	return d.dataFiles(ctx, (*lake.Listing).Quarantine)
}

func (d *DB) dataFiles(ctx context.Context, which func(*lake.Listing) []lake.DataFile) ([]string, error) {
	l, err := lake.ListData(ctx, d.st)
	if err != nil {
		return nil, err
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	files := which(l)
	d.remember(files)
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = d.path(f.Name)
	}
	return paths, nil
}

// Vanished says whether one of files (as EventFiles gives them) is no
// longer in the lake: a compaction removed it once its grace period was
// over. A statement that failed reading them is worth running again on a
// new listing.
func (d *DB) Vanished(ctx context.Context, files []string) bool {
	l, err := lake.ListData(ctx, d.st)
	if err != nil {
		return false
	}
	there := make(map[string]bool, len(l.Files)+len(l.Replaced))
	for _, f := range l.Files {
		there[d.path(f.Name)] = true
	}
	for _, r := range l.Replaced {
		there[d.path(r.Name)] = true
	}
	for _, f := range files {
		if !there[f] {
			return true
		}
	}
	return false
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
	src := readParquet(files, true)
	release, err := d.pin(ctx, d.filesIn(src))
	if err != nil {
		return "", err
	}
	present, err := d.columns(ctx, src)
	release()
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

// readParquet reads files (hive partitioned: with the event_type and
// event_date of their folders).
func readParquet(files []string, hive bool) string {
	if hive {
		return "read_parquet(" + list(files) + ", hive_partitioning = true, union_by_name = true)"
	}
	return "read_parquet(" + list(files) + ", union_by_name = true)"
}

// list is an SQL list of strings.
func list(strs []string) string {
	quoted := make([]string, len(strs))
	for i, f := range strs {
		quoted[i] = literal(f)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
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

// attempts bounds how often a statement runs: again when it failed and
// a file its views read was removed meanwhile (a compaction removing the
// files it replaced, once their grace period is over).
const attempts = 3

// statement runs the statement q on views brought up to date, and again
// on a new listing when it failed reading a file that vanished and run
// says it may. The files it reads (the views', and those q names) have
// local copies while it runs.
func (d *DB) statement(ctx context.Context, q string, run func() (again bool, err error)) error {
	for attempt := 1; ; attempt++ {
		if d.keeps {
			if err := d.sync(ctx, false); err != nil {
				return err
			}
		}
		d.mu.RLock()
		again := true
		release, err := d.pin(ctx, append(slices.Clone(d.viewFiles), d.filesIn(q)...))
		if err == nil {
			again, err = run()
			release()
		}
		files := d.files
		d.mu.RUnlock()
		if err == nil || !again || attempt == attempts || !d.Vanished(ctx, files) {
			return err
		}
	}
}

// Query runs one SQL statement and returns all its rows. DuckDB's own message
// (a parser or binder error, say) is kept in the error.
func (d *DB) Query(ctx context.Context, q string, args ...any) (*Result, error) {
	var res *Result
	err := d.statement(ctx, q, func() (bool, error) {
		var err error
		res, err = d.query(ctx, q, args...)
		return true, err
	})
	return res, err
}

func (d *DB) query(ctx context.Context, q string, args ...any) (*Result, error) {
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
	return d.statement(ctx, q, func() (bool, error) {
		_, err := d.db.ExecContext(ctx, q, args...)
		return true, err
	})
}

// Each runs q and calls row with a Scan function for every row, for callers
// that want typed values without a Result. It runs q again (see Query)
// only when no row was given yet.
func (d *DB) Each(ctx context.Context, q string, args []any, row func(scan func(dest ...any) error) error) error {
	return d.statement(ctx, q, func() (bool, error) {
		rows, err := d.db.QueryContext(ctx, q, args...)
		if err != nil {
			return true, err
		}
		defer rows.Close()
		given := false
		for rows.Next() {
			given = true
			if err := row(rows.Scan); err != nil {
				return false, err
			}
		}
		return !given, rows.Err()
	})
}
