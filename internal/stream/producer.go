package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnavailable wraps every failure to get a record acknowledged: the caller
// must treat the record as not written.
var ErrUnavailable = errors.New("event log unavailable")

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Brokers []string
	Topic   string
	// DeliveryTimeout bounds how long a record may wait for its ack before
	// it fails; default 5s, at least MinDeliveryTimeout. It is what an API
	// request waits at most when the log is down.
	DeliveryTimeout time.Duration
	// Linger is how long a partition's batch waits, from its first record,
	// for more records to share its produce request; 0 sends at once.
	// Records that arrive while a request is in flight batch behind it
	// anyway; a linger also batches those that find the producer idle,
	// trading up to Linger of latency for fewer produce requests (at
	// 4,500 requests/s of the players scenario, 250µs cut serve's CPU per
	// request by 8-17%). At most MaxLinger.
	Linger time.Duration
	// Dial, when set, makes the producer's connections (Broker.DialContext
	// for the embedded broker in the same process); default TCP.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// MaxLinger is the longest ProducerConfig.Linger: every acknowledged request
// waits for it, so past a fraction of a second it is a mistake.
const MaxLinger = 100 * time.Millisecond

// MinDeliveryTimeout is the shortest DeliveryTimeout (franz-go's shortest
// record timeout).
const MinDeliveryTimeout = time.Second

// Producer writes records to one topic and reports each one's ack and
// position. Records produced concurrently share produce requests: while one
// request is in flight the next batch fills, so the cost of an ack is spread
// over every request waiting for one.
//
// It chooses each record's partition itself, as Kafka's default partitioner
// does for a keyed record (murmur2 of the key), so that it can say before
// publishing where a key's next record will go (Next); records without a
// key take turns over the partitions.
type Producer struct {
	client  *kgo.Client
	cfg     ProducerConfig
	topic   string
	timeout time.Duration
	waits   sync.Pool

	// Set by Start: the topic's partitions, the key partitioner, and the
	// highest offset acknowledged (or seen at Start) on each partition.
	parts   int
	keyed   kgo.TopicPartitioner
	known   []atomic.Int64
	unkeyed atomic.Uint64
	started atomic.Bool
	// deadline is the context records are produced with, shared by every
	// record published within deadlineSlot of its creation.
	deadline atomic.Pointer[deadline]
}

// wait carries one record and its outcome; pooled so a publish allocates
// nothing of its own.
type wait struct {
	rec     kgo.Record
	done    chan error
	promise func(*kgo.Record, error) // w.finish, bound once
}

func (w *wait) finish(_ *kgo.Record, err error) { w.done <- err }

// deadlineSlot is how long one deadline context is handed out: a record's
// deadline lies between DeliveryTimeout-deadlineSlot and DeliveryTimeout
// after its Publish began.
const deadlineSlot = 50 * time.Millisecond

// deadline is a context that ends DeliveryTimeout after it was made, shared
// by the records published until renew.
type deadline struct {
	ctx   context.Context
	stop  context.CancelFunc // only at Close: records still use ctx after renew
	renew time.Time
	end   time.Time // ctx's deadline
}

