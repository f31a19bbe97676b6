// Package redistest starts a real redis-server for tests, on a free port of
// 127.0.0.1 with persistence off, and stops it when the test ends.
//
// It knows nothing of what the tests store in it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/syncbuf"
	"github.com/questlog/questlog/internal/testproc"
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

	t    testing.TB
	bin  string
	port int
	dir  string
	opts Options
	proc testproc.Proc
}

// StartServer runs a redis-server for the rest of t. It skips t when
// redis-server is not installed.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := testproc.LookPath(t, "redis-server", "apt-get install redis-server")
	var s *Server
	testproc.OnFreePort(t, "redis-server", func(port int) error {
		s = &Server{t: t, bin: bin, port: port, dir: t.TempDir(), opts: opts}
		s.proc.Name = "redis-server"
		if err := s.run(); err != nil {
			return err
		}
		s.URL = "redis://" + s.addr() + "/0"
		t.Cleanup(s.proc.Stop)
		return nil
	})
	return s
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
	return s.proc.Run(exec.Command(s.bin, args...), s.addr(), &syncbuf.Buffer{}, testproc.Wait{
		Timeout: startTimeout,
		First:   time.Millisecond,
		Most:    50 * time.Millisecond,
		What:    "PING",
		Ready:   func() error { return ping(s.addr()) },
	})
}

// Kill kills the server with SIGKILL and waits until it is gone.
func (s *Server) Kill() { s.proc.Kill() }

// Pause stops the server with SIGSTOP: it keeps its connections and
// answers nothing, as a stalled server does, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if err := s.proc.Signal(sig); err != nil {
		s.t.Error(err)
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
