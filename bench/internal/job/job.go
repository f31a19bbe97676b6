// Package job runs a benchmark's jobs, and the kfake broker they read, as child processes of its own binary (in a role the binary is given by flags) and measures them, so that each peak RSS is that job's alone; it knows nothing of what the jobs do.
package job

import (
	"bufio"
	"cmp"
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

// Measured is embedded in a job's result: the job's CPU time (user and
// system seconds), which Child sets; it is not part of what the job prints.
type Measured struct {
	CPU float64 `json:"-"`
}

func (m *Measured) setCPU(d time.Duration) { m.CPU = d.Seconds() }

// Child runs the benchmark's binary with args (see Run), decodes the
// result the job prints into an R, and sets its CPU time.
func Child[R any, P interface {
	*R
	setCPU(time.Duration)
}](args ...string) (R, error) {
	var r R
	cpu, err := Run(&r, args...)
	P(&r).setCPU(cpu)
	return r, err
}

// WorkDir is dir, or when dir is empty a new temporary directory whose
// name starts with pattern and which remove removes; remove does nothing
// to a dir given.
func WorkDir(dir, pattern string) (_ string, remove func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// PeakRSS is this process's peak resident set (VmHWM). Not getrusage: its
// ru_maxrss carries the parent's peak across fork and exec.
func PeakRSS() int64 { return MemoryOf("self").Peak }

// Memory is what /proc/<pid>/status says of a process's memory, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: resident now
	Anon int64 // RssAnon: the anonymous part of it (heaps, not mapped files)
	Peak int64 // VmHWM: the most it was resident
}

// MemoryOf reads the memory of the process pid ("self", or a number);
// zero when it cannot be read.
func MemoryOf(pid string) Memory {
	var m Memory
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		var kb int64
		fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
		switch k {
		case "VmRSS":
			m.RSS = kb << 10
		case "RssAnon":
			m.Anon = kb << 10
		case "VmHWM":
			m.Peak = kb << 10
		}
	}
	return m
}

// Machine says what runs the benchmark: the CPU model from /proc/cpuinfo
// and the load average, for the figures' context.
func Machine() (cpu, load string) {
	return cmp.Or(CPUModel(), "unknown CPU"), LoadAverage()
}

// CPUModel is /proc/cpuinfo's first "model name", or "" off Linux.
func CPUModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// LoadAverage is /proc/loadavg's first three fields, or "" off Linux.
func LoadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
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
