// Command compact benchmarks the lake's compaction. It plays a day of
// events as `questlog up` writes them: a kfake broker, generated game events
// (the players mix of internal/lake/laketest) spread over 24 hours,
// produced window by window and extracted by a following extract that
// commits every 10 seconds of event time, while a compactor runs a pass
// every simulated minute (a simulated clock: the day takes minutes). Then it
// extracts the same topic with one --once into another lake, and times
// `questlog report` and a first `questlog query` over both. Last, it merges
// one (type, day, partition) of small files of two sizes, each in a child
// process, for the compaction's rate and peak RSS.
//
// The broker and each measured job run in child processes of this one (the
// same binary, -role), so that each peak RSS is that job's alone.
//
//	go run ./bench/compact -n 1000000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/bench/internal/job"
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
	"github.com/questlog/questlog/internal/report"
)

// day is the simulated day.
var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	roll = 10 * time.Second // the extract's --max-age in up
	pass = time.Minute      // the compactor's --compact-interval in up
)

func main() {
	var (
		role      = flag.String("role", "", "internal: broker, day, once, group or compact")
		n         = flag.Int("n", 1_000_000, "events in the day")
		players   = flag.Int("players", 20_000, "players in the generated game")
		group     = flag.Int("group", 300_000, "events of the one (type, day, partition) merged for the rate and RSS (and a tenth of them)")
		onlyGroup = flag.Bool("only-group", false, "merge the one (type, day, partition) only, skipping the day")
		runs      = flag.Int("runs", 3, "timed report and query runs on each lake")
		dir       = flag.String("dir", "", "work directory (default: a temporary one under /tmp, removed at the end)")
		brokers   = flag.String("brokers", "", "internal: the broker's address")
		lakeDir   = flag.String("lake", "", "internal: the lake")
		topic     = flag.String("topic", "events", "internal: the topic")
	)
	flag.Parse()
	log.SetFlags(0)
	var err error
	switch *role {
	case "broker":
		job.ServeBroker(kfake.AllowAutoTopicCreation())
	case "day":
		err = runDay(*brokers, *topic, *lakeDir, *n, *players)
	case "once":
		err = runOnce(*brokers, *topic, *lakeDir)
	case "group":
		err = runGroup(*brokers, *topic, *lakeDir, *n)
	case "compact":
		err = runCompact(*lakeDir, *topic)
	case "":
		err = bench(*n, *players, *group, *runs, *dir, *onlyGroup)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// result is what a child job reports on its stdout.
type result struct {
	Events       int64   `json:"events"`
	Seconds      float64 `json:"seconds"`        // the job's own time
	PeakRSS      int64   `json:"peak_rss"`       // bytes
	Files        int     `json:"files"`          // files the extract published
	Effective    int     `json:"effective"`      // files in the lake's effective set at the end
	MostPerGroup int     `json:"most_per_group"` // the most files a (type, day, partition) has at the end
	MostFiles    int     `json:"most_files"`     // the most files in the effective set during the day
	Merged       int     `json:"merged"`         // files merged
	Merges       int     `json:"merges"`         // merged files written
	MergedRows   int64   `json:"merged_rows"`    // rows written into merged files
	Compacting   float64 `json:"compacting"`     // seconds spent in compaction passes
	Extracting   float64 `json:"extracting"`     // seconds spent in the extract's commits and reads
	CPU          float64 `json:"-"`              // user+system seconds of the child process
}

func bench(n, players, groupSize, runs int, dir string, onlyGroup bool) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-compact-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cpu, load := job.Machine()
	fmt.Printf("machine    %s, %d cores; load average %s\n", cpu, runtime.NumCPU(), load)
	addr, _, stop, err := job.StartBroker("-role", "broker")
	if err != nil {
		return err
	}
	defer stop()

	if !onlyGroup {
		if err := benchDay(addr, dir, n, players, runs); err != nil {
			return err
		}
	}

	// One (type, day, partition) of small files, merged whole in a child
	// process: the compaction's rate and peak RSS, at two sizes.
	for _, size := range []int{groupSize / 10, groupSize} {
		gLake := filepath.Join(dir, fmt.Sprint("group-", size))
		topic := fmt.Sprint("group-", size)
		g, err := child("-role", "group", "-brokers", addr, "-topic", topic, "-lake", gLake, "-n", fmt.Sprint(size))
		if err != nil {
			return err
		}
		c, err := child("-role", "compact", "-lake", gLake, "-topic", topic)
		if err != nil {
			return err
		}
		fmt.Printf("group      %d events in %d files (extracted at %.0f events/s): merged into %d in %.2f s, %.0f events/s, CPU %.2f s, peak RSS %.0f MiB\n",
			size, g.Files, float64(g.Events)/g.Seconds, c.Merges, c.Seconds, float64(c.MergedRows)/c.Seconds, c.CPU, float64(c.PeakRSS)/(1<<20))
		os.RemoveAll(gLake)
	}
	return nil
}

// benchDay plays the day, extracts it again with --once, and times the
// reads of both lakes.
func benchDay(addr, dir string, n, players, runs int) error {
	// The day, as up writes it.
	dayLake := filepath.Join(dir, "day")
	d, err := child("-role", "day", "-brokers", addr, "-topic", "events", "-lake", dayLake, "-n", fmt.Sprint(n), "-players", fmt.Sprint(players))
	if err != nil {
		return err
	}
	fmt.Printf("day        %d events in %d rolls of 10 s: the extract published %d files; at most %d files at once in the lake\n",
		d.Events, 24*3600/int(roll.Seconds()), d.Files, d.MostFiles)
	fmt.Printf("           extract %.1f s, compaction %.1f s: %d files merged into %d, %d rows written (%.1f per event), peak RSS %.0f MiB (extract and compactor)\n",
		d.Extracting, d.Compacting, d.Merged, d.Merges, d.MergedRows, float64(d.MergedRows)/float64(d.Events), float64(d.PeakRSS)/(1<<20))
	fmt.Printf("           after the day: %d files, at most %d per (type, day, partition)\n", d.Effective, d.MostPerGroup)

	// The same events, extracted with one --once.
	onceLake := filepath.Join(dir, "once")
	o, err := child("-role", "once", "-brokers", addr, "-topic", "events", "-lake", onceLake)
	if err != nil {
		return err
	}
	fmt.Printf("once       %d events in %.2f s (%.0f events/s), %d files, peak RSS %.0f MiB\n", o.Events, o.Seconds, float64(o.Events)/o.Seconds, o.Files, float64(o.PeakRSS)/(1<<20))

	// report and the first query over both, taking turns.
	var reports, queries [2][]time.Duration
	for range runs {
		for i, l := range []string{dayLake, onceLake} {
			r, q, err := read(l, filepath.Join(dir, "report.html"))
			if err != nil {
				return err
			}
			reports[i] = append(reports[i], r)
			queries[i] = append(queries[i], q)
		}
	}
	med := func(ds []time.Duration) time.Duration { s := slices.Clone(ds); slices.Sort(s); return s[len(s)/2] }
	for i, name := range []string{"compacted day", "--once"} {
		fmt.Printf("read       %-13s report %v (median of %v), first query %v (median of %v)\n", name,
			med(reports[i]).Round(time.Millisecond), round(reports[i]), med(queries[i]).Round(time.Millisecond), round(queries[i]))
	}
	fmt.Printf("ratio      compacted/--once: report %.2f, first query %.2f\n",
		med(reports[0]).Seconds()/med(reports[1]).Seconds(), med(queries[0]).Seconds()/med(queries[1]).Seconds())
	return nil
}

func round(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// read times report.WriteFile and a first query (opening the views and
// running one statement, as `questlog query "SQL"` does) over a lake.
func read(lakeDir, out string) (rep, first time.Duration, err error) {
	ctx := context.Background()
	start := time.Now()
	if _, err := report.WriteFile(ctx, lakeDir, out, report.Window{}, time.Now()); err != nil {
		return 0, 0, err
	}
	rep = time.Since(start)
	start = time.Now()
	db, err := query.Open(ctx, lakeDir)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if _, err := db.Query(ctx, "SELECT item_type, quality, count(*) FROM buy_item GROUP BY ALL"); err != nil {
		return 0, 0, err
	}
	return rep, time.Since(start), nil
}

// runDay plays the day: each roll's events are produced, extracted and
// committed; a compaction pass runs every simulated minute; a last pass
// once the day is over.
func runDay(brokers, topic, lakeDir string, n, players int) error {
	// As questlog extract --follow does with its compaction (questlog up
	// holds the API's memory too, and sets no limit).
	debug.SetMemoryLimit(extract.HeapLimit(32<<20) + compact.Memory)
	ctx := context.Background()
	if err := createTopic(brokers, topic, 4); err != nil {
		return err
	}
	st, err := lake.Open(lakeDir)
	if err != nil {
		return err
	}
	ex, err := extract.New(extract.Brokers(brokers), extract.Topic(topic), extract.Lake(st), extract.Follow(), extract.MaxAge(24*time.Hour))
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	type ran struct {
		sum extract.Summary
		err error
	}
	done := make(chan ran, 1)
	go func() {
		sum, err := ex.Run(runCtx)
		done <- ran{sum, err}
	}()
	for {
		err := ex.Flush(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, extract.ErrNotRunning) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	now := day
	c, err := compact.New(st, compact.Topic(topic), compact.Grace(0), compact.Clock(func() time.Time { return now }))
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()

	var r result
	var compacting, extracting time.Duration
	passes := func(at time.Time) error {
		now = at
		start := time.Now()
		sum, err := c.Compact(ctx)
		compacting += time.Since(start)
		if err != nil {
			return err
		}
		r.Merged += sum.Files()
		r.Merges += len(sum.Merges)
		r.MergedRows += sum.Rows
		return nil
	}
	var window []*kgo.Record
	windowEnd := day.Add(roll)
	produced := int64(0)
	flush := func() error {
		start := time.Now()
		if err := cl.ProduceSync(ctx, window...).FirstErr(); err != nil {
			return err
		}
		produced += int64(len(window))
		window = window[:0]
		for done, _ := ex.Progress(); done < produced; done, _ = ex.Progress() {
			time.Sleep(200 * time.Microsecond)
		}
		err := ex.Flush(ctx)
		extracting += time.Since(start)
		if err != nil {
			return err
		}
		if windowEnd.Sub(day)%pass == 0 {
			l, err := lake.ListData(ctx, st)
			if err != nil {
				return err
			}
			r.MostFiles = max(r.MostFiles, len(l.Files))
			if err := passes(windowEnd); err != nil {
				return err
			}
		}
		windowEnd = windowEnd.Add(roll)
		return nil
	}
	err = laketest.Generate(laketest.Config{Events: n, Players: players, Start: day, Span: 24*time.Hour - time.Millisecond, Seed: 7, Guilds: 50},
		func(ev *event.Event) error {
			for !ev.Time.Before(windowEnd) {
				if err := flush(); err != nil {
					return err
				}
			}
			window = append(window, &kgo.Record{Key: ev.Key(), Value: ev.AppendJSON(nil)})
			return nil
		})
	if err != nil {
		return err
	}
	for windowEnd.Before(day.Add(24*time.Hour + roll)) {
		if err := flush(); err != nil {
			return err
		}
	}
	stop()
	end := <-done
	if end.err != nil {
		return end.err
	}
	r.Events, r.Files = end.sum.Records, end.sum.Files
	// The day is over: the pass a minute or two after midnight.
	if err := passes(day.Add(24*time.Hour + 2*time.Minute)); err != nil {
		return err
	}
	if err := countFiles(ctx, st, &r); err != nil {
		return err
	}
	r.Compacting, r.Extracting = compacting.Seconds(), extracting.Seconds()
	r.PeakRSS = job.PeakRSS()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// countFiles counts the lake's effective files, and the most files of a
// group.
func countFiles(ctx context.Context, st lake.Storage, r *result) error {
	l, err := lake.ListData(ctx, st)
	if err != nil {
		return err
	}
	per := map[lake.Group]int{}
	for _, f := range l.Events() {
		per[f.Group()]++
		r.MostPerGroup = max(r.MostPerGroup, per[f.Group()])
	}
	r.Effective = len(l.Events())
	return nil
}

func runOnce(brokers, topic, lakeDir string) error {
	st, err := lake.Open(lakeDir)
	if err != nil {
		return err
	}
	ex, err := extract.New(extract.Brokers(brokers), extract.Topic(topic), extract.Lake(st))
	if err != nil {
		return err
	}
	sum, err := ex.Run(context.Background())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{Events: sum.Records, Seconds: sum.Duration.Seconds(), Files: sum.Files, PeakRSS: job.PeakRSS()})
}

// runGroup makes a lake of one (type, day, partition) of n events, in
// small files: one partition, every event a buy_item of the same day, an
// extract committing every 100 rows.
func runGroup(brokers, topic, lakeDir string, n int) error {
	if err := createTopic(brokers, topic, 1); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	err = laketest.Generate(laketest.Config{Events: n, Players: 5000, Start: day, Span: 20 * time.Hour, Seed: 3}, func(ev *event.Event) error {
		ev.Type = event.TypeBuyItem
		cl.Produce(ctx, &kgo.Record{Value: ev.AppendJSON(nil)}, nil)
		return nil
	})
	if err != nil {
		return err
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	st, err := lake.Open(lakeDir)
	if err != nil {
		return err
	}
	ex, err := extract.New(extract.Brokers(brokers), extract.Topic(topic), extract.Lake(st), extract.MaxRows(100))
	if err != nil {
		return err
	}
	sum, err := ex.Run(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{Events: sum.Records, Seconds: sum.Duration.Seconds(), Files: sum.Files})
}

// runCompact runs one pass over a lake whose days are over, as `questlog
// lake compact --grace 0` does.
func runCompact(lakeDir, topic string) error {
	debug.SetMemoryLimit(compact.HeapLimit()) // as questlog lake compact does
	st, err := lake.Open(lakeDir)
	if err != nil {
		return err
	}
	c, err := compact.New(st, compact.Topic(topic), compact.Grace(0))
	if err != nil {
		return err
	}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := c.Compact(context.Background())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{Events: sum.Rows, Seconds: sum.Duration.Seconds(), Merges: len(sum.Merges),
		Merged: sum.Files(), MergedRows: sum.Rows, PeakRSS: job.PeakRSS()})
}

func createTopic(brokers, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic)
	return err
}

// child runs this binary in a role and decodes its result.
func child(args ...string) (result, error) {
	var r result
	cpu, err := job.Run(&r, args...)
	r.CPU = cpu.Seconds()
	return r, err
}
