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

// Producer writes records to one topic and reports each one's ack. Records
// produced concurrently share produce requests: while one request is in
// flight the next batch fills, so the cost of an ack is spread over every
// request waiting for one.
type Producer struct {
	client  *kgo.Client
	topic   string
	timeout time.Duration
	waits   sync.Pool
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
}

// NewProducer connects a producer. It does not wait for the brokers: use Ping.
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
	}
	if cfg.Dial != nil {
		opts = append(opts, kgo.Dialer(cfg.Dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("new producer: %w", err)
	}
	p := &Producer{client: cl, topic: cfg.Topic, timeout: cfg.DeliveryTimeout}
	p.waits.New = func() any {
		w := &wait{done: make(chan error, 1)}
		w.promise = w.finish
		return w
	}
	return p, nil
}

// Publish writes one record and returns once the broker acknowledged it, or
// with an error wrapping ErrUnavailable when it did not. The value is not
// retained after Publish returns, so the caller may reuse its buffer.
//
// Publish waits for the record's final outcome, at most about the
// DeliveryTimeout. ctx does not cancel the record: records share produce
// requests, and a caller that gave up (a client that went away) must not
// interrupt a request that carries other callers' records; a record already
// sent may still be written, and a caller must never be told "not written"
// about a record that was.
func (p *Producer) Publish(_ context.Context, key, value []byte) error {
	w := p.waits.Get().(*wait)
	w.rec = kgo.Record{Key: key, Value: value}
	p.client.Produce(p.deadlineCtx(), &w.rec, w.promise)
	err := <-w.done
	w.rec = kgo.Record{}
	p.waits.Put(w)
	if err != nil {
		return fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, err)
	}
	return nil
}

// deadlineCtx returns a context that ends at most DeliveryTimeout from now.
// The deadline lets kgo fail a record it has not managed to deliver by
// then, also one whose request was lost with its connection. Records
// published in the same deadlineSlot share one context, so a publish costs
// no timer of its own.
func (p *Producer) deadlineCtx() context.Context {
	now := time.Now()
	if d := p.deadline.Load(); d != nil && now.Before(d.renew) {
		return d.ctx
	}
	// Racing publishers may each make one; the last stored wins, and the
	// others still serve the records they were given. None is cancelled
	// before its deadline, when its timer releases it.
	d := &deadline{renew: now.Add(min(deadlineSlot, p.timeout/10))}
	d.ctx, d.stop = context.WithDeadline(context.Background(), now.Add(p.timeout))
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
