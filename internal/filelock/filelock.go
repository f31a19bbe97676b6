// Package filelock takes an exclusive advisory lock on a file without
// waiting for it: the lock that keeps a second process off a local lake's
// writer and off a SQLite state file. The lock lasts as long as the
// returned file stays open, and dies with its process.
package filelock

import "errors"

// ErrHeld is Try's error when another process, or another open file in
// this one, holds the lock.
var ErrHeld = errors.New("the lock is held")
