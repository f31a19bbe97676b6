// Package s3test starts a real S3-compatible server for tests (moto_server,
// Python moto's stand-alone HTTP server) on a free port of 127.0.0.1,
// points the AWS environment variables at it, makes buckets in it, and
// stops it when the test ends.
//
// It knows nothing of what the tests store in it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/questlog/questlog/internal/testproc"
)

// startTimeout bounds how long moto_server may take to answer (it takes a
// few seconds to import on a busy machine).
const startTimeout = 60 * time.Second

// Server is a running moto_server.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKeyID and SecretAccessKey are the credentials Start put in
	// the environment; the secret is random, so that a test can look for
	// it where it must never be.
	AccessKeyID, SecretAccessKey string

	t       testing.TB
	proc    testproc.Proc
	mu      sync.Mutex
	buckets int
}

// Start runs a moto_server for the rest of t and sets the environment
// (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION; the others that would override them emptied) for the rest
// of t, so that s3:// lakes opened by t, and processes it starts, use
// it. It skips t when moto_server is not installed, and fails it then
// when QUESTLOG_REQUIRE_TOOLS is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testproc.LookPath(t, "moto_server", "pip install 'moto[server]'")
	var secret [16]byte
	_, _ = rand.Read(secret[:])
	s := &Server{t: t, AccessKeyID: "questlog-test", SecretAccessKey: "secret-" + hex.EncodeToString(secret[:])}
	s.proc.Name = "moto_server"
	testproc.OnFreePort(t, "moto_server", func(port int) error { return s.run(bin, port) })
	t.Cleanup(s.proc.Stop)
	for name, v := range s.Env() {
		t.Setenv(name, v)
	}
	return s
}

// Env are the environment variables that point an S3 client at the
// server (and empty the ones that would point it elsewhere).
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
		"AWS_ENDPOINT_URL":      "",
		"AWS_ACCESS_KEY_ID":     s.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": s.SecretAccessKey,
		"AWS_SESSION_TOKEN":     "",
		"AWS_REGION":            "us-east-1",
		"AWS_DEFAULT_REGION":    "",
		"AWS_PROFILE":           "",
	}
}

// run starts the server process and waits until it answers.
func (s *Server) run(bin string, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.Endpoint = "http://" + addr
	client := &http.Client{Timeout: time.Second}
	ready := func() error {
		resp, err := client.Get(s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET / answered %s", resp.Status)
		}
		return nil
	}
	return s.proc.Run(exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)), addr, &syncBuffer{}, testproc.Wait{
		Timeout: startTimeout,
		First:   10 * time.Millisecond,
		Most:    100 * time.Millisecond,
		Ready:   ready,
	})
}

// NewBucket makes a new empty bucket and returns the location of a lake
// in it, s3://BUCKET/lake.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.buckets++
	name := fmt.Sprintf("questlog-test-%d", s.buckets)
	s.mu.Unlock()
	cl, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return "s3://" + name + "/lake"
}

// Client is a minio client of the server, for tests that look at the
// objects themselves.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	cl, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (s *Server) client() (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKeyID, s.SecretAccessKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
}

// Pause stops the server with SIGSTOP: it keeps its connections and
// answers nothing, as a stalled store does, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if err := s.proc.Signal(sig); err != nil {
		s.t.Error(err)
	}
}

// syncBuffer collects the server's output, written by exec's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

// keepOutput bounds the server's output kept: it logs every request.
const keepOutput = 64 << 10

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > keepOutput {
		kept := b.buf.String()
		kept = kept[max(0, len(kept)-keepOutput/2):]
		b.buf.Reset()
		b.buf.WriteString("...\n" + kept)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
