package s3store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/parquet-go/parquet-go"

	"github.com/questlog/questlog/internal/lake/s3store"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
)

func configOf(srv *s3test.Server) s3store.Config {
	return s3store.Config{Endpoint: srv.Endpoint, Region: "us-east-1", AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey}
}

// TestS3 runs the tests that need a server on one moto_server.
func TestS3(t *testing.T) {
	srv := s3test.Start(t)
	t.Run("the store honours conditional writes", func(t *testing.T) { conditionalWrites(t, srv) })
	t.Run("a Parquet reader costs a request per block, not per read", func(t *testing.T) { readAhead(t, srv) })
	t.Run("no secret in what it says", func(t *testing.T) { noSecrets(t, srv) })
	t.Run("an upload leaves no temporary file, even one never finished", func(t *testing.T) { noTempFiles(t, srv) })
}

// noTempFiles: the temporary files that uploads wait in have no name in
// their directory, whether the upload is committed, aborted, or left (as
// by a killed process or a writer that stopped on an error); a commit
// still uploads every byte.
func noTempFiles(t *testing.T, srv *s3test.Server) {
	ctx := context.Background()
	tmp := t.TempDir()
	b, err := s3store.Open(srv.NewBucket(t), configOf(srv), s3store.TempDir(tmp))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("questlog "), 1<<17) // 1.1 MiB
	for i, end := range []string{"commit", "abort", "leave"} {
		up, err := b.Create(ctx, fmt.Sprintf("f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(body); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%s: %d names in the temporary directory while writing", end, len(left))
		}
		switch end {
		case "commit":
			err = up.Commit("")
		case "abort":
			err = up.Abort()
		}
		if err != nil {
			t.Fatalf("%s: %v", end, err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("%d names left in the temporary directory", len(left))
	}
	got, err := b.ReadFile(ctx, "f0")
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("the committed file: %d bytes, %v; want %d", len(got), err, len(body))
	}
}

