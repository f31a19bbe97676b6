package lake_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
)

// TestLockIsExclusive: on every storage, a second TryLock of a held name
// fails at once with ErrLocked (LockWriter and LockCompaction with their
// own errors), other names are free, and Release frees it.
func TestLockIsExclusive(t *testing.T) {
	ctx := context.Background()
	for _, kind := range storageKinds {
		t.Run(kind.name, func(t *testing.T) {
			st := kind.start(t)(t)
			l, err := lake.TryLock(ctx, st, "events")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lake.TryLock(ctx, st, "events"); !errors.Is(err, lake.ErrLocked) {
				t.Fatalf("a second TryLock: %v, want ErrLocked", err)
			}
			if _, err := lake.LockWriter(ctx, st, "events"); !errors.Is(err, lake.ErrLakeBusy) {
				t.Fatalf("LockWriter while locked: %v, want ErrLakeBusy", err)
			}
			c, err := lake.LockCompaction(ctx, st, "events")
			if err != nil {
				t.Fatalf("the compaction's lock is another: %v", err)
			}
			if _, err := lake.LockCompaction(ctx, st, "events"); !errors.Is(err, lake.ErrCompactionBusy) {
				t.Fatalf("a second LockCompaction: %v, want ErrCompactionBusy", err)
			}
			p3, err := lake.TryLock(ctx, st, "events.p3")
			if err != nil {
				t.Fatalf("a lock per partition: %v", err)
			}
			for _, held := range []lake.Lock{l, c, p3} {
				if held.Err() != nil {
					t.Errorf("a held lock says %v", held.Err())
				}
				if err := held.Release(); err != nil {
					t.Fatal(err)
				}
			}
			again, err := lake.TryLock(ctx, st, "events")
			if err != nil {
				t.Fatalf("TryLock after Release: %v", err)
			}
			again.Release()
			if _, err := lake.TryLock(ctx, st, "../x"); err == nil {
				t.Error("a lock named with a path")
			}
		})
	}
}

// TestLeaseLock is the lock of an S3 lake: a lease object that its holder
// renews, that another takes over once it lapsed, and that its holder
// loses, and learns it lost, when it cannot renew it or another took it.
func TestLeaseLock(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	ttl := 2 * time.Second
	open := func(t *testing.T, location string) lake.Storage {
		st, err := lake.Open(location, lake.LockTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	objects := srv.Client(t)
	bucketOf := func(location string) string { return strings.Split(strings.TrimPrefix(location, "s3://"), "/")[0] }

	t.Run("renewed, it stays held past its time to live; released, it is gone", func(t *testing.T) {
		loc := srv.NewBucket(t)
		a, b := open(t, loc), open(t, loc)
		l, err := lake.TryLock(ctx, a, "events")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl + 2*time.Second) // past the time to live and Last-Modified's second
		_, err = lake.TryLock(ctx, b, "events")
		if !errors.Is(err, lake.ErrLocked) {
			t.Fatalf("TryLock of a renewed lease: %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), "pid") {
			t.Errorf("the refusal does not say who holds it: %v", err)
		}
		select {
		case <-l.Lost():
			t.Fatalf("a renewed lease was lost: %v", l.Err())
		default:
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if _, err := objects.StatObject(ctx, bucketOf(loc), "lake/_checkpoints/events.lock", minio.StatObjectOptions{}); err == nil {
			t.Error("the lease object is still there after Release")
		}
	})

	t.Run("a lapsed lease is taken over", func(t *testing.T) {
		loc := srv.NewBucket(t)
		// A holder that died: its lease was written once, never renewed.
		body := []byte(`{"holder":"a killed extract","ttl_ms":2000,"seq":1}`)
		if _, err := objects.PutObject(ctx, bucketOf(loc), "lake/_checkpoints/events.lock", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		st := open(t, loc)
		_, err := lake.TryLock(ctx, st, "events")
		if !errors.Is(err, lake.ErrLocked) || !strings.Contains(err.Error(), "a killed extract") {
			t.Fatalf("TryLock of a fresh lease: %v, want ErrLocked by the killed extract", err)
		}
		var l lake.Lock
		for deadline := time.Now().Add(30 * time.Second); l == nil; {
			if l, err = lake.TryLock(ctx, st, "events"); err != nil && time.Now().After(deadline) {
				t.Fatalf("the lapsed lease was not taken over: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if since := time.Since(written); since < ttl {
			t.Errorf("taken over %s after it was written, before its time to live %s", since, ttl)
		}
		l.Release()
	})

	t.Run("a holder whose lease was taken learns it lost", func(t *testing.T) {
		loc := srv.NewBucket(t)
		l, err := lake.TryLock(ctx, open(t, loc), "events")
		if err != nil {
			t.Fatal(err)
		}
		held, stop := lake.WhileHeld(ctx, l)
		defer stop()
		body := []byte(`{"holder":"an intruder","ttl_ms":60000,"seq":1}`)
		if _, err := objects.PutObject(ctx, bucketOf(loc), "lake/_checkpoints/events.lock", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Lost():
		case <-time.After(ttl):
			t.Fatal("the holder did not learn that its lease was taken")
		}
		if err := l.Err(); !errors.Is(err, lake.ErrLockLost) || !strings.Contains(err.Error(), "an intruder") {
			t.Errorf("Err = %v, want ErrLockLost saying who took it", err)
		}
		<-held.Done()
		if cause := context.Cause(held); !errors.Is(cause, lake.ErrLockLost) {
			t.Errorf("WhileHeld's context ended with %v, want ErrLockLost", cause)
		}
		l.Release()
		if _, err := objects.StatObject(ctx, bucketOf(loc), "lake/_checkpoints/events.lock", minio.StatObjectOptions{}); err != nil {
			t.Errorf("the lost lease's Release removed the intruder's: %v", err)
		}
	})

	// Last: it stalls the server.
	t.Run("a holder that cannot renew learns it lost before the lease lapses", func(t *testing.T) {
		loc := srv.NewBucket(t)
		l, err := lake.TryLock(ctx, open(t, loc), "events")
		if err != nil {
			t.Fatal(err)
		}
		taken := time.Now()
		srv.Pause()
		select {
		case <-l.Lost():
		case <-time.After(2 * ttl):
			srv.Resume()
			t.Fatal("a holder that could not renew did not learn it lost the lock")
		}
		lost := time.Since(taken)
		srv.Resume()
		// It was taken at most ttl/3 after taken; lost two thirds of
		// the time to live after the last renewal was sent.
		if lost > ttl+500*time.Millisecond {
			t.Errorf("lost %s after it was taken: a lease lapses after %s", lost, ttl)
		}
		if err := l.Err(); !errors.Is(err, lake.ErrLockLost) || !strings.Contains(err.Error(), "not renewed") {
			t.Errorf("Err = %v, want ErrLockLost for want of renewal", err)
		}
		l.Release()
	})
}
