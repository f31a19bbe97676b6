// Package extract is the job that turns the event topic into the lake: it
// reads every partition from the lake's checkpoint, writes one Parquet file
// per partition, event type and day, and advances the checkpoint only after
// the files it vouches for are in place, so the lake holds every record
// exactly once however often it crashed and was rerun.
//
// It stands on franz-go (kgo, kadm) to read the topic and on internal/lake
// for the layout, schemas, files and checkpoint. It knows nothing of the
// game, of HTTP or of the API that produced the events.
//
// Lifecycle: New validates the options; Run extracts until the high
// watermarks seen at its start (the default) or, with Follow, until its
// context is cancelled, then commits what it holds and returns; Flush asks
// a running follower to commit now.
package extract

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures an Extractor.
type Option func(*config)

type config struct {
	brokers  []string
	topic    string
	lake     lake.Storage
	follow   bool
	group    string
	maxRows  int64
	maxBytes int64
	maxAge   time.Duration
	memory   int64
	codec    string
	logger   *slog.Logger
	hook     Hook
	now      func() time.Time
}

// Brokers are the Kafka bootstrap brokers, host:port. Required.
func Brokers(addrs ...string) Option { return func(c *config) { c.brokers = addrs } }

// Topic is the event topic. Default "events".
func Topic(name string) Option { return func(c *config) { c.topic = name } }

// Lake is where the files go. Required (see lake.Open).
func Lake(st lake.Storage) Option { return func(c *config) { c.lake = st } }

// Follow keeps extracting new records until Run's context is cancelled,
// instead of stopping at the high watermarks seen at the start. Default off.
func Follow() Option { return func(c *config) { c.follow = true } }

// Group makes the extract one worker of the Kafka consumer group called
// name, following the topic (it needs Follow): the group's workers share
// the topic's partitions, each takes the lake's lock of the partitions it
// is assigned (lake.LockPartition), resumes each from the partition's
// checkpoint in the lake, and on a rebalance commits the files of the
// partitions it gives up before it lets go of them. Kafka's committed
// offsets are written too, for lag monitoring, and never read. Default
// none: one extract writes every partition under the lake's writer lock.
func Group(name string) Option { return func(c *config) { c.group = name } }

// MaxRows rolls a partition's files when one of them reaches n rows.
// Default 1,000,000.
func MaxRows(n int64) Option { return func(c *config) { c.maxRows = n } }

// MaxBytes rolls a partition's files when one of them reaches about n
// bytes. Default 128 MiB.
func MaxBytes(n int64) Option { return func(c *config) { c.maxBytes = n } }

// MaxAge rolls a partition's files, when following, once the oldest of them
// is d old, so a new event is queryable within about d. Default 10s.
func MaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// HeapLimit is the Go soft memory limit (debug.SetMemoryLimit) that suits
// an extract running alone with the given memory budget: the buffered rows,
// about as much again for files being written and the garbage between
// collections, and 64 MiB for fetched batches and the rest.
func HeapLimit(budget int64) int64 { return 2*budget + 64<<20 }

// MemoryBudget bounds the bytes of rows buffered in open files, over all
// partitions (each partition gets its share): past it, a partition
// writes its largest open file's rows as a row group. Default 32 MiB, at
// least 64 KiB.
func MemoryBudget(n int64) Option { return func(c *config) { c.memory = n } }

// Compression is the Parquet codec: "zstd" (default), "snappy" or "none".
func Compression(name string) Option { return func(c *config) { c.codec = name } }

// Logger receives progress and warnings. Default: discard.
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Point is a step of a commit where a crash would leave the lake half done.
type Point int

// Points at which a Hook is called.
const (
	// AfterFile: a data file was just published under its final name.
	AfterFile Point = iota + 1
	// BeforeCheckpoint: a partition's files are all published and its
	// checkpoint is about to be written.
	BeforeCheckpoint
)

