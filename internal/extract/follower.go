package extract

import (
	"context"
	"errors"
	"fmt"
)

// Follower runs an Extractor made with Follow as a service.Part: Start
// returns once it holds the lake's writer lock and has recovered the lake,
// Stop commits what it holds and returns, and Failed reports a Run that
// ended by itself (the lake no longer follows the topic).
type Follower struct {
	ex     *Extractor
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done is closed
	failed chan error
}

// Follower returns the extractor as a part; the extractor must Follow.
func (e *Extractor) Follower() (*Follower, error) {
	if !e.cfg.follow {
		return nil, errors.New("extract: a follower needs Follow")
	}
	return &Follower{ex: e, failed: make(chan error, 1)}, nil
}

// Start starts following and returns once the follower is ready, or with
// the error that stopped it first.
func (f *Follower) Start(context.Context) error {
	ready := make(chan struct{})
	f.ex.ready = ready
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		_, f.err = f.ex.Run(ctx)
		if ctx.Err() == nil { // ended by itself
			if f.err == nil {
				f.err = errors.New("stopped following")
			}
			f.failed <- fmt.Errorf("extract: %w", f.err)
		}
	}()
	select {
	case <-ready:
		return nil
	case <-f.done:
		return f.err
	}
}

// Stop stops following: the files it holds are committed and the
// checkpoint advanced before it returns.
func (f *Follower) Stop(ctx context.Context) error {
	f.cancel()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("stop extract: %w", ctx.Err())
	}
}

// Failed delivers the error of a Run that ended while it should follow.
func (f *Follower) Failed() <-chan error { return f.failed }

// Flush makes the follower commit every open file now (Extractor.Flush).
func (f *Follower) Flush(ctx context.Context) error { return f.ex.Flush(ctx) }
