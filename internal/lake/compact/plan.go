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
//   - While the group's day may still get events, a stretch of
//     neighbouring files is merged when fanIn of them are of its highest
//     tier (see tiered). A file's tier is the order of magnitude (base
//     fanIn) of the offsets its name spans, not of its size: a small
//     file's size is mostly its footer (a file of 2 rows and of 20 differ
//     little), so sizes would keep a merged file in the tier of the files
//     it merged and have it rewritten at every pass (tried: 81 rows
//     written per event over a day); offsets tell how much of the
//     partition's stream a file covers, and a merge of fanIn files of one
//     tier covers fanIn times as much: it lands at least a tier higher
//     than any of them, whatever the jitter of the files' spans. A record is rewritten at most once
//     per tier it climbs: about 5 times over a day of 10-second files of a
//     busy type, and a group holds at most fanIn-1 files per tier
//     meanwhile, plus those published since the last pass: about 40 at
//     most (TestPolicyOverADay).
//   - Once the day is over (closeAfter past its end, by the compactor's
//     clock), a segment is merged whole, into files of about the target
//     size: one last rewrite, after which the group holds one file (per
//     target size). A late record makes it two; a segment of two files is
//     merged only when the smaller is at least 1/fanIn of the larger.
//
// A merge writes at most about the target size: a run longer than that
// is merged in pieces.

// fanIn is how many files of one tier a merge takes at least, and the
// ratio between neighbouring tiers: a power of two. 8 rewrites less but
// leaves twice the files meanwhile.
const fanIn = 4

// tier is a file's tier: the order of magnitude, base fanIn, of the
// offsets it spans.
func tier(f lake.DataFile) int {
	return (bits.Len64(uint64(f.Last-f.First+1)) - 1) / bits.Len(fanIn-1)
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
		runs = append(runs, tiered(segment, target)...)
	}
	return runs
}

// tiered returns the runs to merge in a segment of a day that runs: the
// whole segment when fanIn of its files are of its highest tier (the
// files of lower tiers among them go along: they are smaller, and the
// merged file lands a tier higher than any of them), else the runs of the
// stretches between its files of the highest tier.
func tiered(segment []lake.DataFile, target int64) [][]lake.DataFile {
	if len(segment) < fanIn {
		return nil
	}
	top, n := 0, 0
	for _, f := range segment {
		switch t := tier(f); {
		case t > top:
			top, n = t, 1
		case t == top:
			n++
		}
	}
	if n >= fanIn {
		return pieces(segment, target)
	}
	var runs [][]lake.DataFile
	start := 0
	for i, f := range segment {
		if tier(f) == top {
			runs = append(runs, tiered(segment[start:i], target)...)
			start = i + 1
		}
	}
	return append(runs, tiered(segment[start:], target)...)
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
