package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
)

// blockSize is what a small read fetches: the aligned block around it.
// A Parquet reader makes many small reads (the footer's length, the
// footer, each page's header), and a request costs far more than a MiB
// of transfer: this makes them a request per block.
const blockSize = 1 << 20

// keptBlocks bounds the blocks an open file keeps: its memory is at most
// keptBlocks MiB.
const keptBlocks = 4

// Object is a file opened for random access: an io.ReaderAt of ranged
// GETs, which keeps the last few blocks it fetched. Every read asks for
// the version it opened (If-Match on its ETag): a file replaced under a
// reader fails its reads instead of mixing two versions. Safe for
// concurrent use.
type Object struct {
	ctx  context.Context
	b    *Bucket
	name string
	size int64
	etag string

	mu    sync.Mutex
	spans []span // most recently used last
}

type span struct {
	off  int64
	data []byte
}

// Open opens a file for random access; a missing file is
// fs.ErrNotExist. It fetches the file's last block at once (a Parquet
// reader starts at the footer), which also tells the file's size: a
// small file costs one request in all. ctx governs every read.
func (b *Bucket) Open(ctx context.Context, name string) (*Object, error) {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(0, -blockSize); err != nil {
		return nil, b.wrap("open", name, err)
	}
	tail, info, h, err := b.get(ctx, name, opts)
	if isInvalidRange(err) {
		// An empty file has no last bytes to send.
		st, serr := b.client.StatObject(ctx, b.bucket, b.key(name), minio.StatObjectOptions{})
		if serr != nil {
			return nil, b.wrap("open", name, serr)
		}
		return &Object{ctx: ctx, b: b, name: name, size: st.Size, etag: st.ETag}, nil
	}
	if err != nil {
		return nil, b.wrap("open", name, err)
	}
	size := int64(len(tail))
	if cr := h.Get("Content-Range"); cr != "" {
		if size, err = totalOf(cr); err != nil {
			return nil, fmt.Errorf("open %s: %w", b.where(name), err)
		}
	}
	o := &Object{ctx: ctx, b: b, name: name, size: size, etag: info.ETag}
	if len(tail) > 0 {
		o.spans = []span{{off: size - int64(len(tail)), data: tail}}
	}
	return o, nil
}

// totalOf reads the size from a Content-Range header: bytes 0-9/1234.
func totalOf(contentRange string) (int64, error) {
	_, total, ok := strings.Cut(contentRange, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("the store answered Content-Range %q", contentRange)
	}
	return n, nil
}

func isInvalidRange(err error) bool {
	r := minio.ToErrorResponse(err)
	return err != nil && (r.StatusCode == http.StatusRequestedRangeNotSatisfiable || r.Code == "InvalidRange")
}

// Size is the file's size in bytes.
func (o *Object) Size() int64 { return o.size }

// Close releases the blocks kept.
func (o *Object) Close() error {
	o.mu.Lock()
	o.spans = nil
	o.mu.Unlock()
	return nil
}

// ReadAt implements io.ReaderAt.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", o.b.where(o.name), off)
	}
	if off >= o.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), o.size-off)
	buf := p[:n]
	switch {
	case o.cached(buf, off):
	case n >= blockSize:
		// A large read (a column chunk) is worth its own request, and
		// would only push the small blocks out.
		if err := o.fetch(buf, off); err != nil {
			return 0, err
		}
	default:
		start := off / blockSize * blockSize
		end := min(o.size, (off+n+blockSize-1)/blockSize*blockSize)
		block := make([]byte, end-start)
		if err := o.fetch(block, start); err != nil {
			return 0, err
		}
		copy(buf, block[off-start:])
		o.keep(span{off: start, data: block})
	}
	if int(n) < len(p) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// cached copies p's bytes from a kept span that holds them all.
func (o *Object) cached(p []byte, off int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, s := range o.spans {
		if off >= s.off && off+int64(len(p)) <= s.off+int64(len(s.data)) {
			copy(p, s.data[off-s.off:])
			o.spans = append(append(o.spans[:i:i], o.spans[i+1:]...), s)
			return true
		}
	}
	return false
}

func (o *Object) keep(s span) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spans = append(o.spans, s)
	if len(o.spans) > keptBlocks {
		o.spans = append(o.spans[:0:0], o.spans[len(o.spans)-keptBlocks:]...)
	}
}

// fetch reads len(p) bytes at off in one ranged GET of the version
// opened.
func (o *Object) fetch(p []byte, off int64) error {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return fmt.Errorf("read %s: %w", o.b.where(o.name), err)
	}
	if o.etag != "" {
		if err := opts.SetMatchETag(o.etag); err != nil {
			return fmt.Errorf("read %s: %w", o.b.where(o.name), err)
		}
	}
	rc, _, _, err := o.b.core.GetObject(o.ctx, o.b.bucket, o.b.key(o.name), opts)
	if preconditionFailed(err) {
		return fmt.Errorf("read %s: %w", o.b.where(o.name), errChanged)
	}
	if err != nil {
		return o.b.wrap("read", o.name, err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		return fmt.Errorf("read %s at %d: %w", o.b.where(o.name), off, err)
	}
	return nil
}

// errChanged says a file was replaced while it was open.
var errChanged = errors.New("the file was replaced while it was being read")
