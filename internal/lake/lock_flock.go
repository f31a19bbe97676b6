//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// TryLock implements Locker with the flock of _checkpoints/<name>.lock:
// it dies with its process, and is never lost.
func (d Dir) TryLock(_ context.Context, name string) (Lock, error) {
	dir := filepath.Join(string(d), CheckpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	path := d.path(lockName(name))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return flock{f}, nil
}

// flock is a held flock.
type flock struct{ f *os.File }

func (flock) Lost() <-chan struct{} { return nil }
func (flock) Err() error            { return nil }
func (l flock) Release() error      { return l.f.Close() }
