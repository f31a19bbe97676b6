package compact_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
)

// BenchmarkMergeGroup merges one (type, day, partition) of 50,000 events
// in files of 100 rows (an extract committing every 100 rows), as a pass
// after the day does; b.N merges of the same files.
func BenchmarkMergeGroup(b *testing.B) {
	addr := extracttest.StartBroker(b)
	dir := filepath.Join(b.TempDir(), "lake")
	extracttest.Produce(b, addr, laketest.Config{Events: 50_000, Span: 20 * time.Hour}, func(ev *event.Event) {
		ev.Type, ev.User = event.TypeBuyItem, "one" // one partition, by key
	})
	if _, err := extracttest.NewExtractor(b, addr, dir, extract.MaxRows(100)).Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	c, err := compact.New(lake.Dir(dir), compact.Clock(afterwards), compact.Grace(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	var rows int64
	for b.Loop() {
		sum, err := c.Compact(context.Background())
		if err != nil || len(sum.Merges) == 0 {
			b.Fatalf("%d merges, %v", len(sum.Merges), err)
		}
		rows += sum.Rows
		b.StopTimer()
		for _, m := range sum.Merges {
			if err := os.Remove(filepath.Join(dir, m.Into.Name())); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkLakeRetentionDropDay retires and drops one day of 20,000 events
// in files of 20 rows (about 1,000 files: the manifest reads each one's
// footer for its rows), with no grace period, as one pass; each run drops
// a fresh copy (hard links) of the same day.
func BenchmarkLakeRetentionDropDay(b *testing.B) {
	addr := extracttest.StartBroker(b)
	template := filepath.Join(b.TempDir(), "lake")
	extracttest.Produce(b, addr, laketest.Config{Events: 20_000, Span: 10 * time.Hour}, nil)
	if _, err := extracttest.NewExtractor(b, addr, template, extract.MaxRows(20)).Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	var files, n int
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "lake")
		err := filepath.WalkDir(template, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(template, p)
			if e.IsDir() {
				return os.MkdirAll(filepath.Join(dir, rel), 0o755)
			}
			return os.Link(p, filepath.Join(dir, rel))
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := lake.DropOldDays(context.Background(), lake.Dir(dir), lake.Retention{Keep: 24 * time.Hour, Now: afterwards, Topic: extracttest.Topic})
		if err != nil || len(sum.Dropped) != 1 {
			b.Fatalf("dropped %v: %v", sum.Dropped, err)
		}
		files += sum.Removed
		n++
	}
	b.ReportMetric(float64(files)/float64(n), "files/day")
	b.ReportMetric(float64(files)/b.Elapsed().Seconds(), "files/s")
}
