package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake/compact"
)

func newExtractCmd(g *globalOptions) *cobra.Command {
	var (
		once, follow bool
		group        string
		maxRows      int64
		maxBytes     int64
		maxAge       time.Duration
		memory       int64
		compression  string
		quiet        bool
		wait         time.Duration
		co           compactOptions
		lf           lakeFlags
	)
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Extract the topic into the Parquet lake, exactly once",
		Long: `extract turns the event topic into the Parquet lake: one dataset per event
type, lake/events/event_type=<type>/event_date=<day>/part-<partition>-<first>-<last>.parquet,
records that are not events in lake/quarantine/, the inferred schemas in
lake/_schemas/ and how far each partition is in lake/_checkpoints/<topic>/<partition>.json
(a lake written by an older questlog has lake/_checkpoints/<topic>.json: it is read,
and replaced by the next extract that is not in a group).

--once (the default) reads every partition from the checkpoint up to the end
the topic had when it started, prints a summary and exits. When another
extract is writing the lake (questlog up follows the topic), it waits, at most
--wait, until that one has reached the topic's end as of the start, then
prints how far the lake goes and exits. --follow keeps
going, rolling files every --max-age so new events are queryable within
seconds, until Ctrl-C, which commits what it holds; meanwhile it merges the
lake's small files every --compact-interval (see 'questlog lake compact').

--follow --group NAME makes this extract one worker of the Kafka consumer
group NAME: run as many as there are partitions, on as many machines, against
one lake (a shared directory or s3://). They share the topic's partitions and
rebalance when one joins, stops or dies. Each takes a lock in the lake for the
partitions it is assigned (lake/_checkpoints/<topic>.p<partition>.lock),
removes what a crash left past their checkpoints and resumes from them; on a
rebalance it commits the files it holds, then the checkpoint, before letting
go. The lake, not Kafka, decides where a partition resumes; the offsets are
committed to the group too, for lag monitoring. One compaction pass runs at a
time, whichever worker starts it. An extract without --group takes every
partition's lock: it waits for (--once) or is refused by a running group.

The checkpoint is written after the files it covers, and a rerun removes
files a crash left past it: however often it is interrupted, the lake holds
every record exactly once (see 'questlog lake check').`,
		Example: `  questlog extract --once
  questlog extract --follow --max-age 5s
  questlog extract --follow --group lake --brokers kafka1:9092 --lake s3://analytics/lake
  questlog extract --lake /data/lake --brokers kafka1:9092,kafka2:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if once && follow {
				return errors.New("--follow and --once cannot be combined")
			}
			if group != "" && !follow {
				return errors.New("--group needs --follow: a consumer group's worker follows the topic")
			}
			if follow {
				if err := co.validate(); err != nil {
					return err
				}
			}
			st, err := lf.open(g)
			if err != nil {
				return err
			}
			opts := []extract.Option{
				extract.Brokers(g.brokerList()...), extract.Topic(g.topic), extract.Lake(st),
				extract.MaxRows(maxRows), extract.MaxBytes(maxBytes), extract.MaxAge(maxAge),
				extract.MemoryBudget(memory), extract.Compression(compression),
				extract.Logger(extractLogger(cmd.ErrOrStderr(), g.logLevel)),
			}
			if follow {
				opts = append(opts, extract.Follow())
			}
			if group != "" {
				opts = append(opts, extract.Group(group))
			}
			e, err := extract.New(opts...)
			if err != nil {
				return err
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// Let the Go heap follow the extract's budget: without a
				// limit it grows to twice the live memory between
				// collections. A compaction alongside holds its own.
				limit := extract.HeapLimit(memory)
				if follow && co.interval > 0 {
					limit += compact.Memory
				}
				debug.SetMemoryLimit(limit)
			}
			stopBar := func() {}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && !quiet && !follow && term.IsTerminal(int(f.Fd())) {
				stopBar = showProgress(cmd.Context(), e, f)
			}
			var (
				sum    extract.Summary
				waited *extract.Waited
			)
			if follow {
				var c *compact.Compactor
				if co.interval > 0 {
					if c, err = co.compactor(g, st, extractLogger(cmd.ErrOrStderr(), g.logLevel)); err != nil {
						return err
					}
				}
				err = alongside(cmd.Context(), c, func(ctx context.Context) (err error) {
					sum, err = e.Run(ctx)
					return err
				})
			} else {
				sum, waited, err = e.RunOrWait(cmd.Context(), wait)
			}
			stopBar()
			if err != nil {
				return err
			}
			if waited != nil {
				return writeWaited(cmd.OutOrStdout(), waited)
			}
			return sum.WriteText(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&once, "once", false, "extract up to the topic's end at start, then exit (the default)")
	f.BoolVar(&follow, "follow", false, "keep extracting new events until interrupted")
	f.StringVar(&group, "group", "", "with --follow, join the Kafka consumer group of this name: its workers share the partitions")
	f.Int64Var(&maxRows, "max-rows", 1_000_000, "roll a partition's files when one reaches this many rows")
	f.Int64Var(&maxBytes, "max-bytes", 128<<20, "roll a partition's files when one reaches about this many bytes")
	f.DurationVar(&maxAge, "max-age", 10*time.Second, "with --follow, roll a partition's files when the oldest is this old")
	f.Int64Var(&memory, "memory", 32<<20, "bytes of rows buffered in open files, over all partitions; past it the largest open file writes them as a row group. The Go heap's soft limit is twice this plus 64 MiB unless GOMEMLIMIT is set")
	f.StringVar(&compression, "compression", "zstd", "Parquet compression: zstd, snappy or none")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.DurationVar(&wait, "wait", 2*time.Minute, "--once, when another extract is writing the lake: how long to wait for it to reach the topic's end")
	co.register(f, true, "with --follow, compaction: ")
	lf.registerLock(f)
	return cmd
}

// showProgress draws records done of records to do until the returned
// function is called.
func showProgress(ctx context.Context, e *extract.Extractor, w io.Writer) func() {
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetDescription("extract"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				d, total := e.Progress()
				if total > 0 && bar.GetMax64() != total {
					bar.ChangeMax64(total)
				}
				_ = bar.Set64(d)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = bar.Finish()
	}
}

func extractLogger(w io.Writer, name string) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// writeWaited says that another extract brought the lake up to date, and
// how far the lake goes.
func writeWaited(w io.Writer, waited *extract.Waited) error {
	_, err := fmt.Fprintf(w, "another extract (questlog up?) is writing this lake; it reached the topic's end in %.2f s\n"+
		"lake checkpoint, partition: first-next offset: %s\n", waited.Duration.Seconds(), waited.Checkpoint)
	return err
}
