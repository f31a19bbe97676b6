package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/query"
)

// snapshotColumns are the event columns the charts read.
var snapshotColumns = []string{"event_time", "event_type", "user", "status", "error", "item_type", "quality", "quantity", "total_price", "guild", "kafka_offset"}

// snapshot keeps the lake's events in a DuckDB table in memory, reading each
// published file once: the lake's files never change once published (their
// names carry their offsets), so a live dashboard only reads what is new.
// A file that disappeared (a rewritten lake) makes it start over.
type snapshot struct {
	db     *query.DB
	table  string
	loaded map[string]bool
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

// sync loads the files published since the last sync.
func (s *snapshot) sync(ctx context.Context) error {
	files, err := s.db.EventFiles(ctx)
	if err != nil {
		return err
	}
	if !s.until.IsZero() {
		last := s.until.UTC().Format(time.DateOnly)
		kept := files[:0]
		for _, f := range files {
			if _, d := lake.EventFolders(f); d == "" || d <= last {
				kept = append(kept, f)
			}
		}
		files = kept
	}
	present := make(map[string]bool, len(files))
	var fresh []string
	for _, f := range files {
		present[f] = true
		if !s.loaded[f] {
			fresh = append(fresh, f)
		}
	}
	for f := range s.loaded {
		if !present[f] {
			s.loaded = nil // a file went away: read the lake again
			fresh = files
			break
		}
	}
	if s.loaded == nil {
		empty, err := s.db.SelectEvents(ctx, nil, snapshotColumns)
		if err != nil {
			return err
		}
		if err := s.db.Exec(ctx, "CREATE OR REPLACE TABLE "+s.table+" AS "+empty); err != nil {
			return fmt.Errorf("create the events table: %w", err)
		}
		s.loaded = map[string]bool{}
	}
	if len(fresh) == 0 {
		return nil
	}
	sel, err := s.db.SelectEvents(ctx, fresh, snapshotColumns)
	if err != nil {
		return err
	}
	if err := s.db.Exec(ctx, "INSERT INTO "+s.table+" "+sel); err != nil {
		return fmt.Errorf("read %d new event files: %w", len(fresh), err)
	}
	for _, f := range fresh {
		s.loaded[f] = true
	}
	return nil
}

func (s *snapshot) drop(ctx context.Context) error {
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
