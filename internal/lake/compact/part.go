package compact

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/questlog/questlog/internal/lake"
)

// Start makes the Compactor a running part (service.Part): it returns at
// once, ready, and runs a pass every interval, the first one interval
// after Start. A pass that another compaction's lock keeps out is
// skipped; a pass that fails ends the part, reported on Failed. Stop
// stops it.
func (c *Compactor) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done, c.failed = cancel, make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sum, err := c.Compact(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, lake.ErrCompactionBusy):
				c.cfg.logger.Info("compact: pass skipped", "err", err)
			case err != nil:
				c.failed <- err
				return
			case len(sum.Merges) > 0 || sum.Removed > 0:
				c.cfg.logger.Info("compact: pass", "merged", len(sum.Merges), "files", sum.Files(), "rows", sum.Rows,
					"removed", sum.Removed, "took", sum.Duration.Round(time.Millisecond))
			}
		}
	}()
	return nil
}

// Stop stops the running part: a merge in progress is abandoned (its
// pending file removed; its inputs stay, for the next pass).
func (c *Compactor) Stop(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop compaction: %w", ctx.Err())
	}
}

// Failed delivers the error of a pass that ended the running part.
func (c *Compactor) Failed() <-chan error { return c.failed }

// Files is how many files the pass merged.
func (s *Summary) Files() int {
	n := 0
	for _, m := range s.Merges {
		n += len(m.From)
	}
	return n
}
