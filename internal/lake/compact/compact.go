// Package compact merges the lake's small files: the files of one event
// type, day and Kafka partition that the extract's checkpoint has passed
// become files of about a target size, whose names cover the offsets of
// the files they replace; those are removed after a grace period.
//
// It stands on package lake for the layout, the rules that say which
// files readers read (lake.ListData: a file whose range another covers is
// replaced by it), the schemas and the file writer, and touches files
// only through lake.Storage. It knows nothing of Kafka, the game or the
// readers.
//
// At every instant, crash or not, each record is in exactly one file of
// the effective set: a merged file is written under a pending name,
// synced, published by a rename (from then on it replaces its inputs),
// and only then, after the grace period, are the inputs removed. A crash
// leaves at worst a pending file (removed by the next pass) or inputs
// already replaced (removed by a later pass). The extract's recovery,
// which removes files past the checkpoint, never meets a merged file: it
// ends below the checkpoint.
//
// Lifecycle: New validates the options; Compact runs one pass;
// RemoveReplaced removes replaced files whose grace period is over. As a
// service part (see Start), a Compactor runs a pass every interval until
// stopped.
package compact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/lake"
)

// Option configures a Compactor.
type Option func(*config)

type config struct {
	lake        lake.Storage
	topic       string
	target      int64
	interval    time.Duration
	grace       time.Duration
	compression string
	logger      *slog.Logger
	hook        Hook
	dropHook    func(name string) error
	retention   time.Duration
	now         func() time.Time
}

// Topic is the topic whose checkpoint says which files may be merged.
// Default "events".
func Topic(name string) Option { return func(c *config) { c.topic = name } }

// TargetFileSize is about how large a merged file grows, in bytes; a file
// of half of it or more is never merged again. Default 128 MiB, at least
// 64 KiB.
func TargetFileSize(n int64) Option { return func(c *config) { c.target = n } }

// Interval is how often a started Compactor runs a pass. Default 1m.
func Interval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// Grace is how long a file replaced by a merged file stays before it is
// removed, for readers that listed the lake before the merged file was
// published: questlog's readers skip it at once (and list again when a
// file they listed vanished), a reader that only globs the folder counts
// its records twice meanwhile. 0 removes it right after the merge.
// Default 10s.
func Grace(d time.Duration) Option { return func(c *config) { c.grace = d } }

// Compression is the merged files' Parquet codec: "zstd" (default),
// "snappy" or "none".
func Compression(name string) Option { return func(c *config) { c.compression = name } }

// Logger receives what each pass did and its problems. Default: discard.
func Logger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// Clock replaces time.Now to tell when a day is over (grace periods are
// measured on the file system's clock). For tests and simulations.
func Clock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// LakeRetention makes each pass drop the lake's days that ended more than
// d ago, as lake.DropOldDays says (their files go once retired for the
// grace period). Default 0: keep every day; else at least
// lake.MinRetention.
func LakeRetention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// Point is a step of a merge where a crash would leave the lake half done.
type Point int

// Points at which a Hook is called.
const (
	// Written: a merged file is written and synced under its pending
	// name, not yet published.
	Written Point = iota + 1
	// Published: a merged file was published (and its folder synced):
	// it replaces its inputs, which are still there.
	Published
	// Removed: a replaced file was just removed.
	Removed
)

