package lake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Storage is the lake's file I/O: the only way this package and its callers
// touch files, so that a local directory (Dir) and an object store
// (Bucket) are one lake to them. Names are slash-separated and relative to
// the lake's root.
type Storage interface {
	// Create starts a file in the directory of name that becomes visible
	// only when committed, in one atomic step; until then readers never see
	// it. ctx governs the writing up to and including Commit (an object
	// store uploads the file then).
	Create(ctx context.Context, name string) (PendingFile, error)
	// ReadFile returns a whole (small) file; a missing file is fs.ErrNotExist.
	ReadFile(ctx context.Context, name string) ([]byte, error)
	// Open opens a file for random access.
	Open(ctx context.Context, name string) (File, error)
	// List returns every file under prefix, recursively, sorted by name,
	// including pending files (see IsPending). An object store's listing
	// gives sizes and times for free, and compaction plans by them.
	List(ctx context.Context, prefix string) ([]FileInfo, error)
	// Remove deletes a file; a missing file is not an error.
	Remove(ctx context.Context, name string) error
	// SyncDir makes the files published in a directory (see
	// PendingFile.Commit) survive a power loss.
	SyncDir(ctx context.Context, dir string) error
}

// PendingFile is a file being written: Commit publishes it under a name
// (in the directory given to Create; empty means the name given to Create),
// Abort throws it away. Exactly one of them must be called. Sync makes the
// bytes durable first; Commit syncs them itself when Sync was not called.
// A committed file survives a power loss once its directory is synced
// (Storage.SyncDir): many files can share one SyncDir.
type PendingFile interface {
	io.Writer
	Sync() error
	Commit(name string) error
	Abort() error
}

// FileInfo is a file as Storage.List finds it.
type FileInfo struct {
	Name string // slash-separated, relative to the lake's root
	Size int64
	// ModTime is when the file was last written: for a published file,
	// just before it was published (files are written whole, then
	// published).
	ModTime time.Time
}

// File is a lake file opened for reading.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// OpenOption configures the storage Open returns.
type OpenOption func(*openConfig)

type openConfig struct {
	getenv  func(string) string
	lockTTL time.Duration
}

// LockTTL is how long a lock on an object store (see TryLock) outlives a
// holder that stopped renewing it: a killed extract keeps the lake from
// another that long. Default 30s; at least 2s. A local directory's locks
// die with their process.
func LockTTL(d time.Duration) OpenOption { return func(c *openConfig) { c.lockTTL = d } }

// Getenv replaces os.Getenv for reading an object store's endpoint,
// region and credentials (see s3store.ConfigFromEnv). For tests.
func Getenv(f func(string) string) OpenOption { return func(c *openConfig) { c.getenv = f } }

// Open returns the storage for a lake location: a local directory
// (created when missing), or s3://bucket/prefix, an S3-compatible store
// reached as the AWS environment variables say (AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
func Open(location string, opts ...OpenOption) (Storage, error) {
	if location == "" {
		return nil, errors.New("open lake: no location given")
	}
	if i := strings.Index(location, "://"); i > 0 {
		if strings.HasPrefix(location, "s3://") {
			return openBucket(location, opts)
		}
		return nil, fmt.Errorf("open lake: unknown scheme %q in --lake (a directory or s3://bucket/prefix)", location[:i])
	}
	if err := os.MkdirAll(location, 0o755); err != nil {
		return nil, fmt.Errorf("open lake %s: %w", location, err)
	}
	return Dir(location), nil
}

// Locate returns the storage of a lake location for reading it: as Open,
// but a directory that does not exist is not created (it lists as an
// empty lake).
func Locate(location string, opts ...OpenOption) (Storage, error) {
	if strings.Contains(location, "://") {
		return Open(location, opts...)
	}
	if location == "" {
		return nil, errors.New("open lake: no location given")
	}
	return Dir(location), nil
}

// Dir is a lake in a local directory. Files are written under a hidden
// temporary name in their final directory and renamed into place.
type Dir string

// pendingPrefix starts the temporary name of a file being written; readers
// globbing *.parquet never match it.
const pendingPrefix = ".pending-"

// IsPending reports whether name is a file an interrupted writer left behind.
func IsPending(name string) bool { return strings.HasPrefix(path.Base(name), pendingPrefix) }

func (d Dir) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

// Create implements Storage.
func (d Dir) Create(_ context.Context, name string) (PendingFile, error) {
	final := d.path(name)
	var r [6]byte
	_, _ = rand.Read(r[:])
	// The name ends in .tmp, so no reader globbing *.parquet or *.json sees it.
	tmp := filepath.Join(filepath.Dir(final), pendingPrefix+hex.EncodeToString(r[:])+"-"+filepath.Base(final)+".tmp")
	// Lake retention removes a day's folder once empty: one removed
	// between making it and creating the file in it is made again.
	for attempt := 1; ; attempt++ {
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		return &pendingFile{f: f, tmp: tmp, final: final, name: name}, nil
	}
}

type pendingFile struct {
	f                *os.File
	tmp, final, name string
	synced           bool
}

