// Package fill produces the game events internal/lake/laketest generates
// to a topic, for the benchmarks that start from a full one; it knows
// nothing of what reads them.
package fill

import (
	"cmp"
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake/laketest"
)

// Events produces the events cfg generates through cl (to its default
// topic), keyed by player, waits until all are acknowledged, and returns
// the bytes of their values. each, when not nil, sees every value first.
// It stops at the first produce error.
func Events(ctx context.Context, cl *kgo.Client, cfg laketest.Config, each func(value []byte)) (int64, error) {
	var (
		total    int64
		mu       sync.Mutex
		firstErr error
	)
	err := laketest.Generate(cfg, func(ev *event.Event) error {
		v := ev.AppendJSON(nil)
		total += int64(len(v))
		if each != nil {
			each(v)
		}
		cl.Produce(ctx, &kgo.Record{Key: ev.Key(), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	})
	if err != nil {
		return 0, err
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	return total, firstErr
}
