// Package journal records the game's events on the event log: it encodes
// each event, publishes it, and counts it (Prometheus metrics, and the live
// rates the dashboard shows). It is the game.Journal of a server.
package journal

import (
	"context"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
)

// Log is the event log (stream.Producer): it writes one record and returns
// once it is acknowledged, with where it went; says where a key's next
// record will go; and finds a record again.
type Log interface {
	Publish(ctx context.Context, key, value []byte) (partition int32, offset int64, err error)
	// PublishGroup writes [key, value] records to partition all-or-nothing,
	// and returns the first one's offset.
	PublishGroup(ctx context.Context, partition int32, records [][2][]byte) (first int64, err error)
	Next(key []byte) (partition int32, after int64)
	Contains(ctx context.Context, partition int32, after int64, match func(value []byte) bool) (bool, error)
}

// Journal records events on a Log. It is safe for concurrent use.
type Journal struct {
	log     Log
	metrics *Metrics
	bufs    sync.Pool // of *[]byte: an event's encoding, reused
	rates   rates
}

var _ game.Journal = (*Journal)(nil)

// New returns a journal on log, counting in m (NewMetrics).
func New(log Log, m *Metrics) *Journal {
	j := &Journal{log: log, metrics: m}
	j.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return j
}

// putBuf gives buf, grown from *bp, back to the pool unless it grew past
// 64 KiB.
func (j *Journal) putBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		j.bufs.Put(bp)
	}
}

// keyOf is the record key of user's events: none for no user, as
// event.Event.Key.
func keyOf(user string) []byte {
	if user == "" {
		return nil
	}
	return []byte(user)
}

// Record encodes ev, publishes it keyed by its user, and returns its
// position once the log acknowledged it. The game logs outages; the
// journal counts them.
func (j *Journal) Record(ctx context.Context, ev *event.Event) (game.Position, error) {
	bp := j.bufs.Get().(*[]byte)
	buf := ev.AppendJSON((*bp)[:0])
	start := time.Now()
	partition, offset, err := j.log.Publish(ctx, ev.Key(), buf)
	j.metrics.produceDuration.Observe(time.Since(start).Seconds())
	j.putBuf(bp, buf)
	if err != nil {
		j.metrics.eventNotAcked(ev.Type)
		return game.Position{}, err
	}
	j.metrics.eventAcked(ev.Type, ev.Status)
	return game.Position{Partition: partition, Offset: offset}, nil
}

// RecordGroup encodes evs, all of user, and publishes them as one group:
// the log holds all of them or none. It returns the first one's position.
func (j *Journal) RecordGroup(ctx context.Context, user string, evs []*event.Event) (game.Position, error) {
	if len(evs) == 1 {
		return j.Record(ctx, evs[0])
	}
	key := keyOf(user)
	partition, _ := j.log.Next(key)
	bp := j.bufs.Get().(*[]byte)
	buf := (*bp)[:0]
	ends := make([]int, len(evs))
	for i, ev := range evs {
		buf = ev.AppendJSON(buf)
		ends[i] = len(buf)
	}
	records := make([][2][]byte, len(evs))
	from := 0
	for i, end := range ends {
		records[i] = [2][]byte{key, buf[from:end]}
		from = end
	}
	start := time.Now()
	first, err := j.log.PublishGroup(ctx, partition, records)
	j.metrics.produceDuration.Observe(time.Since(start).Seconds())
	j.putBuf(bp, buf)
	for _, ev := range evs {
		if err != nil {
			j.metrics.eventNotAcked(ev.Type)
		} else {
			j.metrics.eventAcked(ev.Type, ev.Status)
		}
	}
	if err != nil {
		return game.Position{}, err
	}
	return game.Position{Partition: partition, Offset: first}, nil
}

// Next says where user's next event will go.
func (j *Journal) Next(user string) game.Position {
	p, after := j.log.Next(keyOf(user))
	return game.Position{Partition: p, Offset: after}
}

// Contains reports whether the ok event with that ID is in at.Partition
// past at.Offset. A failed event with the ID (an action refused after its
// intent was stored) does not count.
func (j *Journal) Contains(ctx context.Context, at game.Position, eventID string) (bool, error) {
	return j.log.Contains(ctx, at.Partition, at.Offset, func(v []byte) bool {
		if !event.HasID(v, eventID) {
			return false
		}
		h, err := event.DecodeHeader(v)
		return err == nil && h.Status == event.StatusOK
	})
}

// EventCounts returns how many events of each type the log acknowledged
// since the journal was made.
func (j *Journal) EventCounts() map[string]uint64 { return j.metrics.eventCounts() }

// EventRates returns acknowledged events per second by type, measured over
// the second (or more) before the previous call: the dashboard's live
// counters poll it.
func (j *Journal) EventRates() map[string]float64 {
	return j.rates.sample(time.Now(), j.metrics.eventCounts())
}
