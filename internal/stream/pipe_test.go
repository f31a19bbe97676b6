package stream

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/syncbuf"
)

// A producer in the broker's process connects through a pipe, TCP clients
// through the socket, and both see the same log.
func TestBrokerDialsInProcess(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx := context.Background()

	c, err := b.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LocalAddr().Network(); got != "pipe" {
		t.Errorf("DialContext(%s) made a %q connection, want an in-process pipe", b.Addr(), got)
	}
	c.Close()

	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events", Dial: b.DialContext})
	for _, k := range []string{"ada", "bob", "ada"} {
		if _, _, err := p.Publish(ctx, []byte(k), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	publish(t, b, "bob") // over TCP
	if got := tail(t, b, "beginning"); len(got["ada"]) != 2 || len(got["bob"]) != 2 {
		t.Errorf("read %v, want 2 records of ada and 2 of bob", got)
	}
}

// Other addresses are dialled over TCP, and a closed broker refuses
// in-process connections instead of leaving them hanging.
func TestBrokerDialOtherAndClosed(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := b.DialContext(ctx, "tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != other.Addr().String() {
		t.Errorf("DialContext(%s) reached %s", other.Addr(), got)
	}
	c.Close()

	b.Close()
	if _, err := b.DialContext(ctx, "tcp", b.Addr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("DialContext on a closed broker = %v, want net.ErrClosed", err)
	}
}

// fakeTCP is a TCP listener whose Accept returns what the test sends on
// next, and net.ErrClosed once closed.
type fakeTCP struct {
	next   chan fakeAccept
	closed chan struct{}
	once   sync.Once
}

type fakeAccept struct {
	conn net.Conn
	err  error
}

func newFakeTCP() *fakeTCP {
	return &fakeTCP{next: make(chan fakeAccept), closed: make(chan struct{})}
}

func (f *fakeTCP) Accept() (net.Conn, error) {
	select {
	case a := <-f.next:
		return a.conn, a.err
	case <-f.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}
	}
}

// give makes the listener's next TCP accept return a, failing the test if
// the listener stopped accepting.
func (f *fakeTCP) give(t *testing.T, a fakeAccept) {
	t.Helper()
	select {
	case f.next <- a:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener stopped calling Accept on its TCP listener")
	}
}

func (f *fakeTCP) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeTCP) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9092} }

// acceptErr is a failed accept(2) as package net reports it.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// accept calls l.Accept as kfake does, failing the test if it blocks.
func accept(t *testing.T, l net.Listener) (net.Conn, error) {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("Accept blocked for 10s")
		return nil, nil
	}
}

// acceptsBacklogged puts a TCP connection in the backlog and fails t unless
// the listener's next Accept returns it; after names what came before it.
func acceptsBacklogged(t *testing.T, tcp *fakeTCP, l *listener, after string) {
	t.Helper()
	conn, peer := net.Pipe() // stands for the TCP connection
	t.Cleanup(func() { peer.Close() })
	tcp.give(t, fakeAccept{conn: conn})
	if c, err := accept(t, l); err != nil || c != conn {
		t.Fatalf("Accept after %s = %v, %v; want the TCP connection", after, c, err)
	}
}

// Out of file descriptors, accept(2) fails with EMFILE until one is freed.
// The listener retries with a backoff, warns once per episode, keeps
// accepting in-process connections meanwhile, and never hands kfake an
// error (kfake would stop accepting for good) until it is closed.
func TestListenerRetriesAcceptErrorsAndKeepsAcceptingPipes(t *testing.T) {
	tcp := newFakeTCP()
	var logs syncbuf.Buffer
	l := newListener(tcp, slog.New(slog.NewTextHandler(&logs, nil)))
	defer l.Close()

	// The process runs out of descriptors: TCP accepts fail.
	for range 3 {
		tcp.give(t, fakeAccept{err: acceptErr(syscall.EMFILE)})
	}
	// Meanwhile the producer's in-process connection is accepted.
	dialed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := l.dial(ctx)
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	c, err := accept(t, l)
	if err != nil {
		t.Fatalf("Accept while TCP accepts fail = %v; kfake would stop accepting", err)
	}
	if got := c.LocalAddr().Network(); got != "pipe" {
		t.Errorf("Accept while TCP accepts fail returned a %q connection, want the in-process pipe", got)
	}
	c.Close()
	if err := <-dialed; err != nil {
		t.Fatalf("in-process dial while TCP accepts fail: %v", err)
	}

	// More failures, then a descriptor is free: the TCP connection waiting
	// in the backlog is accepted.
	for range 3 {
		tcp.give(t, fakeAccept{err: acceptErr(syscall.EMFILE)})
	}
	acceptsBacklogged(t, tcp, l, "the failures")
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one episode of 6 failed accepts, want 1:\n%s", n, logs.String())
	}

	// A second episode (a client gone before its accept) warns again.
	tcp.give(t, fakeAccept{err: acceptErr(syscall.ECONNABORTED)})
	acceptsBacklogged(t, tcp, l, "ECONNABORTED")
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Errorf("%d warnings after two episodes, want 2:\n%s", n, logs.String())
	}

	// Close, even in the middle of a backoff, ends everything: Accept
	// reports net.ErrClosed (kfake's signal to stop), the TCP listener is
	// closed and in-process dials are refused.
	tcp.give(t, fakeAccept{err: acceptErr(syscall.EMFILE)})
	if err := l.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := accept(t, l); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	select {
	case <-tcp.closed:
	default:
		t.Error("Close left the TCP listener open")
	}
	if _, err := l.dial(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial after Close = %v, want net.ErrClosed", err)
	}
}

// A TCP listener closed by someone else accepts nothing more: kfake is told
// (it then closes the listener, ending the pipes too) instead of the
// listener retrying forever.
func TestListenerReportsTCPListenerClosedUnderIt(t *testing.T) {
	tcp := newFakeTCP()
	l := newListener(tcp, slog.New(slog.DiscardHandler))
	tcp.Close()
	if _, err := accept(t, l); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the TCP listener closed = %v, want net.ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close of a closed listener = %v, want net.ErrClosed", err)
	}
}

// Ping answers for clients outside the process: once the TCP listener is
// gone it fails, although the broker still runs and a connection made
// earlier would still be answered.
func TestBrokerPingFailsWhenItsListenerStopsAccepting(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return b.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("Ping on a running broker: %v", err)
	}
	b.ln.Listener.Close()
	start := time.Now()
	if err := ping(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with the listener closed = %v, want ErrUnavailable", err)
	}
	t.Logf("Ping failed after %v", time.Since(start))
	b.Close()
	if err := ping(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping on a closed broker = %v, want ErrUnavailable", err)
	}
}
