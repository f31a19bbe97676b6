//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/questlog/questlog/internal/filelock"
)

// A second Try of a held lock fails at once with ErrHeld, even in the same
// process; once the holder closes its file, the lock can be taken again.
func TestTryExcludesUntilClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	f, err := filelock.Try(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v; want it created with mode 0600", fi, err)
	}
	if g, err := filelock.Try(path, 0o600); !errors.Is(err, filelock.ErrHeld) {
		if g != nil {
			g.Close()
		}
		t.Fatalf("second Try: %v, want ErrHeld", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := filelock.Try(path, 0o600)
	if err != nil {
		t.Fatalf("Try after the holder closed: %v", err)
	}
	g.Close()
}

// A file that cannot be opened is an error naming it, not ErrHeld.
func TestTryReportsOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "x.lock")
	_, err := filelock.Try(path, 0o600)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != path || errors.Is(err, filelock.ErrHeld) {
		t.Fatalf("Try in a missing folder: %v, want a *os.PathError for %s", err, path)
	}
}
