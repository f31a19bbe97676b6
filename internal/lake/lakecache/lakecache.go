// Package lakecache keeps local copies of a remote lake's published data
// files, for readers that need local paths: DuckDB reads s3:// only
// through its httpfs extension, which it downloads at run time.
//
// A published file never changes (a name is never rewritten: the extract
// writes each offset range once, a compaction writes new names), so a
// copy is good for as long as its name and size are those the lake
// lists. Copies mirror the lake's layout below a folder per lake (hive
// folders included, which DuckDB reads the keys from). The cache is
// bounded: past its size, the copies used least recently that no
// statement is reading are removed, in every process that shares the
// folder. A statement's files are pinned while it runs, so a statement
// that reads more than the cache holds makes it overflow until it ends.
//
// It stands on package lake for the storage and the files' names, and
// knows nothing of DuckDB or SQL.
package lakecache

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/lake"
)

// DefaultSize is the cache's bound unless told otherwise: 1 GiB.
const DefaultSize = 1 << 30

// fetchers bounds the downloads in flight at once.
const fetchers = 8

// fetchPrefix starts the name a copy is downloaded under: never a data
// file's name, and old ones (a killed process's) are removed.
const fetchPrefix = ".fetch-"

// Cache is the local copies of one lake's files. Safe for concurrent use.
type Cache struct {
	st    lake.Storage
	root  string
	limit int64
	log   *slog.Logger

	mu       sync.Mutex
	total    int64          // bytes of copies, as last counted plus fetched since
	pinned   map[string]int // names pinned by this process, and how often
	fetching map[string]*fetch
}

type fetch struct {
	done chan struct{}
	err  error
}

// Option configures a Cache.
type Option func(*Cache)

// Logger receives what the cache removes. Default: discard.
func Logger(l *slog.Logger) Option { return func(c *Cache) { c.log = l } }

// Open returns the cache of the lake st, found at location (which names
// its folder), in dir, bounded to limit bytes (0: DefaultSize).
func Open(st lake.Storage, location, dir string, limit int64, opts ...Option) (*Cache, error) {
	if limit == 0 {
		limit = DefaultSize
	}
	if limit < 0 {
		return nil, fmt.Errorf("cache size %d must not be negative", limit)
	}
	sum := sha256.Sum256([]byte(location))
	// No '=' in the folder's name: DuckDB would read it as a hive key.
	root := filepath.Join(dir, "lake-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open the lake cache: %w", err)
	}
	// For people who look in the folder.
	_ = os.WriteFile(filepath.Join(root, "LAKE"), []byte(location+"\n"), 0o644)
	c := &Cache{st: st, root: root, limit: limit, log: slog.New(slog.DiscardHandler),
		pinned: map[string]int{}, fetching: map[string]*fetch{}}
	for _, o := range opts {
		o(c)
	}
	files, err := c.copies()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		c.total += f.size
	}
	return c, nil
}

// Root is the folder that mirrors the lake: a file's copy is
// Root()/<name>.
func (c *Cache) Root() string { return c.root }

// Path is where the copy of a lake file is.
func (c *Cache) Path(name string) string { return filepath.Join(c.root, filepath.FromSlash(name)) }

// Pinned is a set of copies kept until Release.
type Pinned struct {
	c     *Cache
	names []string
	held  []*os.File // shared locks that keep other processes from removing them
	once  sync.Once
}

// Pin makes sure every file has a local copy of its listed size,
// downloading those missing, and keeps them until Release: no process
// removes them meanwhile.
func (c *Cache) Pin(ctx context.Context, files []lake.DataFile) (*Pinned, error) {
	p := &Pinned{c: c}
	c.mu.Lock()
	for _, f := range files {
		c.pinned[f.Name]++
		p.names = append(p.names, f.Name)
	}
	c.mu.Unlock()

	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, fetchers)
	var wg sync.WaitGroup
	for _, f := range files {
		held, err := c.hold(f)
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			break
		}
		if held != nil {
			mu.Lock()
			p.held = append(p.held, held)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			held, err := c.fetch(ctx, f)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			p.held = append(p.held, held)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.Release()
		return nil, err
	}
	return p, nil
}

// Release lets the copies go, and removes the least recently used ones
// that no one reads while the cache is over its bound.
func (p *Pinned) Release() {
	p.once.Do(func() {
		for _, f := range p.held {
			f.Close()
		}
		c := p.c
		c.mu.Lock()
		for _, name := range p.names {
			if c.pinned[name]--; c.pinned[name] <= 0 {
				delete(c.pinned, name)
			}
		}
		over := c.total > c.limit
		c.mu.Unlock()
		if over {
			if err := c.evict(); err != nil {
				c.log.Warn("lake cache: evict", "err", err)
			}
		}
	})
}

