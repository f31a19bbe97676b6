// Package testproc runs a server process for tests: it finds the binary
// (or skips the test), starts it on a free port of 127.0.0.1, waits until
// it answers, and stops, kills, pauses or resumes it.
//
// It knows nothing of the servers it runs; redistest and s3test say how
// to start and ask each one.
package testproc

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LookPath returns the path of the binary name. It skips t when it is not
// installed, telling how to install it, and fails t then when
// QUESTLOG_REQUIRE_TOOLS is set.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		// CI sets QUESTLOG_REQUIRE_TOOLS so that a missing server fails
		// instead of silently skipping the part of the suite that needs it.
		if os.Getenv("QUESTLOG_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not installed, and QUESTLOG_REQUIRE_TOOLS is set", name)
		}
		t.Skipf("%s not installed: %s", name, install)
	}
	return bin
}

// OnFreePort calls start with a free port of 127.0.0.1 until it succeeds,
// three times at most: a free port can be taken by someone else before
// the server binds it, and then the server exits. It fails t when no try
// succeeds.
func OnFreePort(t testing.TB, name string, start func(port int) error) {
	t.Helper()
	var errs []error
	for range 3 {
		port, err := FreePort()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := start(port); err != nil {
			errs = append(errs, err)
			continue
		}
		return
	}
	t.Fatalf("start %s: %v", name, errs)
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Output is where a process writes its stdout and stderr; exec's
// goroutines write it while a test may read it.
type Output interface {
	io.Writer
	fmt.Stringer
}

// Wait says how Run waits for a started server to answer.
type Wait struct {
	// Timeout bounds the whole wait.
	Timeout time.Duration
	// First and Most are the first and the longest pause between two
	// asks; the pause doubles from one to the other.
	First, Most time.Duration
	// What names what Ready asks, for the error ("PING").
	What string
	// Ready asks the server once; nil when it answers.
	Ready func() error
}

// Proc is a server process. The zero value has none; Run starts one, and
// may start another after the first has ended.
type Proc struct {
	// Name names the server in errors ("redis-server").
	Name string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Run starts cmd, writing its output to out, and waits until w.Ready
// answers. When the process exits first, or w.Timeout passes (then Run
// stops it), it returns an error with the process's output.
func (p *Proc) Run(cmd *exec.Cmd, addr string, out Output, w Wait) error {
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	what := ""
	if w.What != "" {
		what = " " + w.What
	}
	deadline := time.Now().Add(w.Timeout)
	for wait := w.First; ; wait = min(2*wait, w.Most) {
		if w.Ready() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("%s on %s did not answer%s within %s:\n%s", p.Name, addr, what, w.Timeout, out)
		}
		select {
		case <-exited:
			return fmt.Errorf("%s on %s exited: %s:\n%s", p.Name, addr, cmd.ProcessState, out)
		case <-time.After(wait):
		}
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 5s) and waits until
// it is gone.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot act on SIGTERM
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Kill kills the process with SIGKILL and waits until it is gone.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	cmd.Process.Kill()
	<-exited
}

// Signal sends sig to the process: SIGSTOP pauses a server, which keeps
// its connections and answers nothing, as a stalled one does, until
// SIGCONT.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}
