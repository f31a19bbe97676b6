package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercentFor(t *testing.T) {
	tests := []struct {
		name               string
		floor, live, roots uint64
		want               int
	}{
		{"small live heap: the runtime's least goal is the floor", 64 * mib, 2 * mib, 0, 1600},
		{"live heap at an eighth of the floor", 64 * mib, 8 * mib, 0, 700},
		{"roots count as the runtime counts them", 64 * mib, 3 * mib, 30 * mib, 184},
		{"live heap at half the floor: base", 64 * mib, 32 * mib, 0, base},
		{"live heap just under half the floor", 64 * mib, 30 * mib, 0, 113},
		{"live heap above the floor: base", 64 * mib, 100 * mib, 0, base},
		{"live heap at the floor: base", 64 * mib, 64 * mib, 0, base},
		{"nothing measured yet: the runtime's least goal is the floor", 64 * mib, 0, 0, 1600},
		{"a few bytes live: the same", 64 * mib, 100, 0, 1600},
		{"a floor under the runtime's least goal: base", 2 * mib, 100, 0, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := percentFor(tt.floor, tt.live, tt.roots)
			if p != tt.want {
				t.Errorf("percentFor(%d, %d, %d) = %d, want %d", tt.floor, tt.live, tt.roots, p, tt.want)
			}
			// The runtime's goal at that GOGC is the floor, or base's
			// goal when that is more (to within the percent's
			// rounding), and never more.
			goal := max(tt.live+(tt.live+tt.roots)*uint64(p)/100, heapMinimum*uint64(p)/100)
			want := max(tt.floor, tt.live+tt.live+tt.roots, heapMinimum)
			slack := (tt.live + tt.roots) / 100
			if goal+slack < want || goal > want+slack {
				t.Errorf("GOGC %d: goal %d for %d live and %d of roots, want %d", p, goal, tt.live, tt.roots, want)
			}
		})
	}
}

// sink keeps allocations from being optimized away.
var sink []byte

// churn allocates n bytes of garbage in 4 KiB pieces, as requests do, and
// returns how many collections ran meanwhile.
func churn(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n / 4096 {
		sink = make([]byte, 4096)
	}
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

// readRuntime reads the runtime's own GOGC, heap goal and memory limit.
func readRuntime() (gogc int, goal uint64, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64()), s[1].Value.Uint64(), int64(s[2].Value.Uint64())
}

