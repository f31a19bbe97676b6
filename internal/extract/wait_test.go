package extract_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
)

// `extract --once` on a lake that `up`'s follower writes waits for the
// follower to reach the topic's end as of its start, and says so; on a
// lake whose writer makes no progress it gives up after its wait, naming
// the partitions behind; and when the writer lets go, it extracts itself.
func TestRunOrWait(t *testing.T) {
	ctx := context.Background()

	t.Run("a follower brings the lake up to date", func(t *testing.T) {
		addr := startBroker(t)
		dir := filepath.Join(t.TempDir(), "lake")
		f, err := newExtractor(t, addr, dir, extract.Follow(), extract.MaxAge(100*time.Millisecond)).Follower()
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Stop(ctx) }()
		want := produce(t, addr, 500, 11)
		sum, waited, err := newExtractor(t, addr, dir).RunOrWait(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if waited == nil || sum.Records != 0 {
			t.Fatalf("RunOrWait extracted %d records itself while a follower held the lake", sum.Records)
		}
		var covered int64
		for _, m := range waited.Checkpoint.Partitions {
			covered += m.Next - m.Start
		}
		if covered < 500 {
			t.Errorf("the checkpoint waited for covers %d records, want the 500 produced before", covered)
		}
		if err := f.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		sameCounts(t, "after the wait", checkLake(t, dir).Rows, want.PerType)
	})

	t.Run("a writer that makes no progress", func(t *testing.T) {
		addr, dir := startBroker(t), filepath.Join(t.TempDir(), "lake")
		produce(t, addr, 50, 12)
		defer holdLake(t, dir)()
		_, _, err := newExtractor(t, addr, dir).RunOrWait(ctx, 500*time.Millisecond)
		if !errors.Is(err, lake.ErrLakeBusy) || !strings.Contains(err.Error(), "at 0 of") {
			t.Fatalf("RunOrWait on a stuck lake = %v, want ErrLakeBusy naming the partitions behind", err)
		}
	})

	t.Run("a writer that lets go", func(t *testing.T) {
		addr, dir := startBroker(t), filepath.Join(t.TempDir(), "lake")
		want := produce(t, addr, 50, 13)
		time.AfterFunc(300*time.Millisecond, holdLake(t, dir))
		sum, waited, err := newExtractor(t, addr, dir).RunOrWait(ctx, 30*time.Second)
		if err != nil || waited != nil || sum.Records != 50 {
			t.Fatalf("RunOrWait after the writer let go: %d records, waited %v, %v; want it to extract the 50 itself", sum.Records, waited, err)
		}
		sameCounts(t, "after the run", checkLake(t, dir).Rows, want.PerType)
	})
}

// holdLake takes the lake's writer lock, as another extract would, and
// returns its release.
func holdLake(t *testing.T, dir string) func() {
	t.Helper()
	st, err := lake.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lake.LockWriter(context.Background(), st, "events")
	if err != nil {
		t.Fatal(err)
	}
	return func() { l.Release() }
}
