package compact

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/questlog/questlog/internal/lake"
)

// sized makes a group's files of the given sizes, in offset order, ten
// offsets each.
func sized(sizes ...int64) []lake.DataFile {
	files := make([]lake.DataFile, len(sizes))
	for i, s := range sizes {
		files[i] = lake.DataFile{Part: lake.Part{EventType: "buy_item", Date: "2026-01-01", First: int64(10 * i), Last: int64(10*i + 9)}, Size: s}
	}
	return files
}

func repeat(n int, size int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = size
	}
	return out
}

func TestTier(t *testing.T) {
	if got := tier(0); got != 0 {
		t.Errorf("tier(0) = %d", got)
	}
	bound := int64(tierBase)
	for k := 1; k <= 5; k++ {
		if below, at := tier(bound-1), tier(bound); below != k-1 || at != k {
			t.Errorf("tier(%d) = %d, tier(%d) = %d; want %d, %d", bound-1, below, bound, at, k-1, k)
		}
		bound *= fanIn
	}
}

func TestPlan(t *testing.T) {
	const target = 128 << 20
	const big = target / 2 // sealed
	tests := []struct {
		name   string
		sizes  []int64
		closed bool
		want   [][2]int // runs as [first, last] file indexes
	}{
		{"fewer than fanIn small files wait", repeat(fanIn-1, 4<<10), false, nil},
		{"fanIn small files merge", repeat(fanIn, 4<<10), false, [][2]int{{0, fanIn - 1}}},
		{"a run of one tier merges whole", append(repeat(3, 100<<10), repeat(fanIn+3, 4<<10)...), false, [][2]int{{3, fanIn + 5}}},
		{"neither a sealed file nor another tier joins a run", append(append([]int64{big}, repeat(fanIn, 4<<10)...), 100<<10, 4<<10), false, [][2]int{{1, fanIn}}},
		{"tiers climb: fanIn merged files merge", append(repeat(fanIn, 100<<10), repeat(3, 4<<10)...), false, [][2]int{{0, fanIn - 1}}},
		{"a closed day merges whole", append([]int64{10 << 20, 100 << 10}, repeat(3, 4<<10)...), true, [][2]int{{0, 4}}},
		{"a closed day keeps a late file apart", []int64{10 << 20, 4 << 10}, true, nil},
		{"a closed day merges two files of a size", []int64{10 << 10, 4 << 10}, true, [][2]int{{0, 1}}},
		{"a closed day never merges a sealed file", append(append(repeat(3, 4<<10), big), repeat(2, 4<<10)...), true, [][2]int{{0, 2}, {4, 5}}},
		{"a long run is merged in pieces of the target size", repeat(2*fanIn, 40<<20), false, [][2]int{{0, 2}, {3, 5}, {6, 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := sized(tt.sizes...)
			var got [][2]int
			for _, run := range plan(files, tt.closed, target) {
				first := slices.IndexFunc(files, func(f lake.DataFile) bool { return f.First == run[0].First })
				got = append(got, [2]int{first, first + len(run) - 1})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("runs %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPolicyOverADay plays the policy over a day of one group's files: a
// file every 10 s (1 to 8 KiB), a pass every minute, merged files 0.9 of
// their inputs. Write amplification stays logarithmic, the group holds
// few files all day, and one once the day is over.
func TestPolicyOverADay(t *testing.T) {
	const target = 128 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	var files []lake.DataFile
	var appended, written int64
	most, offset := 0, int64(0)
	pass := func(closed bool) {
		var next []lake.DataFile
		runs := plan(files, closed, target)
		i := 0
		for _, run := range runs {
			for files[i].First != run[0].First {
				next = append(next, files[i])
				i++
			}
			var size int64
			for _, f := range run {
				size += f.Size
			}
			size = size * 9 / 10
			written += size
			next = append(next, lake.DataFile{Part: lake.Part{First: run[0].First, Last: run[len(run)-1].Last}, Size: size})
			i += len(run)
		}
		files = append(next, files[i:]...)
	}
	for roll := range 24 * 360 {
		size := int64(1<<10 + rng.IntN(7<<10))
		files = append(files, lake.DataFile{Part: lake.Part{First: offset, Last: offset + 9}, Size: size})
		offset += 10
		appended += size
		if roll%6 == 5 {
			pass(false)
		}
		most = max(most, len(files))
	}
	pass(false)
	during := len(files)
	pass(true)
	wa := float64(written) / float64(appended)
	t.Logf("%d files a day (%d KiB): at most %d files at once, %d at the end of the day, %d once it is over; each byte written %.1f times by merges",
		24*360, appended>>10, most, during, len(files), wa)
	if wa > 5 || most > 24 || len(files) != 1 {
		t.Errorf("write amplification %.1f (want ≤ 5), at most %d files at once (want ≤ 24), %d after the day (want 1)", wa, most, len(files))
	}
}
