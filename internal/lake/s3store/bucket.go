// Package s3store is the lake's S3 client: a bucket and a key prefix
// seen as a tree of whole files, written once and published in one
// request, read in ranges, listed with their sizes and times, and leases
// for locks, taken with conditional writes. It stands on minio-go and
// works with AWS S3 and any S3-compatible server.
//
// It knows nothing of the lake's layout or of Parquet: names are
// slash-separated paths below the prefix, and package lake gives them
// their meaning. It never prints, logs or returns a secret: errors carry
// the lake's location (s3://bucket/prefix), the endpoint without user
// information, and the store's own messages.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Bucket is a prefix of an S3 bucket: the files below it by their names
// relative to it.
type Bucket struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // without a trailing slash; empty for the whole bucket
	endpoint string // for messages: no credentials
	tempDir  string
}

// Option configures a Bucket.
type Option func(*options)

type options struct {
	tempDir   string
	transport http.RoundTripper
}

// TempDir is where files being written wait for their upload. Default
// the system's temporary directory.
func TempDir(dir string) Option { return func(o *options) { o.tempDir = dir } }

// Transport sends the requests. Default minio-go's (net/http's, with
// timeouts). For tests that count or fail requests.
func Transport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// ParseLocation splits s3://bucket/prefix into the bucket and the prefix
// (without slashes at its ends; empty for the whole bucket).
func ParseLocation(location string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(location, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%s is not an s3://bucket/prefix URL", redactURL(location))
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	switch {
	case strings.Contains(bucket, "@"):
		// Never echo it: the part before @ would be a secret.
		return "", "", errors.New("an s3:// lake URL must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case bucket == "":
		return "", "", fmt.Errorf("%s names no bucket: use s3://bucket/prefix", location)
	case strings.ContainsAny(location, "?#"):
		return "", "", fmt.Errorf("%s: an s3:// lake URL takes no query or fragment", redactURL(location))
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" && path.Clean(prefix) != prefix {
		return "", "", fmt.Errorf("%s: the prefix %q is not a clean path", location, prefix)
	}
	return bucket, prefix, nil
}

// Open returns the bucket and prefix of location (s3://bucket/prefix),
// reached as cfg says. It sends no request: a bucket that does not exist
// fails the first operation.
func Open(location string, cfg Config, opts ...Option) (*Bucket, error) {
	bucket, prefix, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	host, secure, custom, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.FileAWSCredentials{}})
	}
	lookup := minio.BucketLookupAuto
	if custom {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    o.transport,
		Region:       cfg.region(),
		BucketLookup: lookup,
		// The callers retry what they must (a lease's renewals) within
		// their own deadlines; a few retries smooth over a dropped
		// connection.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	b := &Bucket{client: client, core: minio.Core{Client: client}, bucket: bucket, prefix: prefix, endpoint: "AWS S3", tempDir: o.tempDir}
	if custom {
		b.endpoint = redactURL(cfg.Endpoint)
	}
	return b, nil
}

// String is the bucket's location, s3://bucket/prefix, and where it is
// reached: never a secret.
func (b *Bucket) String() string { return b.Location() + " at " + b.endpoint }

// Location is s3://bucket/prefix.
func (b *Bucket) Location() string {
	if b.prefix == "" {
		return "s3://" + b.bucket
	}
	return "s3://" + b.bucket + "/" + b.prefix
}

// key is the object key of a name.
func (b *Bucket) key(name string) string {
	if b.prefix == "" {
		return name
	}
	return b.prefix + "/" + name
}

// where names a file in messages.
func (b *Bucket) where(name string) string { return b.Location() + "/" + name }

// wrap says which operation failed on which file; a missing file or
// bucket is fs.ErrNotExist.
func (b *Bucket) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	what := b.where(name)
	if name == "" {
		what = b.Location()
	}
	switch {
	case minio.ToErrorResponse(err).Code == minio.NoSuchBucket:
		// Not an empty lake: a mistyped bucket must not read as one.
		return fmt.Errorf("%s %s: %w", op, what, &NoBucketError{Bucket: b.bucket, Endpoint: b.endpoint})
	case notFound(err):
		return fmt.Errorf("%s %s: %w (%s)", op, what, fs.ErrNotExist, message(err))
	}
	return fmt.Errorf("%s %s: %w", op, what, err)
}

// NoBucketError says the bucket does not exist.
type NoBucketError struct {
	Bucket, Endpoint string
}

func (e *NoBucketError) Error() string {
	return fmt.Sprintf("the bucket %s does not exist at %s (make it first)", e.Bucket, e.Endpoint)
}

// message is a store error's message, its code when the message is empty.
func message(err error) string {
	r := minio.ToErrorResponse(err)
	switch {
	case r.Message != "":
		return r.Message
	case r.Code != "":
		return r.Code
	}
	return err.Error()
}

// preconditionFailed reports a conditional request refused: the object
// is not (or no longer) what the condition said.
func preconditionFailed(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" ||
		// AWS S3 answers 409 when two conditional writes race.
		r.StatusCode == http.StatusConflict || r.Code == "ConditionalRequestConflict"
}

// notFound reports a missing object (not a missing bucket).
func notFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket
}

