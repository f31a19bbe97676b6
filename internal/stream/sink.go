package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rec is a record to publish.
type rec struct{ key, value []byte }

// group is records published together: the sink puts them in one record
// batch of one produce request, which the broker appends whole or not at
// all. A group is sent at most once (a produce request that failed in a way
// that leaves it unsure whether the broker appended it is not retried: the
// caller is told, and can look in the log); it is sent only before its
// deadline, and its request ends by the earliest deadline it carries.
type group struct {
	partition int32
	recs      []rec
	size      int
	deadline  time.Time
	done      chan error // buffered: the sink never waits on it
	base      int64      // the first record's offset, once acknowledged
}

// maxBatchBytes bounds a partition's batch in one request, under Kafka's
// default message.max.bytes (1 MiB): more waits for the next request.
const maxBatchBytes = 900 << 10

// Errors of a group the broker did not take.
var (
	errNotSent  = errors.New("not sent before its deadline")
	errTooLarge = fmt.Errorf("group larger than %d bytes", maxBatchBytes)
	errClosed   = errors.New("producer closed")
)

// sink sends the groups of the partitions one broker leads, one produce
// request at a time: groups that arrive while a request is in flight wait
// and go together in the next one, each partition's in one batch.
type sink struct {
	p      *Producer
	broker int32

	mu    sync.Mutex
	queue []*group
	wake  chan struct{} // capacity 1
	// perRequest is the moving mean of the groups in a request (run's
	// only); lingered counts the requests that waited for company.
	perRequest float64
	lingered   atomic.Int64
}

func newSink(p *Producer, broker int32) *sink {
	return &sink{p: p, broker: broker, wake: make(chan struct{}, 1), perRequest: 1}
}

// add queues g, or the groups requeued after a leader moved (first, so
// that each partition keeps its order).
func (s *sink) add(front bool, gs ...*group) {
	s.mu.Lock()
	if front {
		s.queue = append(gs, s.queue...)
	} else {
		s.queue = append(s.queue, gs...)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run sends until the producer closes, then fails what is left.
func (s *sink) run() {
	for {
		select {
		case <-s.wake:
		case <-s.p.closed:
			s.mu.Lock()
			left := s.queue
			s.queue = nil
			s.mu.Unlock()
			for _, g := range left {
				g.done <- errClosed
			}
			return
		}
		if l := s.p.cfg.Linger; l > 0 && s.perRequest > companyPerRequest && s.pending() {
			// Found idle, by groups of callers who lately shared requests:
			// wait a moment for company (while a request is in flight,
			// groups gather behind it anyway). A caller who publishes
			// alone, one group after the other's ack (one player's
			// rounds), shares no request, and waits for no one. A wake
			// left over from groups the last request already carried
			// finds the queue empty and waits for nothing.
			s.lingered.Add(1)
			time.Sleep(l)
		}
		for {
			gs := s.take(time.Now())
			if len(gs) == 0 {
				break
			}
			s.perRequest += (float64(len(gs)) - s.perRequest) / 8
			s.send(gs)
		}
	}
}

// pending reports whether a group waits in the queue.
func (s *sink) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// companyPerRequest is the mean number of groups per request above which
// a sink lingers: about one request in ten carried another caller's group.
const companyPerRequest = 1.1

// take removes from the queue the groups of the next request: in order,
// each partition's up to maxBatchBytes; groups past their deadline fail
// unsent.
func (s *sink) take(now time.Time) []*group {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		out   []*group
		keep  = s.queue[:0]
		bytes = map[int32]int{}
		full  = map[int32]bool{}
	)
	for _, g := range s.queue {
		switch {
		case !now.Before(g.deadline):
			g.done <- errNotSent
		case g.size > maxBatchBytes:
			g.done <- errTooLarge
		case full[g.partition] || bytes[g.partition]+g.size > maxBatchBytes:
			full[g.partition] = true // later groups of the partition wait too
			keep = append(keep, g)
		default:
			bytes[g.partition] += g.size
			out = append(out, g)
		}
	}
	clear(s.queue[len(keep):])
	s.queue = keep
	return out
}

// send produces gs in one request and tells each group its outcome.
func (s *sink) send(gs []*group) {
	p := s.p
	until := gs[0].deadline
	for _, g := range gs {
		if g.deadline.Before(until) {
			until = g.deadline
		}
	}
	byPart := map[int32][]*group{}
	var order []int32
	for _, g := range gs {
		if _, ok := byPart[g.partition]; !ok {
			order = append(order, g.partition)
		}
		byPart[g.partition] = append(byPart[g.partition], g)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(max(time.Until(until), time.Millisecond).Milliseconds())
	topic := kmsg.NewProduceRequestTopic()
	p.mu.Lock() // loadLeaders may be writing it for a reroute
	topic.Topic, topic.TopicID = p.topic, p.topicID
	p.mu.Unlock()
	now := time.Now()
	for _, part := range order {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = part
		rp.Records = appendBatch(nil, byPart[part], now)
		topic.Partitions = append(topic.Partitions, rp)
	}
	req.Topics = append(req.Topics, topic)

	ctx, cancel := context.WithDeadline(context.Background(), until)
	kresp, err := p.client.Broker(int(s.broker)).Request(ctx, req)
	cancel()
	if err != nil {
		// The broker may have appended the batches before the answer was
		// lost: the groups are in doubt, not retried.
		err = fmt.Errorf("no answer from broker %d: %w", s.broker, err)
		for _, g := range gs {
			g.done <- err
		}
		return
	}
	resp := kresp.(*kmsg.ProduceResponse)
	answered := map[int32]bool{}
	var moved []*group
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			groups := byPart[rp.Partition]
			if answered[rp.Partition] || groups == nil {
				continue
			}
			answered[rp.Partition] = true
			if rp.ErrorCode == 0 {
				base := rp.BaseOffset
				for _, g := range groups {
					g.base = base
					base += int64(len(g.recs))
					g.done <- nil
				}
				continue
			}
			perr := kerr.ErrorForCode(rp.ErrorCode)
			if notAppended(perr) && time.Now().Before(groups[0].deadline) {
				moved = append(moved, groups...)
				continue
			}
			for _, g := range groups {
				g.done <- fmt.Errorf("broker %d refused partition %d: %w", s.broker, rp.Partition, perr)
			}
		}
	}
	for _, part := range order {
		if !answered[part] {
			for _, g := range byPart[part] {
				g.done <- fmt.Errorf("broker %d did not answer for partition %d", s.broker, part)
			}
		}
	}
	if len(moved) > 0 {
		// The broker no longer leads those partitions (or does not know
		// them yet): it appended nothing, so they may go again, to the
		// new leader.
		p.rerouteLater(moved)
	}
}

// notAppended says whether a partition error means that the broker did not
// append the batch, so that sending it again cannot write it twice.
func notAppended(err error) bool {
	return errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.UnknownTopicOrPartition) ||
		errors.Is(err, kerr.LeaderNotAvailable) || errors.Is(err, kerr.NotEnoughReplicas) ||
		errors.Is(err, kerr.FencedLeaderEpoch)
}
