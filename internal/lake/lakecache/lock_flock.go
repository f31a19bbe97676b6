//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lakecache

import (
	"errors"
	"os"
	"syscall"
)

// lockShared marks a copy as read: until the file is closed, no process
// removes it.
func lockShared(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// tryLockExclusive reports whether no one reads the copy (and no one
// will until f is closed).
func tryLockExclusive(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}
