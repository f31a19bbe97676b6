package extract

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/questlog/questlog/internal/lake"
)

// ErrCrashed is what Run returns after Crash.
var ErrCrashed = errors.New("extract crashed on purpose")

// Crash stops a running Run as killing its process would: nothing more
// is published or checkpointed, unfinished files stay where they are,
// the locks go once every partition's worker has stopped, and Run
// returns ErrCrashed. For tests of what a kill leaves behind.
func (e *Extractor) Crash() {
	e.fail(ErrCrashed)
	e.mu.Lock()
	cancel := e.cancelRun
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// endRun forgets the cancel function of the Run that is returning, so
// that a later Crash does not call it.
func (e *Extractor) endRun() {
	e.mu.Lock()
	e.cancelRun = nil
	e.mu.Unlock()
}

// groupRun is the state of a Run as a consumer group's worker: the
// partitions it holds come and go with the group's rebalances.
type groupRun struct {
	e       *Extractor
	schemas *lake.Schemas
	adm     *kadm.Client
	lakeCtx context.Context // files and checkpoints are written under it
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// sendMu orders handing records to a worker and stopping it: a
	// worker's in is closed only between two sends.
	sendMu  sync.Mutex
	closing bool // under sendMu: no partition is taken any more

	// Checkpoints to commit to the group in Kafka, for lag monitoring,
	// by a goroutine of their own: a commit waits while the group
	// rebalances, and a worker must not.
	lagMu   sync.Mutex
	lag     map[int32]int64
	lagWake chan struct{}
}

// runGroup is Run for a worker of a consumer group (see Group).
func (e *Extractor) runGroup(ctx context.Context) (Summary, error) {
	start := e.cfg.now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.done.Store(0)
	e.total.Store(0)
	e.failed.Store(false)
	e.err = nil
	e.sum = Summary{PerType: map[string]int64{}}
	e.lock = nil
	e.cp = &lake.Checkpoint{Topic: e.cfg.topic, Partitions: map[int32]lake.PartitionMark{}}
	e.cancelRun = cancel
	e.mu.Unlock()
	defer e.endRun()

	schemas, err := lake.LoadSchemas(ctx, e.cfg.lake)
	if err != nil {
		return Summary{}, err
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.brokers...))
	if err != nil {
		return Summary{}, fmt.Errorf("connect to %v: %w", e.cfg.brokers, err)
	}
	defer admCl.Close()
	g := &groupRun{
		e: e, schemas: schemas, adm: kadm.NewClient(admCl),
		// Commits outlive a cancelled Run: stopping commits what is held.
		lakeCtx: context.WithoutCancel(ctx), cancel: cancel,
		lag: map[int32]int64{}, lagWake: make(chan struct{}, 1),
	}
	e.mu.Lock()
	e.byID = map[int32]*partition{}
	e.mu.Unlock()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cfg.brokers...),
		kgo.ConsumerGroup(e.cfg.group),
		kgo.ConsumeTopics(e.cfg.topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// A worker that dies without leaving (kill -9, a lost machine)
		// holds its partitions until its session times out: 10 s rather
		// than 45 s. Its heartbeats do not wait for commits.
		kgo.SessionTimeout(10*time.Second),
		kgo.RebalanceTimeout(30*time.Second),
		kgo.AdjustFetchOffsetsFn(g.assigned),
		kgo.OnPartitionsRevoked(g.revoked),
		kgo.OnPartitionsLost(g.lost),
		kgo.FetchMaxBytes(4<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		return Summary{}, fmt.Errorf("connect to %v: %w", e.cfg.brokers, err)
	}
	e.mu.Lock()
	e.group = g
	e.mu.Unlock()
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		g.commitLag(ctx, cl)
	}()
	e.cfg.logger.Info("joining consumer group", "group", e.cfg.group, "topic", e.cfg.topic)
	if e.ready != nil {
		close(e.ready)
	}

	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			break
		}
		e.warnFetchErrors(fetches)
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) > 0 {
				g.send(ctx, fp.Partition, fp.Records)
			}
		})
		cl.AllowRebalance()
	}

	// Commit what is held (nothing after a failure) before leaving the
	// group, so that the partitions' next owners find them committed and
	// unlocked.
	<-lagDone
	g.sendMu.Lock()
	g.closing = true
	g.sendMu.Unlock()
	held := g.stopAll(!e.failed.Load())
	if !e.failed.Load() {
		// Lag monitoring only: an unreachable Kafka does not hold the stop.
		commitCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		g.commitKafka(commitCtx, cl, held)
		stop()
	}
	cl.Close()
	g.stopAll(false) // none: no partition is taken once closing
	g.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.group = nil
	e.byID = nil
	if e.err != nil {
		return Summary{}, e.err
	}
	sum := e.sum
	sum.Duration = e.cfg.now().Sub(start)
	return sum, nil
}