// hold takes a shared lock on f's copy when there is a good one, and
// marks it used now; nil when there is none.
func (c *Cache) hold(f lake.DataFile) (*os.File, error) {
	path := c.Path(f.Name)
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lake cache: %w", err)
	}
	if err := lockShared(file); err != nil {
		file.Close()
		return nil, fmt.Errorf("lake cache: lock %s: %w", path, err)
	}
	// Locked, it is still the copy at path (an eviction removes a copy
	// under an exclusive lock), and of the listed size.
	st, err1 := file.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(st, now) || st.Size() != f.Size {
		file.Close()
		return nil, nil
	}
	t := time.Now()
	_ = os.Chtimes(path, t, t) // the last use, for the eviction's order
	return file, nil
}

// fetch downloads f's copy (once at a time per file in this process) and
// returns it locked.
func (c *Cache) fetch(ctx context.Context, f lake.DataFile) (*os.File, error) {
	c.mu.Lock()
	if inflight, ok := c.fetching[f.Name]; ok {
		c.mu.Unlock()
		select {
		case <-inflight.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if inflight.err != nil {
			return nil, inflight.err
		}
		if held, err := c.hold(f); held != nil || err != nil {
			return held, err
		}
		return c.fetch(ctx, f) // removed meanwhile
	}
	call := &fetch{done: make(chan struct{})}
	c.fetching[f.Name] = call
	c.mu.Unlock()

	held, err := c.download(ctx, f)
	call.err = err
	c.mu.Lock()
	delete(c.fetching, f.Name)
	if err == nil {
		c.total += f.Size
	}
	c.mu.Unlock()
	close(call.done)
	return held, err
}

// download copies f under a temporary name, locks it, and renames it
// into place: a copy is whole or absent.
func (c *Cache) download(ctx context.Context, f lake.DataFile) (*os.File, error) {
	final := c.Path(f.Name)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, fmt.Errorf("lake cache: %w", err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	tmp := filepath.Join(filepath.Dir(final), fetchPrefix+hex.EncodeToString(r[:])+".tmp")
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lake cache: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		out.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := lockShared(out); err != nil {
		return fail(fmt.Errorf("lake cache: lock %s: %w", tmp, err))
	}
	in, err := c.st.Open(ctx, f.Name)
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	if in.Size() != f.Size {
		return fail(fmt.Errorf("fetch %s: it is %d bytes, listed as %d: %w", f.Name, in.Size(), f.Size, fs.ErrNotExist))
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, 0, in.Size())); err != nil {
		return fail(fmt.Errorf("fetch %s: %w", f.Name, err))
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(fmt.Errorf("lake cache: %w", err))
	}
	return out, nil
}

// copyInfo is a copy in the cache.
type copyInfo struct {
	path string
	size int64
	used time.Time
}

// copies lists the cache's copies, and removes downloads a killed
// process left.
func (c *Cache) copies() ([]copyInfo, error) {
	var out []copyInfo
	err := filepath.WalkDir(c.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.Type().IsRegular() || p == filepath.Join(c.root, "LAKE") {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if strings.HasPrefix(e.Name(), fetchPrefix) {
			if time.Since(info.ModTime()) > time.Hour {
				os.Remove(p)
			}
			return nil
		}
		out = append(out, copyInfo{path: p, size: info.Size(), used: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lake cache: %w", err)
	}
	return out, nil
}

// evict removes the least recently used copies that no one reads until
// the cache is within its bound.
func (c *Cache) evict() error {
	files, err := c.copies()
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	slices.SortFunc(files, func(a, b copyInfo) int { return cmp.Compare(a.used.UnixNano(), b.used.UnixNano()) })
	for _, f := range files {
		if total <= c.limit {
			break
		}
		rel, err := filepath.Rel(c.root, f.path)
		if err != nil {
			continue
		}
		c.mu.Lock()
		inUse := c.pinned[filepath.ToSlash(rel)] > 0
		c.mu.Unlock()
		if inUse {
			continue
		}
		removed, err := removeUnused(f.path)
		if err != nil {
			return err
		}
		if removed {
			total -= f.size
			c.log.Debug("lake cache: removed", "file", path.Clean(filepath.ToSlash(rel)), "bytes", f.size)
		}
	}
	c.mu.Lock()
	c.total = total
	c.mu.Unlock()
	return nil
}

// removeUnused removes a copy unless another process holds it.
func removeUnused(p string) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lake cache: %w", err)
	}
	defer f.Close()
	ok, err := tryLockExclusive(f)
	if err != nil || !ok {
		return false, err
	}
	st, err1 := f.Stat()
	now, err2 := os.Stat(p)
	if err1 != nil || err2 != nil || !os.SameFile(st, now) {
		return false, nil // replaced meanwhile
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("lake cache: %w", err)
	}
	return true, nil
}
