//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/questlog/questlog/internal/filelock"
)

// TryLock implements Locker with the flock of _checkpoints/<name>.lock:
// it dies with its process, and is never lost.
func (d Dir) TryLock(_ context.Context, name string) (Lock, error) {
	dir := filepath.Join(string(d), CheckpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	path := d.path(lockName(name))
	f, err := filelock.Try(path, 0o644)
	if errors.Is(err, filelock.ErrHeld) {
		return nil, fmt.Errorf("%w: %s is locked", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return flock{f}, nil
}

// flock is a held flock.
type flock struct{ f *os.File }

func (flock) Lost() <-chan struct{} { return nil }
func (flock) Err() error            { return nil }
func (l flock) Release() error      { return l.f.Close() }
