package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/node"
)

// byteSize is a flag of bytes: 134217728, 128MiB, 64MB, 512KiB, 1GiB.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	n      int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (bytes, or with KiB, MiB, GiB, KB, MB, GB)", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) String() string {
	for _, u := range sizeUnits[:3] {
		if n := int64(*b); n >= u.n && n%u.n == 0 && (n/u.n < 1<<10 || u.suffix == "GiB") {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Type() string { return "size" }

// compactOptions configure the compaction: in the background (up, extract
// --follow) or one pass (lake compact).
type compactOptions struct {
	target   byteSize
	interval time.Duration
	grace    time.Duration
	keep     time.Duration // --lake-retention
	// background: the flags of up and extract --follow, not of lake compact
	background bool
	lake       lakeFlags // lake compact's --lock-ttl
}

// register adds the flags, their help starting with when; background
// adds how often passes run.
func (o *compactOptions) register(fs *pflag.FlagSet, background bool, when string) {
	o.target = 128 << 20
	o.background = background
	graceFlag := "grace"
	if background {
		graceFlag = "compact-grace"
		fs.DurationVar(&o.interval, "compact-interval", time.Minute, when+"how often the lake's small files are merged (0: never)")
	}
	fs.Var(&o.target, "target-file-size", when+"about how large a merged file grows; a file of half of it or more is never merged again")
	fs.DurationVar(&o.grace, graceFlag, 10*time.Second, when+"how long a file replaced by a merged file stays before it is removed, for readers that listed the lake before (questlog's readers skip it at once)")
	fs.DurationVar(&o.keep, "lake-retention", 0, when+"drop each day of the lake (every event type's event_date= folder, and the quarantine files written that day) once it ended this long ago, UTC; 0 keeps every day, else at least 1h")
}

// validate refuses a lake retention without the compaction that applies it.
func (o *compactOptions) validate() error {
	if o.keep != 0 && o.interval == 0 && o.background {
		return errors.New("--lake-retention is applied by the background compaction: give --compact-interval above 0")
	}
	return lake.ValidateRetention(o.keep)
}

// compactor is the compaction of these flags (with --compact-interval 0,
// one whose passes only run by hand).
func (o *compactOptions) compactor(g *globalOptions, st lake.Storage, log *slog.Logger) (*compact.Compactor, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	c := o.node()
	if c.Off {
		c.Interval = time.Minute
	}
	return compact.New(st, compact.Topic(g.topic), compact.TargetFileSize(c.TargetFileSize), compact.Interval(c.Interval),
		compact.Grace(c.Grace), compact.LakeRetention(c.LakeRetention), compact.Logger(log))
}

// node is the node's compaction of these flags.
func (o *compactOptions) node() *node.Compaction {
	return &node.Compaction{Off: o.interval == 0, TargetFileSize: int64(o.target), Interval: o.interval, Grace: o.grace, LakeRetention: o.keep}
}

// alongside runs run while c compacts in the background: a compaction
// that fails stops run (its context is cancelled) and is the error.
func alongside(ctx context.Context, c *compact.Compactor, run func(context.Context) error) error {
	if c == nil {
		return run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return err
	}
	failed := make(chan error, 1)
	go func() {
		select {
		case err := <-c.Failed():
			failed <- err
			cancel()
		case <-ctx.Done():
		}
	}()
	err := run(ctx)
	cancel()
	stopCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer stop()
	err = errors.Join(err, c.Stop(stopCtx))
	select {
	case cerr := <-failed:
		return errors.Join(fmt.Errorf("compaction: %w", cerr), err)
	default:
		return err
	}
}

func newLakeCompactCmd(g *globalOptions) *cobra.Command {
	o := &compactOptions{}
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Merge the lake's small files (one pass), as up and extract --follow do in the background",
		Long: `compact runs one compaction pass over the lake and prints what it merged.

The files of one event type, day and partition that the checkpoint has passed
are merged into files of about --target-file-size, named by the whole offset
range they cover: while the day runs, 4 or more neighbouring files of a tier
(the order of magnitude of the offsets they span); once it is over, all of
them. A merged file is published before the files it
replaces are removed: questlog's readers (query, report, the dashboard, lake
check) skip a replaced file at once, and count every record once at every
instant, crash or not. The replaced files stay --grace for readers that listed
the lake before; compact waits that long, then removes them.

It refuses to run while another compaction holds the lake (questlog up and
extract --follow compact in the background).`,
		Example: `  questlog lake compact
  questlog lake compact --target-file-size 256MiB --grace 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLakeCompact(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	o.register(cmd.Flags(), false, "")
	o.lake.registerLock(cmd.Flags())
	return cmd
}

func runLakeCompact(ctx context.Context, g *globalOptions, o *compactOptions, w io.Writer) error {
	if err := lakeExists(g.lakeLocation()); err != nil {
		return err
	}
	st, err := o.lake.open(g)
	if err != nil {
		return err
	}
	c, err := o.compactor(g, st, newLogger(g))
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// As questlog extract does: the Go heap's soft limit follows what
		// a merge holds.
		debug.SetMemoryLimit(compact.HeapLimit())
	}
	sum, err := c.Compact(ctx)
	if err != nil {
		if errors.Is(err, lake.ErrCompactionBusy) {
			return fmt.Errorf("lake compact: %w", err)
		}
		return err
	}
	for _, m := range sum.Merges {
		fmt.Fprintf(w, "merged %4d files (%s) into %s (%s, %d rows)\n", len(m.From), mib(totalSize(m.From)), m.Into.Name(), mib(m.Size), m.Rows)
	}
	for _, err := range sum.Skipped {
		fmt.Fprintf(w, "skipped: %v\n", err)
	}
	writeRetention(w, sum.Retention)
	fmt.Fprintf(w, "%d files merged into %d, %s into %s, %d rows, in %s\n",
		sum.Files(), len(sum.Merges), mib(sum.In), mib(sum.Out), sum.Rows, sum.Duration.Round(time.Millisecond))
	removed := sum.Removed + sum.Retention.Removed
	if (sum.Files() > 0 || len(sum.Retention.Retired) > 0) && o.grace > 0 {
		fmt.Fprintf(w, "waiting %s (--grace) before removing the files merged or retired now\n", o.grace)
		select {
		case <-time.After(o.grace):
		case <-ctx.Done():
			return ctx.Err()
		}
		later, err := c.RemoveReplaced(ctx)
		if err != nil {
			return err
		}
		writeRetention(w, later.Retention)
		removed += later.Removed + later.Retention.Removed
	}
	fmt.Fprintf(w, "%d replaced files removed\n", removed)
	return nil
}

// writeRetention says what lake retention did, when it did anything.
func writeRetention(w io.Writer, r lake.RetentionSummary) {
	for _, d := range r.Retired {
		fmt.Fprintf(w, "retired day %s (listed in %s; readers no longer see it)\n", d, lake.RetentionName(d))
	}
	if r.Removed > 0 {
		fmt.Fprintf(w, "lake retention removed %d files (%s) of days %s\n", r.Removed, mib(r.Bytes), strings.Join(r.Dropped, ", "))
	}
}

func totalSize(files []lake.DataFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}

// mib says a size in MiB.
func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
