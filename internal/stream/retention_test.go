package stream

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startSmallSegments starts a broker of 4 partitions whose log files roll
// at the smallest size, about 95 records of eventValue: a few thousand
// records make many files.
func startSmallSegments(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{Dir: dir, Topic: "events", Partitions: 4, SegmentBytes: minSegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readOffsets reads the topic like `tail -o start -e` and returns the
// offsets it saw, by partition.
func readOffsets(t *testing.T, b *Broker, start string) map[int32][]int64 {
	t.Helper()
	s, err := ParseStart(start)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := map[int32][]int64{}
	err = Tail(ctx, TailConfig{Brokers: []string{b.Addr()}, Topic: b.topic, Start: s, ExitAtEnd: true}, func(r Record) error {
		got[r.Partition] = append(got[r.Partition], r.Offset)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("reading the topic took over a minute")
	}
	return got
}

// segmentFiles counts a partition's record files (<base offset>.dat).
func segmentFiles(t *testing.T, dir string, p int) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "partitions", "events-"+string(rune('0'+p)), "*.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func starts(u Usage) map[int32]int64 {
	s := map[int32]int64{}
	for _, p := range u.Partitions {
		s[p.Partition] = p.Start
	}
	return s
}

func usage(t *testing.T, b *Broker) Usage {
	t.Helper()
	u, err := b.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Produce, trim, read, close, reopen, read: a trim deletes each
// partition's records below its offset, for consumers, on disk and across a
// restart.
func TestTrimDeletesRecordsBelowOffsetsForGood(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")
	b := startSmallSegments(t, dir)
	defer func() { b.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// 500 records a partition, one to a batch, as the API writes them.
	fill(t, b, 2000, 1, nil)
	full := usage(t, b)
	files0 := segmentFiles(t, dir, 0)
	if files0 < 4 {
		t.Fatalf("partition 0 has %d record files; the test needs several", files0)
	}

	// Partition 0 loses its first 300 records, 1 all but its last (Trim
	// keeps it), 2 is not named, and 3 is asked for offset 0, where it
	// starts already.
	got, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{0: 300, 1: 500, 3: 0})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{0: 300, 1: 499, 2: 0, 3: 0}
	if !maps.Equal(got, want) {
		t.Fatalf("Trim returned starts %v, want %v", got, want)
	}

	// (a) A consumer from the beginning reads only what is left.
	check := func(when string, froms ...string) {
		t.Helper()
		for _, from := range froms {
			read := readOffsets(t, b, from)
			for p, first := range want {
				offs := read[p]
				wantN := 500 - first
				if from == "3" && first < 3 {
					first, wantN = 3, 497
				}
				if int64(len(offs)) != wantN || offs[0] != first {
					t.Errorf("%s, -o %s: partition %d: read %d records from offset %d, want %d from %d", when, from, p, len(offs), offs[0], wantN, first)
				}
			}
		}
	}
	check("after the trim", "beginning", "3")

	// The broker answers a fetch below the start OFFSET_OUT_OF_RANGE, with
	// the new start; kgo's consumers then resume there (the -o 3 above).
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = "events", b.cluster.TopicInfo("events").TopicID // v13 names topics by ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 10, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	resp, err := fetch.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	rp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(rp.ErrorCode); !errors.Is(err, kerr.OffsetOutOfRange) || rp.LogStartOffset != 300 {
		t.Errorf("fetch of partition 0 at offset 10: %v, log start %d; want OFFSET_OUT_OF_RANGE, 300", err, rp.LogStartOffset)
	}

	// (b) Files wholly below the new start are gone at once; the file
	// holding the new start stays whole until it is trimmed past.
	trimmed := usage(t, b)
	if got := segmentFiles(t, dir, 0); got >= files0-1 {
		t.Errorf("partition 0 has %d record files after losing 300 of its 500 records, %d before", got, files0)
	}
	if got := segmentFiles(t, dir, 1); got != 1 {
		t.Errorf("partition 1 has %d record files after losing all but its last record, want 1", got)
	}
	// 799 records of 685 bytes went; partitions 0 and 1 each keep one
	// file with some of them.
	if most := full.Bytes - 799*685 + 2*minSegmentBytes; trimmed.Bytes > most {
		t.Errorf("the directory holds %d bytes after 799 of 2000 records were trimmed, %d before; want at most %d", trimmed.Bytes, full.Bytes, most)
	}
	t.Logf("directory: %d bytes in %d files, after the trim %d bytes in %d files", full.Bytes, full.Files, trimmed.Bytes, trimmed.Files)
	for _, p := range trimmed.Partitions {
		if p.Records() != 500-want[p.Partition] {
			t.Errorf("usage of partition %d: %d records retained, want %d", p.Partition, p.Records(), 500-want[p.Partition])
		}
	}

	// Trimming again to the same offsets changes nothing and is no error
	// (kfake refuses an offset below the start; Trim leaves those alone).
	if got, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{0: 300, 1: 499, 2: 0}); err != nil || !maps.Equal(got, want) {
		t.Errorf("Trim to the same offsets = %v, %v", got, err)
	}

	// (c) After a restart, the trimmed records stay gone, and every
	// partition goes on from its end.
	b.Close()
	b = startSmallSegments(t, dir)
	if got := starts(usage(t, b)); !maps.Equal(got, want) {
		t.Errorf("after a restart, the partitions start at %v, want %v", got, want)
	}
	check("after a restart", "beginning")
	fill(t, b, 4, 1, nil)
	for _, p := range usage(t, b).Partitions {
		if p.End != 501 {
			t.Errorf("partition %d ends at %d after one more record, want 501", p.Partition, p.End)
		}
	}
}

// A partition emptied of every record forgets its end on restart in kfake,
// and would give out offsets the lake already holds: Trim keeps the last
// record of a partition however far it is asked to go.
func TestTrimKeepsEachPartitionsLastRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")
	b := startSmallSegments(t, dir)
	defer func() { b.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fill(t, b, 40, 1, nil)
	got, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{0: 10, 1: 10, 2: 10, 3: 10})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range got {
		if s != 9 {
			t.Errorf("Trim to the end left partition %d starting at %d, want 9 (its last record)", p, s)
		}
	}
	b.Close()
	b = startSmallSegments(t, dir)
	for _, p := range usage(t, b).Partitions {
		if p.Start != 9 || p.End != 10 {
			t.Errorf("after a restart partition %d holds [%d, %d), want [9, 10)", p.Partition, p.Start, p.End)
		}
	}
}

