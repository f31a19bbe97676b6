package compact

import (
	"math/bits"

	"github.com/questlog/questlog/internal/lake"
)

// The merge policy.
//
// A group's files, in offset order, are cut into segments by its sealed
// files (at least half the target size: never rewritten). Within a
// segment:
//
//   - While the group's day may still get events, runs of fanIn or more
//     neighbouring files of the same size tier are merged (size-tiered:
//     a tier spans a factor of fanIn in size). A record is rewritten about
//     once per tier it climbs, log_fanIn(day's size / tierBase) times:
//     4 or 5 times for a day of 10-second files (TestPolicyOverADay); a
//     group holds at most fanIn-1 files per tier meanwhile, plus those
//     published since the last pass.
//   - Once the day is over (closeAfter past its end, by the compactor's
//     clock), a segment is merged whole, into files of about the target
//     size: one last rewrite, after which the group holds one file (per
//     target size). A late record makes it two; a segment of two files is
//     merged only when the smaller is at least 1/fanIn of the larger.
//
// A merge writes at most about the target size: a run longer than that
// is merged in pieces.

const (
	// fanIn is how many files of one tier a merge takes at least, and the
	// ratio between the sizes of neighbouring tiers: a power of two. 8
	// rewrites less (3.5 times a byte over TestPolicyOverADay's day,
	// against 4.6) but leaves more files (32 at most, against 19).
	fanIn = 4
	// tierBase is the size below which every file is in the first tier.
	tierBase = 32 << 10
)

// tier is a file's size tier: 0 below tierBase, then one more for each
// factor of fanIn.
func tier(size int64) int {
	if size < tierBase {
		return 0
	}
	return 1 + (bits.Len64(uint64(size/tierBase))-1)/bits.Len(fanIn-1)
}

// plan returns the runs of a group's files to merge: files are the
// group's files the checkpoint has passed, in offset order; closed says
// its day is over.
func plan(files []lake.DataFile, closed bool, target int64) [][]lake.DataFile {
	var runs [][]lake.DataFile
	seg := 0 // where the current segment starts
	for i := 0; i <= len(files); i++ {
		if i < len(files) && files[i].Size < target/2 {
			continue
		}
		segment := files[seg:i]
		seg = i + 1
		if closed {
			// Two files stay two when one is much the smaller: a late
			// record is not worth rewriting the day.
			if len(segment) >= 3 || len(segment) == 2 && min(segment[0].Size, segment[1].Size)*fanIn >= max(segment[0].Size, segment[1].Size) {
				runs = append(runs, pieces(segment, target)...)
			}
			continue
		}
		for j := 0; j < len(segment); {
			k := j + 1
			for k < len(segment) && tier(segment[k].Size) == tier(segment[j].Size) {
				k++
			}
			if k-j >= fanIn {
				runs = append(runs, pieces(segment[j:k], target)...)
			}
			j = k
		}
	}
	return runs
}

// pieces cuts a run into neighbouring runs of at most about target bytes,
// each of two files or more.
func pieces(run []lake.DataFile, target int64) [][]lake.DataFile {
	var out [][]lake.DataFile
	start, size := 0, int64(0)
	for i, f := range run {
		if i > start && size+f.Size > target {
			if i-start >= 2 {
				out = append(out, run[start:i])
			}
			start, size = i, 0
		}
		size += f.Size
	}
	if len(run)-start >= 2 {
		out = append(out, run[start:])
	}
	return out
}
