package lakecache_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/lakecache"
)

// opens counts the files opened from a lake: the cache's downloads.
type opens struct {
	lake.Storage
	n atomic.Int64
}

func (o *opens) Open(ctx context.Context, name string) (lake.File, error) {
	o.n.Add(1)
	return o.Storage.Open(ctx, name)
}

// remoteLake is a lake of n files of size bytes each, standing in for a
// remote one (the cache reads any Storage).
func remoteLake(t *testing.T, n, size int) (*opens, []lake.DataFile) {
	t.Helper()
	st := &opens{Storage: lake.Dir(t.TempDir())}
	ctx := context.Background()
	for i := range n {
		part := lake.Part{EventType: "buy_item", Date: "2026-11-29", Partition: 0, First: int64(10 * i), Last: int64(10*i + 9)}
		f, err := st.Create(ctx, part.Name())
		if err != nil {
			t.Fatal(err)
		}
		f.Write(bytes.Repeat([]byte{byte('a' + i)}, size))
		if err := f.Commit(""); err != nil {
			t.Fatal(err)
		}
	}
	l, err := lake.ListData(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	return st, l.Files
}

func pin(t *testing.T, c *lakecache.Cache, files ...lake.DataFile) *lakecache.Pinned {
	t.Helper()
	p, err := c.Pin(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func present(c *lakecache.Cache, files []lake.DataFile) (n int) {
	for _, f := range files {
		if st, err := os.Stat(c.Path(f.Name)); err == nil && st.Size() == f.Size {
			n++
		}
	}
	return n
}

func TestCopiesMirrorTheLakeAndAreFetchedOnce(t *testing.T) {
	st, files := remoteLake(t, 3, 1000)
	c, err := lakecache.Open(st, "s3://bucket/lake", t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	pin(t, c, files...).Release()
	pin(t, c, files...).Release()
	if n := st.n.Load(); n != 3 {
		t.Errorf("two pins of 3 files fetched %d times", n)
	}
	want := filepath.Join(c.Root(), "events", "event_type=buy_item", "event_date=2026-11-29", "part-0-0-9.parquet")
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("a"), 1000)) {
		t.Fatalf("the copy at %s: %v", want, err)
	}

	// A copy of another size than listed (a file written again under its
	// name) is fetched again.
	if err := os.WriteFile(want, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	pin(t, c, files[0]).Release()
	if got, _ := os.ReadFile(want); len(got) != 1000 {
		t.Errorf("a stale copy was kept: %d bytes", len(got))
	}

	// Another cache of another lake keeps apart.
	other, err := lakecache.Open(st, "s3://bucket/other", filepath.Dir(c.Root()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if other.Root() == c.Root() {
		t.Error("two lakes share a folder")
	}

	// A file gone from the lake fails the pin.
	gone := files[0]
	gone.Name = "events/event_type=buy_item/event_date=2026-11-29/part-0-100-200.parquet"
	if _, err := c.Pin(context.Background(), []lake.DataFile{gone}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pinning a file the lake does not have: %v, want fs.ErrNotExist", err)
	}
}

// TestBoundKeepsWhatIsRead: past its bound the cache removes the copies
// used least recently, but never one that a statement (here or in
// another process) is reading.
func TestBoundKeepsWhatIsRead(t *testing.T) {
	st, files := remoteLake(t, 6, 1000)
	dir := t.TempDir()
	c, err := lakecache.Open(st, "s3://bucket/lake", dir, 3000)
	if err != nil {
		t.Fatal(err)
	}
	// Another process's cache of the same lake, in the same folder.
	elsewhere, err := lakecache.Open(st, "s3://bucket/lake", dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	held := pin(t, elsewhere, files[0])
	reading := pin(t, c, files[1])

	// A statement reads all six: twice the bound, while it runs.
	all := pin(t, c, files...)
	if n := present(c, files); n != 6 {
		t.Fatalf("%d of 6 pinned files present", n)
	}
	all.Release()
	if !exists(c, files[0]) || !exists(c, files[1]) {
		t.Fatal("a copy being read (here or elsewhere) was removed")
	}
	if n := present(c, files); n > 3 {
		t.Errorf("%d copies of 1000 bytes kept with a bound of 3000", n)
	}
	held.Release()
	reading.Release()

	// Least recently used first: the last ones pinned stay.
	pin(t, c, files[4]).Release()
	pin(t, c, files[5]).Release()
	if !exists(c, files[4]) || !exists(c, files[5]) {
		t.Error("the copies used last were removed first")
	}
}

func exists(c *lakecache.Cache, f lake.DataFile) bool {
	_, err := os.Stat(c.Path(f.Name))
	return err == nil
}
