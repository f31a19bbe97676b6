// Package heapfloor lets a process's heap grow to a floor before the garbage
// collector runs, and collects as GOGC=100 would above it.
//
// A server whose live heap is a few MiB but that allocates a few KiB per
// request collects dozens of times a second under load: Go's heap goal is
// twice the live heap (GOGC=100), at least 4 MiB, and each cycle costs its
// fixed part (stopping the world twice, scanning every goroutine's stack,
// waking mark workers) however little it finds. With a floor of 64 MiB the
// same server collects a few times a second, for at most that much more
// memory; a process whose live heap is above the floor collects as it
// would without one.
//
// After each collection the live heap is read and GOGC set so that the next
// goal is max(floor, live×(1+base/100)). A GOGC set by the user in the
// environment (GOGC=off included) wins: Start then changes nothing. A
// memory limit (GOMEMLIMIT) still bounds the heap as the runtime says.
package heapfloor

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// base is the GOGC that applies above the floor: Go's default.
const base = 100

// heapMinimum is the runtime's least heap goal at GOGC=100 (4 MiB), which
// it scales with GOGC: a GOGC of p never lets the goal fall below
// heapMinimum×p/100, whatever the live heap. The floor's GOGC is capped
// so that this minimum is the floor at most.
const heapMinimum = 4 << 20

// A Floor keeps the heap goal at or above its size until Stop.
type Floor struct {
	size    uint64
	mu      sync.Mutex
	stopped bool
	percent int // the GOGC last set
	before  int // the GOGC before Start, restored by Stop
	sample  []metrics.Sample
}

// sentinel is allocated each cycle for its cleanup to run after the next
// collection. It holds a pointer so that it is never tiny-allocated (a
// tiny block's cleanup may never run).
type sentinel struct{ _ *byte }

// Start sets the heap's floor to size bytes, unless GOGC is set in the
// environment (then it returns nil and changes nothing). Stop the Floor
// to give the collector back its earlier setting.
func Start(size uint64) (*Floor, error) {
	if size == 0 {
		return nil, fmt.Errorf("heap floor: size must be positive")
	}
	if _, set := os.LookupEnv("GOGC"); set {
		return nil, nil
	}
	f := &Floor{size: size, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = debug.SetGCPercent(base)
	f.percent = base
	f.tuneLocked()
	f.arm()
	return f, nil
}

// Stop restores the GOGC in force before Start. Safe on a nil Floor and
// more than once.
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
	debug.SetGCPercent(f.before)
}

// Percent is the GOGC the floor set last.
func (f *Floor) Percent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// arm has cycle run after the next collection.
func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), (*Floor).cycle, f)
}

// cycle runs after each collection, on the runtime's cleanup goroutine.
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
// when that is higher.
func (f *Floor) tuneLocked() {
	metrics.Read(f.sample)
	var live uint64
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	p := percentFor(f.size, live)
	if p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
}

// percentFor is the GOGC whose goal for a live heap of live bytes is
// floor, or base when base's goal is higher.
func percentFor(floor, live uint64) int {
	most := max(base, floor*100/heapMinimum) // the runtime's minimum is then the floor
	if live >= floor {
		return base
	}
	p := most
	if live > 0 {
		// goal = max(live×(1+p/100), heapMinimum×p/100) ≥ floor
		p = min(most, (floor-live)*100/live)
	}
	return int(max(p, base))
}
