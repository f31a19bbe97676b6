// Package retain deletes the embedded broker's oldest records once they
// are safe elsewhere: the lake holds them (its checkpoint has passed them),
// they are older than the topic's retention, and no pending change still
// needs to read them. It knows nothing of HTTP or of what the records say.
//
// A real Kafka cluster has retention of its own (retention.ms): questlog
// trims only the broker it embeds.
package retain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/stream"
)

// DefaultRetention is how long records stay in the topic after the lake
// has them, unless told otherwise: a week to extract again from (a lake
// lost or rebuilt), or to read with kcat.
const DefaultRetention = 7 * 24 * time.Hour

// DefaultInterval is how often a Trimmer looks for records to delete.
const DefaultInterval = time.Minute

// Config says what a Trimmer trims and what keeps records.
type Config struct {
	Brokers []string
	Topic   string
	// Lake holds the checkpoint: records at or past a partition's
	// checkpoint are never deleted. A lake without one keeps everything.
	Lake lake.Storage
	// Retention is how old a record must be before it may go (its
	// timestamp, the producer's clock); at least one second.
	Retention time.Duration
	// Store, when set, keeps the records that its pending intents read
	// back to settle (those past an intent's position); nil for a broker
	// without a game (then a change pending for longer than Retention
	// could no longer be told from the log, and waits for the store's
	// own answer).
	Store state.Store
	// Interval between passes; default DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger     // default slog.Default()
	Now      func() time.Time // default time.Now
}

// Trimmer deletes, on each pass, what Config says may go. It is a
// service.Part: Start runs a first pass and then passes in the background
// until Stop. A pass that fails is logged and tried again at the next
// interval: the log only keeps more than it needs meanwhile.
type Trimmer struct {
	cfg Config

	stop chan struct{}
	done sync.WaitGroup
}

// New validates cfg.
func New(cfg Config) (*Trimmer, error) {
	switch {
	case len(cfg.Brokers) == 0 || cfg.Topic == "":
		return nil, errors.New("retain: no brokers or topic")
	case cfg.Lake == nil:
		return nil, errors.New("retain: no lake to read the checkpoint from")
	case cfg.Retention < time.Second:
		return nil, fmt.Errorf("retain: retention %v is under a second", cfg.Retention)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Trimmer{cfg: cfg, stop: make(chan struct{})}, nil
}

// Limit is why a partition's records below an offset may not go yet.
type Limit string

// The limits of a partition's trim, in the order Pass checks them.
const (
	ByAge     Limit = "age"     // younger than the retention
	ByLake    Limit = "lake"    // not yet in the lake
	ByPending Limit = "pending" // a pending intent reads them
)

// Partition is what a pass did to one partition.
type Partition struct {
	Partition int32
	// Before is the offset below which records could go, and Limit what
	// set it.
	Before int64
	Limit  Limit
	// Start is the partition's log start offset after the pass: the
	// broker keeps a partition's last record (see stream.Trim).
	Start int64
}

// Pass is the outcome of one pass, a partition each, in order.
type Pass []Partition

func (p Pass) String() string {
	var b strings.Builder
	for i, pp := range p {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(pp.Partition)) + ": starts at " + strconv.FormatInt(pp.Start, 10) + " (" + string(pp.Limit) + ")")
	}
	return b.String()
}

// Pass deletes what may go now and says, for each partition, how far and
// what stopped it.
func (t *Trimmer) Pass(ctx context.Context) (Pass, error) {
	cut, err := stream.OffsetsAt(ctx, t.cfg.Brokers, t.cfg.Topic, t.cfg.Now().Add(-t.cfg.Retention))
	if err != nil {
		return nil, fmt.Errorf("retain %s: %w", t.cfg.Topic, err)
	}
	before := map[int32]int64{}
	limits := map[int32]Limit{}
	for p, off := range cut {
		before[p], limits[p] = off, ByAge
	}
	// Read after the ages: the checkpoint only moves forward, so a newer
	// one can only allow more.
	cp, _, err := lake.ReadCheckpoint(ctx, t.cfg.Lake, t.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("retain %s: %w", t.cfg.Topic, err)
	}
	for p := range before {
		next := int64(0) // not in the lake at all: keep everything
		if m, ok := cp.Partitions[p]; ok {
			next = m.Next
		}
		if next < before[p] {
			before[p], limits[p] = next, ByLake
		}
	}
	pending, err := t.pending(ctx)
	if err != nil {
		return nil, fmt.Errorf("retain %s: %w", t.cfg.Topic, err)
	}
	for p, from := range pending {
		if off, ok := before[p]; ok && from < off {
			before[p], limits[p] = from, ByPending
		}
	}
	starts, err := stream.Trim(ctx, t.cfg.Brokers, t.cfg.Topic, before)
	if err != nil {
		return nil, fmt.Errorf("retain %s: %w", t.cfg.Topic, err)
	}
	out := make(Pass, 0, len(before))
	for _, p := range slices.Sorted(maps.Keys(before)) {
		out = append(out, Partition{Partition: p, Before: before[p], Limit: limits[p], Start: starts[p]})
	}
	return out, nil
}

// pending returns, per partition, the first offset a pending intent still
// reads: settling an intent looks for its event past the position it
// recorded (state.Intent.After).
func (t *Trimmer) pending(ctx context.Context) (map[int32]int64, error) {
	out := map[int32]int64{}
	if t.cfg.Store == nil {
		return out, nil
	}
	users, err := t.cfg.Store.PendingUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("pending intents: %w", err)
	}
	for _, u := range users {
		in, err := t.cfg.Store.Pending(ctx, u)
		if errors.Is(err, state.ErrNotFound) {
			continue // settled meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("pending intent of a player: %w", err)
		}
		if in.Partition < 0 {
			continue
		}
		from := max(in.After+1, 0)
		if cur, ok := out[in.Partition]; !ok || from < cur {
			out[in.Partition] = from
		}
	}
	return out, nil
}

// Start runs a first pass (whose failure is logged, not returned: the
// broker serves without it) and then a pass every Interval until Stop.
func (t *Trimmer) Start(ctx context.Context) error {
	t.pass(ctx)
	t.done.Go(func() {
		tick := time.NewTicker(t.cfg.Interval)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(t.cfg.Interval, 30*time.Second))
			go func() {
				select {
				case <-t.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			t.pass(ctx)
			cancel()
		}
	})
	return nil
}

func (t *Trimmer) pass(ctx context.Context) {
	p, err := t.Pass(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.cfg.Logger.Warn("topic retention pass failed; trying again later", "topic", t.cfg.Topic, "err", err)
		}
		return
	}
	t.cfg.Logger.Debug("topic retention pass", "topic", t.cfg.Topic, "partitions", p.String())
}

// Stop ends the passes, interrupting one in progress.
func (t *Trimmer) Stop(ctx context.Context) error {
	close(t.stop)
	waited := make(chan struct{})
	go func() { t.done.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop topic retention: %w", ctx.Err())
	}
}
