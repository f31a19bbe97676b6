//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lakecache

import "os"

// lockShared does nothing where flock is not available: only this
// process's own pins keep a copy from its evictions.
func lockShared(*os.File) error { return nil }

// tryLockExclusive says yes where flock is not available.
func tryLockExclusive(*os.File) (bool, error) { return true, nil }