func (p Point) String() string {
	switch p {
	case Written:
		return "written"
	case Published:
		return "published"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("Point(%d)", int(p))
}

// Hook is called at each Point. When it returns an error, the compaction
// stops right there, as if the process had crashed: nothing more is
// written, removed or cleaned up, and the pass returns the error. For
// tests.
type Hook func(point Point, part lake.Part) error

// WithHook installs a hook. Default none.
func WithHook(h Hook) Option { return func(c *config) { c.hook = h } }

// WithDropHook installs a hook called after each file lake retention
// removes; an error stops the pass there, as a crash would. Default none.
func WithDropHook(h func(name string) error) Option { return func(c *config) { c.dropHook = h } }

// errHook marks the error of a pass stopped by its hook.
var errHook = errors.New("stopped at hook")

// Memory is about the most a merge holds, whatever the size of the files
// it merges: the row group being written (8 MiB of rows) and its encoded
// columns, an input's row group being decoded, the file itself when small
// enough to read whole (4 MiB), and the listing of the lake.
const Memory = 48 << 20

// HeapLimit is the Go soft memory limit (debug.SetMemoryLimit) that suits
// a compaction running alone: as extract.HeapLimit, twice its memory and
// 64 MiB for the rest.
func HeapLimit() int64 { return 2*Memory + 64<<20 }

// closeAfter is how long after its day ends a group is merged whole: the
// extract's last files of the day are published within its --max-age.
const closeAfter = time.Minute

// Summary is what a pass did.
type Summary struct {
	Merges   []Merge
	Removed  int // replaced files removed
	Skipped  []error
	Rows     int64 // rows written into merged files
	In, Out  int64 // bytes of the files merged, and of the merged files
	Duration time.Duration
	// Retention is what lake retention did (see LakeRetention).
	Retention lake.RetentionSummary
}

// Merge is one merged file and the files it replaces.
type Merge struct {
	Into lake.Part
	Size int64
	Rows int64
	From []lake.DataFile
}

func (s *Summary) add(m Merge) {
	s.Merges = append(s.Merges, m)
	s.Rows += m.Rows
	s.Out += m.Size
	for _, f := range m.From {
		s.In += f.Size
	}
}

// Compactor merges a lake's small files. Its passes run one at a time.
type Compactor struct {
	cfg   config
	files *lake.Files

	pass sync.Mutex // one pass at a time

	// the running part (see Start)
	cancel context.CancelFunc
	done   chan struct{}
	failed chan error
}

// New checks the options and returns a Compactor of the lake st.
func New(st lake.Storage, opts ...Option) (*Compactor, error) {
	if st == nil {
		return nil, errors.New("compact: no lake given")
	}
	c, err := configure(opts)
	if err != nil {
		return nil, err
	}
	c.lake = st
	files, err := lake.NewFiles(c.compression)
	if err != nil {
		return nil, err
	}
	return &Compactor{cfg: c, files: files}, nil
}

// Validate checks options as New does, before there is a lake to give it.
func Validate(opts ...Option) error {
	_, err := configure(opts)
	return err
}

func configure(opts []Option) (config, error) {
	c := config{
		topic:    "events",
		target:   128 << 20,
		interval: time.Minute,
		grace:    10 * time.Second,
		now:      time.Now,
		logger:   slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.topic == "":
		return c, errors.New("compact: no topic given")
	case c.target < 64<<10:
		return c, fmt.Errorf("--target-file-size %d: must be at least 64 KiB", c.target)
	case c.interval <= 0:
		return c, fmt.Errorf("--compact-interval %s: must be positive", c.interval)
	case c.grace < 0:
		return c, fmt.Errorf("--compact-grace %s: must not be negative", c.grace)
	}
	if err := lake.ValidateRetention(c.retention); err != nil {
		return c, err
	}
	if _, err := lake.NewFiles(c.compression); err != nil {
		return c, err
	}
	return c, nil
}

// TargetFileSize is about how large a merged file grows.
func (c *Compactor) TargetFileSize() int64 { return c.cfg.target }

// Interval is how often a started Compactor runs a pass.
func (c *Compactor) Interval() time.Duration { return c.cfg.interval }

// Grace is the grace period of replaced files and retired days.
func (c *Compactor) Grace() time.Duration { return c.cfg.grace }

// LakeRetention is how long the lake keeps a day after it ended; 0: for
// ever.
func (c *Compactor) LakeRetention() time.Duration { return c.cfg.retention }

// dropOldDays runs lake retention's pass, when there is one.
func (c *Compactor) dropOldDays(ctx context.Context, sum *Summary) error {
	if c.cfg.retention == 0 {
		return nil
	}
	r, err := lake.DropOldDays(ctx, c.cfg.lake, lake.Retention{
		Keep: c.cfg.retention, Grace: c.cfg.grace, Now: c.cfg.now, Hook: c.cfg.dropHook, Topic: c.cfg.topic,
	})
	sum.Retention = r // one retention run a pass
	sum.Skipped = append(sum.Skipped, r.Skipped...)
	for _, err := range r.Skipped {
		c.cfg.logger.Warn("lake retention: day skipped", "err", err)
	}
	if len(r.Retired) > 0 || r.Removed > 0 {
		c.cfg.logger.Info("lake retention", "retired_days", r.Retired, "dropped_days", r.Dropped, "files_removed", r.Removed, "bytes", r.Bytes)
	}
	return err
}

// Compact runs one pass: it runs lake retention's pass (see
// LakeRetention), removes the files whose grace period is over and the
// pending files an interrupted pass left, then merges every
// group's files as the policy says (see plan). Inputs merged now are
// removed by a later pass (at once with no grace period). A group whose
// files cannot be merged (unreadable, or not of its schema) is skipped and
// said in Skipped; a pass fails when the lake cannot be listed or
// written. It fails with lake.ErrCompactionBusy when another compaction
// holds the lake.
func (c *Compactor) Compact(ctx context.Context) (Summary, error) {
	c.pass.Lock()
	defer c.pass.Unlock()
	start := time.Now()
	var sum Summary
	lock, err := lake.LockCompaction(ctx, c.cfg.lake, c.cfg.topic)
	if err != nil {
		return sum, err
	}
	defer lock.Release()
	ctx, stop := lake.WhileHeld(ctx, lock) // a lost lock stops the pass
	defer stop()
	// Days retired first: compaction leaves them alone.
	err = c.dropOldDays(ctx, &sum)
	if err == nil {
		err = c.compact(ctx, &sum)
	}
	if lost := lock.Err(); err != nil && lost != nil {
		err = lost
	}
	sum.Duration = time.Since(start)
	if err != nil {
		return sum, fmt.Errorf("compact %s: %w", c.cfg.topic, err)
	}
	return sum, nil
}

func (c *Compactor) compact(ctx context.Context, sum *Summary) error {
	st := c.cfg.lake
	// Read before listing: every file listed that ends below it stays
	// below the checkpoint.
	cp, found, err := lake.ReadCheckpoint(ctx, st, c.cfg.topic)
	if err != nil || !found {
		return err
	}
	l, err := lake.ListData(ctx, st)
	if err != nil {
		return err
	}
	if err := c.cleanUp(ctx, l, sum); err != nil {
		return err
	}
	// Loaded after listing: every file listed has its version in it.
	schemas, err := lake.LoadSchemas(ctx, st)
	if err != nil {
		return err
	}
	ambiguous := map[lake.Group]bool{}
	for _, o := range l.Overlaps {
		ambiguous[o.A.Group()] = true
		sum.Skipped = append(sum.Skipped, o)
	}
	groups := map[lake.Group][]lake.DataFile{}
	for _, f := range l.Events() {
		if mark, ok := cp.Partitions[f.Partition]; ok && f.Last < mark.Next && !ambiguous[f.Group()] {
			groups[f.Group()] = append(groups[f.Group()], f)
		}
	}
	keys := make([]lake.Group, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.SortFunc(keys, func(a, b lake.Group) int {
		return cmp.Or(cmp.Compare(a.EventType, b.EventType), cmp.Compare(a.Date, b.Date), cmp.Compare(a.Partition, b.Partition))
	})
	now := c.cfg.now()
	for _, g := range keys {
		files := groups[g]
		slices.SortFunc(files, func(a, b lake.DataFile) int { return cmp.Compare(a.First, b.First) })
		runs := plan(files, c.closed(g, now), c.cfg.target)
		if len(runs) == 0 {
			continue
		}
		schema := schemas.Get(g.EventType)
		if schema == nil {
			sum.Skipped = append(sum.Skipped, fmt.Errorf("%s: no schema %s", g.EventType, lake.SchemaName(g.EventType)))
			continue
		}
		for _, run := range runs {
			err := c.merge(ctx, run, schema, sum)
			switch {
			case err == nil:
			case errors.Is(err, errHook), ctx.Err() != nil, !readError(err):
				return err
			default:
				c.cfg.logger.Warn("compact: group skipped", "event_type", g.EventType, "date", g.Date, "partition", g.Partition, "err", err)
				sum.Skipped = append(sum.Skipped, err)
			}
		}
	}
	return nil
}

// inputError is a problem with a file being merged (unreadable, or not
// of its group's schema): its group is skipped, the pass goes on.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func readError(err error) bool {
	var ie *inputError
	return errors.As(err, &ie)
}

// closed says whether a group's day is over: its files are merged whole.
func (c *Compactor) closed(g lake.Group, now time.Time) bool {
	day, err := time.Parse(time.DateOnly, g.Date)
	return err == nil && !now.Before(day.Add(24*time.Hour+closeAfter))
}

// cleanUp removes the merged files an interrupted pass left pending, and
// the replaced files whose grace period is over.
func (c *Compactor) cleanUp(ctx context.Context, l *lake.Listing, sum *Summary) error {
	for _, fi := range l.Pending {
		if lake.IsMergePending(fi.Name) {
			c.cfg.logger.Info("compact: remove an unfinished merge", "file", fi.Name)
			if err := c.cfg.lake.Remove(ctx, fi.Name); err != nil {
				return err
			}
		}
	}
	return c.removeReplaced(ctx, l, sum)
}

// RemoveReplaced removes the replaced files whose grace period is over,
// and the files of retired days whose grace period is over (see
// LakeRetention): its Summary says what it removed (Removed, Retention)
// and merges nothing.
func (c *Compactor) RemoveReplaced(ctx context.Context) (Summary, error) {
	c.pass.Lock()
	defer c.pass.Unlock()
	var sum Summary
	lock, err := lake.LockCompaction(ctx, c.cfg.lake, c.cfg.topic)
	if err != nil {
		return sum, err
	}
	defer lock.Release()
	ctx, stop := lake.WhileHeld(ctx, lock)
	defer stop()
	l, err := lake.ListData(ctx, c.cfg.lake)
	if err != nil {
		return sum, err
	}
	if err := c.removeReplaced(ctx, l, &sum); err != nil {
		return sum, err
	}
	err = c.dropOldDays(ctx, &sum)
	return sum, err
}

func (c *Compactor) removeReplaced(ctx context.Context, l *lake.Listing, sum *Summary) error {
	dirs := map[string]bool{}
	for _, r := range l.Replaced {
		// Files' times are the file system's: Clock is not theirs.
		if c.cfg.grace > 0 && time.Since(r.By.ModTime) < c.cfg.grace {
			continue
		}
		if err := c.remove(ctx, r.DataFile, sum); err != nil {
			return err
		}
		dirs[path.Dir(r.Name)] = true
	}
	for dir := range dirs {
		if err := c.cfg.lake.SyncDir(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

// remove removes a replaced file.
func (c *Compactor) remove(ctx context.Context, f lake.DataFile, sum *Summary) error {
	if err := c.cfg.lake.Remove(ctx, f.Name); err != nil {
		return err
	}
	sum.Removed++
	return c.hook(Removed, f.Part)
}

func (c *Compactor) hook(p Point, part lake.Part) error {
	if c.cfg.hook == nil {
		return nil
	}
	if err := c.cfg.hook(p, part); err != nil {
		return fmt.Errorf("%w %s of %s: %w", errHook, p, part.Name(), err)
	}
	return nil
}