func (p *pendingFile) Write(b []byte) (int, error) { return p.f.Write(b) }

// Sync flushes the file to stable storage and closes it.
func (p *pendingFile) Sync() error {
	if p.synced {
		return nil
	}
	if err := p.f.Sync(); err != nil {
		p.Abort()
		return fmt.Errorf("sync %s: %w", p.name, err)
	}
	if err := p.f.Close(); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("close %s: %w", p.name, err)
	}
	p.synced = true
	return nil
}

// Commit syncs the file unless done and renames it into place: a file that
// is visible is complete.
func (p *pendingFile) Commit(name string) error {
	if name != "" {
		if path.Dir(name) != path.Dir(p.name) {
			p.Abort()
			return fmt.Errorf("publish %s as %s: not the same directory", p.name, name)
		}
		p.name, p.final = name, filepath.Join(filepath.Dir(p.final), path.Base(name))
	}
	if err := p.Sync(); err != nil {
		return err
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("publish %s: %w", p.name, err)
	}
	return nil
}

// SyncDir implements Storage.
func (d Dir) SyncDir(_ context.Context, dir string) error { return syncDir(d.path(dir)) }

func (p *pendingFile) Abort() error {
	if !p.synced {
		p.f.Close()
	}
	if err := os.Remove(p.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", p.name, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// ReadFile implements Storage.
func (d Dir) ReadFile(_ context.Context, name string) ([]byte, error) {
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// Open implements Storage.
func (d Dir) Open(_ context.Context, name string) (File, error) {
	f, err := os.Open(d.path(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return osFile{f, st.Size()}, nil
}

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

// List implements Storage. A folder that changes while it is read (a
// merge's inputs removed once its file is published; see list) is read
// again: listing it in the middle could hold neither the inputs nor the
// merged file, and a reader would miss their records without a word.
func (d Dir) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	var files []FileInfo
	if err := d.list(ctx, d.path(prefix), &files); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	slices.SortFunc(files, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// listAttempts bounds how often List reads a folder that keeps changing
// while it is read; between attempts it waits a little longer each time
// (listPause doubled, up to listMaxPause), about 5 s in all.
const (
	listAttempts = 60
	listPause    = time.Millisecond
	listMaxPause = 100 * time.Millisecond
)

// errFolderChanging is List's answer for a folder that changed every time
// it was read: like a file that vanished, a reason to read the lake again.
var errFolderChanging = fmt.Errorf("folder changed each of the %d times it was read: %w", listAttempts, fs.ErrNotExist)

// afterReadDir, when set, is called with each folder List read, before
// its files are stat-ed. For tests.
var afterReadDir func(dir string)

// list appends the files under dir (a folder that does not exist holds
// none: no lake yet, or a day that retention removed while listing). A
// folder is read, its files stat-ed, and its names read again: a file
// gone by its stat, or names that differ, mean the folder changed while it
// was read (a folder too large for one read can otherwise miss both a
// merge's inputs, removed, and its file, published), and it is read again.
func (d Dir) list(ctx context.Context, dir string, files *[]FileInfo) error {
	pause := listPause
	for attempt := 1; ; attempt++ {
		here, folders, stable, err := d.readFolder(dir)
		if err != nil {
			return err
		}
		if stable {
			*files = append(*files, here...)
			for _, f := range folders {
				if err := d.list(ctx, f, files); err != nil {
					return err
				}
			}
			return nil
		}
		if attempt == listAttempts {
			return fmt.Errorf("%s: %w", dir, errFolderChanging)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, listMaxPause)
	}
}

// readFolder reads dir once: its files and folders, and whether it stood
// still meanwhile. A folder that is not there is stable and empty.
func (d Dir) readFolder(dir string) (files []FileInfo, folders []string, stable bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if afterReadDir != nil {
		afterReadDir(dir)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			folders = append(folders, p)
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, false, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		rel, err := filepath.Rel(string(d), p)
		if err != nil {
			return nil, nil, false, err
		}
		files = append(files, FileInfo{Name: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
	}
	again, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, true, nil // removed meanwhile: a day retention dropped
	}
	if err != nil {
		return nil, nil, false, err
	}
	if !slices.EqualFunc(entries, again, func(a, b fs.DirEntry) bool { return a.Name() == b.Name() }) {
		return nil, nil, false, nil
	}
	return files, folders, true, nil
}

// Remove implements Storage.
func (d Dir) Remove(_ context.Context, name string) error {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// removeEmptyDir removes a folder when it is empty (lake retention drops
// a day's folder so); a folder that is not is left alone.
func (d Dir) removeEmptyDir(dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	return os.Remove(d.path(dir))
}

// ErrLakeBusy says another extract is writing the lake for the same topic
// (questlog up runs one already).
var ErrLakeBusy = errors.New("another extract is writing this lake (questlog up already follows the topic; stop it or use questlog query)")

// ErrCompactionBusy says another compaction is merging this lake's files
// (questlog up, or extract --follow, compacts in the background).
var ErrCompactionBusy = errors.New("another compaction is running on this lake (questlog up and extract --follow compact it in the background)")
