package extract_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
	"github.com/questlog/questlog/internal/query"
)

// TestS3OnMotoServer runs the extract into an S3 lake on a real
// S3-compatible server (moto_server): crashed at each step of a commit
// and run again, and stopped by losing its lock, the lake holds every
// record once, as lake check and the query views count them; so does a
// consumer group's lake through joins, a kill and a crash between upload
// and checkpoint.
func TestS3OnMotoServer(t *testing.T) {
	srv := s3test.Start(t)
	t.Run("crash and rerun", func(t *testing.T) { s3CrashAndRerun(t, srv) })
	t.Run("a lost lock stops the extract before its checkpoint", func(t *testing.T) { s3LostLock(t, srv) })
	t.Run("a consumer group's rebalances", func(t *testing.T) { groupRebalance(t, srv.NewBucket(t)) })
}

func s3CrashAndRerun(t *testing.T, srv *s3test.Server) {
	tests := []struct {
		name  string
		point extract.Point
		nth   int // crash at the nth time the point is reached
	}{
		{"after the first upload", extract.AfterFile, 1},
		{"between uploads of a commit", extract.AfterFile, 5},
		{"between uploads and the first checkpoint", extract.BeforeCheckpoint, 1},
		{"between uploads and a later checkpoint", extract.BeforeCheckpoint, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startBroker(t)
			want := produceDay(t, addr, 300, 2, garbage[:3]...)
			loc := srv.NewBucket(t)

			opts := []extract.Option{extract.MaxRows(30)}
			crashThenRerun(t, addr, loc, want, tt.point, tt.nth, opts, func() *extracttest.Produced { return produceDay(t, addr, 100, 3) })
			sameCounts(t, "query's views", extracttest.ViewCounts(t, loc, "event_type", query.CacheDir(t.TempDir())), want.PerType)
		})
	}
}

// produceDay is produce with the events spread over a few hours instead
// of three days: fewer files, for a store that costs ~10 ms a request.
func produceDay(t *testing.T, addr string, n int, seed uint64, garbage ...[]byte) *extracttest.Produced {
	t.Helper()
	return extracttest.Produce(t, addr, laketest.Config{Events: n, Seed: seed, Span: 6 * time.Hour}, nil, garbage...)
}

// s3LostLock: a following extract whose lease is taken from it stops as
// after a crash, with ErrLockLost, and writes no checkpoint after it
// learnt; the next run finds every record once.
func s3LostLock(t *testing.T, srv *s3test.Server) {
	ctx := context.Background()
	addr := startBroker(t)
	want := produceDay(t, addr, 200, 4)
	loc := srv.NewBucket(t)
	st, err := lake.Open(loc, lake.LockTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e, err := extract.New(extract.Brokers(addr), extract.Lake(st), extract.Follow(), extract.MaxAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.Follower()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(ctx)
	for done, total := e.Progress(); done < total || total == 0; done, total = e.Progress() {
		time.Sleep(20 * time.Millisecond)
	}

	// Another takes the lease over (as if this one had stalled past it).
	bucket := strings.Split(strings.TrimPrefix(loc, "s3://"), "/")[0]
	body := []byte(`{"holder":"another extract","ttl_ms":60000,"seq":1}`)
	if _, err := srv.Client(t).PutObject(ctx, bucket, "lake/_checkpoints/events.lock", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	want.Add(produceDay(t, addr, 100, 5)) // more to write, which it must not vouch for
	var lostAt time.Time
	select {
	case err := <-f.Failed():
		lostAt = time.Now()
		if !errors.Is(err, lake.ErrLockLost) || !strings.Contains(err.Error(), "another extract") {
			t.Fatalf("the follower failed with %v, want ErrLockLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower went on after its lease was taken")
	}
	f.Stop(ctx)
	cp, _, err := lake.ReadCheckpoint(ctx, st, extracttest.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Updated.After(lostAt) {
		t.Errorf("the checkpoint was written at %s, after the lock was lost at %s", cp.Updated, lostAt)
	}

	// The other holder lets go; a new extract finds every record once.
	if err := srv.Client(t).RemoveObject(ctx, bucket, "lake/_checkpoints/events.lock", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := newExtractor(t, addr, loc).Run(ctx); err != nil {
		t.Fatal(err)
	}
	sameCounts(t, "lake check", checkLake(t, loc).Rows, want.PerType)
}
