// Command report measures how long `questlog report` takes over a lake of
// generated game events: it builds the lake once (not timed), then times the
// whole report — open DuckDB, build the views, run every chart's query, draw
// the SVGs, write the HTML file — and prints the figures for BENCHMARKS.md.
//
//	go run ./bench/report -n 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/report"
)

func main() {
	n := flag.Int("n", 1_000_000, "events in the lake")
	players := flag.Int("players", 20_000, "players")
	span := flag.Duration("span", 24*time.Hour, "time from the first event to the last")
	runs := flag.Int("runs", 3, "timed report runs")
	lake := flag.String("lake", "", "reuse (or keep) the lake in this directory instead of a temporary one")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *n, *players, *span, *runs, *lake); err != nil {
		fmt.Fprintln(os.Stderr, "bench/report:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, players int, span time.Duration, runs int, lake string) error {
	if n <= 0 || players <= 0 || runs <= 0 {
		return fmt.Errorf("-n, -players and -runs must be positive")
	}
	tmp, err := os.MkdirTemp("", "bench-report-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if lake == "" {
		lake = filepath.Join(tmp, "lake")
	}
	if _, err := os.Stat(filepath.Join(lake, "events")); err == nil {
		fmt.Printf("reusing the lake in %s\n", lake)
	} else {
		start := time.Now()
		count := 0
		cfg := laketest.Config{Players: players, Events: n, Span: span, Guilds: 50}
		err := laketest.Build(ctx, lake, cfg, laketest.Layout{Partitions: 6}, func(*event.Event) { count++ })
		if err != nil {
			return fmt.Errorf("build lake: %w", err)
		}
		fmt.Printf("built a lake of %d events, %d players in %s (not timed below)\n", count, players, time.Since(start).Round(time.Millisecond))
	}
	files, size := lakeSize(lake)
	fmt.Printf("lake: %d Parquet files, %.1f MiB\n", files, float64(size)/(1<<20))

	var took []time.Duration
	out := filepath.Join(tmp, "report.html")
	for i := range runs {
		start := time.Now()
		r, err := report.WriteFile(ctx, lake, out, report.Window{}, time.Now())
		if err != nil {
			return err
		}
		d := time.Since(start)
		took = append(took, d)
		fi, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: report of %s events in %s (%d charts, %.0f KiB of HTML)\n",
			i+1, r.Figures[0].Value, d.Round(time.Millisecond), len(r.Charts), float64(fi.Size())/1024)
	}
	slices.Sort(took)
	fmt.Printf("\nreport over %d events: best %s, median %s (%d runs, GOMAXPROCS=%d, %s/%s)\n",
		n, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), runs, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	return dashboard(ctx, lake, runs)
}

// dashboard times the live dashboard's rebuilds: the first reads every
// file, the next ones only what is new (here: nothing).
func dashboard(ctx context.Context, lake string, runs int) error {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, err := report.NewDashboard(ctx, lake, nil, report.WithRefresh(time.Second), report.WithClock(clock))
	if err != nil {
		return err
	}
	defer d.Close()
	for i := range runs + 1 {
		start := time.Now()
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard/report", nil).WithContext(ctx))
		if rec.Code != http.StatusOK {
			return fmt.Errorf("dashboard rebuild: %d %s", rec.Code, rec.Body)
		}
		what := "first dashboard build (reads every file)"
		if i > 0 {
			what = "dashboard rebuild, no new files"
		}
		fmt.Printf("%s: %s\n", what, time.Since(start).Round(time.Millisecond))
		mu.Lock()
		now = now.Add(time.Second)
		mu.Unlock()
	}
	return nil
}

func lakeSize(dir string) (files int, size int64) {
	for _, glob := range []string{lake.EventsGlob, lake.QuarantineGlob} {
		names, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(glob)))
		for _, name := range names {
			if fi, err := os.Stat(name); err == nil {
				files++
				size += fi.Size()
			}
		}
	}
	return files, size
}
