package query_test

import (
	"bytes"
	"context"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/golden"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
)

// sent is what a test knows about the events it wrote, counted in Go.
type sent struct {
	total     int
	byType    map[string]int
	failed    map[string]int // by error
	goldSpent int64          // ok buy_item and checkout
	bought    map[string]int64
	anonymous int
}

func buildLake(t *testing.T, cfg laketest.Config, layout laketest.Layout) (string, *sent) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "lake")
	s := &sent{byType: map[string]int{}, failed: map[string]int{}, bought: map[string]int64{}}
	err := laketest.Build(context.Background(), dir, cfg, layout, func(ev *event.Event) {
		s.total++
		s.byType[ev.Type]++
		if ev.Status == event.StatusFailed {
			s.failed[ev.Error]++
		}
		if ev.User == "" {
			s.anonymous++
		}
		if ev.Status == event.StatusOK && (ev.Type == event.TypeBuyItem || ev.Type == event.TypeCheckout) {
			s.goldSpent += ev.TotalPrice.V
		}
		if ev.Status == event.StatusOK && ev.Type == event.TypeBuyItem {
			s.bought[ev.ItemType+"/"+ev.Quality] += ev.Quantity.V
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, s
}

func open(t *testing.T, lake string) *query.DB {
	t.Helper()
	db, err := query.Open(context.Background(), lake)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func scalar(t *testing.T, db *query.DB, q string) int64 {
	t.Helper()
	res, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("%s: want one value, got %v", q, res.Rows)
	}
	switch v := res.Rows[0][0].(type) {
	case int64:
		return v
	case *big.Int: // sum(BIGINT) is a HUGEINT
		return v.Int64()
	case nil:
		return 0
	default:
		t.Fatalf("%s: want an integer, got %T %v", q, v, v)
		return 0
	}
}

func TestViewsAnswerWhatWasSent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout laketest.Layout
	}{
		{"event_type in files", laketest.Layout{Partitions: 3, Quarantine: 4}},
		{"event_type only in path", laketest.Layout{Partitions: 2, TypeOnlyInPath: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lake, want := buildLake(t, laketest.Config{Players: 40, Events: 3000, Seed: 7}, tc.layout)
			db := open(t, lake)

			if got := scalar(t, db, "SELECT count(*) FROM events"); got != int64(want.total) {
				t.Errorf("events: %d rows, sent %d", got, want.total)
			}
			for _, typ := range query.KnownTypes {
				if got := scalar(t, db, `SELECT count(*) FROM "`+typ+`"`); got != int64(want.byType[typ]) {
					t.Errorf("view %s: %d rows, sent %d", typ, got, want.byType[typ])
				}
				q := "SELECT count(*) FROM events WHERE event_type = '" + typ + "'"
				if got := scalar(t, db, q); got != int64(want.byType[typ]) {
					t.Errorf("events of type %s: %d rows, sent %d", typ, got, want.byType[typ])
				}
			}
			subsets := map[string][]string{
				"events_item":  {"buy_item", "sell_item", "cart_add", "cart_remove", "checkout"},
				"events_guild": {"join_guild", "leave_guild"},
				"events_user":  {"signup", "login", "logout"},
			}
			for view, types := range subsets {
				n := 0
				for _, typ := range types {
					n += want.byType[typ]
				}
				if got := scalar(t, db, "SELECT count(*) FROM "+view); got != int64(n) {
					t.Errorf("%s: %d rows, sent %d", view, got, n)
				}
			}
			q := "SELECT sum(total_price) FROM events WHERE status = 'ok' AND event_type IN ('buy_item', 'checkout')"
			if got := scalar(t, db, q); got != want.goldSpent {
				t.Errorf("gold spent: %d, sent %d", got, want.goldSpent)
			}
			for reason, n := range want.failed {
				q := "SELECT count(*) FROM events WHERE status = 'failed' AND error = '" + reason + "'"
				if got := scalar(t, db, q); got != int64(n) {
					t.Errorf("failed %s: %d, sent %d", reason, got, n)
				}
			}
			if got := scalar(t, db, "SELECT count(*) FROM events WHERE user IS NULL"); got != int64(want.anonymous) {
				t.Errorf("anonymous events: %d, sent %d", got, want.anonymous)
			}
			res, err := db.Query(context.Background(),
				"SELECT item_type || '/' || quality, sum(quantity) FROM buy_item WHERE status = 'ok' GROUP BY ALL")
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != len(want.bought) {
				t.Errorf("bought %d item/quality pairs, sent %d", len(res.Rows), len(want.bought))
			}
			for _, row := range res.Rows {
				k := row[0].(string)
				if got := toInt(row[1]); got != want.bought[k] {
					t.Errorf("bought %s: %d, sent %d", k, got, want.bought[k])
				}
			}
			if got := scalar(t, db, "SELECT count(*) FROM quarantine"); got != int64(tc.layout.Quarantine) {
				t.Errorf("quarantine: %d rows, wrote %d", got, tc.layout.Quarantine)
			}
			// Every file's rows sit in the right view: lineage is whole.
			if got := scalar(t, db, "SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM events"); got != int64(want.total) {
				t.Errorf("distinct (partition, offset): %d, sent %d", got, want.total)
			}
		})
	}
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case *big.Int:
		return x.Int64()
	case float64:
		return int64(x)
	}
	return -1
}

