package lake

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/questlog/questlog/internal/lake/s3store"
)

// Bucket is a lake in an S3-compatible store, below a prefix of a
// bucket: s3://bucket/prefix. A file is uploaded whole when it is
// committed (Create writes to a local temporary file until then), so no
// reader ever sees part of one, and an interrupted writer leaves nothing
// behind: a Bucket has no pending files. Objects are visible once their
// upload completed and listed at once (S3 has been strongly consistent
// since 2020). SyncDir does nothing: a file is durable once published.
// Its locks are leases (see TryLock).
type Bucket struct {
	b       *s3store.Bucket
	lockTTL time.Duration
}

func openBucket(location string, opts []OpenOption) (*Bucket, error) {
	c := openConfig{getenv: os.Getenv}
	for _, o := range opts {
		o(&c)
	}
	b, err := s3store.Open(location, s3store.ConfigFromEnv(c.getenv))
	if err != nil {
		return nil, fmt.Errorf("open lake: %w", err)
	}
	return &Bucket{b: b, lockTTL: c.lockTTL}, nil
}

// String is the lake's location and where the store is: no secret.
func (b *Bucket) String() string { return b.b.String() }

// Location is s3://bucket/prefix.
func (b *Bucket) Location() string { return b.b.Location() }

// Create implements Storage: ctx governs the upload at Commit too.
func (b *Bucket) Create(ctx context.Context, name string) (PendingFile, error) {
	return b.b.Create(ctx, name)
}

// ReadFile implements Storage.
func (b *Bucket) ReadFile(ctx context.Context, name string) ([]byte, error) {
	return b.b.ReadFile(ctx, name)
}

// Open implements Storage: reads are ranged requests, the last few
// blocks of 1 MiB kept; ctx governs them all.
func (b *Bucket) Open(ctx context.Context, name string) (File, error) {
	return b.b.Open(ctx, name)
}

// List implements Storage: times are when each upload completed, on the
// store's clock.
func (b *Bucket) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	objs, err := b.b.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	files := make([]FileInfo, len(objs))
	for i, o := range objs {
		files[i] = FileInfo{Name: o.Name, Size: o.Size, ModTime: o.ModTime}
	}
	return files, nil
}

// Remove implements Storage.
func (b *Bucket) Remove(ctx context.Context, name string) error { return b.b.Remove(ctx, name) }

// SyncDir implements Storage: a published object is durable already.
func (b *Bucket) SyncDir(context.Context, string) error { return nil }