// send hands fetched records to their partition's worker; records of a
// partition this worker no longer holds are dropped.
func (g *groupRun) send(ctx context.Context, p int32, recs []*kgo.Record) {
	g.sendMu.Lock()
	defer g.sendMu.Unlock()
	g.e.mu.Lock()
	w := g.e.byID[p]
	g.e.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.in <- recs:
	case <-w.exited:
	case <-ctx.Done():
	}
}

// assigned is the group's AdjustFetchOffsetsFn: for each partition newly
// assigned, it takes the partition's lock in the lake (waiting while its
// previous owner lets go), removes what a crash left past the partition's
// checkpoint, starts its worker, and has fetching start at the
// checkpoint, whatever Kafka's committed offset says.
func (g *groupRun) assigned(ctx context.Context, from map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	e := g.e
	parts := from[e.cfg.topic]
	if len(parts) == 0 {
		return from, nil
	}
	g.sendMu.Lock()
	closing := g.closing
	g.sendMu.Unlock()
	if closing {
		return nil, errors.New("extract is stopping")
	}
	ids := slices.Sorted(maps.Keys(parts))
	e.cfg.logger.Info("partitions assigned", "partitions", ids)
	locks := map[int32]lake.Lock{}
	started := false
	defer func() {
		if !started {
			for _, l := range locks {
				l.Release()
			}
		}
	}()
	for _, p := range ids {
		l, err := g.lockPartition(ctx, p)
		if err != nil {
			return nil, err
		}
		locks[p] = l
	}
	// Listed once the previous owners let go: their checkpoints are
	// below these ends.
	starts, ends, err := offsets(ctx, g.adm, e.cfg.topic)
	if err != nil {
		return nil, err
	}
	cp, _, err := lake.ReadCheckpoint(ctx, e.cfg.lake, e.cfg.topic)
	if err != nil {
		return nil, err
	}
	marks := map[int32]lake.PartitionMark{}
	for _, p := range ids {
		mark, ok := cp.Partitions[p]
		if !ok {
			mark = lake.PartitionMark{Start: starts[p], Next: starts[p]}
			warnTrimmedStart(e.cfg.logger, e.cfg.topic, p, starts[p])
		}
		if end, ok := ends[p]; ok && mark.Next > end {
			return nil, g.fatal(fmt.Errorf("partition %d: the checkpoint is at offset %d, past the topic's end %d: is this lake from another topic?", p, mark.Next, end))
		}
		if mark.Next < starts[p] {
			return nil, g.fatal(&LostError{Partition: p, Next: mark.Next, LogStart: starts[p]})
		}
		marks[p] = mark
	}
	if err := recoverLake(ctx, e.cfg.lake, cp, maps.Collect(func(yield func(int32, bool) bool) {
		for _, p := range ids {
			if !yield(p, true) {
				return
			}
		}
	}), e.cfg.logger); err != nil {
		return nil, g.fatal(fmt.Errorf("recover partitions %v: %w", ids, err))
	}
	started = true
	for _, p := range ids {
		mark := marks[p]
		w := e.newPartition(p, mark.Next, -1, g.schemas, max(len(ends), 1))
		w.lock = locks[p]
		e.mu.Lock()
		e.cp.Partitions[p] = mark
		e.byID[p] = w
		e.mu.Unlock()
		e.total.Add(ends[p] - mark.Next)
		// Its files and checkpoint are written while its lock is held
		// (an s3:// lock is a lease that can be lost).
		wctx, stopWrites := lake.WhileHeld(g.lakeCtx, w.lock)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer stopWrites()
			defer close(w.exited)
			w.err = w.run(wctx)
			if w.err != nil {
				g.fatal(w.err)
			}
		}()
		if lost := w.lock.Lost(); lost != nil {
			go func() {
				select {
				case <-lost:
					// As after a crash: another may own the partition now.
					g.fatal(fmt.Errorf("partition %d: %w", p, w.lock.Err()))
				case <-w.exited:
				}
			}()
		}
		parts[p] = kgo.NewOffset().At(mark.Next).WithEpoch(-1)
		e.cfg.logger.Info("partition resumed from the lake's checkpoint", "partition", p, "next", mark.Next)
	}
	return from, nil
}