func TestViewsExistBeforeTheirFiles(t *testing.T) {
	ctx := context.Background()
	t.Run("empty lake", func(t *testing.T) {
		db := open(t, filepath.Join(t.TempDir(), "no-lake-yet"))
		for _, v := range append([]string{"events", "quarantine", "events_item", "events_guild", "events_user"}, query.KnownTypes...) {
			if got := scalar(t, db, `SELECT count(*) FROM "`+v+`"`); got != 0 {
				t.Errorf("%s: %d rows in an empty lake", v, got)
			}
		}
		if _, err := db.Query(ctx, "SELECT event_time, user, error, http.path FROM buy_item"); err != nil {
			t.Errorf("columns of an empty view: %v", err)
		}
	})
	t.Run("a type without files and columns no file has", func(t *testing.T) {
		lake, want := buildLake(t, laketest.Config{Players: 10, Events: 400}, laketest.Layout{})
		if err := os.RemoveAll(filepath.Join(lake, "events", "event_type=view_cart")); err != nil {
			t.Fatal(err)
		}
		db := open(t, lake)
		if got := scalar(t, db, "SELECT count(*) FROM view_cart"); got != 0 {
			t.Errorf("view_cart without files: %d rows", got)
		}
		// signup files hold no item_type nor guild: the view still has them.
		if got := scalar(t, db, "SELECT count(*) FROM signup WHERE item_type IS NULL AND guild IS NULL AND error IS NULL"); got != int64(want.byType["signup"]) {
			t.Errorf("signup with NULL item_type, guild, error: %d, sent %d", got, want.byType["signup"])
		}
		if !slices.Contains(db.Views(), "view_cart") {
			t.Errorf("views %v lack view_cart", db.Views())
		}
	})
	t.Run("refresh sees new types", func(t *testing.T) {
		lake := filepath.Join(t.TempDir(), "lake")
		db := open(t, lake)
		if got := scalar(t, db, "SELECT count(*) FROM events"); got != 0 {
			t.Fatalf("empty lake has %d events", got)
		}
		_, want := func() (string, *sent) {
			s := &sent{byType: map[string]int{}}
			err := laketest.Build(ctx, lake, laketest.Config{Events: 300}, laketest.Layout{}, func(ev *event.Event) { s.total++ })
			if err != nil {
				t.Fatal(err)
			}
			return lake, s
		}()
		if err := db.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if got := scalar(t, db, "SELECT count(*) FROM events"); got != int64(want.total) {
			t.Errorf("after refresh: %d events, sent %d", got, want.total)
		}
	})
}

