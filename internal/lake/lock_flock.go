//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lake

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockWriter makes the caller the lake's only writer for topic until the
// returned function is called: a second extract on the same lake, even one
// started by mistake while `up` follows, would otherwise remove the files the
// first one is writing as crash leftovers. It fails at once with ErrLakeBusy
// when another process (or another extract in this one) holds the lock; the
// lock dies with its process.
func LockWriter(st Storage, topic string) (func(), error) {
	return lock(st, topic+".lock", ErrLakeBusy, "lock lake writer")
}

// LockCompaction makes the caller the lake's only compaction until the
// returned function is called: two compactions could merge overlapping
// runs of the same files. It fails at once with ErrCompactionBusy when
// another holds the lock; the lock dies with its process.
func LockCompaction(st Storage, topic string) (func(), error) {
	return lock(st, topic+".compaction.lock", ErrCompactionBusy, "lock lake compaction")
}

// lock takes the flock of _checkpoints/<name> (on a local lake; an object
// store has no such lock), failing with busy when it is held.
func lock(st Storage, name string, busy error, op string) (func(), error) {
	d, ok := st.(Dir)
	if !ok {
		return func() {}, nil
	}
	dir := filepath.Join(string(d), CheckpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", busy, path)
		}
		return nil, fmt.Errorf("%s %s: %w", op, path, err)
	}
	return func() { f.Close() }, nil
}