// conditionalWrites checks what the leases stand on: a PUT with
// If-None-Match: * creates an object only when there is none, and one
// with If-Match: <ETag> replaces only that version; both fail with 412
// otherwise. (moto 5.2.1 honours both, as AWS S3 and MinIO do.)
func conditionalWrites(t *testing.T, srv *s3test.Server) {
	ctx := context.Background()
	bucket := strings.Split(strings.TrimPrefix(srv.NewBucket(t), "s3://"), "/")[0]
	core := minio.Core{Client: srv.Client(t)}
	put := func(body string, cond func(*minio.PutObjectOptions)) (string, error) {
		var o minio.PutObjectOptions
		cond(&o)
		info, err := core.PutObject(ctx, bucket, "lease", strings.NewReader(body), int64(len(body)), "", "", o)
		return info.ETag, err
	}
	status := func(err error) int { return minio.ToErrorResponse(err).StatusCode }
	v1, err := put("v1", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") })
	if err != nil {
		t.Fatalf("If-None-Match: * on no object: %v", err)
	}
	if _, err := put("v2", func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") }); status(err) != http.StatusPreconditionFailed {
		t.Fatalf("If-None-Match: * on an object: %v, want 412", err)
	}
	if _, err := put("v2", func(o *minio.PutObjectOptions) { o.SetMatchETag("0123456789abcdef0123456789abcdef") }); status(err) != http.StatusPreconditionFailed {
		t.Fatalf("If-Match on another version: %v, want 412", err)
	}
	if _, err := put("v2", func(o *minio.PutObjectOptions) { o.SetMatchETag(v1) }); err != nil {
		t.Fatalf("If-Match on the version there: %v", err)
	}
	rc, _, _, err := core.GetObject(ctx, bucket, "lease", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "v2" {
		t.Fatalf("the object holds %q, want v2", b)
	}
}

// counting counts the GETs sent.
type counting struct {
	http.RoundTripper
	gets atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		c.gets.Add(1)
	}
	return c.RoundTripper.RoundTrip(r)
}

// readsAt counts a reader's reads.
type readsAt struct {
	io.ReaderAt
	n atomic.Int64
}

func (r *readsAt) ReadAt(p []byte, off int64) (int, error) {
	r.n.Add(1)
	return r.ReaderAt.ReadAt(p, off)
}

type row struct {
	ID    int64   `parquet:"id"`
	User  string  `parquet:"user"`
	Item  string  `parquet:"item,optional"`
	Price float64 `parquet:"price"`
	Guild string  `parquet:"guild,optional"`
}

func readAhead(t *testing.T, srv *s3test.Server) {
	ctx := context.Background()
	tr := &counting{RoundTripper: http.DefaultTransport}
	b, err := s3store.Open(srv.NewBucket(t), configOf(srv), s3store.Transport(tr))
	if err != nil {
		t.Fatal(err)
	}
	// A file of many small pages in several row groups, as the lake's
	// are: ~3 MiB.
	up, err := b.Create(ctx, "events/part-0-0-99999.parquet")
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[row](up, parquet.PageBufferSize(16<<10), parquet.MaxRowsPerRowGroup(25_000))
	rows := make([]row, 100_000)
	for i := range rows {
		rows[i] = row{ID: int64(i), User: fmt.Sprintf("player-%d", i%977), Item: []string{"sword", "shield", "potion"}[i%3],
			Price: float64(i%50) * 1.5, Guild: fmt.Sprintf("guild-%d-%d", i%13, i)}
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(""); err != nil {
		t.Fatal(err)
	}

	tr.gets.Store(0)
	obj, err := b.Open(ctx, "events/part-0-0-99999.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	r := &readsAt{ReaderAt: obj}
	f, err := parquet.OpenFile(r, obj.Size(), parquet.ReadBufferSize(4<<10))
	if err != nil {
		t.Fatal(err)
	}
	got := parquet.NewGenericReader[row](f)
	read := make([]row, len(rows))
	n, err := got.Read(read)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if n != len(rows) || read[len(rows)-1] != rows[len(rows)-1] || read[12345] != rows[12345] {
		t.Fatalf("read %d rows, not the file's", n)
	}
	reads, gets := r.n.Load(), tr.gets.Load()
	t.Logf("a %.1f MiB file read whole: %d reads, %d requests", float64(obj.Size())/(1<<20), reads, gets)
	if blocks := obj.Size()>>20 + 1; gets > 2*blocks+2 || gets*10 > reads {
		t.Errorf("%d reads cost %d requests, for a file of %d blocks", reads, gets, blocks)
	}
}

// noSecrets: the secret key never shows in an error (of every kind of
// request) or when a Config or a Bucket is printed.
func noSecrets(t *testing.T, srv *s3test.Server) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	cfg := configOf(srv)
	cfg.SessionToken = "token-" + cfg.SecretAccessKey
	var said []string
	for _, endpoint := range []string{closed, srv.Endpoint} {
		cfg.Endpoint = endpoint
		b, err := s3store.Open("s3://no-such-bucket/lake", cfg)
		if err != nil {
			t.Fatal(err)
		}
		said = append(said, fmt.Sprint(b), fmt.Sprintf("%+v %#v", cfg, cfg), cfg.String())
		_, err1 := b.ReadFile(ctx, "_checkpoints/events.json")
		_, err2 := b.List(ctx, "events")
		_, err3 := b.Open(ctx, "x")
		up, _ := b.Create(ctx, "x")
		up.Write([]byte("x"))
		err4 := up.Commit("")
		_, err5 := b.TryLease(ctx, "_checkpoints/x.lock", 0)
		var once sync.Once
		for _, err := range []error{err1, err2, err3, err4, err5} {
			if err == nil {
				once.Do(func() { t.Errorf("a request to %s did not fail", endpoint) })
				continue
			}
			said = append(said, err.Error())
		}
	}
	for _, s := range said {
		if strings.Contains(s, srv.SecretAccessKey) {
			t.Errorf("the secret shows in %q", s)
		}
	}
	t.Logf("what it said: %s", strings.Join(said, "\n"))
	if _, err := s3store.Open("s3://AKID:"+srv.SecretAccessKey+"@bucket/lake", cfg); err == nil || strings.Contains(err.Error(), srv.SecretAccessKey) {
		t.Errorf("a URL with credentials: %v", err)
	}
	cfg.Endpoint = "http://user:" + srv.SecretAccessKey + "@127.0.0.1:1"
	if _, err := s3store.Open("s3://bucket/lake", cfg); err == nil || strings.Contains(err.Error(), srv.SecretAccessKey) {
		t.Errorf("an endpoint with credentials: %v", err)
	}
	if s := cfg.String(); strings.Contains(s, srv.SecretAccessKey) {
		t.Errorf("an endpoint with credentials shows them: %s", s)
	}
}
