package extract_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
)

// worker is one extract of a consumer group, running in the background.
type worker struct {
	e    *extract.Extractor
	stop context.CancelFunc
	done chan error
}

func startWorker(t *testing.T, addr, dir string, opts ...extract.Option) *worker {
	t.Helper()
	e := newExtractor(t, addr, dir, append([]extract.Option{
		extract.Follow(), extract.Group("lake"), extract.MaxRows(25), extract.MaxAge(100 * time.Millisecond),
	}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{e: e, stop: cancel, done: make(chan error, 1)}
	go func() {
		_, err := e.Run(ctx)
		w.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// wait returns the worker's Run's error, failing the test after a minute.
func (w *worker) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		return err
	case <-time.After(time.Minute):
		t.Fatal("the worker did not stop within a minute")
		return nil
	}
}

// waitCaughtUp waits until the lake's checkpoints cover the topic up to
// where it ends now.
func waitCaughtUp(t *testing.T, addr, dir string) {
	t.Helper()
	e := newExtractor(t, addr, dir)
	starts, ends, err := e.Ends(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		cp, _, err := lake.ReadCheckpoint(context.Background(), locate(t, dir), extracttest.Topic)
		if err != nil {
			t.Fatal(err)
		}
		behind := extract.Behind(cp, starts, ends)
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group has not caught up: %s", strings.Join(behind, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func locate(t *testing.T, loc string) lake.Storage {
	t.Helper()
	st, err := lake.Locate(loc)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGroupRebalanceKeepsEveryRecordOnce: workers of one consumer group
// share a lake while one joins mid-stream, one is killed without
// committing and one crashes between publishing files and writing their
// checkpoint; the lake ends with every record exactly once. (TestS3 runs
// it on an s3:// lake.)
func TestGroupRebalanceKeepsEveryRecordOnce(t *testing.T) {
	groupRebalance(t, filepath.Join(t.TempDir(), "lake"))
}

func groupRebalance(t *testing.T, dir string) {
	addr := startBroker(t)
	want := produce(t, addr, 400, 1, garbage[:3]...)

	// Worker A alone takes every partition.
	a := startWorker(t, addr, dir)
	waitCaughtUp(t, addr, dir)

	// A whole-lake extract (extract --once) cannot write partitions a
	// group holds.
	if _, err := newExtractor(t, addr, dir).Run(context.Background()); !errors.Is(err, lake.ErrLakeBusy) {
		t.Fatalf("extract --once beside a group: %v, want ErrLakeBusy", err)
	}

	// Worker B joins mid-stream: partitions move with open files.
	want.Add(produce(t, addr, 300, 2))
	b := startWorker(t, addr, dir)
	want.Add(produce(t, addr, 300, 3))
	waitCaughtUp(t, addr, dir)

	// Worker C joins and crashes between a file and its checkpoint.
	n := 0
	c := startWorker(t, addr, dir, extract.WithHook(func(p extract.Point, _ int32, _ lake.Part) error {
		if p == extract.AfterFile {
			if n++; n == 2 {
				return errCrash
			}
		}
		return nil
	}))
	for i := uint64(0); ; i++ {
		want.Add(produce(t, addr, 100, 10+i))
		select {
		case err := <-c.done:
			c.done <- err
		case <-time.After(300 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Fatal("worker C never crashed")
		}
		break
	}
	if err := c.wait(t); !errors.Is(err, errCrash) {
		t.Fatalf("worker C: %v, want the simulated crash", err)
	}

	// Worker B is killed: nothing it holds is committed.
	want.Add(produce(t, addr, 200, 4))
	b.e.Crash()
	if err := b.wait(t); !errors.Is(err, extract.ErrCrashed) {
		t.Fatalf("worker B: %v, want ErrCrashed", err)
	}

	// A takes everything over, and stops cleanly once caught up.
	want.Add(produce(t, addr, 200, 5))
	waitCaughtUp(t, addr, dir)
	a.stop()
	if err := a.wait(t); err != nil {
		t.Fatalf("worker A: %v", err)
	}

	r := checkLake(t, dir)
	sameCounts(t, "lake check", r.Rows, want.PerType)
	groupAtCheckpoint(t, addr, r.Checkpoint)
	if r.Quarantined != 3 {
		t.Errorf("quarantined %d, want 3", r.Quarantined)
	}
	if !strings.HasPrefix(dir, "s3://") {
		sameCounts(t, "duckdb", duckCounts(t, openDuckDB(t), dir), want.PerType)
	}
	for p := range int32(4) {
		if _, _, err := lake.ReadPartitionCheckpoint(context.Background(), locate(t, dir), extracttest.Topic, p); err != nil {
			t.Errorf("partition %d's checkpoint: %v", p, err)
		}
	}
}

// TestLegacyCheckpointIsMigrated: a lake whose checkpoint is the old
// single file for the topic keeps working: a group resumes from it, and a
// whole-lake extract replaces it by one file per partition.
func TestLegacyCheckpointIsMigrated(t *testing.T) {
	addr := startBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	st := lake.Dir(dir)
	want := produce(t, addr, 300, 1)
	if _, err := newExtractor(t, addr, dir).Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Turn the lake into one written before checkpoints per partition.
	cp, found, err := lake.ReadCheckpoint(context.Background(), st, extracttest.Topic)
	if err != nil || !found {
		t.Fatalf("checkpoint: %v, found %v", err, found)
	}
	legacy, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(lake.PartitionCheckpointsDir(extracttest.Topic)))); err != nil {
		t.Fatal(err)
	}
	legacyPath := filepath.Join(dir, filepath.FromSlash(lake.CheckpointName(extracttest.Topic)))
	if err := os.WriteFile(legacyPath, legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "lake check of the legacy lake", checkLake(t, dir).Rows, want.PerType)

	// A group resumes from it: nothing twice.
	want.Add(produce(t, addr, 200, 2))
	w := startWorker(t, addr, dir)
	waitCaughtUp(t, addr, dir)
	w.stop()
	if err := w.wait(t); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "lake check after the group", checkLake(t, dir).Rows, want.PerType)

	// A whole-lake extract migrates it.
	want.Add(produce(t, addr, 100, 3))
	if _, err := newExtractor(t, addr, dir).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the legacy checkpoint is still there: %v", err)
	}
	sameCounts(t, "lake check after the migration", checkLake(t, dir).Rows, want.PerType)
}

// groupAtCheckpoint checks that the group's committed offsets in Kafka
// (for lag monitoring) are the lake's checkpoints.
func groupAtCheckpoint(t *testing.T, addr string, cp *lake.Checkpoint) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "lake")
	if err != nil {
		t.Fatal(err)
	}
	for p, m := range cp.Partitions {
		got, ok := offs.Lookup(extracttest.Topic, p)
		if !ok || got.At != m.Next {
			t.Errorf("partition %d: the group's committed offset is %d (found %v), the lake's checkpoint %d", p, got.At, ok, m.Next)
		}
	}
}
