package extract_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/stream"
	"github.com/questlog/questlog/internal/syncbuf"
)

// Records deleted from the topic (--topic-retention, or a cluster's
// retention.ms) after the lake holds them are no gap: the extract goes on
// and lake check is clean. Records deleted before the lake held them are
// a loss: the extract refuses to go on, saying which offsets, and leaves
// the lake as it was.
func TestTopicRetentionTellsTrimFromLoss(t *testing.T) {
	ctx := context.Background()
	addr := startBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	st := lake.Dir(dir)
	want := produce(t, addr, 400, 1)
	if _, err := newExtractor(t, addr, dir).Run(ctx); err != nil {
		t.Fatal(err)
	}
	cp, _, err := lake.ReadCheckpoint(ctx, st, extracttest.Topic)
	if err != nil {
		t.Fatal(err)
	}

	// Trimmed after the lake holds them: every partition up to the
	// checkpoint (Trim keeps a partition's last record).
	before := map[int32]int64{}
	for p, m := range cp.Partitions {
		before[p] = m.Next
	}
	starts, err := stream.Trim(ctx, []string{addr}, extracttest.Topic, before)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := false
	for p, s := range starts {
		trimmed = trimmed || s > cp.Partitions[p].Start
	}
	if !trimmed {
		t.Fatalf("nothing trimmed: starts %v, checkpoint %s", starts, cp)
	}
	want.Add(produce(t, addr, 200, 2))
	if _, err := newExtractor(t, addr, dir).Run(ctx); err != nil {
		t.Fatalf("extract after a trim of what the lake holds: %v", err)
	}
	r := extracttest.CheckLake(t, dir)
	extracttest.SameCounts(t, "lake check after the trim", r.Rows, want.PerType)

	// Trimmed before the lake held them: past the checkpoint.
	cp, _, err = lake.ReadCheckpoint(ctx, st, extracttest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, addr, 200, 3)
	const p = int32(0)
	starts, err = stream.Trim(ctx, []string{addr}, extracttest.Topic, map[int32]int64{p: cp.Partitions[p].Next + 5})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newExtractor(t, addr, dir).Run(ctx)
	var lost *extract.LostError
	if !errors.As(err, &lost) {
		t.Fatalf("extract after records it never had were deleted: %v, want a LostError", err)
	}
	if lost.Partition != p || lost.Next != cp.Partitions[p].Next || lost.LogStart != starts[p] {
		t.Errorf("lost %+v, want partition %d, next %d, log start %d", *lost, p, cp.Partitions[p].Next, starts[p])
	}
	if got, _, _ := lake.ReadCheckpoint(ctx, st, extracttest.Topic); got.String() != cp.String() {
		t.Errorf("checkpoint moved to %s, was %s", got, cp)
	}
	r = extracttest.CheckLake(t, dir)
	extracttest.SameCounts(t, "lake check after the loss", r.Rows, want.PerType)
}

// A lake begun on a topic whose first records were already deleted holds
// only the rest: the extract says so for each such partition, and for no
// other.
func TestExtractWarnsOfATopicTrimmedBeforeTheLake(t *testing.T) {
	ctx := context.Background()
	addr := startBroker(t)
	produce(t, addr, 400, 1)
	starts, err := stream.Trim(ctx, []string{addr}, extracttest.Topic, map[int32]int64{0: 10})
	if err != nil {
		t.Fatal(err)
	}
	if starts[0] == 0 {
		t.Fatalf("partition 0 not trimmed: starts %v", starts)
	}
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := newExtractor(t, addr, filepath.Join(t.TempDir(), "lake"), extract.Logger(log)).Run(ctx); err != nil {
		t.Fatal(err)
	}
	warned := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "records the topic already deleted") {
			warned++
			if want := fmt.Sprintf("partition=0 start=%d", starts[0]); !strings.Contains(line, want) {
				t.Errorf("warning %q, want %q in it", line, want)
			}
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings of a trimmed start, want 1 (partition 0):\n%s", warned, logs.String())
	}
}
