// Package redistest starts a real redis-server for tests, on a free port of
// 127.0.0.1 with persistence off, and stops it when the test ends.
//
// It knows nothing of what the tests store in it.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 15 * time.Second

// Start runs a redis-server for the rest of t and returns its URL,
// redis://127.0.0.1:PORT/0. It skips t when redis-server is not installed.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		// CI sets QUESTLOG_REQUIRE_TOOLS so that a missing server fails
		// instead of silently skipping the Redis half of the suite.
		if os.Getenv("QUESTLOG_REQUIRE_TOOLS") != "" {
			t.Fatal("redis-server not installed, and QUESTLOG_REQUIRE_TOOLS is set")
		}
		t.Skip("redis-server not installed: apt-get install redis-server")
	}
	// A free port can be taken by someone else before redis binds it; then
	// redis exits and we try another.
	var errs []error
	for range 3 {
		url, err := start(t, bin)
		if err == nil {
			return url
		}
		errs = append(errs, err)
	}
	t.Fatalf("start redis-server: %v", errs)
	return ""
}

func start(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(startTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if ping(addr) == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("redis-server on %s did not answer PING within %s:\n%s", addr, startTimeout, out)
		}
		select {
		case <-exited:
			return "", fmt.Errorf("redis-server on %s exited: %s:\n%s", addr, cmd.ProcessState, out)
		case <-time.After(wait):
		}
	}
	t.Cleanup(stop)
	return "redis://" + addr + "/0", nil
}

// ping sends PING in the Redis protocol and expects PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects the server's output, written by exec's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