// ReadFile returns a whole (small) file; a missing file is
// fs.ErrNotExist.
func (b *Bucket) ReadFile(ctx context.Context, name string) ([]byte, error) {
	data, _, _, err := b.get(ctx, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, b.wrap("read", name, err)
	}
	return data, nil
}

// get sends one GET of name and reads the whole body it answers, with
// the object's info and the response's headers. Its errors are minio's:
// the caller wraps them.
func (b *Bucket) get(ctx context.Context, name string, opts minio.GetObjectOptions) ([]byte, minio.ObjectInfo, http.Header, error) {
	rc, info, h, err := b.core.GetObject(ctx, b.bucket, b.key(name), opts)
	if err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, minio.ObjectInfo{}, nil, err
	}
	return data, info, h, nil
}

// ObjectInfo is a file as List finds it.
type ObjectInfo struct {
	Name    string // relative to the bucket's prefix
	Size    int64
	ModTime time.Time // when its upload completed, on the store's clock
}

// List returns every file below the folder dir (every file of the
// bucket's prefix when dir is empty), sorted by name.
func (b *Bucket) List(ctx context.Context, dir string) ([]ObjectInfo, error) {
	root := b.prefix
	if dir = strings.Trim(dir, "/"); dir != "" {
		root = b.key(dir)
	}
	if root != "" {
		root += "/"
	}
	var out []ObjectInfo
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: root, Recursive: true}) {
		if obj.Err != nil {
			return nil, b.wrap("list", dir, obj.Err)
		}
		name := obj.Key
		if b.prefix != "" {
			name = strings.TrimPrefix(name, b.prefix+"/")
		}
		if strings.HasSuffix(name, "/") {
			continue // a folder marker some tools create
		}
		out = append(out, ObjectInfo{Name: name, Size: obj.Size, ModTime: obj.LastModified})
	}
	// ListObjectsV2 lists keys in UTF-8 binary order: Go's string order.
	return out, nil
}

// Remove deletes a file; a missing file is not an error.
func (b *Bucket) Remove(ctx context.Context, name string) error {
	err := b.client.RemoveObject(ctx, b.bucket, b.key(name), minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return b.wrap("remove", name, err)
	}
	return nil
}

// Create starts a file that Commit uploads in one request (a multipart
// upload for a large one, which the store also publishes whole): no
// reader ever sees part of it. Until then its bytes wait in a temporary
// file, unlinked from the start, so memory does not grow with the file
// and nothing is left behind when the process dies. ctx governs the upload
// too: a file whose ctx is done fails to commit.
func (b *Bucket) Create(ctx context.Context, name string) (*Upload, error) {
	f, err := os.CreateTemp(b.tempDir, "questlog-upload-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", b.where(name), err)
	}
	// Unlinked at once (where the system allows it), the file lives only
	// as long as its descriptor: a killed process, or a writer that stops
	// without committing or aborting, leaves nothing in the directory.
	unlinked := os.Remove(f.Name()) == nil
	return &Upload{b: b, ctx: ctx, name: name, f: f, unlinked: unlinked}, nil
}

// Upload is a file being written; see Bucket.Create.
type Upload struct {
	b    *Bucket
	ctx  context.Context
	name string
	f    *os.File
	size int64
	done bool
	// unlinked: the temporary file has no name left to remove.
	unlinked bool
}

// Write adds bytes to the file.
func (u *Upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, fmt.Errorf("write %s: the file was committed or aborted", u.b.where(u.name))
	}
	n, err := u.f.Write(p)
	u.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", u.b.where(u.name), err)
	}
	return n, nil
}

// Sync does nothing: a file is durable once Commit returns, when the
// store has it.
func (u *Upload) Sync() error { return nil }

// Commit uploads the file under name (empty: the name given to Create;
// else a name in the same folder): the store publishes it whole, or not
// at all when Commit fails. The temporary file is removed either way.
func (u *Upload) Commit(name string) error {
	if u.done {
		return fmt.Errorf("publish %s: the file was committed or aborted", u.b.where(u.name))
	}
	defer u.discard()
	if name == "" {
		name = u.name
	}
	if path.Dir(name) != path.Dir(u.name) {
		return fmt.Errorf("publish %s as %s: not the same folder", u.b.where(u.name), name)
	}
	if _, err := u.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("publish %s: %w", u.b.where(name), err)
	}
	_, err := u.b.client.PutObject(u.ctx, u.b.bucket, u.b.key(name), u.f, u.size, minio.PutObjectOptions{
		ContentType: contentType(name),
		// Parts stream from the temporary file: memory stays at a few
		// requests' buffers whatever the size.
		PartSize:   64 << 20,
		NumThreads: 2,
	})
	if err != nil {
		return u.b.wrap("publish", name, err)
	}
	return nil
}

// Abort throws the file away.
func (u *Upload) Abort() error {
	if u.done {
		return nil
	}
	return u.discard()
}

func (u *Upload) discard() error {
	u.done = true
	u.f.Close()
	if u.unlinked {
		return nil
	}
	if err := os.Remove(u.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", u.b.where(u.name), err)
	}
	return nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".parquet":
		return "application/vnd.apache.parquet"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}