// eventually collects until the runtime's settings satisfy ok (a floor's
// cleanup runs after a collection's sweep, on another goroutine), or 10 s
// pass; it returns the last settings read.
func eventually(ok func(gogc int, goal uint64, limit int64) bool) (int, uint64, int64) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		gogc, goal, limit := readRuntime()
		if ok(gogc, goal, limit) || time.Now().After(deadline) {
			return gogc, goal, limit
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// clearGCSettings makes the test start from GOGC=150 (so that Stop's
// restoring it shows), no memory limit and no GOGC in the environment
// (Start steps aside when it is set); the test's cleanup puts back what the
// test binary had.
func clearGCSettings(t *testing.T) {
	t.Helper()
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	oldPercent := debug.SetGCPercent(150)
	oldLimit := debug.SetMemoryLimit(noLimit)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
}

// The floor's whole point: far fewer collections for the same garbage while
// the live heap is small, with a backstop limit; GOGC=100's behaviour and no
// limit once the live heap is above half the floor; and Stop gives back the
// settings it found, a pending cleanup changing nothing after it.
func TestFloor(t *testing.T) {
	clearGCSettings(t)
	debug.SetGCPercent(100)
	runtime.GC()
	without := churn(256 << 20)
	debug.SetGCPercent(150)

	const floor = 64 * mib
	f, err := Start(floor)
	if err != nil || f == nil {
		t.Fatalf("Start = %v, %v", f, err)
	}
	stopped := false
	defer func() {
		if !stopped {
			f.Stop()
		}
	}()

	// A small live heap: the goal is the floor, with the backstop.
	gogc, goal, limit := eventually(func(gogc int, goal uint64, _ int64) bool { return gogc > base && goal >= floor*9/10 })
	if gogc <= base || goal < floor*9/10 || goal > 2*floor {
		t.Errorf("small live heap: GOGC %d, heap goal %d MiB; want more than %d and about %d MiB", gogc, goal/mib, base, floor/mib)
	}
	if limit != backstopFloors*floor {
		t.Errorf("small live heap: memory limit %d, want the backstop %d", limit, backstopFloors*floor)
	}
	with := churn(256 << 20)
	t.Logf("collections for 256 MiB of garbage: %d at GOGC=100, %d with a 64 MiB floor", without, with)
	// About 4 collections (256 MiB over a 64 MiB goal, each triggered
	// at least 70% of the way there), where the 4 MiB goal of GOGC=100
	// makes dozens.
	if with < 2 || with > 8 || with*4 > without {
		t.Errorf("%d collections with a 64 MiB floor (GOGC=100: %d), want 2 to 8 and at most a quarter as many", with, without)
	}

	// A live heap above the floor: GOGC=100 and no limit, as the runtime
	// sees it.
	live := make([]byte, 96*mib)
	gogc, goal, limit = eventually(func(gogc int, _ uint64, limit int64) bool { return gogc == base && limit == noLimit })
	if gogc != base || limit != noLimit || goal < 2*96*mib || goal > 3*96*mib {
		t.Errorf("96 MiB live over a 64 MiB floor: GOGC %d, goal %d MiB, limit %d; want %d, about %d MiB, none", gogc, goal/mib, limit, base, 2*96)
	}
	runtime.KeepAlive(live)
	live = nil

	// Back under the floor, then Stop: the settings from before Start,
	// however many collections follow.
	eventually(func(gogc int, _ uint64, _ int64) bool { return gogc > base })
	f.Stop()
	f.Stop() // twice is harmless
	stopped = true
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if gogc, _, limit := readRuntime(); gogc != 150 || limit != noLimit {
		t.Errorf("after Stop: GOGC %d, limit %d; want the 150 and no limit from before Start", gogc, limit)
	}
}

// A memory limit the user set is never changed.
func TestFloorLeavesTheUsersLimit(t *testing.T) {
	clearGCSettings(t)
	debug.SetMemoryLimit(1 << 40)
	f, err := Start(64 * mib)
	if err != nil || f == nil {
		t.Fatalf("Start = %v, %v", f, err)
	}
	gogc, _, limit := eventually(func(gogc int, _ uint64, _ int64) bool { return gogc > base })
	if gogc <= base || limit != 1<<40 {
		t.Errorf("GOGC %d, limit %d; want above %d and the user's %d", gogc, limit, base, int64(1<<40))
	}
	f.Stop()
	if _, _, limit := readRuntime(); limit != 1<<40 {
		t.Errorf("after Stop the limit is %d, want the user's %d", limit, int64(1<<40))
	}
}

func TestGOGCInTheEnvironmentWins(t *testing.T) {
	for _, v := range []string{"200", "off", "100"} {
		t.Run(v, func(t *testing.T) {
			clearGCSettings(t)
			t.Setenv("GOGC", v)
			f, err := Start(64 * mib)
			if err != nil || f != nil {
				t.Fatalf("Start with GOGC=%s = %v, %v; want nil, nil", v, f, err)
			}
			f.Stop() // a nil Floor stops
			if gogc, _, limit := readRuntime(); gogc != 150 || limit != noLimit {
				t.Errorf("GOGC %d, limit %d after Start with GOGC=%s; want both unchanged", gogc, limit, v)
			}
		})
	}
	t.Run("empty, as the runtime reads it, is no GOGC", func(t *testing.T) {
		clearGCSettings(t)
		t.Setenv("GOGC", "")
		f, err := Start(64 * mib)
		if err != nil || f == nil {
			t.Fatalf("Start with GOGC empty = %v, %v; want a Floor", f, err)
		}
		f.Stop()
	})
}

func TestZeroFloorIsAnError(t *testing.T) {
	if _, err := Start(0); err == nil {
		t.Fatal("Start(0) = nil error, want one")
	}
}