// Hook is called at each Point of every commit, one call at a time
// (partitions commit in parallel). When it returns an error,
// the extract stops right there, as if the process had crashed: nothing
// more is written or cleaned up, and Run returns the error. For tests.
type Hook func(point Point, partition int32, part lake.Part) error

// WithHook installs a hook. Default none.
func WithHook(h Hook) Option { return func(c *config) { c.hook = h } }

// Clock replaces time.Now (file ages, schema and checkpoint times). For tests.
func Clock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Summary is what a Run did.
type Summary struct {
	Records     int64            // records read, quarantined ones included
	Files       int              // files published
	Bytes       int64            // bytes in those files
	PerType     map[string]int64 // records per event type
	Quarantined int64            // records that went to quarantine
	Duration    time.Duration
}

// LostError says records the lake never got were deleted from the topic
// (by retention) before they could be extracted: the checkpoint says Next,
// the log now starts at LogStart.
type LostError struct {
	Partition      int32
	Next, LogStart int64
}

func (e *LostError) Error() string {
	return fmt.Sprintf("partition %d: offsets %d to %d were deleted from the topic before they were extracted", e.Partition, e.Next, e.LogStart-1)
}

// warnTrimmedStart says so when a partition new to the lake no longer
// starts at offset 0: the topic deleted its first records (a cluster's
// retention.ms, or --topic-retention) before this lake began, and the lake
// holds only the rest; lake check counts from start. It says so each time
// such a partition is taken up before its first checkpoint (a group
// worker's rebalance, or a run after a crash), which is rare.
func warnTrimmedStart(log *slog.Logger, topic string, p int32, start int64) {
	if start > 0 {
		log.Warn("the lake begins a partition after records the topic already deleted: offsets before start are not in it",
			"topic", topic, "partition", p, "start", start)
	}
}

// ErrNotRunning is Flush's answer when no Run is in progress.
var ErrNotRunning = errors.New("extract is not running")

// Extractor moves the topic into the lake. Run it once at a time.
type Extractor struct {
	cfg   config
	files *lake.Files // makes the data files: codec and row buffers

	done, total atomic.Int64

	hookMu sync.Mutex // the hook sees one call at a time

	// ready, when set, is closed by Run once it holds the lake's writer
	// lock and has recovered the lake: the Follower's readiness.
	ready chan struct{}

	mu      sync.Mutex
	lock    lake.Lock    // the lake's writer lock, held by the current Run (nil in a group)
	running []*partition // the workers of the current Run, nil when idle
	byID    map[int32]*partition
	cp      *lake.Checkpoint
	plocks  map[int32]lake.Lock // every partition's lock, held by a Run without a group
	group   *groupRun           // while a Run as a group's worker runs

	cancelRun context.CancelFunc // stops the current Run (Crash)
	err       error
	failed    atomic.Bool
	sum       Summary
}

