// Package heapfloor lets a process's heap grow to a floor before the garbage
// collector runs, and collects as GOGC=100 would once the live heap is above
// half the floor.
package heapfloor

// Why: a server whose live heap is a few MiB but that allocates a few KiB a
// request collects dozens of times a second under load (Go's heap goal is
// twice the live heap, at least 4 MiB), and each cycle costs its fixed part
// (stopping the world twice, scanning every goroutine's stack, waking mark
// workers) however little it finds.
//
// How: after each collection (a cleanup on a sentinel object, which runs
// once that collection's sweep is done), GOGC is set so that the runtime's
// next goal, heapMarked + (heapMarked + stacks + globals)×GOGC/100, is the
// floor, and never below GOGC=100's. The runtime also scales its least goal
// with GOGC (4 MiB×GOGC/100), so GOGC is capped at floor×100/4 MiB. Until a
// cleanup has run, the runtime applies the GOGC set for the last cycle: a
// live heap that jumps meanwhile would get a goal up to floor/4 MiB times
// its size, so while GOGC is above 100 a soft memory limit of a few floors
// (unless the user set one) bounds the heap.

import (
	"errors"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

const (
	// base is the GOGC that applies above the floor: Go's default.
	base = 100
	// heapMinimum is the runtime's least heap goal at GOGC=100 (its
	// defaultHeapMinimum; 512 KiB under GOEXPERIMENT=heapminimum512kib,
	// which only makes the floor lower).
	heapMinimum = 4 << 20
	// backstopFloors is the soft memory limit, in floors, while the floor
	// holds GOGC above base and the user set no limit.
	backstopFloors = 4
	// noLimit is the runtime's memory limit when none is set.
	noLimit = math.MaxInt64
)

// A Floor keeps the heap goal at or above its size until Stop.
type Floor struct {
	size uint64

	mu        sync.Mutex
	stopped   bool
	percent   int   // the GOGC set last
	before    int   // the GOGC before Start, restored by Stop
	userLimit bool  // a memory limit was set before Start: never touched
	limit     int64 // the backstop limit set, or noLimit
	sample    []metrics.Sample
}

// sentinel is allocated each cycle for its cleanup to run after the next
// collection. It holds a pointer so that it is never tiny-allocated (a
// tiny block's cleanup may never run).
type sentinel struct{ _ *byte }

// Start sets the heap's floor to size bytes, unless GOGC is set (not empty)
// in the environment: then it returns nil and changes nothing. Stop the
// Floor to give the collector back its earlier settings.
func Start(size uint64) (*Floor, error) {
	if size == 0 {
		return nil, errors.New("heap floor: size must be positive")
	}
	if os.Getenv("GOGC") != "" {
		return nil, nil
	}
	f := &Floor{size: size, limit: noLimit, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userLimit = debug.SetMemoryLimit(-1) != noLimit
	f.before = debug.SetGCPercent(base)
	f.percent = base
	f.tuneLocked()
	f.arm()
	return f, nil
}

// Stop restores the GOGC in force before Start and lifts the backstop
// limit. Safe on a nil Floor and more than once.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	f.setLimitLocked(noLimit)
	debug.SetGCPercent(f.before)
}

// arm has cycle run after the next collection.
func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), (*Floor).cycle, f)
}

// cycle runs after each collection's sweep, on the runtime's cleanup
// goroutine.
func (f *Floor) cycle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.tuneLocked()
	f.arm()
}

// tuneLocked sets GOGC for the next goal to be the floor, or base's goal
// when that is higher, and the backstop limit with it.
func (f *Floor) tuneLocked() {
	metrics.Read(f.sample)
	var v [3]uint64
	for i, s := range f.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := percentFor(f.size, v[0], v[1]+v[2])
	if p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
	if p > base {
		f.setLimitLocked(int64(min(f.size*backstopFloors, math.MaxInt64/2)))
	} else {
		f.setLimitLocked(noLimit)
	}
}

// setLimitLocked sets the backstop memory limit, unless the user set one.
func (f *Floor) setLimitLocked(limit int64) {
	if f.userLimit || limit == f.limit {
		return
	}
	debug.SetMemoryLimit(limit)
	f.limit = limit
}

// percentFor is the GOGC whose goal is floor for a live heap of live bytes
// and roots (goroutine stacks and globals) of roots bytes, or base when
// base's goal is higher.
func percentFor(floor, live, roots uint64) int {
	most := max(base, floor*100/heapMinimum) // the runtime's least goal is then the floor
	if live >= floor {
		return base
	}
	p := most
	if live+roots > 0 {
		// goal = live + (live+roots)×p/100 = floor
		p = min(most, (floor-live)*100/(live+roots))
	}
	return int(max(p, base))
}