func TestBadQueryKeepsDuckDBsMessage(t *testing.T) {
	db := open(t, t.TempDir())
	for _, tc := range []struct{ sql, want string }{
		{"SELEC 1", "syntax error"},
		{"SELECT nope FROM events", "nope"},
		{"SELECT * FROM no_such_table", "no_such_table"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			_, err := db.Query(context.Background(), tc.sql)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	db := open(t, t.TempDir())
	res, err := db.Query(context.Background(), `SELECT * FROM (VALUES
		(1, 'sword', 2.5, TIMESTAMPTZ '2026-01-01 10:00:00.123456+00', DATE '2026-01-01', {'method': 'GET', 'path': '/v1/items'}, 'a "quoted", comma'),
		(22, NULL, NULL, NULL, NULL, NULL, 'line
break')) t(n, item_type, price, event_time, event_date, http, note) ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []query.Format{query.FormatTable, query.FormatCSV, query.FormatJSON} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := res.Write(&buf, f); err != nil {
				t.Fatal(err)
			}
			matchGolden(t, filepath.Join("testdata", "result."+string(f)), buf.Bytes())
		})
	}
	t.Run("empty result keeps its header", func(t *testing.T) {
		res, err := db.Query(context.Background(), "SELECT event_type, user FROM signup")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := res.Write(&buf, query.FormatTable); err != nil {
			t.Fatal(err)
		}
		matchGolden(t, filepath.Join("testdata", "empty.table"), buf.Bytes())
	})
	if _, err := query.ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
}

// matchGolden compares got with the golden file at path (rewritten from got
// with -update).
func matchGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if want := golden.Want(t, path, got); !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// A writer's unfinished file sits next to the published ones until it is
// renamed; no view may read it.
func TestPendingFilesAreNotRead(t *testing.T) {
	lake, want := buildLake(t, laketest.Config{Events: 300}, laketest.Layout{Quarantine: 2})
	dirs, err := filepath.Glob(filepath.Join(lake, "events", "event_type=buy_item", "event_date=*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no buy_item directory: %v", err)
	}
	for _, dir := range append(dirs, filepath.Join(lake, "quarantine")) {
		if err := os.WriteFile(filepath.Join(dir, ".pending-0a1b2c-part-0-900-999.parquet"), []byte("PAR1 half written"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := open(t, lake)
	if got := scalar(t, db, "SELECT count(*) FROM buy_item"); got != int64(want.byType["buy_item"]) {
		t.Errorf("buy_item: %d rows, sent %d", got, want.byType["buy_item"])
	}
	if got := scalar(t, db, "SELECT count(*) FROM quarantine"); got != 2 {
		t.Errorf("quarantine: %d rows, wrote 2", got)
	}
}

// TestTypeViewsShowTheirSchemasColumns: on a lake the extract wrote, each
// type's view has the columns of its _schemas/<type>.json (every version,
// widened) and the lineage and hive columns, typed as the schema says;
// events has them all. A statement sees files extracted after Open.
func TestTypeViewsShowTheirSchemasColumns(t *testing.T) {
	ctx := context.Background()
	addr := extracttest.StartBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	extracted := func(raw ...[]byte) *extracttest.Produced {
		p := extracttest.Produce(t, addr, laketest.Config{Events: 300}, nil, raw...)
		if _, err := extracttest.NewExtractor(t, addr, dir).Run(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := extracted([]byte(`{"event_type":"quest_done","event_time":"2026-01-01T10:00:00Z","score":1,"flag":true}`))
	db := open(t, dir)
	columns := func(view string) map[string]string {
		t.Helper()
		res, err := db.Query(ctx, `SELECT column_name, column_type FROM (DESCRIBE "`+view+`")`)
		if err != nil {
			t.Fatal(err)
		}
		cols := map[string]string{}
		for _, r := range res.Rows {
			cols[r[0].(string)] = r[1].(string)
		}
		return cols
	}
	buy := columns("buy_item")
	for _, c := range []string{"event_id", "event_type", "event_time", "user", "item_type", "quality", "quantity", "total_price", "http", "kafka_partition", "kafka_offset", "kafka_timestamp", "event_date"} {
		if _, ok := buy[c]; !ok {
			t.Errorf("buy_item lacks %s: %v", c, buy)
		}
	}
	for _, c := range []string{"guild", "cart_size", "item_count"} {
		if _, ok := buy[c]; ok {
			t.Errorf("buy_item has %s, which no buy_item event has", c)
		}
		if _, ok := columns("events")[c]; !ok {
			t.Errorf("events lacks %s", c)
		}
	}
	if got := scalar(t, db, "SELECT count(*) FROM buy_item"); got != want.PerType["buy_item"] {
		t.Errorf("buy_item: %d rows, sent %d", got, want.PerType["buy_item"])
	}

	// The quest's schema widens (score to a float, flag to a string): its
	// view follows at the next statement, without a Refresh.
	more := extracted([]byte(`{"event_type":"quest_done","event_time":"2026-01-01T11:00:00Z","score":2.5,"flag":"maybe","note":"new"}`))
	want.Add(more)
	quest := columns("quest_done")
	if quest["score"] != "DOUBLE" || quest["flag"] != "VARCHAR" || quest["note"] != "VARCHAR" || quest["item_type"] != "" {
		t.Errorf("quest_done's columns %v: want score DOUBLE, flag and note VARCHAR, no item_type", quest)
	}
	if got := scalar(t, db, "SELECT count(*) FROM quest_done WHERE flag IN ('true', 'maybe') AND score IN (1, 2.5)"); got != 2 {
		t.Errorf("quest_done: %d rows with their widened values, want 2", got)
	}
	if got := scalar(t, db, "SELECT count(*) FROM events"); got != int64(len(want.Events))+2 {
		t.Errorf("events: %d rows, sent %d", got, len(want.Events)+2)
	}
}