// New checks the options and returns an Extractor.
func New(opts ...Option) (*Extractor, error) {
	c := config{
		topic:    "events",
		maxRows:  1_000_000,
		maxBytes: 128 << 20,
		maxAge:   10 * time.Second,
		memory:   32 << 20,
		now:      time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case len(c.brokers) == 0:
		return nil, errors.New("no brokers given")
	case c.topic == "":
		return nil, errors.New("no topic given")
	case c.lake == nil:
		return nil, errors.New("no lake given")
	case c.maxRows < 1:
		return nil, fmt.Errorf("max rows %d must be at least 1", c.maxRows)
	case c.maxBytes < 1<<10:
		return nil, fmt.Errorf("max bytes %d must be at least 1 KiB", c.maxBytes)
	case c.maxAge <= 0:
		return nil, fmt.Errorf("max age %s must be positive", c.maxAge)
	case c.memory < 64<<10:
		return nil, fmt.Errorf("memory budget %d must be at least 64 KiB", c.memory)
	case c.group != "" && !c.follow:
		return nil, errors.New("a consumer group's worker follows the topic: --group needs --follow")
	}
	files, err := lake.NewFiles(c.codec)
	if err != nil {
		return nil, err
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return &Extractor{cfg: c, files: files}, nil
}

// Progress is how many records this Run has extracted, of how many it
// knows about (the records up to the high watermarks seen at its start;
// growing while following).
func (e *Extractor) Progress() (done, total int64) { return e.done.Load(), e.total.Load() }

// Flush makes a running Run commit every open file and advance the
// checkpoint now, and waits until it has.
func (e *Extractor) Flush(ctx context.Context) error {
	e.mu.Lock()
	workers := e.running
	running := e.byID != nil
	if e.cfg.group != "" {
		workers = slices.Collect(maps.Values(e.byID))
	}
	e.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	reqs := make([]chan error, len(workers))
	for i, w := range workers {
		reqs[i] = make(chan error, 1)
		select {
		case w.flush <- reqs[i]:
		case <-w.exited:
			reqs[i] <- nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	for i, w := range workers {
		select {
		case err := <-reqs[i]:
			errs = append(errs, err)
		case <-w.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// Run extracts. Without Follow it reads every partition up to the high
// watermark seen at its start and returns; with Follow it goes on until ctx
// is cancelled, then commits what it holds and returns nil. Either way the
// checkpoint covers exactly the files written.
func (e *Extractor) Run(ctx context.Context) (Summary, error) {
	if e.cfg.group != "" {
		return e.runGroup(ctx)
	}
	lock, err := lake.LockWriter(ctx, e.cfg.lake, e.cfg.topic)
	if err != nil {
		return Summary{}, err
	}
	defer lock.Release()
	// Commits outlive a cancelled Run (stopping commits what is held),
	// not a lost lock: another extract may be writing the lake then.
	lakeCtx, stopWrites := lake.WhileHeld(context.WithoutCancel(ctx), lock)
	defer stopWrites()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.cancelRun = cancel
	e.mu.Unlock()
	defer e.endRun()
	go func() {
		select {
		case <-lakeCtx.Done():
			if err := lock.Err(); err != nil {
				// As after a crash: nothing more is written, the next
				// run starts from the checkpoint.
				e.fail(err)
				cancel()
			}
		case <-ctx.Done():
		}
	}()
	e.lock = lock
	start := e.cfg.now()
	e.done.Store(0)
	e.total.Store(0)
	e.failed.Store(false)
	e.err = nil
	e.sum = Summary{PerType: map[string]int64{}}

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.brokers...))
	if err != nil {
		return Summary{}, fmt.Errorf("connect to %v: %w", e.cfg.brokers, err)
	}
	starts, ends, err := offsets(ctx, kadm.NewClient(cl), e.cfg.topic)
	cl.Close()
	if err != nil {
		return Summary{}, err
	}

	e.cfg.logger.Debug("offsets listed", "starts", starts, "ends", ends)
	ids := slices.Sorted(maps.Keys(ends))
	// Every partition's lock too: no group worker may write one of them
	// meanwhile.
	plocks := map[int32]lake.Lock{}
	defer func() {
		for _, l := range plocks {
			l.Release()
		}
	}()
	for _, p := range ids {
		l, err := lake.LockPartition(ctx, e.cfg.lake, e.cfg.topic, p)
		if err != nil {
			return Summary{}, fmt.Errorf("partition %d: %w", p, err)
		}
		plocks[p] = l
	}
	cp, _, err := lake.ReadCheckpoint(ctx, e.cfg.lake, e.cfg.topic)
	if err != nil {
		return Summary{}, err
	}
	if err := recoverLake(ctx, e.cfg.lake, cp, nil, e.cfg.logger); err != nil {
		return Summary{}, fmt.Errorf("recover the lake: %w", err)
	}
	schemas, err := lake.LoadSchemas(ctx, e.cfg.lake)
	if err != nil {
		return Summary{}, err
	}

	var workers []*partition
	consume := map[int32]kgo.Offset{}
	for _, p := range ids {
		mark, ok := cp.Partitions[p]
		if !ok {
			mark = lake.PartitionMark{Start: starts[p], Next: starts[p]}
			cp.Partitions[p] = mark
			warnTrimmedStart(e.cfg.logger, e.cfg.topic, p, starts[p])
		}
		if mark.Next < starts[p] {
			return Summary{}, &LostError{Partition: p, Next: mark.Next, LogStart: starts[p]}
		}
		if mark.Next > ends[p] {
			return Summary{}, fmt.Errorf("partition %d: the checkpoint is at offset %d, past the topic's end %d: is this lake from another topic?", p, mark.Next, ends[p])
		}
		stop := int64(-1)
		if !e.cfg.follow {
			stop = ends[p]
			if mark.Next >= stop {
				continue
			}
		}
		e.total.Add(ends[p] - mark.Next)
		consume[p] = kgo.NewOffset().At(mark.Next)
		w := e.newPartition(p, mark.Next, stop, schemas, len(ends))
		w.lock = plocks[p]
		workers = append(workers, w)
	}
	e.cp = cp
	e.plocks = plocks
	e.cfg.logger.Debug("lake recovered", "checkpoint", cp.String())
	if e.ready != nil {
		close(e.ready)
	}

	if len(workers) > 0 {
		if err := e.consume(ctx, lakeCtx, consume, workers); err != nil {
			if lost := lock.Err(); lost != nil {
				// The lost lock is why: a write it cut short may have
				// failed first, saying only "context canceled".
				err = lost
			}
			return Summary{}, err
		}
	}
	// Record every partition, even one with nothing to extract yet, so
	// that Check knows where each starts.
	if !e.failed.Load() {
		e.mu.Lock()
		err := e.writeCheckpoint(lakeCtx)
		e.plocks = nil
		e.mu.Unlock()
		if err != nil {
			return Summary{}, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return Summary{}, e.err
	}
	sum := e.sum
	sum.Duration = e.cfg.now().Sub(start)
	return sum, nil
}

// consume runs the fetch loop and the partition workers until every
// partition is done (or, following, until ctx ends). The workers write
// the lake under lakeCtx.
func (e *Extractor) consume(ctx, lakeCtx context.Context, from map[int32]kgo.Offset, workers []*partition) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cfg.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{e.cfg.topic: from}),
		kgo.FetchMaxBytes(4<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", e.cfg.brokers, err)
	}
	defer cl.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	byID := map[int32]*partition{}
	var wg sync.WaitGroup
	for _, w := range workers {
		byID[w.id] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(w.exited)
			if err := w.run(lakeCtx); err != nil {
				e.fail(err)
				cancel()
			}
		}()
	}
	e.mu.Lock()
	e.running = workers
	e.byID = byID
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = nil
		e.byID = nil
		e.mu.Unlock()
	}()

	// Without Follow, stop fetching once every worker reached its stop.
	go func() {
		for _, w := range workers {
			select {
			case <-w.finished:
			case <-runCtx.Done():
				return
			}
		}
		e.cfg.logger.Debug("every partition reached its end")
		cancel()
	}()

	for runCtx.Err() == nil {
		fetches := cl.PollFetches(runCtx)
		if fetches.IsClientClosed() {
			break
		}
		e.warnFetchErrors(fetches)
		e.cfg.logger.Debug("fetched", "records", fetches.NumRecords())
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			w := byID[fp.Partition]
			if w == nil || len(fp.Records) == 0 {
				return
			}
			select {
			case w.in <- fp.Records:
			case <-runCtx.Done():
			}
		})
	}
	for _, w := range workers {
		close(w.in)
	}
	wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// warnFetchErrors logs the errors of a fetch, but for those of the run
