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
	// Linger is how long records that find a broker's connection idle
	// wait for more to share their produce request, when requests lately
	// carried more than one caller's records (so that company is likely);
	// 0 sends at once. Records that arrive while a request is in flight
	// batch behind it anyway. A linger trades up to Linger of latency for
	// fewer produce requests at moderate rates; a lone caller publishing
	// one group after the other's ack never waits for it. At most
	// MaxLinger.
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
// request to a broker is in flight, the next one fills, so the cost of an
// ack is spread over every request waiting for one.
//
// It publishes groups of records (PublishGroup) all-or-nothing: a group's
// records go in one record batch, which the broker appends whole or not at
// all. It never sends a group twice: when a request fails in a way that
// leaves it unsure whether the broker appended it, the group's caller is
// told so (an error), and can look in the log (Contains); a record is
// therefore never written twice by the producer, and never sent after its
// deadline has passed.
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
	closed  chan struct{}
	close   sync.Once
	running sync.WaitGroup

	// deadline is the context publishers wait with, shared by every
	// publish within deadlineSlot of its creation.
	deadline atomic.Pointer[deadline]

	// Set by Start: the topic's ID and partitions, the key partitioner,
	// and the highest offset acknowledged (or seen at Start) on each
	// partition.
	topicID [16]byte // guarded by mu
	parts   int
	keyed   kgo.TopicPartitioner
	known   []atomic.Int64
	unkeyed atomic.Uint64
	started atomic.Bool

	// leaders and sinks route a partition's groups to the broker leading
	// it.
	mu      sync.Mutex
	leaders []int32
	sinks   map[int32]*sink
}

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
		// Every acknowledged record is on every in-sync replica (kgo
		// writes this into the produce requests the sinks send).
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DisableIdempotentWrite(),
		kgo.ProduceRequestTimeout(cfg.DeliveryTimeout),
		kgo.RetryTimeout(cfg.DeliveryTimeout),
		kgo.DialTimeout(time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	if cfg.Dial != nil {
		opts = append(opts, kgo.Dialer(cfg.Dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	return &Producer{client: cl, cfg: cfg, topic: cfg.Topic, timeout: cfg.DeliveryTimeout,
		closed: make(chan struct{}), sinks: map[int32]*sink{}}, nil
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
	if err := p.loadLeaders(ctx); err != nil {
		return err
	}
	p.started.Store(true)
	return nil
}

// loadLeaders reads which broker leads each partition, and the topic's ID.
func (p *Producer) loadLeaders(ctx context.Context) error {
	md, err := kadm.NewClient(p.client).Metadata(ctx, p.topic)
	if err != nil {
		return fmt.Errorf("%w: read the leaders of %s: %w", ErrUnavailable, p.topic, err)
	}
	td, ok := md.Topics[p.topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("%w: read the leaders of %s: %v", ErrUnavailable, p.topic, td.Err)
	}
	leaders := make([]int32, p.parts)
	for i := range leaders {
		leaders[i] = -1
	}
	for _, pd := range td.Partitions {
		if int(pd.Partition) < len(leaders) {
			leaders[pd.Partition] = pd.Leader
		}
	}
	p.mu.Lock()
	p.topicID, p.leaders = td.ID, leaders
	p.mu.Unlock()
	return nil
}

// route queues groups with the sink of their partitions' leaders (first,
// for groups sent again), starting a sink for a broker that has none yet.
func (p *Producer) route(front bool, gs ...*group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range gs {
		leader := p.leaders[g.partition]
		if leader < 0 {
			g.done <- fmt.Errorf("partition %d has no leader", g.partition)
			continue
		}
		s := p.sinks[leader]
		if s == nil {
			s = newSink(p, leader)
			p.sinks[leader] = s
			p.running.Go(s.run)
		}
		s.add(front, g)
	}
}

// rerouteLater reloads the leaders and sends gs again, to the partitions'
// new leaders, if their deadlines allow.
func (p *Producer) rerouteLater(gs []*group) {
	p.running.Go(func() {
		select {
		case <-p.closed:
			for _, g := range gs {
				g.done <- errClosed
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithDeadline(context.Background(), gs[0].deadline)
		err := p.loadLeaders(ctx)
		cancel()
		if err != nil {
			for _, g := range gs {
				g.done <- err
			}
			return
		}
		p.route(true, gs...)
	})
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
// when it did not (as PublishGroup). The value is not retained after
// Publish returns, so the caller may reuse its buffer.
func (p *Producer) Publish(ctx context.Context, key, value []byte) (partition int32, offset int64, err error) {
	if !p.started.Load() {
		return -1, -1, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, errNotStarted)
	}
	partition = p.Partition(key)
	if offset, err = p.PublishGroup(ctx, partition, [][2][]byte{{key, value}}); err != nil {
		return -1, -1, err
	}
	return partition, offset, nil
}

// PublishGroup writes records, [key, value] pairs, to partition as one
// group: the log holds all of them, at consecutive offsets from the one
// returned, or none. It returns once the broker acknowledged the group, or
// with an error wrapping ErrUnavailable when it did not. The records are
// copied: the caller may reuse its buffers.
//
// It waits at most about the DeliveryTimeout, or until ctx's deadline when
// that comes sooner; ctx's cancellation does not cancel the group (a
// client that went away must not interrupt a request that carries other
// callers' records). An error means "not acknowledged", which is "not
// written" unless the group was in a request whose answer was lost: the
// broker may have appended it, and Contains can tell.
func (p *Producer) PublishGroup(ctx context.Context, partition int32, records [][2][]byte) (first int64, err error) {
	if !p.started.Load() {
		return -1, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, errNotStarted)
	}
	if partition < 0 || int(partition) >= p.parts || len(records) == 0 {
		return -1, fmt.Errorf("produce %d records to %s/%d: no such partition, or nothing to produce", len(records), p.topic, partition)
	}
	until, _ := ctx.Deadline()
	wait := p.deadlineCtx(until)
	deadline, _ := wait.Deadline()
	g := &group{partition: partition, deadline: deadline, done: make(chan error, 1), recs: make([]rec, len(records))}
	size := 0
	for _, r := range records {
		size += len(r[0]) + len(r[1])
	}
	buf := make([]byte, 0, size)
	for i, r := range records {
		if r[0] != nil {
			buf = append(buf, r[0]...)
			g.recs[i].key = buf[len(buf)-len(r[0]):]
		}
		buf = append(buf, r[1]...)
		g.recs[i].value = buf[len(buf)-len(r[1]):]
		g.size += len(r[0]) + len(r[1]) + maxRecordOverhead
	}
	p.route(false, g)
	select {
	case err = <-g.done:
	case <-wait.Done():
		err = errors.New("no answer before the deadline")
	}
	if err != nil {
		return -1, fmt.Errorf("%w: produce to %s/%d: %w", ErrUnavailable, p.topic, partition, err)
	}
	last := g.base + int64(len(records)) - 1
	k := &p.known[partition]
	for {
		cur := k.Load()
		if last <= cur || k.CompareAndSwap(cur, last) {
			break
		}
	}
	return g.base, nil
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

// Stop fails the groups not sent yet and disconnects (Close).
func (p *Producer) Stop(context.Context) error {
	p.Close()
	return nil
}

// Close fails the groups not sent yet, waits for the requests in flight,
// and disconnects.
func (p *Producer) Close() {
	p.close.Do(func() {
		close(p.closed)
		p.running.Wait()
		p.client.Close()
		if d := p.deadline.Load(); d != nil {
			d.stop()
		}
	})
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
