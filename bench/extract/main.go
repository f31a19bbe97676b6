// Command extract benchmarks questlog's extract: it fills a topic on a kfake
// broker with N game events, byte-identical to the API's (internal/event's
// AppendJSON, the realistic mix of internal/lake/laketest), extracts it
// into a fresh lake and reports throughput and peak RSS; then it converts
// the same events, written as NDJSON, with DuckDB's own
// COPY (SELECT * FROM read_json_auto(...)) TO '...parquet' and prints both
// rates and their ratio.
//
// The broker, the extract and DuckDB each run in a child process of this
// one (the same binary, -role), so that each peak RSS is that job's alone:
// the broker holds the whole topic in memory.
//
//	go run ./bench/extract -n 1000000
//	go run ./bench/extract -n 1000000 -memcheck   # also extract N/10 and compare peaks
package main

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/bench/internal/job"
	"github.com/questlog/questlog/bench/internal/procstat"
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
)

const topic = "events"

func main() {
	var (
		role        = flag.String("role", "", "internal: broker, extract or duckdb")
		n           = flag.Int("n", 1_000_000, "events to put on the topic")
		partitions  = flag.Int("partitions", 4, "partitions of the topic")
		players     = flag.Int("players", 5000, "players in the generated game")
		compression = flag.String("compression", "zstd", "Parquet compression of the extract: zstd, snappy or none")
		memcheck    = flag.Bool("memcheck", false, "also extract the first N/10 events into another lake and compare peak RSS")
		skipDuck    = flag.Bool("skip-duckdb", false, "do not run the DuckDB comparison")
		runs        = flag.Int("runs", 3, "extract and DuckDB runs, taking turns, on the same topic")
		memory      = flag.Int64("memory", 32<<20, "the extract's memory budget (questlog extract --memory)")
		dir         = flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
		brokers     = flag.String("brokers", "", "internal: broker address for -role extract")
		lakeDir     = flag.String("lake", "", "internal: lake for -role extract")
		ndjson      = flag.String("ndjson", "", "internal: input for -role duckdb")
		cpuprofile  = flag.String("cpuprofile", "", "internal: CPU profile of -role extract")
	)
	flag.Parse()
	log.SetFlags(0)
	switch *role {
	case "broker":
		job.ServeBroker(kfake.SeedTopics(int32(*partitions), topic))
	case "extract":
		runExtract(*brokers, *lakeDir, *compression, *cpuprofile, *memory)
	case "consume":
		runConsume(*brokers)
	case "duckdb":
		runDuckDB(*ndjson, *lakeDir)
	case "":
		if err := bench(*n, *partitions, *players, *runs, *memory, *compression, *memcheck, *skipDuck, *dir); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("unknown role %q", *role)
	}
}

// result is what a child job reports on its stdout.
type result struct {
	Records int64   `json:"records"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`    // output bytes
	PeakRSS int64   `json:"peak_rss"` // bytes
	Files   int     `json:"files"`
	Quarant int64   `json:"quarantined"`
	CPU     float64 `json:"-"` // user+system seconds of the child process, set by child
}

