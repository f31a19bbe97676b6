package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		floor, live uint64
		want        int
	}{
		{"small live heap: the runtime's minimum is the floor", 64 * mib, 2 * mib, 1600},
		{"live heap at an eighth of the floor", 64 * mib, 8 * mib, 700},
		{"live heap at half the floor: base", 64 * mib, 32 * mib, base},
		{"live heap just under half the floor", 64 * mib, 30 * mib, 113},
		{"live heap above the floor: base", 64 * mib, 100 * mib, base},
		{"live heap at the floor: base", 64 * mib, 64 * mib, base},
		{"no live heap yet: the runtime's minimum is the floor", 64 * mib, 0, 1600},
		{"a few bytes live: the same", 64 * mib, 100, 1600},
		{"a floor under the runtime's minimum: base", 2 * mib, 100, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentFor(tt.floor, tt.live); got != tt.want {
				t.Errorf("percentFor(%d, %d) = %d, want %d", tt.floor, tt.live, got, tt.want)
			}
			// The goal GOGC gives is the floor, or more when base's
			// is more (to within the percent's rounding, live/100), and
			// never more than that.
			p := uint64(percentFor(tt.floor, tt.live))
			goal := max(tt.live*(100+p)/100, heapMinimum*p/100)
			want := max(tt.floor, 2*tt.live, heapMinimum)
			if goal+tt.live/100 < want || goal > want+tt.live/100 {
				t.Errorf("GOGC %d: goal %d for %d live, want %d", p, goal, tt.live, want)
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
	for i := 0; i < n/4096; i++ {
		sink = make([]byte, 4096)
	}
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

// waitPercent waits for the floor's tuning after a collection to reach want.
func waitPercent(t *testing.T, f *Floor, want func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := f.Percent()
		if want(p) || time.Now().After(deadline) {
			return p
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// The floor's whole point: far fewer collections for the same garbage while
// the live heap is small, and GOGC=100's behaviour once it is above the
// floor; Stop gives back the setting it found.
func TestFloorCollectsLessUntilTheLiveHeapIsAboveIt(t *testing.T) {
	// Start steps aside when GOGC is set at all: unset it for this test
	// (t.Setenv's cleanup puts back what the test binary had).
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	runtime.GC()
	without := churn(256 << 20)

	f, err := Start(64 << 20)
	if err != nil || f == nil {
		t.Fatalf("Start = %v, %v", f, err)
	}
	runtime.GC()
	if p := waitPercent(t, f, func(p int) bool { return p > base }); p <= base {
		t.Fatalf("with a small live heap the floor set GOGC %d, want more than %d", p, base)
	}
	with := churn(256 << 20)
	t.Logf("collections for 256 MiB of garbage: %d without the floor, %d with a 64 MiB floor", without, with)
	// 256 MiB of garbage over a 64 MiB goal: about 4 collections, where
	// the 4 MiB goal of GOGC=100 makes dozens.
	if with < 2 || with > 8 || with*4 > without {
		t.Errorf("%d collections with a 64 MiB floor (without: %d), want 2 to 8 and at most a quarter as many", with, without)
	}

	// A live heap above the floor: back to GOGC=100.
	live := make([]byte, 96<<20)
	for i := range live {
		live[i] = 1 // touch it, so that it is really in use
	}
	runtime.GC()
	if p := waitPercent(t, f, func(p int) bool { return p == base }); p != base {
		t.Errorf("with 96 MiB live above a 64 MiB floor GOGC is %d, want %d", p, base)
	}
	runtime.KeepAlive(live)

	f.Stop()
	f.Stop() // twice is harmless
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after Stop GOGC is %d, want the 100 set before Start", got)
	}
}

func TestUserGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "200")
	old := debug.SetGCPercent(200)
	defer debug.SetGCPercent(old)
	f, err := Start(64 << 20)
	if err != nil || f != nil {
		t.Fatalf("Start with GOGC set = %v, %v; want nil, nil", f, err)
	}
	f.Stop() // a nil Floor stops
	if got := debug.SetGCPercent(200); got != 200 {
		t.Errorf("GOGC is %d after Start with GOGC=200 in the environment, want 200", got)
	}
}

func TestZeroFloorIsAnError(t *testing.T) {
	if _, err := Start(0); err == nil {
		t.Fatal("Start(0) = nil error, want one")
	}
}
