package stream

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trimTo trims every partition of the broker's topic to its last keep
// records, and fails the test if that does not hold afterwards.
func trimTo(t *testing.T, b *Broker, keep int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := map[int32]int64{}
	for _, p := range usage(t, b).Partitions {
		before[p.Partition] = p.End - keep
	}
	if _, err := Trim(ctx, []string{b.Addr()}, b.topic, before); err != nil {
		t.Fatal(err)
	}
}

// A broker restarted on a directory to which a million records were
// written, all but the last 20,000 trimmed, takes the memory of one that
// only ever held those 20,000: what a restart costs follows what is kept,
// not what was ever written. Measured in child processes (see
// TestBrokerChild); about 700 MB pass through the disk.
func TestSlowBrokerRestartMemoryFollowsRetainedRecordsNotWritten(t *testing.T) {
	const keep = 5000 // per partition
	root := t.TempDir()

	// The tail alone: 20,000 records, one to a batch as the API writes
	// them under load.
	tailOnly := filepath.Join(root, "tail-only")
	b, err := StartBroker(BrokerConfig{Dir: tailOnly, Topic: "events", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, b, 4*keep, 1, nil)
	b.Close()

	// A million records first (in batches of 1,000, to write them fast:
	// their batches are all deleted), then the same tail, then the trim.
	written := filepath.Join(root, "written")
	b, err = StartBroker(BrokerConfig{Dir: written, Topic: "events", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, b, 1_000_000, 1000, nil)
	fill(t, b, 4*keep, 1, nil)
	full := usage(t, b)
	trimTo(t, b, keep)
	b.Close()

	tr := inChild(t, "measure", tailOnly, 0)
	wr := inChild(t, "measure", written, 0)
	t.Logf("tail only: %s in %d files; started in %v: RSS %s (anonymous %s), peak %s, heap %s",
		mib(tr.Usage.Bytes), tr.Usage.Files, tr.Start.Round(time.Millisecond), mib(tr.RSS), mib(tr.Anon), mib(tr.Peak), mib(tr.HeapInuse))
	t.Logf("1,020,000 written (%s), 20,000 kept: %s in %d files; started in %v: RSS %s (anonymous %s), peak %s, heap %s",
		mib(full.Bytes), mib(wr.Usage.Bytes), wr.Usage.Files, wr.Start.Round(time.Millisecond), mib(wr.RSS), mib(wr.Anon), mib(wr.Peak), mib(wr.HeapInuse))

	for _, p := range wr.Usage.Partitions {
		if p.Records() != keep {
			t.Errorf("partition %d retains %d records after the restart, want %d", p.Partition, p.Records(), keep)
		}
	}
	// The disk: the files wholly trimmed are gone; each partition keeps
	// at most one file that still holds trimmed records.
	if most := tr.Usage.Bytes + 4*DefaultSegmentBytes; wr.Usage.Bytes > most {
		t.Errorf("the trimmed directory holds %s, want at most %s (the tail's %s and a file per partition)", mib(wr.Usage.Bytes), mib(most), mib(tr.Usage.Bytes))
	}
	// The memory once started: within half again the tail's, or 8 MiB of
	// it when that is small (the runtime's own share dominates).
	if most := max(tr.Anon*3/2, tr.Anon+8<<20); wr.Anon > most {
		t.Errorf("restarted after 1M written and 20,000 kept: %s of anonymous memory; the 20,000 alone: %s; want at most %s", mib(wr.Anon), mib(tr.Anon), mib(most))
	}
	// The peak while starting: kfake reads a file per partition at a
	// time, and the heap may grow to twice what is live before a
	// collection.
	if most := tr.Peak + 2*4*DefaultSegmentBytes; wr.Peak > most {
		t.Errorf("restarted after 1M written and 20,000 kept: a peak of %s; the 20,000 alone: %s; want at most %s", mib(wr.Peak), mib(tr.Peak), mib(most))
	}
}

// Trim, then crash: the trimmed files stay deleted, but kfake records a
// partition's start only when it closes (its snapshot.json), so after a
// crash each partition starts at the first record of its oldest remaining
// file, and up to a file of trimmed records is back until the next trim.
func TestTrimThenCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")
	b := startSmallSegments(t, dir)
	fill(t, b, 2000, 1, nil)
	b.Close()

	// A child trims every partition to its last 100 records (from 400 of
	// 500), then is killed.
	r := inChild(t, "trim-then-die", dir, minSegmentBytes, childTrimEnv+"=100")
	if got := starts(r.Usage); got[0] != 400 {
		t.Fatalf("the child trimmed to %v, want 400", got)
	}

	b = startSmallSegments(t, dir)
	defer b.Close()
	for _, p := range usage(t, b).Partitions {
		// A file of the smallest size holds 95 records of 685 bytes.
		if p.Start > 400 || p.Start <= 400-96 || p.End != 500 {
			t.Errorf("after the crash partition %d holds [%d, %d), want [x, 500) with x in the file holding 400", p.Partition, p.Start, p.End)
		}
		t.Logf("after the crash partition %d starts at %d", p.Partition, p.Start)
	}
	trimTo(t, b, 100)
	if got := starts(usage(t, b)); got[0] != 400 || got[3] != 400 {
		t.Errorf("trimmed again after the crash: starts %v, want 400", got)
	}
}

// Not a test: a measurement of what a restart costs per million retained
// events, for choosing a retention default. It writes 1M single-record
// batches (700 MB) to a directory for each segment size in
// QUESTLOG_MEASURE_SEGMENTS (bytes, comma-separated; default
// DefaultSegmentBytes), then measures a restart after a clean stop and one
// after a crash that followed a trim to 800,000 records.
//
//	QUESTLOG_MEASURE_RESTART=1 go test -run TestMeasureRestartMemory -v -timeout 1h ./internal/stream/
func TestMeasureRestartMemory(t *testing.T) {
	if os.Getenv("QUESTLOG_MEASURE_RESTART") == "" {
		t.Skip("a measurement: set QUESTLOG_MEASURE_RESTART=1 to run it")
	}
	segments := []int64{DefaultSegmentBytes}
	if v := os.Getenv("QUESTLOG_MEASURE_SEGMENTS"); v != "" {
		segments = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			segments = append(segments, n)
		}
	}
	report := func(what string, r childReport) {
		var records int64
		for _, p := range r.Usage.Partitions {
			records += p.Records()
		}
		t.Logf("%s: %d records in %s, %d files; started in %v; RSS %s, anonymous %s, peak %s, heap in use %s",
			what, records, mib(r.Usage.Bytes), r.Usage.Files,
			r.Start.Round(time.Millisecond), mib(r.RSS), mib(r.Anon), mib(r.Peak), mib(r.HeapInuse))
		if len(r.Settled) > 0 {
			var settled []string
			for _, s := range r.Settled {
				settled = append(settled, mib(s))
			}
			t.Logf("  anonymous after %s: %v", os.Getenv(childSettleEnv), settled)
		}
	}
	for _, seg := range segments {
		dir := filepath.Join(t.TempDir(), "broker")
		b, err := StartBroker(BrokerConfig{Dir: dir, Topic: "events", Partitions: 4, SegmentBytes: seg})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		fill(t, b, 1_000_000, 1, nil)
		t.Logf("segments of %s: wrote 1M records in %v", mib(seg), time.Since(start).Round(time.Second))
		b.Close()
		report("clean restart", inChild(t, "measure", dir, seg, childSettleEnv+"="+os.Getenv(childSettleEnv)))
		inChild(t, "trim-then-die", dir, seg, childTrimEnv+"=200000")
		report("restart after a crash", inChild(t, "measure", dir, seg))
		report("clean restart after that", inChild(t, "measure", dir, seg))
	}
}
