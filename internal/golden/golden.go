// Package golden keeps a test's expected output in a file, usually under
// testdata/, and rewrites that file from the test's output when the test
// runs with -update.
//
// It registers the -update flag of every test binary that imports it.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from the tests' output")

// Want returns the contents of the golden file at path. With -update it
// first writes got there, creating the file's directory.
func Want(tb testing.TB, path string, got []byte) []byte {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	return want
}