// NewProducer validates cfg and makes a producer; Start connects it.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("new producer: no brokers")
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = 5 * time.Second
	}
	if cfg.DeliveryTimeout < MinDeliveryTimeout {
		return nil, fmt.Errorf("new producer: delivery timeout %v is shorter than %v", cfg.DeliveryTimeout, MinDeliveryTimeout)
	}
	if cfg.Linger < 0 || cfg.Linger > MaxLinger {
		return nil, fmt.Errorf("new producer: linger %v is outside 0..%v", cfg.Linger, MaxLinger)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		// Every acknowledged record is on every in-sync replica.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Not idempotent: an idempotent producer keeps up to five
		// produce requests in flight per broker, so concurrent records
		// share fewer of them; that cost GET / 6-16 µs of CPU per request
		// (54 against 60-70). The cost of going without: a record whose
		// request was in flight when the broker died may be retried into
		// a duplicate (same event_id) or reported failed although
		// written. (AllowIdempotentProduceCancellation would bound an
		// idempotent producer's wait by DeliveryTimeout just the same.)
		kgo.DisableIdempotentWrite(),
		// Concurrent records batch behind the request in flight; the
		// linger (default none) also batches those that find it idle.
		kgo.ProducerLinger(cfg.Linger),
		// Records are retried until DeliveryTimeout, not a count of tries.
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProduceRequestTimeout(cfg.DeliveryTimeout),
		kgo.RetryTimeout(cfg.DeliveryTimeout),
		kgo.DialTimeout(time.Second),
		// A record waiting on an unreachable broker is failed when the
		// next metadata update fails, and updates come at most every
		// MetadataMinAge (default 5s): it would answer up to 5s past
		// DeliveryTimeout. At 250ms a client whose brokers are in trouble
		// asks for metadata up to four times a second.
		kgo.MetadataMinAge(250 * time.Millisecond),
		// Retry soon: a local broker that restarts is back within
		// moments, and a dead one should be noticed within the timeout.
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*50*time.Millisecond, 250*time.Millisecond)
		}),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// Publish sets each record's partition (see Producer).
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	if cfg.Dial != nil {
		opts = append(opts, kgo.Dialer(cfg.Dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	p := &Producer{client: cl, cfg: cfg, topic: cfg.Topic, timeout: cfg.DeliveryTimeout}
	p.waits.New = func() any {
		w := &wait{done: make(chan error, 1)}
		w.promise = w.finish
		return w
	}
	return p, nil
}

// Start connects the producer: it reads the topic's partitions and the end
// of each, and returns once the brokers answered, or with the error that
// stopped it.
func (p *Producer) Start(ctx context.Context) error {
	adm := kadm.NewClient(p.client)
	ends, err := adm.ListEndOffsets(ctx, p.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("%w: start producer: read the end of %s: %w", ErrUnavailable, p.topic, err)
	}
	n := 0
	ends.Each(func(o kadm.ListedOffset) { n = max(n, int(o.Partition)+1) })
	if n == 0 {
		return fmt.Errorf("start producer: topic %s has no partitions (does it exist?)", p.topic)
	}
	p.parts = n
	p.keyed = kgo.StickyKeyPartitioner(nil).ForTopic(p.topic)
	p.known = make([]atomic.Int64, n)
	for i := range p.known {
		p.known[i].Store(-1)
	}
	ends.Each(func(o kadm.ListedOffset) { p.known[o.Partition].Store(o.Offset - 1) })
	p.started.Store(true)
	return nil
}

// errNotStarted is returned by a producer used before Start.
var errNotStarted = errors.New("producer not started")

// Partition is the partition a record with this key goes to: for a key,
// always the same (Kafka's murmur2 partitioning); without one, the
// partitions in turn, 256 records at a time, so that records published
// together share a batch.
func (p *Producer) Partition(key []byte) int32 {
	if key == nil {
		return int32(p.unkeyed.Add(1) >> 8 % uint64(p.parts))
	}
	return int32(p.keyed.Partition(&kgo.Record{Key: key}, p.parts))
}

// Next says where the next record with this key will go: its partition,
// and the highest offset this producer knows on it (-1 when none). A
// record published from now on lands past that offset.
func (p *Producer) Next(key []byte) (partition int32, after int64) {
	if !p.started.Load() {
		return -1, -1
	}
	partition = p.Partition(key)
	return partition, p.known[partition].Load()
}

// Publish writes one record and returns once the broker acknowledged it,
// with its partition and offset, or with an error wrapping ErrUnavailable
// when it did not. The value is not retained after Publish returns, so the
// caller may reuse its buffer.
//
// Publish waits for the record's final outcome, at most about the
// DeliveryTimeout, or until ctx's deadline when that comes sooner. ctx's
// cancellation does not cancel the record: records share produce requests,
// and a caller that gave up (a client that went away) must not interrupt a
// request that carries other callers' records; a record already sent may
// still be written. An error therefore means "not acknowledged", which is
// not always "not written": a record whose request was in flight when the
// connection broke may be in the log (see Contains).
func (p *Producer) Publish(ctx context.Context, key, value []byte) (partition int32, offset int64, err error) {
	if !p.started.Load() {
		return -1, -1, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, errNotStarted)
	}
	w := p.waits.Get().(*wait)
	w.rec = kgo.Record{Key: key, Value: value, Partition: p.Partition(key)}
	deadline, _ := ctx.Deadline()
	p.client.Produce(p.deadlineCtx(deadline), &w.rec, w.promise)
	err = <-w.done
	partition, offset = w.rec.Partition, w.rec.Offset
	w.rec = kgo.Record{}
	p.waits.Put(w)
	if err != nil {
		return -1, -1, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, err)
	}
	k := &p.known[partition]
	for {
		cur := k.Load()
		if offset <= cur || k.CompareAndSwap(cur, offset) {
			break
		}
	}
	return partition, offset, nil
}

