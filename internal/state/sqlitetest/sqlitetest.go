// Package sqlitetest opens a SQLite state store for tests, in a file of the
// test's temporary directory, and closes it when the test ends.
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/questlog/questlog/internal/state/sqlitestore"
)

// Open returns a store on a new file, closed when tb ends.
func Open(tb testing.TB) *sqlitestore.Store {
	tb.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