func bench(n, partitions, players, runs int, memory int64, compression string, memcheck, skipDuck bool, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-extract-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	// The broker, in its own process.
	addr, brokerPID, stopBroker, err := job.StartBroker("-role", "broker", "-partitions", fmt.Sprint(partitions))
	if err != nil {
		return err
	}
	defer stopBroker()

	// Fill the topic, and write the same values as NDJSON for DuckDB.
	ndjsonPath := filepath.Join(dir, "events.ndjson")
	valueBytes, err := fill(addr, n, players, ndjsonPath)
	if err != nil {
		return err
	}
	fmt.Printf("events     %d on %d partitions, %.1f MB of JSON (%.0f bytes/event)\n", n, partitions, float64(valueBytes)/1e6, float64(valueBytes)/float64(n))

	// Reading the topic alone first: the floor set by the broker and the
	// client, and it lets the broker collect what filling it left behind,
	// which would otherwise land on the first extract's cores.
	co, err := child(self, "-role", "consume", "-brokers", addr)
	if err != nil {
		return err
	}
	fmt.Printf("consume    %.2f s  %.0f events/s  %.1f MB/s  peak RSS %.0f MiB  (reading the topic only: the broker's and client's floor)\n",
		co.Seconds, float64(co.Records)/co.Seconds, float64(valueBytes)/1e6/co.Seconds, float64(co.PeakRSS)/(1<<20))

	// Extract and DuckDB take turns, runs times: wall times on a shared
	// machine move from run to run, so each run's ratio compares neighbours.
	var ex result
	var ratios []float64
	for run := 1; run <= runs; run++ {
		if runs > 1 {
			fmt.Printf("run %d\n", run)
		}
		lakeDir := filepath.Join(dir, fmt.Sprintf("lake-%d", run))
		brokerCPU := procstat.CPU(brokerPID).Seconds()
		ex, err = child(self, "-role", "extract", "-brokers", addr, "-lake", lakeDir, "-compression", compression, "-memory", fmt.Sprint(memory), "-cpuprofile", os.Getenv("BENCH_CPUPROFILE"))
		if err != nil {
			return err
		}
		brokerCPU = procstat.CPU(brokerPID).Seconds() - brokerCPU
		if ex.Records != int64(n) {
			return fmt.Errorf("extract read %d records, want %d", ex.Records, n)
		}
		fmt.Printf("extract    %.2f s  %.0f events/s  %.1f MB/s  peak RSS %.0f MiB  %d files, %.1f MB (%s)\n",
			ex.Seconds, float64(ex.Records)/ex.Seconds, float64(valueBytes)/1e6/ex.Seconds, float64(ex.PeakRSS)/(1<<20), ex.Files, float64(ex.Bytes)/1e6, compression)
		fmt.Printf("           CPU %.2f s (%.1f µs/event), the broker's meanwhile %.2f s\n", ex.CPU, ex.CPU/float64(n)*1e6, brokerCPU)
		os.RemoveAll(lakeDir)
		if skipDuck {
			continue
		}
		out := filepath.Join(dir, "out.parquet")
		dk, err := child(self, "-role", "duckdb", "-ndjson", ndjsonPath, "-lake", out)
		if err != nil {
			return err
		}
		os.Remove(out)
		fmt.Printf("duckdb     %.2f s  %.0f events/s  %.1f MB/s  peak RSS %.0f MiB  1 file, %.1f MB (COPY read_json_auto TO parquet)\n",
			dk.Seconds, float64(dk.Records)/dk.Seconds, float64(valueBytes)/1e6/dk.Seconds, float64(dk.PeakRSS)/(1<<20), float64(dk.Bytes)/1e6)
		fmt.Printf("           CPU %.2f s (%.1f µs/event)\n", dk.CPU, dk.CPU/float64(n)*1e6)
		ratios = append(ratios, dk.Seconds/ex.Seconds)
		fmt.Printf("ratio      extract/duckdb = %.2f\n", dk.Seconds/ex.Seconds)
	}
	if len(ratios) > 1 {
		slices.Sort(ratios)
		fmt.Printf("ratio      median of %d runs = %.2f (%.2f–%.2f)\n", len(ratios), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}

	if memcheck {
		// The same extract over a topic a tenth the size: peak memory must
		// not depend on the topic's size.
		small := max(n/10, 1)
		addr2, _, stopBroker2, err := job.StartBroker("-role", "broker", "-partitions", fmt.Sprint(partitions))
		if err != nil {
			return err
		}
		defer stopBroker2()
		if _, err := fill(addr2, small, players, ""); err != nil {
			return err
		}
		sm, err := child(self, "-role", "extract", "-brokers", addr2, "-lake", filepath.Join(dir, "lake-small"), "-compression", compression, "-memory", fmt.Sprint(memory))
		if err != nil {
			return err
		}
		fmt.Printf("memcheck   %d events: peak RSS %.0f MiB; %d events: peak RSS %.0f MiB (x%.2f for x%.0f events)\n",
			small, float64(sm.PeakRSS)/(1<<20), n, float64(ex.PeakRSS)/(1<<20), float64(ex.PeakRSS)/float64(sm.PeakRSS), float64(n)/float64(small))
	}
	return nil
}

// fill produces n generated events and returns the bytes of their values;
// with ndjson set, it also writes them there, one per line.
func fill(addr string, n, players int, ndjson string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var w *bufio.Writer
	if ndjson != "" {
		f, err := os.Create(ndjson)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
		defer w.Flush()
	}
	ctx := context.Background()
	var total int64
	var (
		mu       sync.Mutex
		firstErr error
	)
	err = laketest.Generate(laketest.Config{Events: n, Players: players, Span: 36 * time.Hour, Seed: 7}, func(ev *event.Event) error {
		v := ev.AppendJSON(nil)
		total += int64(len(v))
		if w != nil {
			w.Write(v)
			w.WriteByte('\n')
		}
		cl.Produce(ctx, &kgo.Record{Key: ev.Key(), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	})
	if err != nil {
		return 0, err
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	return total, firstErr
}

// child runs this binary in a role and decodes its result.
func child(_ string, args ...string) (result, error) {
	var r result
	cpu, err := job.Run(&r, args...)
	r.CPU = cpu.Seconds()
	return r, err
}

// runConsume only reads the topic, for the floor the broker and the Kafka
// client set: no parsing, no files.
func runConsume(brokers string) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		log.Fatal(err)
	}
	var want, n, bytes int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	for n < want {
		f := cl.PollFetches(context.Background())
		f.EachRecord(func(r *kgo.Record) { n++; bytes += int64(len(r.Value)) })
	}
	json.NewEncoder(os.Stdout).Encode(result{Records: n, Seconds: time.Since(start).Seconds(), Bytes: bytes, PeakRSS: job.PeakRSS()})
}

func runExtract(brokers, lakeDir, compression, cpuprofile string, memory int64) {
	st, err := lake.Open(lakeDir)
	if err != nil {
		log.Fatal(err)
	}
	opts := []extract.Option{extract.Brokers(brokers), extract.Lake(st), extract.Compression(compression), extract.MemoryBudget(memory)}
	if os.Getenv("BENCH_DEBUG") != "" {
		opts = append(opts, extract.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	e, err := extract.New(opts...)
	if err != nil {
		log.Fatal(err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// As questlog extract does: the Go heap's soft limit follows the
		// extract's memory budget.
		debug.SetMemoryLimit(extract.HeapLimit(memory))
	}
	stopProfile := startProfile(cpuprofile)
	stopTrace := startTrace(os.Getenv("BENCH_TRACE"))
	defer stopTrace()
	stopHeap := watchHeap(os.Getenv("BENCH_HEAPPROFILE"))
	defer stopHeap()
	sum, err := e.Run(context.Background())
	stopProfile()
	if err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(result{Records: sum.Records, Seconds: sum.Duration.Seconds(), Bytes: sum.Bytes, Files: sum.Files, Quarant: sum.Quarantined, PeakRSS: job.PeakRSS()})
}

func runDuckDB(ndjson, out string) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	var n int64
	q := fmt.Sprintf("COPY (SELECT * FROM read_json_auto('%s')) TO '%s' (FORMAT parquet)", ndjson, out)
	res, err := db.Exec(q)
	if err != nil {
		log.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	n, _ = res.RowsAffected()
	st, err := os.Stat(out)
	if err != nil {
		log.Fatal(errors.Join(err, errors.New("no output")))
	}
	json.NewEncoder(os.Stdout).Encode(result{Records: n, Seconds: secs, Bytes: st.Size(), Files: 1, PeakRSS: job.PeakRSS()})
}
