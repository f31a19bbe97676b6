// Package harness holds what the benchmarks that run questlog's binary
// share: building it, free ports, running it as a child process until it
// answers and stopping it, and writing their results; it knows nothing of
// what a benchmark measures.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Main runs a benchmark command's body with a context that ends on
// SIGINT or SIGTERM and a temporary directory (whose name starts with
// "questlog-bench-" and the command's name) removed afterwards; on an
// error it says so on stderr, after the command's name, and exits 1.
func Main(name string, run func(ctx context.Context, tmp string) error) {
	if err := withTemp(name, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func withTemp(name string, run func(ctx context.Context, tmp string) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "questlog-bench-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	return run(ctx, tmp)
}

// Build builds ./cmd/questlog into dir and returns the binary's path. It
// must run from the repository root.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "questlog")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/questlog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build questlog (run from the repository root): %w", err)
	}
	return bin, nil
}

// Binary is the questlog binary given (a -questlog flag), or, when none
// is, one built into dir, saying so on stderr.
func Binary(ctx context.Context, given, dir string) (string, error) {
	if given != "" {
		return given, nil
	}
	fmt.Fprintln(os.Stderr, "building ./cmd/questlog ...")
	return Build(ctx, dir)
}

// FreeAddr is a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ServeAddrs are two free addresses, for a questlog's HTTP API (--http)
// and its broker (--broker-listen).
func ServeAddrs() (httpAddr, brokerAddr string, err error) {
	if httpAddr, err = FreeAddr(); err != nil {
		return "", "", err
	}
	if brokerAddr, err = FreeAddr(); err != nil {
		return "", "", err
	}
	return httpAddr, brokerAddr, nil
}

// Process is a child process a benchmark started.
type Process struct {
	Cmd  *exec.Cmd
	Addr string // where it listens, when it does
	Log  string // the file that holds its output, when there is one

	grace time.Duration
	done  chan struct{}
	once  sync.Once
}

// Start starts cmd, its output already directed, and waits for it in the
// background. Stop gives it grace to exit after the interrupt.
func Start(cmd *exec.Cmd, addr string, grace time.Duration) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Args[0], err)
	}
	p := &Process{Cmd: cmd, Addr: addr, grace: grace, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// StartLogged starts cmd, a server that will listen on addr, with its
// output in logPath, and waits until ready says it serves; if it does not,
// it stops the process and the error holds the log's end.
func StartLogged(ctx context.Context, cmd *exec.Cmd, addr, logPath string, grace time.Duration, ready func(context.Context, *Process) error) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := Start(cmd, addr, grace)
	if err != nil {
		return nil, err
	}
	p.Log = logPath
	if err := ready(ctx, p); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, p.LogTail())
	}
	return p, nil
}

// URL is the process's base URL.
func (p *Process) URL() string { return "http://" + p.Addr }

// Pid is the process's ID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop interrupts the process (questlog stops its parts in order, an
// extract commits what it holds) and waits for it; a process that has not
// exited after its grace is killed. Stopping again does nothing.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(p.grace):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
}

// LogTail is the last 2,000 bytes of the process's log.
func (p *Process) LogTail() string {
	raw, _ := os.ReadFile(p.Log)
	return Tail(raw, 2000)
}

// Tail is the last n bytes of b.
func Tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitReady polls /readyz (or /healthz, on a server without /readyz) until
// it answers 200, every 50 ms for at most a minute.
func WaitReady(ctx context.Context, p *Process) error {
	return Wait(ctx, p, Ready, 50*time.Millisecond, time.Minute)
}

// WaitListening waits, every 50 ms for at most a minute, until the process
// accepts connections on its address.
func WaitListening(ctx context.Context, p *Process) error {
	return Wait(ctx, p, Listening, 50*time.Millisecond, time.Minute)
}

// Ready says whether the process's /readyz (or /healthz, on a server
// without /readyz) answers 200.
func Ready(p *Process) bool {
	client := &http.Client{Timeout: time.Second}
	for _, path := range []string{"/readyz", "/healthz"} {
		resp, err := client.Get(p.URL() + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
			if resp.StatusCode != http.StatusNotFound {
				return false // /readyz exists and says not yet
			}
		}
	}
	return false
}

// Listening says whether the process accepts connections on its address.
func Listening(p *Process) bool {
	c, err := net.DialTimeout("tcp", p.Addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// Wait calls ok every `every` until it says the process serves, the
// process exits, or limit has passed.
func Wait(ctx context.Context, p *Process, ok func(*Process) bool, every, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !ok(p) {
		select {
		case <-p.done:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ParseCounts reads a comma-separated list of whole numbers >= 1 (a
// flag's counts of processes or connections); what names one in the
// error ("count").
func ParseCounts(v, what string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: want a whole number >= 1", what, f)
		}
		out = append(out, n)
	}
	return out, nil
}
