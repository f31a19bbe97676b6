// Package redistest starts a real redis-server for tests, on a free port of
// 127.0.0.1 with persistence off, and stops it when the test ends.
//
// It knows nothing of what the tests store in it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/syncbuf"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 15 * time.Second

// Start runs a redis-server for the rest of t and returns its URL,
// redis://127.0.0.1:PORT/0. It skips t when redis-server is not installed.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t, Options{}).URL
}

// Options configure a test server.
type Options struct {
	// Durable makes the server keep what it acknowledged across a kill
	// (appendonly, fsync on every write), as a production Redis that
	// holds game state is configured; default off: nothing persists.
	Durable bool
}

// Server is a running redis-server that a test can kill, pause and start
// again, on the same port and directory.
type Server struct {
	URL string

	t      testing.TB
	bin    string
	port   int
	dir    string
	opts   Options
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncbuf.Buffer
}

// StartServer runs a redis-server for the rest of t. It skips t when
// redis-server is not installed.
func StartServer(t testing.TB, opts Options) *Server {
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
		port, err := freePort()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s := &Server{t: t, bin: bin, port: port, dir: t.TempDir(), opts: opts}
		if err := s.run(); err != nil {
			errs = append(errs, err)
			continue
		}
		s.URL = "redis://" + s.addr() + "/0"
		t.Cleanup(s.stop)
		return s
	}
	t.Fatalf("start redis-server: %v", errs)
	return nil
}

func (s *Server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// run starts the server process and waits until it answers PING.
func (s *Server) run() error {
	persist := []string{"--save", "", "--appendonly", "no"}
	if s.opts.Durable {
		persist = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1"}, persist...)
	args = append(args, "--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	out := &syncbuf.Buffer{} // written by exec's goroutines
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if ping(s.addr()) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server on %s did not answer PING within %s:\n%s", s.addr(), startTimeout, out)
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %s:\n%s", s.addr(), cmd.ProcessState, out)
		case <-time.After(wait):
		}
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 5s).
func (s *Server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot act on SIGTERM
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Kill kills the server with SIGKILL and waits until it is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	cmd.Process.Kill()
	<-exited
}

// Pause stops the server with SIGSTOP: it keeps its connections and
// answers nothing, as a stalled server does, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("signal redis-server: %v", err)
	}
}

// Restart starts the server again after Kill, on the same port and
// directory (with Durable, with what it had acknowledged).
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.run(); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
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