// lockPartition takes partition p's lock, waiting while another holds it
// (its previous owner committing, or a whole-lake extract running).
func (g *groupRun) lockPartition(ctx context.Context, p int32) (lake.Lock, error) {
	said := false
	for {
		l, err := lake.LockPartition(ctx, g.e.cfg.lake, g.e.cfg.topic, p)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, lake.ErrLocked) {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		if !said {
			g.e.cfg.logger.Info("waiting for the partition's lock in the lake", "partition", p, "err", err)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fatal stops the Run with err, as after a crash, and returns err.
func (g *groupRun) fatal(err error) error {
	g.e.fail(err)
	g.cancel()
	return err
}

// revoked is the group's OnPartitionsRevoked: it commits the partitions
// given up (files, then checkpoint) and lets go of their locks before
// the rebalance goes on.
func (g *groupRun) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	g.e.cfg.logger.Info("partitions revoked", "partitions", m[g.e.cfg.topic])
	held := map[int32]int64{}
	for _, p := range m[g.e.cfg.topic] {
		if next, ok := g.stop(p, !g.e.failed.Load()); ok {
			held[p] = next
		}
	}
	if !g.e.failed.Load() {
		g.commitKafka(ctx, cl, held)
	}
}

// lost is the group's OnPartitionsLost: another worker may own the
// partitions already, so their open files are dropped uncommitted.
func (g *groupRun) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	g.e.cfg.logger.Warn("partitions lost", "partitions", m[g.e.cfg.topic])
	for _, p := range m[g.e.cfg.topic] {
		g.stop(p, false)
	}
}

// stop stops partition p's worker, committing what it holds or dropping
// it, waits for it and releases the partition's lock. It returns the
// partition's checkpoint, ok false when the worker did not hold p or did
// not commit.
func (g *groupRun) stop(p int32, commit bool) (next int64, ok bool) {
	g.sendMu.Lock()
	g.e.mu.Lock()
	w := g.e.byID[p]
	delete(g.e.byID, p)
	g.e.mu.Unlock()
	if w != nil {
		w.final.Store(true)
		if !commit {
			w.abandon.Store(true)
		}
		close(w.in)
	}
	g.sendMu.Unlock()
	if w == nil {
		return 0, false
	}
	<-w.exited
	if err := w.lock.Release(); err != nil {
		g.e.cfg.logger.Warn("release the partition's lock", "partition", p, "err", err)
	}
	g.e.cfg.logger.Info("partition released", "partition", p, "checkpoint", w.committed, "committed", commit && w.err == nil && !g.e.failed.Load())
	return w.committed, commit && w.err == nil && !g.e.failed.Load()
}

// stopAll stops every partition's worker (see stop) and returns the
// checkpoints of those that committed.
func (g *groupRun) stopAll(commit bool) map[int32]int64 {
	g.e.mu.Lock()
	ids := slices.Collect(maps.Keys(g.e.byID))
	g.e.mu.Unlock()
	held := map[int32]int64{}
	for _, p := range ids {
		if next, ok := g.stop(p, commit); ok {
			held[p] = next
		}
	}
	return held
}

// commitKafka commits the lake's checkpoints to the group in Kafka, for
// lag monitoring; nothing reads them back.
func (g *groupRun) commitKafka(ctx context.Context, cl *kgo.Client, next map[int32]int64) {
	if len(next) == 0 {
		return
	}
	offsets := map[int32]kgo.EpochOffset{}
	for p, n := range next {
		offsets[p] = kgo.EpochOffset{Epoch: -1, Offset: n}
	}
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{g.e.cfg.topic: offsets}, g.logCommit)
}

func (g *groupRun) logCommit(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					err = fmt.Errorf("partition %d: error code %d", p.Partition, p.ErrorCode)
				}
			}
		}
	}
	if err != nil {
		g.e.cfg.logger.Debug("commit offsets to the group (for lag monitoring only)", "err", err)
	}
}

// commitLag commits the checkpoints the workers report to the group,
// the latest of each partition, until ctx ends.
func (g *groupRun) commitLag(ctx context.Context, cl *kgo.Client) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.lagWake:
		}
		g.lagMu.Lock()
		next := g.lag
		g.lag = map[int32]int64{}
		g.lagMu.Unlock()
		g.commitKafka(ctx, cl, next)
	}
}

// committed tells the group in Kafka, when there is one, that partition
// w's checkpoint is at next, for lag monitoring (in the background; a
// worker's last commit is sent by the rebalance that stops it).
func (e *Extractor) committed(w *partition, next int64) {
	if w.final.Load() {
		return
	}
	e.mu.Lock()
	g := e.group
	e.mu.Unlock()
	if g == nil {
		return
	}
	g.lagMu.Lock()
	g.lag[w.id] = next
	g.lagMu.Unlock()
	select {
	case g.lagWake <- struct{}{}:
	default:
	}
}
