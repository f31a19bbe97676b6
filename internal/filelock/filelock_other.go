//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filelock

import "os"

// Try opens the file at path, creating it with perm if needed, but cannot
// lock it on this system: keeping one process per file is then up to the
// operator.
func Try(path string, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
}