// Trim refuses offsets that do not describe the topic before deleting
// anything, and says which failures a retry may cure.
func TestTrimRefuses(t *testing.T) {
	b := startSmallSegments(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fill(t, b, 400, 1, nil)
	tests := []struct {
		name        string
		topic       string
		before      map[int32]int64
		wantErr     string
		unavailable bool
	}{
		{"past the end", "events", map[int32]int64{0: 50, 1: 101}, "past the end", false},
		{"no such partition", "events", map[int32]int64{0: 50, 7: 1}, "no partition 7", false},
		{"no such topic", "nope", map[int32]int64{0: 1}, "no such topic", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Trim(ctx, []string{b.Addr()}, tt.topic, tt.before)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrUnavailable) != tt.unavailable {
				t.Errorf("Trim(%s, %v) = %v, want an error about %q (unavailable: %v)", tt.topic, tt.before, err, tt.wantErr, tt.unavailable)
			}
		})
	}
	if got := starts(usage(t, b)); !maps.Equal(got, map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}) {
		t.Errorf("refused trims moved the starts to %v", got)
	}

	b.Close()
	short, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	if _, err := Trim(short, []string{b.Addr()}, "events", map[int32]int64{0: 1}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Trim with the broker gone = %v, want ErrUnavailable", err)
	}
	if _, err := OffsetsAt(short, []string{b.Addr()}, "events", time.Now()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("OffsetsAt with the broker gone = %v, want ErrUnavailable", err)
	}
}

