package sqlitestore

import (
	"errors"
	"fmt"
	"os"

	"github.com/questlog/questlog/internal/filelock"
)

// lockFile takes an exclusive lock on path (created if needed) for as long
// as the returned file stays open, or fails at once if another process (or
// another Store in this one) holds it. Player locks are in-process, so two
// processes serving one state file could both spend the same gold. Where
// the system cannot lock files, keeping one process per state file is up
// to the operator.
func lockFile(path string) (*os.File, error) {
	f, err := filelock.Try(path, 0o600)
	if errors.Is(err, filelock.ErrHeld) {
		return nil, fmt.Errorf("lock %s: the state is already in use by another questlog (one process per state file; share state with --redis)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
