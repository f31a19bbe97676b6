package compact

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/questlog/questlog/internal/lake"
)

// spec is one file of a group: the offsets its name spans and its size.
type spec struct{ span, size int64 }

// group makes a group's files of specs, in offset order, each starting
// where the last ended.
func group(specs ...spec) []lake.DataFile {
	files := make([]lake.DataFile, len(specs))
	first := int64(0)
	for i, s := range specs {
		files[i] = lake.DataFile{Part: lake.Part{EventType: "buy_item", Date: "2026-01-01", First: first, Last: first + s.span - 1}, Size: s.size}
		first += s.span
	}
	return files
}

func repeat(n int, s spec) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestTier(t *testing.T) {
	bound := int64(1)
	for k := 0; k <= 5; k++ {
		at := lake.DataFile{Part: lake.Part{First: 10, Last: 10 + bound - 1}}
		below := lake.DataFile{Part: lake.Part{First: 10, Last: 10 + bound - 2}}
		if got := tier(at); got != k || k > 0 && tier(below) != k-1 {
			t.Errorf("a file spanning %d offsets is in tier %d, one spanning %d in tier %d; want %d, %d", bound, got, bound-1, tier(below), k, k-1)
		}
		bound *= fanIn
	}
}

func TestPlan(t *testing.T) {
	const target = 128 << 20
	roll := spec{30, 4 << 10}  // a roll's file: tier 2
	four := spec{120, 9 << 10} // fanIn rolls merged: tier 3
	sealed := spec{30, target / 2}
	tests := []struct {
		name   string
		specs  []spec
		closed bool
		want   [][2]int // runs as [first, last] file indexes
	}{
		{"fewer than fanIn files of a roll wait", repeat(fanIn-1, roll), false, nil},
		{"fanIn files of a roll merge", repeat(fanIn, roll), false, [][2]int{{0, fanIn - 1}}},
		{"a run of one tier merges whole", append(repeat(3, spec{500, 100 << 10}), repeat(fanIn+3, roll)...), false, [][2]int{{3, fanIn + 5}}},
		{"neither a sealed file nor another tier joins a run", append(append([]spec{sealed}, repeat(fanIn, roll)...), four, roll), false, [][2]int{{1, fanIn}}},
		{"tiers climb: fanIn merged files merge, newer ones along", append(repeat(fanIn, four), repeat(3, roll)...), false, [][2]int{{0, fanIn + 2}}},
		{"files of a roll jitter across a tier's bound", []spec{{14, 4 << 10}, {17, 4 << 10}, {15, 4 << 10}, {16, 4 << 10}, {20, 4 << 10}, {18, 4 << 10}}, false, [][2]int{{0, 5}}},
		{"fewer than fanIn of the highest tier: the stretches between them", append(append([]spec{four, roll, four}, repeat(fanIn, roll)...), four), false, [][2]int{{3, fanIn + 2}}},
		{"small files of a rare type merge as files of a roll do", repeat(fanIn, spec{1, 3 << 10}), false, [][2]int{{0, fanIn - 1}}},
		{"a closed day merges whole", append([]spec{{5000, 10 << 20}, four}, repeat(3, roll)...), true, [][2]int{{0, 4}}},
		{"a closed day keeps a late file apart", []spec{{5000, 10 << 20}, roll}, true, nil},
		{"a closed day merges two files of a size", []spec{{60, 10 << 10}, roll}, true, [][2]int{{0, 1}}},
		{"a closed day never merges a sealed file", append(append(repeat(3, roll), sealed), repeat(2, roll)...), true, [][2]int{{0, 2}, {4, 5}}},
		{"a long run is merged in pieces of the target size", repeat(2*fanIn, spec{30, 40 << 20}), false, [][2]int{{0, 2}, {3, 5}, {6, 7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := group(tt.specs...)
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
// file every 10 s (a roll), a pass every minute. A file's size is mostly
// its footer (4 KiB) plus 100 bytes a row; a merged file has the rows of
// its inputs under one footer. Rows are rewritten a bounded number of
// times (log_fanIn of the day's rolls), the group holds few files all day,
// and one once the day is over: for a busy type (rows in every roll) and
// a rare one (a row every 20 rolls).
func TestPolicyOverADay(t *testing.T) {
	const target = 128 << 20
	const footer = 4 << 10
	for _, tc := range []struct {
		name  string
		every int // rolls between two of the group's files
		rows  int // rows a file has, 1 to rows
	}{{"a busy type", 1, 12}, {"a rare type", 20, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			type file struct {
				lake.DataFile
				rows int64
			}
			var files []file
			var appended, written int64
			most := 0
			pass := func(closed bool) {
				group := make([]lake.DataFile, len(files))
				for i, f := range files {
					group[i] = f.DataFile
				}
				var next []file
				i := 0
				for _, run := range plan(group, closed, target) {
					for files[i].First != run[0].First {
						next = append(next, files[i])
						i++
					}
					var rows int64
					for range run {
						rows += files[i].rows
						i++
					}
					written += rows
					next = append(next, file{lake.DataFile{Part: lake.Part{First: run[0].First, Last: run[len(run)-1].Last}, Size: footer + 100*rows}, rows})
				}
				files = append(next, files[i:]...)
			}
			const perRoll = 29 // the partition's offsets in a roll
			for roll := range int64(24 * 360) {
				if roll%int64(tc.every) == 0 {
					rows := int64(1 + rng.IntN(tc.rows))
					first := roll*perRoll + rng.Int64N(5)
					last := first + min(perRoll-6, (rows-1)*perRoll/int64(tc.rows))
					files = append(files, file{lake.DataFile{Part: lake.Part{First: first, Last: last}, Size: footer + 100*rows}, rows})
					appended += rows
				}
				if roll%6 == 5 {
					pass(false)
				}
				most = max(most, len(files))
			}
			pass(false)
			during := len(files)
			pass(true)
			wa := float64(written) / float64(appended)
			t.Logf("%d rows a day: at most %d files at once, %d at the end of the day, %d once it is over; each row written %.1f times by merges",
				appended, most, during, len(files), wa)
			if wa > 8 || most > 40 || len(files) != 1 {
				t.Errorf("each row written %.1f times (want ≤ 8), at most %d files at once (want ≤ 40), %d after the day (want 1)", wa, most, len(files))
			}
		})
	}
}