// OffsetsAt finds in each partition the first record stamped at or after
// a time: everything below it is older.
func TestOffsetsAt(t *testing.T) {
	b := startSmallSegments(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Record i is stamped t0+i seconds and lands on partition i%4 at
	// offset i/4: partition p's offset o was stamped t0+(4o+p) seconds.
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	fill(t, b, 400, 1, at)

	tests := []struct {
		name string
		t    time.Time
		want map[int32]int64
	}{
		{"before every record", at(-60), map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}},
		{"at record 100", at(100), map[int32]int64{0: 25, 1: 25, 2: 25, 3: 25}},
		{"between records", at(101).Add(-time.Millisecond), map[int32]int64{0: 26, 1: 25, 2: 25, 3: 25}},
		{"at the last record", at(399), map[int32]int64{0: 100, 1: 100, 2: 100, 3: 99}},
		{"after every record", at(400), map[int32]int64{0: 100, 1: 100, 2: 100, 3: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OffsetsAt(ctx, []string{b.Addr()}, "events", tt.t)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("OffsetsAt(t0%+ds) = %v, want %v", int(tt.t.Sub(t0).Seconds()), got, tt.want)
			}
		})
	}

	// Below the start, only what is retained counts.
	if _, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{0: 50}); err != nil {
		t.Fatal(err)
	}
	if got, err := OffsetsAt(ctx, []string{b.Addr()}, "events", at(100)); err != nil || got[0] != 50 {
		t.Errorf("OffsetsAt(t0+100s) after trimming partition 0 to 50 = %v, %v; want 50 for partition 0", got, err)
	}
	if _, err := OffsetsAt(ctx, []string{b.Addr()}, "nope", t0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("OffsetsAt of a missing topic = %v, want an error that is not ErrUnavailable", err)
	}
}

// Kafka gives up a timestamp search in the first segment whose records
// reach the time, even when the ones there were deleted and a later segment
// has one: kadm then answers the end offset, which would have everything
// trimmed. OffsetsAt answers the start instead, and keeps the end where
// every retained record is older.
func TestOffsetsAtWhenKafkaGivesUp(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Dir: filepath.Join(t.TempDir(), "broker"), Topic: "events", Partitions: 1, SegmentBytes: minSegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Four batches of 40 records (about 27 KB each): the first file
	// takes three, the fourth begins a second file. A producer with a
	// clock ahead stamped the second batch.
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	stamps := []time.Duration{0, 300 * time.Second, 150 * time.Second, 400 * time.Second}
	fill(t, b, 160, 40, func(i int) time.Time { return t0.Add(stamps[i/40]) })
	if n := segmentFiles(t, filepath.Join(b.dir), 0); n != 2 {
		t.Fatalf("%d record files, the test needs 2", n)
	}
	// The first two batches go: the first file keeps only the third,
	// stamped t0+150s, below the deleted t0+300s.
	if _, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{0: 80}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		at   time.Duration
		want int64
	}{
		{200 * time.Second, 80}, // the fourth batch, at 120, is as new: Kafka says nothing; not older
		{100 * time.Second, 80}, // the third batch, found
		{500 * time.Second, 160},
	} {
		got, err := OffsetsAt(ctx, []string{b.Addr()}, "events", t0.Add(tt.at))
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tt.want {
			t.Errorf("OffsetsAt(t0+%v) = %d, want %d", tt.at, got[0], tt.want)
		}
	}
}

// Contains cannot say whether deleted records held an event: it says so,
// rather than answer "not there" (which would have the game drop a change
// whose event is in the lake).
func TestProducerContainsRefusesTrimmedRecords(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events"})
	var part int32
	offsets := map[string]int64{}
	for _, id := range []string{"e0", "e1", "e2", "e3"} {
		pt, off, err := p.Publish(ctx, []byte("ada"), []byte(`{"event_id":"`+id+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		part, offsets[id] = pt, off
	}
	if _, err := Trim(ctx, []string{b.Addr()}, "events", map[int32]int64{part: offsets["e2"]}); err != nil {
		t.Fatal(err)
	}
	is := func(id string) func([]byte) bool {
		return func(v []byte) bool { return string(v) == `{"event_id":"`+id+`"}` }
	}
	var trimmed *TrimmedError
	if found, err := p.Contains(ctx, part, offsets["e0"], is("e1")); !errors.As(err, &trimmed) || trimmed.Start != offsets["e2"] {
		t.Errorf("Contains(after e0, e1) with e1 trimmed = %v, %v; want a TrimmedError starting at %d", found, err, offsets["e2"])
	}
	if found, err := p.Contains(ctx, part, offsets["e1"], is("e3")); err != nil || !found {
		t.Errorf("Contains(after e1, e3) with e0 and e1 trimmed = %v, %v; want true", found, err)
	}
}
