package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/query"
)

// snapshotColumns are the event columns the charts read, and where each
// row comes from (a merged file replaces the rows of its range).
var snapshotColumns = []string{"event_time", "event_type", "user", "status", "error", "item_type", "quality", "quantity", "total_price", "guild",
	"kafka_partition", "kafka_offset", "event_date"}

// snapshot keeps the lake's events in a DuckDB table in memory, reading each
// published file once: the lake's files never change once published (their
// names carry their offsets), so a live dashboard only reads what is new.
// A file a compaction merged into a new one is replaced by it: the rows of
// the new file's range are deleted, and the new file read. A file that
// disappeared otherwise (a rewritten lake) makes it start over.
type snapshot struct {
	db     *query.DB
	table  string
	loaded map[string]lake.Part
	// until, when set, skips the files of days after it: their events can
	// only fall after the window.
	until time.Time
}

func newSnapshot(db *query.DB, until time.Time) (*snapshot, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, err
	}
	// Random, so that reports built side by side on one DB keep apart.
	return &snapshot{db: db, table: "report_events_" + hex.EncodeToString(suffix[:]), until: until}, nil
}

// syncAttempts bounds how often sync reads the lake's list again when a
// file it listed was removed before it read it (a compaction removing the
// files it replaced, once their grace period is over).
const syncAttempts = 3

// sync loads the files published since the last sync.
func (s *snapshot) sync(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		fresh, err := s.load(ctx)
		if err == nil || attempt == syncAttempts || !s.db.Vanished(ctx, fresh) {
			return err
		}
	}
}

// load reads the files published since the last sync and returns them.
func (s *snapshot) load(ctx context.Context) ([]string, error) {
	files, err := s.db.EventFiles(ctx)
	if err != nil {
		return nil, err
	}
	present := make(map[string]lake.Part, len(files))
	for _, f := range files {
		name, _ := s.db.Name(f)
		part, ok := lake.ParsePart(name)
		if !ok {
			continue
		}
		if !s.until.IsZero() && part.Date > s.until.UTC().Format(time.DateOnly) {
			continue
		}
		present[f] = part
	}
	var fresh []string
	for f := range present {
		if _, ok := s.loaded[f]; !ok {
			fresh = append(fresh, f)
		}
	}
	slices.Sort(fresh)
	// Files gone since the last sync: merged into a fresh file, whose
	// range replaces theirs, or else the lake was rewritten.
	var replacing []lake.Part
	for f, part := range s.loaded {
		if _, ok := present[f]; ok {
			continue
		}
		i := slices.IndexFunc(fresh, func(g string) bool { return covers(present[g], part) })
		if i < 0 {
			s.loaded = nil
			fresh = slices.Sorted(maps.Keys(present))
			replacing = nil
			break
		}
		if !slices.Contains(replacing, present[fresh[i]]) {
			replacing = append(replacing, present[fresh[i]])
		}
	}
	if s.loaded == nil {
		empty, err := s.db.SelectEvents(ctx, nil, snapshotColumns)
		if err != nil {
			return nil, err
		}
		if err := s.db.Exec(ctx, "CREATE OR REPLACE TABLE "+s.table+" AS "+empty); err != nil {
			return nil, fmt.Errorf("create the events table: %w", err)
		}
		s.loaded = map[string]lake.Part{}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	sel, err := s.db.SelectEvents(ctx, fresh, snapshotColumns)
	if err != nil {
		return fresh, err
	}
	if len(replacing) == 0 {
		if err := s.db.Exec(ctx, "INSERT INTO "+s.table+" "+sel); err != nil {
			return fresh, fmt.Errorf("read %d new event files: %w", len(fresh), err)
		}
	} else if err := s.replace(ctx, sel, replacing); err != nil {
		return fresh, err
	}
	for f := range s.loaded {
		if _, ok := present[f]; !ok {
			delete(s.loaded, f)
		}
	}
	for _, f := range fresh {
		s.loaded[f] = present[f]
	}
	return nil, nil
}

// replace reads the rows of sel, then puts them in place of the rows of
// the replaced ranges: a read that fails (a file removed meanwhile) leaves
// the table as it was.
func (s *snapshot) replace(ctx context.Context, sel string, replacing []lake.Part) error {
	stage := s.table + "_stage"
	if err := s.db.Exec(ctx, "CREATE OR REPLACE TABLE "+stage+" AS "+sel); err != nil {
		return fmt.Errorf("read merged event files: %w", err)
	}
	for _, q := range []string{
		"DELETE FROM " + s.table + " WHERE " + ranges(replacing),
		"INSERT INTO " + s.table + " SELECT * FROM " + stage,
		"DROP TABLE " + stage,
	} {
		if err := s.db.Exec(ctx, q); err != nil {
			return fmt.Errorf("replace merged events: %w", err)
		}
	}
	return nil
}

// covers says whether a file of part by holds the offsets of part.
func covers(by, part lake.Part) bool {
	return by.Group() == part.Group() && by.First <= part.First && part.Last <= by.Last
}

// ranges is an SQL condition that holds for the rows of the parts' files.
func ranges(parts []lake.Part) string {
	conds := make([]string, len(parts))
	for i, p := range parts {
		conds[i] = fmt.Sprintf("(event_type = '%s' AND event_date = DATE '%s' AND kafka_partition = %d AND kafka_offset BETWEEN %d AND %d)",
			p.EventType, p.Date, p.Partition, p.First, p.Last)
	}
	return strings.Join(conds, " OR ")
}

func (s *snapshot) drop(ctx context.Context) error {
	if err := s.db.Exec(ctx, "DROP TABLE IF EXISTS "+s.table+"_stage"); err != nil {
		return err
	}
	return s.db.Exec(ctx, "DROP TABLE IF EXISTS "+s.table)
}

// window is a view of the snapshot up to the window's end, with in_window
// marking the events inside it.
func (s *snapshot) window(ctx context.Context, w Window) (string, error) {
	name := s.table + "_window"
	q := "CREATE OR REPLACE VIEW " + name + " AS SELECT *, (" + w.sincePredicate() + ") AS in_window FROM " + s.table + " WHERE " + w.untilPredicate()
	if err := s.db.Exec(ctx, q); err != nil {
		return "", fmt.Errorf("window the events: %w", err)
	}
	return name, nil
}