// Contains reports whether partition holds, past offset after, a record
// whose value satisfies match. It reads the partition from after+1 to its
// end as it is when Contains begins (a record acknowledged before that is
// there to find). When records past after were deleted (Trim), it cannot
// tell, and says so with a *TrimmedError.
func (p *Producer) Contains(ctx context.Context, partition int32, after int64, match func(value []byte) bool) (bool, error) {
	ends, err := kadm.NewClient(p.client).ListEndOffsets(ctx, p.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return false, fmt.Errorf("%w: read the end of %s/%d: %w", ErrUnavailable, p.topic, partition, err)
	}
	end, ok := ends.Lookup(p.topic, partition)
	if !ok {
		return false, fmt.Errorf("read the end of %s/%d: no such partition", p.topic, partition)
	}
	if end.Offset <= after+1 {
		return false, nil
	}
	if err := p.notTrimmed(ctx, partition, after+1); err != nil {
		return false, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.topic: {partition: kgo.NewOffset().At(after + 1)}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.DialTimeout(time.Second),
	}
	if p.cfg.Dial != nil {
		opts = append(opts, kgo.Dialer(p.cfg.Dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return false, fmt.Errorf("read %s/%d: %w", p.topic, partition, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("%w: read %s/%d from %d: %w", ErrUnavailable, p.topic, partition, after+1, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return false, fmt.Errorf("%w: read %s/%d from %d: %w", ErrUnavailable, p.topic, partition, after+1, ferr)
		}
		found, done := false, false
		fs.EachRecord(func(r *kgo.Record) {
			if found || done {
				return
			}
			if r.Offset >= end.Offset {
				done = true
				return
			}
			found = match(r.Value)
			done = r.Offset >= end.Offset-1
		})
		if found {
			return true, nil
		}
		if done {
			// A consumer below the start resumes at the start without a
			// word: a trim during the read skipped records unseen.
			return false, p.notTrimmed(ctx, partition, after+1)
		}
	}
}

// notTrimmed returns a *TrimmedError if partition no longer holds offset
// from because it starts past it.
func (p *Producer) notTrimmed(ctx context.Context, partition int32, from int64) error {
	starts, err := kadm.NewClient(p.client).ListStartOffsets(ctx, p.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("%w: read the start of %s/%d: %w", ErrUnavailable, p.topic, partition, err)
	}
	if s, ok := starts.Lookup(p.topic, partition); ok && s.Offset > from {
		return &TrimmedError{Topic: p.topic, Partition: partition, From: from, Start: s.Offset}
	}
	return nil
}

// deadlineCtx returns a context that ends at most DeliveryTimeout from now,
// or at until when that is sooner (and not zero). The deadline lets kgo
// fail a record it has not managed to deliver by then, also one whose
// request was lost with its connection. Records published in the same
// deadlineSlot, with deadlines in the same slot, share one context, so a
// publish costs no timer of its own.
func (p *Producer) deadlineCtx(until time.Time) context.Context {
	now := time.Now()
	end := now.Add(p.timeout)
	if !until.IsZero() && until.Before(end) {
		// Round up to the slot, so that requests arriving together share.
		end = until.Truncate(deadlineSlot).Add(deadlineSlot)
	}
	if d := p.deadline.Load(); d != nil && now.Before(d.renew) && !end.Before(d.end) && end.Sub(d.end) < deadlineSlot {
		return d.ctx
	}
	// Racing publishers may each make one; the last stored wins, and the
	// others still serve the records they were given. None is cancelled
	// before its deadline, when its timer releases it.
	d := &deadline{renew: now.Add(min(deadlineSlot, p.timeout/10)), end: end}
	d.ctx, d.stop = context.WithDeadline(context.Background(), end)
	p.deadline.Store(d)
	return d.ctx
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error {
	if err := p.client.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Stop flushes what is buffered and disconnects (Close).
func (p *Producer) Stop(context.Context) error {
	p.Close()
	return nil
}

// Close flushes what is buffered and disconnects.
func (p *Producer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.client.Flush(ctx)
	p.client.Close()
	if d := p.deadline.Load(); d != nil {
		d.stop()
	}
}

// EnsureTopic creates the topic with the given number of partitions if it
// does not exist yet; an existing topic is left as it is.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("ensure topic %s: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("ensure topic %s: %w", topic, err)
	}
	return nil
}
