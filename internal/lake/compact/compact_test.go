package compact_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
)

// day is the first day of the events the tests produce (laketest's
// default start); they span three days.
var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// afterwards is a clock at which every day of the tests' events is over.
func afterwards() time.Time { return day.Add(10 * 24 * time.Hour) }

// quest is a raw event of a type of the tests' own.
func quest(i int, fields string) []byte {
	return fmt.Appendf(nil, `{"event_type":"quest_done","event_time":"2026-01-02T10:%02d:00.000000Z","user":"q%d"%s}`, i%60, i, fields)
}

// questRounds are the quest events of each round: their schema widens
// from round to round (score int then float, detail a struct then a
// string, flag a bool then a string), so that one group's files have
// three schema versions.
var questRounds = []func(i int) []byte{
	func(i int) []byte { return quest(i, fmt.Sprintf(`,"score":%d,"flag":true`, i)) },
	func(i int) []byte { return quest(i, fmt.Sprintf(`,"score":%d.5,"detail":{"a":%d,"b":"x\"y"}`, i, i)) },
	func(i int) []byte { return quest(i, `,"detail":"text","flag":"yes"`) },
}

// smallLake builds a lake as a following extract makes it: many small
// files (a commit every 15 rows of a file) of three days, extracted in
// rounds, with a type whose schema widened between them. It returns the
// lake's folder, the broker's address and what was produced.
func smallLake(t *testing.T, events int) (dir, addr string, want *extracttest.Produced) {
	t.Helper()
	addr = extracttest.StartBroker(t)
	dir = filepath.Join(t.TempDir(), "lake")
	for r, round := range questRounds {
		var quests [][]byte
		for i := range 40 {
			quests = append(quests, round(i))
		}
		p := extracttest.Produce(t, addr, laketest.Config{Events: events / len(questRounds), Seed: uint64(r + 1)}, nil, quests...)
		p.PerType["quest_done"] += int64(len(quests))
		if want == nil {
			want = p
		} else {
			want.Add(p)
		}
		if _, err := extracttest.NewExtractor(t, addr, dir, extract.MaxRows(15)).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return dir, addr, want
}

func newCompactor(t *testing.T, dir string, opts ...compact.Option) *compact.Compactor {
	t.Helper()
	c, err := compact.New(lake.Dir(dir), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// filesPerGroup is the most files any group of the lake has in its
// effective set, and the files of the effective set.
func filesPerGroup(t *testing.T, dir string) (most, files int) {
	t.Helper()
	l, err := lake.ListData(context.Background(), lake.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	n := map[lake.Group]int{}
	for _, f := range l.Events() {
		n[f.Group()]++
		most = max(most, n[f.Group()])
	}
	return most, len(l.Events())
}

func TestCompactMergesEveryGroupOfAClosedDay(t *testing.T) {
	dir, _, want := smallLake(t, 1500)
	most, before := filesPerGroup(t, dir)
	c := newCompactor(t, dir, compact.Clock(afterwards), compact.Grace(0))
	sum, err := c.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mostAfter, after := filesPerGroup(t, dir)
	t.Logf("%d files (at most %d a group) into %d (at most %d): %d merges, %d rows, %d removed, %d → %d bytes, in %s",
		before, most, after, mostAfter, len(sum.Merges), sum.Rows, sum.Removed, sum.In, sum.Out, sum.Duration)
	if mostAfter != 1 || len(sum.Skipped) > 0 {
		t.Errorf("at most %d files a group after compacting closed days, want 1; skipped %v", mostAfter, sum.Skipped)
	}
	r := extracttest.CheckLake(t, dir)
	extracttest.SameCounts(t, "lake check", r.Rows, want.PerType)
	extracttest.SameCounts(t, "duckdb globbing", extracttest.DuckCounts(t, extracttest.OpenDuckDB(t), extracttest.Glob(dir)), want.PerType)
}
