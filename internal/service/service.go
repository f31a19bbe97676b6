// Package service is the lifecycle every long-lived part of questlog
// follows, and the ordered list of parts that a process runs.
//
// A part is constructed and validated by its own package (New...); Start
// returns once it is ready to be used, or with the error that stopped it;
// Stop drains what it holds and releases it, within its context. A part
// that can fail after it started (a listener whose Serve returns, a
// follower that dies) also reports that on Failed. A Group starts its
// parts in order, each once the one before is ready, and stops them in
// reverse; Run does both around a wait for the context or for the first
// part that fails.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// Part is one long-lived piece of a process: a broker, a store, a
// producer, a listener, a follower.
type Part interface {
	// Start makes the part ready: when it returns nil the part is usable
	// (its listener accepts, its connection answered). On error it has
	// released whatever it took.
	Start(ctx context.Context) error
	// Stop drains and releases the part. It is called once, and only
	// after a Start that succeeded.
	Stop(ctx context.Context) error
}

// Watched is a Part that can fail after it started: Failed delivers the
// error that stopped it (and then nothing more).
type Watched interface {
	Part
	Failed() <-chan error
}

// Named gives a part a name for errors and logs.
func Named(name string, p Part) Part { return named{name, p} }

type named struct {
	name string
	Part
}

func (n named) String() string { return n.name }

// Failed forwards to the part when it is Watched.
func (n named) Failed() <-chan error {
	if w, ok := n.Part.(Watched); ok {
		return w.Failed()
	}
	return nil
}

// Funcs is a part made of functions, for parts that are a constructor and
// a Close (a store opened by Start).
type Funcs struct {
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start calls OnStart, when set.
func (f Funcs) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

// Stop calls OnStop, when set.
func (f Funcs) Stop(ctx context.Context) error {
	if f.OnStop == nil {
		return nil
	}
	return f.OnStop(ctx)
}

// Group is an ordered list of parts, started in order and stopped in
// reverse.
type Group struct {
	parts   []Part
	started int
	log     *slog.Logger
	// StopTimeout bounds each part's Stop; default 30s.
	StopTimeout time.Duration
}

// NewGroup returns a group of parts; log (nil: slog.Default) hears when
// each part starts and stops.
func NewGroup(log *slog.Logger, parts ...Part) *Group {
	if log == nil {
		log = slog.Default()
	}
	return &Group{parts: parts, log: log, StopTimeout: 30 * time.Second}
}

// Add appends parts, to be started after those already in the group.
func (g *Group) Add(parts ...Part) { g.parts = append(g.parts, parts...) }

// Start starts each part that is not started yet, in order, each once the
// one before is ready. When one fails, it stops the parts it started, in
// reverse, and returns that part's error.
func (g *Group) Start(ctx context.Context) error {
	for g.started < len(g.parts) {
		p := g.parts[g.started]
		if err := p.Start(ctx); err != nil {
			err = fmt.Errorf("start %s: %w", nameOf(p), err)
			return errors.Join(err, g.Stop(context.WithoutCancel(ctx)))
		}
		g.log.Debug("started", "part", nameOf(p))
		g.started++
	}
	return nil
}

// Stop stops the started parts in reverse order, each within StopTimeout,
// and returns their errors joined.
func (g *Group) Stop(ctx context.Context) error {
	var errs []error
	for ; g.started > 0; g.started-- {
		p := g.parts[g.started-1]
		sctx, cancel := context.WithTimeout(ctx, g.StopTimeout)
		if err := p.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", nameOf(p), err))
		}
		cancel()
		g.log.Debug("stopped", "part", nameOf(p))
	}
	return errors.Join(errs...)
}

// Wait blocks until ctx ends (nil) or a started part fails (its error,
// named).
func (g *Group) Wait(ctx context.Context) error {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	var from []Part
	for _, p := range g.parts[:g.started] {
		w, ok := p.(Watched)
		if !ok {
			continue
		}
		if ch := w.Failed(); ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
			from = append(from, p)
		}
	}
	i, v, ok := reflect.Select(cases)
	if i == 0 {
		return nil
	}
	err, _ := v.Interface().(error)
	if !ok || err == nil {
		err = errors.New("stopped unexpectedly")
	}
	return fmt.Errorf("%s: %w", nameOf(from[i-1]), err)
}

// Run starts the group, waits for ctx or a failing part, and stops the
// group. It returns the error that ended it (nil when ctx did) joined with
// the errors of stopping.
func (g *Group) Run(ctx context.Context, ready func()) error {
	if err := g.Start(ctx); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	err := g.Wait(ctx)
	return errors.Join(err, g.Stop(context.WithoutCancel(ctx)))
}

func nameOf(p Part) string {
	if s, ok := p.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", p)
}
