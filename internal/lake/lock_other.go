//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lake

// LockWriter is a no-op where flock is not available.
func LockWriter(Storage, string) (func(), error) { return func() {}, nil }

// LockCompaction is a no-op where flock is not available.
func LockCompaction(Storage, string) (func(), error) { return func() {}, nil }
