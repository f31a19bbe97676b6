package extract

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cpuTime is the CPU time the process used so far, user and system: on a
// shared machine it varies far less than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPartition measures one partition worker on the API's events,
// without a broker: JSON scanning, schema tracking, rows and Parquet
// writing, commits included. Compare CPU profiles of it (go test -bench
// Partition -cpuprofile) rather than wall times on a shared machine.
func BenchmarkPartition(b *testing.B) {
	const n = 50_000
	recs := make([]*kgo.Record, 0, n)
	var bytes int64
	err := laketest.Generate(laketest.Config{Events: n, Players: 500, Span: 36 * time.Hour, Seed: 7}, func(ev *event.Event) error {
		v := ev.AppendJSON(nil)
		bytes += int64(len(v))
		recs = append(recs, &kgo.Record{Value: v, Offset: int64(len(recs)), Timestamp: time.Now()})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(bytes)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		_, p := newLakePartition(b, b.TempDir())
		b.StartTimer()
		t0 := cpuTime(b)
		for i := 0; i < n; i += 500 {
			if err := p.batch(ctx, recs[i:min(i+500, n)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.commit(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - t0
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/event")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// newLakePartition is partition 0 of an extract into a new lake in dir,
// as Run starts it (from the lake's checkpoint and schemas), fed by the
// test without a broker.
func newLakePartition(tb testing.TB, dir string) (*Extractor, *partition) {
	tb.Helper()
	ctx := context.Background()
	st, err := lake.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(Brokers("unused"), Lake(st))
	if err != nil {
		tb.Fatal(err)
	}
	schemas, err := lake.LoadSchemas(ctx, st)
	if err != nil {
		tb.Fatal(err)
	}
	if e.cp, _, err = lake.ReadCheckpoint(ctx, st, e.cfg.topic); err != nil {
		tb.Fatal(err)
	}
	e.sum.PerType = map[string]int64{}
	return e, e.newPartition(0, 0, -1, schemas, 1)
}

// BenchmarkScan measures the JSON scanner alone on the API's events.
func BenchmarkScan(b *testing.B) {
	var recs [][]byte
	var bytes int64
	err := laketest.Generate(laketest.Config{Events: 10_000, Players: 500, Span: 36 * time.Hour, Seed: 7}, func(ev *event.Event) error {
		v := ev.AppendJSON(nil)
		bytes += int64(len(v))
		recs = append(recs, v)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bytes)
	var s scanner
	for b.Loop() {
		for _, r := range recs {
			if err := s.scan(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
