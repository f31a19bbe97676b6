package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/service"
)

// recorder notes the order in which parts start and stop.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, " ")
}

// part is a test part: it may fail to start, fail to stop, or fail later.
type part struct {
	name     string
	rec      *recorder
	startErr error
	stopErr  error
	failed   chan error
	slowStop bool
}

func (p *part) String() string { return p.name }

func (p *part) Start(context.Context) error {
	p.rec.add("start:" + p.name)
	return p.startErr
}

func (p *part) Stop(ctx context.Context) error {
	p.rec.add("stop:" + p.name)
	if p.slowStop {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.stopErr
}

func (p *part) Failed() <-chan error { return p.failed }

func TestGroupStartsInOrderAndStopsInReverse(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		parts   func(r *recorder) []service.Part
		wantLog string
		wantErr string
	}{
		{
			name: "all start",
			parts: func(r *recorder) []service.Part {
				return []service.Part{&part{name: "a", rec: r}, &part{name: "b", rec: r}, &part{name: "c", rec: r}}
			},
			wantLog: "start:a start:b start:c stop:c stop:b stop:a",
		},
		{
			name: "a failed start stops what started, in reverse",
			parts: func(r *recorder) []service.Part {
				return []service.Part{&part{name: "a", rec: r}, &part{name: "b", rec: r}, &part{name: "c", rec: r, startErr: boom}, &part{name: "d", rec: r}}
			},
			wantLog: "start:a start:b start:c stop:b stop:a",
			wantErr: "start c: boom",
		},
		{
			name: "stop errors are joined and every part is stopped",
			parts: func(r *recorder) []service.Part {
				return []service.Part{&part{name: "a", rec: r, stopErr: boom}, &part{name: "b", rec: r, stopErr: boom}}
			},
			wantLog: "start:a start:b stop:b stop:a",
			wantErr: "stop b: boom\nstop a: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			g := service.NewGroup(nil, tt.parts(r)...)
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // Run returns as soon as the group started
			err := g.Run(ctx, nil)
			if got := r.String(); got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
			if (err == nil) != (tt.wantErr == "") || err != nil && err.Error() != tt.wantErr {
				t.Errorf("Run = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A part that fails after it started stops the others; Run returns its
// error, named.
func TestGroupStopsWhenAPartFails(t *testing.T) {
	r := &recorder{}
	b := &part{name: "b", rec: r, failed: make(chan error, 1)}
	g := service.NewGroup(nil, &part{name: "a", rec: r}, b, &part{name: "c", rec: r})
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- g.Run(context.Background(), func() { close(ready) }) }()
	<-ready
	b.failed <- errors.New("listener closed")
	select {
	case err := <-done:
		if err == nil || err.Error() != "b: listener closed" {
			t.Errorf("Run = %v, want b's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a part failed")
	}
	if got, want := r.String(), "start:a start:b start:c stop:c stop:b stop:a"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

// A part whose Stop hangs is given StopTimeout, and the others still stop.
func TestGroupBoundsEachStop(t *testing.T) {
	r := &recorder{}
	g := service.NewGroup(nil, &part{name: "a", rec: r}, &part{name: "b", rec: r, slowStop: true})
	g.StopTimeout = 50 * time.Millisecond
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := g.Stop(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want b's deadline", err)
	}
	if got, want := r.String(), "start:a start:b stop:b stop:a"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

// Named and Funcs: a name in errors, functions as a part.
func TestNamedFuncs(t *testing.T) {
	var stopped bool
	p := service.Named("store", service.Funcs{
		OnStart: func(context.Context) error { return errors.New("disk full") },
		OnStop:  func(context.Context) error { stopped = true; return nil },
	})
	g := service.NewGroup(nil, p)
	if err := g.Start(context.Background()); err == nil || err.Error() != "start store: disk full" {
		t.Errorf("Start = %v, want the named error", err)
	}
	if stopped {
		t.Error("a part that failed to start was stopped")
	}
}
