// Package job runs a benchmark's jobs, and the kfake broker they read, as child processes of its own binary (in a role the binary is given by flags) and measures them, so that each peak RSS is that job's alone; it knows nothing of what the jobs do.
package job

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Run runs the benchmark's binary with args, decodes the JSON the job
// prints on its stdout into result, and returns the CPU time (user and
// system) the job used. Its stderr is ours; it dies with us.
func Run(result any, args ...string) (time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if we die
	out, err := cmd.Output()
	name := strings.Join(args[:min(2, len(args))], " ")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if err := json.Unmarshal(out, result); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// PeakRSS is this process's peak resident set (VmHWM). Not getrusage: its
// ru_maxrss carries the parent's peak across fork and exec.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// Machine says what runs the benchmark: the CPU model from /proc/cpuinfo
// and the load average, for the figures' context.
func Machine() (cpu, load string) {
	cpu = "unknown CPU"
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			break
		}
	}
	b, _ = os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) >= 3 {
		load = strings.Join(f[:3], " ")
	}
	return cpu, load
}

// StartBroker runs the benchmark's binary with args, a role that serves a
// Kafka broker (see ServeBroker), and returns the address the broker
// printed, its process ID and a function that stops it.
func StartBroker(args ...string) (addr string, pid int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	addr, err = bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("broker: %w", err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid, stop, nil
}

// ServeBroker is the role StartBroker runs: an in-memory kfake broker
// with opts, whose address it prints, until interrupted.
func ServeBroker(opts ...kfake.Opt) {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.ListenAddrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
