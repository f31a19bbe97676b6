package lake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/questlog/questlog/internal/lake/s3store"
)

// Lock is a lock on a lake, held by this process until Release. A lock
// on a local directory is an flock, which dies with its process and is
// never lost. A lock on an object store is a lease that its holder
// renews in the background: when it cannot (the store unreachable for
// two thirds of the lease's time to live, or another took it over), the
// lock is lost, Lost is closed and Err says why, and the holder must
// stop writing the lake at once: another may be writing it soon.
type Lock interface {
	// Lost is closed once the lock is lost; nil for a lock that cannot
	// be lost.
	Lost() <-chan struct{}
	// Err is why the lock was lost, wrapping ErrLockLost; nil while held.
	Err() error
	// Release gives the lock up. The lock is released even when it
	// returns an error (a lease then lapses after its time to live).
	Release() error
}

// ErrLocked says a lock is held by another process (or another holder
// in this one).
var ErrLocked = errors.New("held by another")

// ErrLockLost says a lock was lost while held: see Lock.
var ErrLockLost = errors.New("lost the lake's lock")

// Locker is a Storage with locks of its own (Dir, Bucket); TryLock gives
// a lock that locks nothing on any other.
type Locker interface {
	TryLock(ctx context.Context, name string) (Lock, error)
}

// TryLock takes the lock called name on the lake (in
// _checkpoints/<name>.lock), or fails at once with an error wrapping
// ErrLocked when another holds it. Names are file names: the writer of
// a topic's lake takes <topic>, its compaction <topic>.compaction, the
// writer of one partition <topic>.p<partition> (LockPartition), and the
// writer widening an event type's schema _schema.<type>.
func TryLock(ctx context.Context, st Storage, name string) (Lock, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("lock %q: a lock's name is a file name", name)
	}
	if l, ok := st.(Locker); ok {
		return l.TryLock(ctx, name)
	}
	return noLock{}, nil
}

// lockName is where the lock called name lives.
func lockName(name string) string { return CheckpointsDir + "/" + name + ".lock" }

// LockWriter makes the caller the lake's only writer for topic until the
// lock is released: a second extract on the same lake, even one started
// by mistake while `up` follows, would otherwise remove the files the
// first one is writing as crash leftovers. It fails at once with
// ErrLakeBusy when another holds the lock.
func LockWriter(ctx context.Context, st Storage, topic string) (Lock, error) {
	return lockAs(ctx, st, topic, ErrLakeBusy)
}

// LockPartition makes the caller the only writer of one partition's
// files and checkpoint until the lock is released: extract workers in a
// consumer group each take the partitions they are assigned, and a
// whole-lake writer (LockWriter) takes them all. It fails at once with
// an error wrapping ErrLakeBusy and ErrLocked when another holds it.
func LockPartition(ctx context.Context, st Storage, topic string, p int32) (Lock, error) {
	return lockAs(ctx, st, PartitionLockName(topic, p), ErrLakeBusy)
}

// PartitionLockName is the name of a partition's lock (see TryLock):
// <topic>.p<partition>.
func PartitionLockName(topic string, p int32) string {
	return topic + ".p" + strconv.Itoa(int(p))
}

// LockCompaction makes the caller the lake's only compaction until the
// lock is released: two compactions could merge overlapping runs of the
// same files. It fails at once with ErrCompactionBusy when another holds
// the lock.
func LockCompaction(ctx context.Context, st Storage, topic string) (Lock, error) {
	return lockAs(ctx, st, topic+".compaction", ErrCompactionBusy)
}

func lockAs(ctx context.Context, st Storage, name string, busy error) (Lock, error) {
	l, err := TryLock(ctx, st, name)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("%w (%w)", busy, err)
	}
	return l, err
}

// WhileHeld returns a context that is cancelled, with the lock's Err as
// its cause, once the lock is lost: what is done under it stops then.
// Call cancel when done.
func WhileHeld(ctx context.Context, l Lock) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if lost := l.Lost(); lost != nil {
		go func() {
			select {
			case <-lost:
				cancel(l.Err())
			case <-ctx.Done():
			}
		}()
	}
	return ctx, func() { cancel(context.Canceled) }
}

// noLock is the lock of a storage that cannot lock.
type noLock struct{}

func (noLock) Lost() <-chan struct{} { return nil }
func (noLock) Err() error            { return nil }
func (noLock) Release() error        { return nil }

// TryLock implements Locker with a lease on _checkpoints/<name>.lock
// (see s3store's leases), whose time to live is LockTTL's.
func (b *Bucket) TryLock(ctx context.Context, name string) (Lock, error) {
	l, err := b.b.TryLease(ctx, lockName(name), b.lockTTL)
	var held *s3store.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("%w: %w", ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return lease{l}, nil
}

// lease is a lease as a Lock.
type lease struct{ *s3store.Lease }

func (l lease) Err() error {
	if err := l.Lease.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return nil
}
