package extract

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/internal/lake"
)

// Ends returns where each partition of the extractor's topic ends now
// (its high watermark), and where it starts.
func (e *Extractor) Ends(ctx context.Context) (starts, ends map[int32]int64, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cfg.brokers...))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %v: %w", e.cfg.brokers, err)
	}
	defer cl.Close()
	return offsets(ctx, kadm.NewClient(cl), e.cfg.topic)
}

// Behind lists the partitions whose records in [starts[p], ends[p]) the
// checkpoint does not cover yet, as "p: next of end", in order; none when
// the lake holds everything up to ends.
func Behind(cp *lake.Checkpoint, starts, ends map[int32]int64) []string {
	var behind []string
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		end := ends[p]
		if end <= starts[p] {
			continue // nothing retained to extract
		}
		m, ok := cp.Partitions[p]
		if !ok || m.Next < end {
			next := int64(0)
			if ok {
				next = m.Next
			}
			behind = append(behind, fmt.Sprintf("partition %d at %d of %d", p, next, end))
		}
	}
	return behind
}

// Waited is what RunOrWait did when another extract held the lake.
type Waited struct {
	// Checkpoint is the other writer's checkpoint that covers the
	// topic's end as it was when RunOrWait began.
	Checkpoint *lake.Checkpoint
	Duration   time.Duration
}

// RunOrWait is a Run for `extract --once` that does what its user means
// when another extract holds the lake (the follower of `questlog up`):
// instead of failing with lake.ErrLakeBusy, it waits until that writer's
// checkpoint covers every partition up to where the topic ended when
// RunOrWait began, for at most wait, and returns what it waited for. When
// the other writer lets go of the lake first (an `extract --once` that
// finished), it runs itself. An error past wait names the partitions still
// behind.
func (e *Extractor) RunOrWait(ctx context.Context, wait time.Duration) (Summary, *Waited, error) {
	began := e.cfg.now()
	sum, err := e.Run(ctx)
	if !errors.Is(err, lake.ErrLakeBusy) {
		return sum, nil, err
	}
	starts, ends, err := e.Ends(ctx)
	if err != nil {
		return Summary{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	retry := time.Now().Add(2 * time.Second)
	for {
		cp, _, err := lake.ReadCheckpoint(ctx, e.cfg.lake, e.cfg.topic)
		if err != nil {
			return Summary{}, nil, err
		}
		behind := Behind(cp, starts, ends)
		if len(behind) == 0 {
			return Summary{}, &Waited{Checkpoint: cp, Duration: e.cfg.now().Sub(began)}, nil
		}
		if time.Now().After(retry) {
			retry = time.Now().Add(2 * time.Second)
			sum, err := e.Run(ctx)
			if !errors.Is(err, lake.ErrLakeBusy) {
				return sum, nil, err
			}
		}
		select {
		case <-ctx.Done():
			return Summary{}, nil, fmt.Errorf("%w, and has not reached the topic's end within %v (%s): is it stuck? See its log",
				lake.ErrLakeBusy, wait, strings.Join(behind, ", "))
		case <-poll.C:
		}
	}
}
