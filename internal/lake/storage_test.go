package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
)

// storages are the kinds of storage a lake can live on, each made anew
// for a test. The S3 one needs a server: start is called once, before
// the first.
type storageKind struct {
	name  string
	start func(t *testing.T) func(t *testing.T, opts ...lake.OpenOption) lake.Storage
}

var storageKinds = []storageKind{
	{"dir", func(*testing.T) func(*testing.T, ...lake.OpenOption) lake.Storage {
		return func(t *testing.T, _ ...lake.OpenOption) lake.Storage { return lake.Dir(t.TempDir()) }
	}},
	{"s3", func(t *testing.T) func(*testing.T, ...lake.OpenOption) lake.Storage {
		srv := s3test.Start(t)
		return func(t *testing.T, opts ...lake.OpenOption) lake.Storage {
			st, err := lake.Open(srv.NewBucket(t), opts...)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	}},
}

// TestStorageConformance runs each behaviour the lake relies on against
// every kind of storage.
func TestStorageConformance(t *testing.T) {
	ctx := context.Background()
	behaviours := []struct {
		name string
		test func(t *testing.T, st lake.Storage)
	}{
		{"a created file is invisible until committed, then whole", func(t *testing.T, st lake.Storage) {
			name := "events/event_type=buy_item/event_date=2026-11-29/part-0-1-2.parquet"
			f := create(t, st, name)
			write(t, f, []byte("hello "))
			notThere(t, st, name)
			write(t, f, []byte("world"))
			notThere(t, st, name)
			if err := f.Commit(""); err != nil {
				t.Fatal(err)
			}
			has(t, st, name, "hello world")
			listed(t, st, "", map[string]int64{name: 11})
		}},
		{"commit publishes under another name of the same folder", func(t *testing.T, st lake.Storage) {
			f := create(t, st, "quarantine/part-0-5-5.parquet")
			write(t, f, []byte("rows"))
			if err := f.Commit("quarantine/part-0-5-9.parquet"); err != nil {
				t.Fatal(err)
			}
			has(t, st, "quarantine/part-0-5-9.parquet", "rows")
			notThere(t, st, "quarantine/part-0-5-5.parquet")
		}},
		{"commit refuses another folder and publishes nothing", func(t *testing.T, st lake.Storage) {
			f := create(t, st, "a/x")
			write(t, f, []byte("x"))
			if err := f.Commit("b/x"); err == nil {
				t.Fatal("committed into another folder")
			}
			listed(t, st, "", map[string]int64{})
		}},
		{"a commit replaces a file whole", func(t *testing.T, st lake.Storage) {
			for _, body := range []string{"first version, longer", "second"} {
				f := create(t, st, "_checkpoints/events.json")
				write(t, f, []byte(body))
				if err := f.Commit(""); err != nil {
					t.Fatal(err)
				}
				has(t, st, "_checkpoints/events.json", body)
			}
		}},
		{"abort leaves nothing", func(t *testing.T, st lake.Storage) {
			f := create(t, st, "events/event_type=a/event_date=2026-11-29/part-0-1-1.parquet")
			write(t, f, bytes.Repeat([]byte("x"), 100_000))
			if err := f.Abort(); err != nil {
				t.Fatal(err)
			}
			listed(t, st, "", map[string]int64{})
		}},
		{"list is recursive, under its folder only, sorted by name, with sizes and times", func(t *testing.T, st lake.Storage) {
			before := time.Now().Add(-2 * time.Second)
			files := map[string]int64{
				"d/a/b":                    1,
				"d/a-b/c":                  22,
				"d/a=b/c":                  333,
				"d/a.txt":                  0,
				"d/event_type=x=y/part.pq": 4444,
				"d2/not-below-d":           5,
				"dd":                       6,
			}
			for name, size := range files {
				put(t, st, name, bytes.Repeat([]byte("z"), int(size)))
			}
			after := time.Now().Add(2 * time.Second)
			below := map[string]int64{}
			for name, size := range files {
				if strings.HasPrefix(name, "d/") {
					below[name] = size
				}
			}
			got := listed(t, st, "d", below)
			for _, fi := range got {
				if fi.ModTime.Before(before) || fi.ModTime.After(after) {
					t.Errorf("%s: time %s, not between %s and %s", fi.Name, fi.ModTime, before, after)
				}
			}
			listed(t, st, "", files)
			listed(t, st, "nothing-here", map[string]int64{})
		}},
		{"remove deletes, and a missing file is no error", func(t *testing.T, st lake.Storage) {
			put(t, st, "events/event_type=a/event_date=2026-11-29/part-0-1-1.parquet", []byte("x"))
			for range 2 {
				if err := st.Remove(ctx, "events/event_type=a/event_date=2026-11-29/part-0-1-1.parquet"); err != nil {
					t.Fatal(err)
				}
			}
			notThere(t, st, "events/event_type=a/event_date=2026-11-29/part-0-1-1.parquet")
			listed(t, st, "", map[string]int64{})
		}},
		{"a missing file is fs.ErrNotExist", func(t *testing.T, st lake.Storage) {
			if _, err := st.ReadFile(ctx, "_schemas/nothing.json"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile: %v, want fs.ErrNotExist", err)
			}
			if _, err := st.Open(ctx, "_schemas/nothing.json"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open: %v, want fs.ErrNotExist", err)
			}
		}},
		{"reads any range, concurrently", func(t *testing.T, st lake.Storage) {
			data := make([]byte, 3<<20+12345)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			name := "events/event_type=a/event_date=2026-11-29/part-1-0-9.parquet"
			put(t, st, name, data)
			f, err := st.Open(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Size() != int64(len(data)) {
				t.Fatalf("size %d, want %d", f.Size(), len(data))
			}
			size := int64(len(data))
			ranges := []struct{ off, n int64 }{
				{size - 8, 8}, {size - 200, 150}, {0, 4}, {100, 1000},
				{1<<20 - 10, 20}, // across a block's end
				{5, 2<<20 + 7},   // large
				{3 << 20, 100}, {size - 1, 1}, {0, size},
			}
			var wg sync.WaitGroup
			for _, r := range ranges {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := make([]byte, r.n)
					n, err := f.ReadAt(p, r.off)
					if err != nil && !(err == io.EOF && r.off+r.n == size) {
						t.Errorf("ReadAt(%d bytes at %d): %d, %v", r.n, r.off, n, err)
						return
					}
					if n != int(r.n) || !bytes.Equal(p, data[r.off:r.off+r.n]) {
						t.Errorf("ReadAt(%d bytes at %d): %d bytes, not the file's", r.n, r.off, n)
					}
				}()
			}
			wg.Wait()
			p := make([]byte, 10)
			if n, err := f.ReadAt(p, size-5); n != 5 || err != io.EOF || !bytes.Equal(p[:5], data[size-5:]) {
				t.Errorf("reading past the end: %d, %v", n, err)
			}
			if n, err := f.ReadAt(p, size); n != 0 || err != io.EOF {
				t.Errorf("reading at the end: %d, %v", n, err)
			}
		}},
		{"an empty file", func(t *testing.T, st lake.Storage) {
			put(t, st, "_schemas/empty.json", nil)
			has(t, st, "_schemas/empty.json", "")
			f, err := st.Open(ctx, "_schemas/empty.json")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n, err := f.ReadAt(make([]byte, 1), 0); f.Size() != 0 || n != 0 || err != io.EOF {
				t.Errorf("size %d; ReadAt: %d, %v", f.Size(), n, err)
			}
		}},
		{"sync dir", func(t *testing.T, st lake.Storage) {
			put(t, st, "events/x/y", []byte("y"))
			if err := st.SyncDir(ctx, "events/x"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, kind := range storageKinds {
		t.Run(kind.name, func(t *testing.T) {
			open := kind.start(t)
			for _, b := range behaviours {
				t.Run(b.name, func(t *testing.T) { b.test(t, open(t)) })
			}
		})
	}
}

func create(t *testing.T, st lake.Storage, name string) lake.PendingFile {
	t.Helper()
	f, err := st.Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t *testing.T, f lake.PendingFile, b []byte) {
	t.Helper()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, st lake.Storage, name string, b []byte) {
	t.Helper()
	f := create(t, st, name)
	write(t, f, b)
	if err := f.Commit(""); err != nil {
		t.Fatal(err)
	}
}

func has(t *testing.T, st lake.Storage, name, want string) {
	t.Helper()
	got, err := st.ReadFile(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", name, got, want)
	}
}

func notThere(t *testing.T, st lake.Storage, name string) {
	t.Helper()
	if _, err := st.ReadFile(context.Background(), name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, want fs.ErrNotExist", name, err)
	}
	files, err := st.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range files {
		if fi.Name == name {
			t.Errorf("%s is listed", name)
		}
	}
}

// listed checks the published files under prefix (pending ones left
// out: only a directory has them) and returns them.
func listed(t *testing.T, st lake.Storage, prefix string, want map[string]int64) []lake.FileInfo {
	t.Helper()
	all, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	files := slices.DeleteFunc(all, func(fi lake.FileInfo) bool { return lake.IsPending(fi.Name) })
	if !slices.IsSortedFunc(files, func(a, b lake.FileInfo) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("list %q is not sorted by name: %v", prefix, names(files))
	}
	got := map[string]int64{}
	for _, fi := range files {
		got[fi.Name] = fi.Size
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("list %q:\n got %v\nwant %v", prefix, got, want)
	}
	return files
}

func names(files []lake.FileInfo) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Name
	}
	return out
}
