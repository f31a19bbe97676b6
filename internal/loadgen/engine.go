package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A Client makes the requests of one worker. The engine calls Do from a
// single goroutine per client, once per request slot, and times the call;
// Do performs exactly one HTTP request and reads its answer to the end.
type Client interface {
	Do(ctx context.Context) Sample
}

// Sample is what one request returned.
type Sample struct {
	// Action indexes Config.Actions: which kind of request this was.
	Action int
	// Status is the HTTP status code, 0 when there was no answer.
	Status int
	// Bytes is the size of the answer's body.
	Bytes int64
	// Err is a transport error: no HTTP answer was read.
	Err error
	// ExpectFailure marks a deliberately failed action: a 4xx answer to it
	// is an intended failure, not an unexpected one.
	ExpectFailure bool
}

// Config describes one run.
type Config struct {
	// Requests stops the run after this many requests; 0 means no limit.
	Requests int64
	// Duration stops the run once this long has passed since its start;
	// requests already sent are still awaited. 0 means no limit. At least one
	// of Requests and Duration must be set.
	Duration time.Duration
	// Rate holds a fixed request rate in requests per second (open model).
	// 0, the default, sends as fast as the clients allow (closed model).
	Rate float64
	// Actions names the kinds of request a Sample's Action indexes. Empty
	// means a single kind called "request".
	Actions []string
	// Progress, when set, is called about every ProgressEvery (default one
	// second) from a goroutine of its own while the run lasts.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a live view of a run, for a progress line.
type Progress struct {
	Elapsed  time.Duration
	Requests int64 // answered or failed so far
	Errors   int64 // transport errors and 5xx so far
	// Config's limits, to show how far along the run is.
	TotalRequests int64
	TotalDuration time.Duration
}

func (c *Config) validate(clients int) error {
	switch {
	case clients < 1:
		return errors.New("load: at least one client is needed")
	case c.Requests < 0:
		return fmt.Errorf("load: requests %d is negative", c.Requests)
	case c.Duration < 0:
		return fmt.Errorf("load: duration %s is negative", c.Duration)
	case c.Requests == 0 && c.Duration == 0:
		return errors.New("load: give a number of requests or a duration")
	case c.Rate < 0:
		return fmt.Errorf("load: rate %g is negative", c.Rate)
	}
	return nil
}

// Run drives the clients until Config's limits are reached or ctx is done,
// and returns what they recorded. Cancelling ctx aborts the requests in
// flight; those are not counted, and the result covers what completed.
func Run(ctx context.Context, cfg Config, clients []Client) (*Result, error) {
	if err := cfg.validate(len(clients)); err != nil {
		return nil, err
	}
	actions := cfg.Actions
	if len(actions) == 0 {
		actions = []string{"request"}
	}
	// Shards keep workers from contending on one lock; a few per core is
	// plenty since a record takes well under a microsecond.
	nshards := min(len(clients), 4*runtime.GOMAXPROCS(0))
	rec := newRecorder(nshards, actions)

	e := &engine{cfg: cfg, rec: rec, start: time.Now()}
	if cfg.Duration > 0 {
		e.deadline = e.start.Add(cfg.Duration)
	}
	if cfg.Rate > 0 {
		e.interval = float64(time.Second) / cfg.Rate
	}

	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx, c, rec.shards[i%nshards])
		}()
	}

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		every := cfg.ProgressEvery
		if every <= 0 {
			every = time.Second
		}
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(e.progress())
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(e.start)
	close(progressDone)
	progressWG.Wait()
	if cfg.Progress != nil {
		cfg.Progress(e.progress())
	}

	res := rec.result()
	res.Start = e.start
	res.Elapsed = elapsed
	res.Clients = len(clients)
	res.Rate = cfg.Rate
	return res, nil
}

type engine struct {
	cfg      Config
	rec      *recorder
	start    time.Time
	deadline time.Time // zero: none
	interval float64   // nanoseconds between due times; 0: closed model
	next     atomic.Int64
}

func (e *engine) progress() Progress {
	n, errs := e.rec.counts()
	return Progress{
		Elapsed:       time.Since(e.start),
		Requests:      n,
		Errors:        errs,
		TotalRequests: e.cfg.Requests,
		TotalDuration: e.cfg.Duration,
	}
}

// work is one worker's loop: claim the next request slot, wait until it is
// due (open model), make the request, record it.
func (e *engine) work(ctx context.Context, c Client, sh *shard) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return
		}
		i := e.next.Add(1) - 1
		if e.cfg.Requests > 0 && i >= e.cfg.Requests {
			return
		}
		var begin time.Time
		var lag time.Duration
		if e.interval > 0 {
			// Every slot has its due time fixed in advance. A slot taken
			// late because every worker was busy counts its wait as
			// latency: that wait is the server's doing. A worker that was
			// idle and slept until the slot was due counts from when it
			// actually sent, so the timer's own lateness (about a
			// millisecond's granularity) is not blamed on the server.
			due := e.start.Add(time.Duration(float64(i) * e.interval))
			if !e.deadline.IsZero() && !due.Before(e.deadline) {
				return
			}
			begin = due
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				begin = time.Now()
			}
			lag = time.Since(due)
		} else {
			begin = time.Now()
			if !e.deadline.IsZero() && !begin.Before(e.deadline) {
				return
			}
		}
		s := c.Do(ctx)
		latency := time.Since(begin)
		if s.Err != nil && ctx.Err() != nil {
			return // aborted by the caller, not a failure of the server
		}
		sh.record(s, latency, lag)
	}
}