// being stopped.
func (e *Extractor) warnFetchErrors(fetches kgo.Fetches) {
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		e.cfg.logger.Warn("fetch", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
	}
}

// fail records the first error and tells workers to stop as after a crash.
func (e *Extractor) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
	e.failed.Store(true)
}

// advance writes partition w's checkpoint at w.next: all its files up to
// there are published. Not when a lock it writes under was lost: another
// extract may have taken the partition over, and removed as leftovers
// files this one would vouch for.
func (e *Extractor) advance(ctx context.Context, w *partition) error {
	e.mu.Lock()
	err := e.lockErr(w.lock)
	if err == nil && e.failed.Load() {
		err = e.err // crashed: nothing more is committed
	}
	m := e.cp.Partitions[w.id]
	m.Next = w.next
	e.cp.Partitions[w.id] = m
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := lake.WritePartitionCheckpoint(ctx, e.cfg.lake, e.cfg.topic, w.id, m, e.cfg.now()); err != nil {
		return err
	}
	e.committed(w, m.Next)
	return nil
}

// lockErr is why the lake's writer lock or the partition's lock pl was
// lost, nil while both are held. Called with mu held.
func (e *Extractor) lockErr(pl lake.Lock) error {
	for _, l := range []lake.Lock{e.lock, pl} {
		if l != nil {
			if err := l.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCheckpoint writes every partition's checkpoint (and so migrates a
// legacy one), unless a lock was lost (see advance). Called with mu held,
// by a Run that holds every partition.
func (e *Extractor) writeCheckpoint(ctx context.Context) error {
	for _, l := range e.plocks {
		if err := e.lockErr(l); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
	}
	return e.cp.Write(ctx, e.cfg.lake, e.cfg.now())
}

// count adds a committed partition's figures to the summary.
func (e *Extractor) count(files int, bytes int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sum.Files += files
	e.sum.Bytes += bytes
}

func (e *Extractor) countRecords(perType map[string]int64, quarantined int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for t, n := range perType {
		e.sum.PerType[t] += n
		e.sum.Records += n
	}
	e.sum.Records += quarantined
	e.sum.Quarantined += quarantined
}

func offsets(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return stream.Bounds(ctx, adm, topic)
}

// recoverLake undoes what an interrupted extract left past the checkpoint:
// its pending files, and published files whose first offset is at or past
// their partition's checkpoint (their records will be extracted again).
// With only set, it touches only those partitions' files (a group
// worker's, the others being other workers'); else every file.
// A compaction's files are never among them: it merges only files the
// checkpoint has passed, so a merged file ends below it, and its pending
// files are its own to clean up.
func recoverLake(ctx context.Context, st lake.Storage, cp *lake.Checkpoint, only map[int32]bool, log *slog.Logger) error {
	for _, dir := range lake.DataDirs() {
		files, err := st.List(ctx, dir)
		if err != nil {
			return err
		}
		for _, fi := range files {
			name := fi.Name
			if lake.IsMergePending(name) {
				continue
			}
			if lake.IsPending(name) {
				if only != nil {
					if pp, ok := lake.PendingPart(name); !ok || !only[pp.Partition] {
						continue // another worker's
					}
				}
				log.Info("remove unfinished file", "file", name)
				if err := st.Remove(ctx, name); err != nil {
					return err
				}
				continue
			}
			part, ok := lake.ParsePart(name)
			if !ok || only != nil && !only[part.Partition] {
				continue
			}
			mark, ok := cp.Partitions[part.Partition]
			switch {
			case !ok || part.First >= mark.Next:
				log.Info("remove file past the checkpoint", "file", name)
				if err := st.Remove(ctx, name); err != nil {
					return err
				}
			case part.Last >= mark.Next:
				return fmt.Errorf("file %s straddles partition %d's checkpoint %d: the lake was changed by hand", name, part.Partition, mark.Next)
			}
		}
	}
	return nil
}
