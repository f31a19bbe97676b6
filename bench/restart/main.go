// Command restart measures what questlog's processes cost when they start
// on a data directory whose topic already holds many events (issue 14: at
// most 300 MiB resident at start, whatever the topic's size).
//
// It builds ./cmd/questlog, runs `questlog broker` on a temporary data
// directory, fills the topic with -n generated game events (the players
// mix of internal/lake/laketest, keyed by player) in produce batches of at
// most -batch-bytes (the API's batches under load hold a few events each;
// the embedded broker's memory grows with the number of batches it
// indexes), and stops the broker cleanly. Then, for each of `broker`,
// `serve` and `up` in turn, it starts the process on that directory, waits
// until it answers (the broker's port; /readyz for serve and up), and
// reports how long that took, its resident and anonymous memory then and
// -settle later, and its peak (VmHWM). Last, it kills a broker with SIGKILL
// and measures the restart after that crash, which reads more (see
// stream.DefaultSegmentBytes).
//
// `up` also starts extracting the whole topic into its lake at once: its
// peak includes that extract's, and its memory -settle later is the
// extract's steady state, not the broker's.
//
//	go run ./bench/restart                 # 1,000,000 events
//	go run ./bench/restart -n 3000000      # is it flat in the topic's size?
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/bench/internal/fill"
	"github.com/questlog/questlog/bench/internal/harness"
	"github.com/questlog/questlog/bench/internal/job"
	"github.com/questlog/questlog/internal/lake/laketest"
)

func main() {
	n := flag.Int("n", 1_000_000, "events to fill the topic with")
	batchBytes := flag.Int("batch-bytes", 4096, "largest produce batch while filling (bytes): a few events per batch, as the API's under load")
	settle := flag.Duration("settle", 10*time.Second, "measure memory again this long after the process answers")
	roles := flag.String("roles", "broker,serve,up", "the commands to restart, in turn")
	flag.Parse()
	harness.Main("restart", func(ctx context.Context, tmp string) error {
		return run(ctx, tmp, *n, *batchBytes, *settle, strings.Split(*roles, ","))
	})
}

func run(ctx context.Context, tmp string, n, batchBytes int, settle time.Duration, roles []string) error {
	bin, err := harness.Build(ctx, tmp)
	if err != nil {
		return err
	}
	data := filepath.Join(tmp, "data")
	cpu, load := job.Machine()
	fmt.Printf("Restart benchmark, %s, %s, load average %s\n", time.Now().UTC().Format(time.RFC3339), cpu, load)

	// Fill.
	p, err := start(ctx, bin, data, "broker")
	if err != nil {
		return err
	}
	began := time.Now()
	bytes, err := fillTopic(ctx, p.brokerAddr, n, batchBytes)
	if err != nil {
		p.stop()
		return fmt.Errorf("fill: %w", err)
	}
	fmt.Printf("filled: %d events (%.0f MiB of values) in %v, produce batches of at most %d bytes\n",
		n, float64(bytes)/(1<<20), time.Since(began).Round(time.Second), batchBytes)
	if err := p.stop(); err != nil {
		return err
	}
	disk, files := du(data)
	fmt.Printf("data directory: %.0f MiB in %d files\n\n", float64(disk)/(1<<20), files)

	fmt.Printf("%-28s %10s %12s %12s %14s %14s %10s\n", "restart", "ready in", "RSS ready", "anon ready", "RSS +"+settle.String(), "anon +"+settle.String(), "peak")
	measure := func(name, role string) error {
		p, err := start(ctx, bin, data, role)
		if err != nil {
			return err
		}
		ready := p.mem()
		time.Sleep(settle)
		later := p.mem()
		fmt.Printf("%-28s %10v %8.0f MiB %8.0f MiB %10.0f MiB %10.0f MiB %6.0f MiB\n", name, p.ready.Round(time.Millisecond),
			mib(ready.RSS), mib(ready.Anon), mib(later.RSS), mib(later.Anon), mib(later.Peak))
		if p.httpAddr != "" {
			// How much of it is the Go heap (the rest: DuckDB's, SQLite's
			// and the runtime's own memory, and mapped files).
			fmt.Printf("%-28s %s\n", "", goHeap(p.httpAddr))
		}
		return p.stop()
	}
	for _, role := range roles {
		if err := measure(role+" (after a clean stop)", role); err != nil {
			return err
		}
	}
	// A crash: kill a broker that has just started, then start it again.
	p, err = start(ctx, bin, data, "broker")
	if err != nil {
		return err
	}
	_ = p.Cmd.Process.Kill()
	<-p.Done()
	if err := measure("broker (after a SIGKILL)", "broker"); err != nil {
		return err
	}
	_, load = job.Machine()
	fmt.Printf("\nload average after: %s\n", load)
	return nil
}

// proc is a questlog process started on the data directory.
type proc struct {
	*harness.Process
	brokerAddr string
	httpAddr   string // empty for the broker
	ready      time.Duration
}

// start runs `questlog role` on data and waits, for at most 10 minutes,
// until it answers: the broker on its port, the others on /readyz.
func start(ctx context.Context, bin, data, role string) (*proc, error) {
	httpAddr, brokerAddr, err := harness.ServeAddrs()
	if err != nil {
		return nil, err
	}
	args := []string{role, "--data-dir", data, "--broker-listen", brokerAddr, "--log-level", "warn"}
	addr, serves := brokerAddr, harness.Listening
	if role != "broker" {
		args = append(args, "--http", httpAddr)
		addr, serves = httpAddr, harness.Ready
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	hp, err := harness.Start(cmd, addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if err := harness.Wait(ctx, hp, serves, 20*time.Millisecond, 10*time.Minute); err != nil {
		hp.Stop()
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	p := &proc{Process: hp, brokerAddr: brokerAddr, ready: time.Since(began)}
	if role != "broker" {
		p.httpAddr = httpAddr
	}
	return p, nil
}

// stop interrupts the process, waits for it to exit (killing it after 30
// s), and says whether it exited cleanly.
func (p *proc) stop() error {
	p.Stop()
	if st := p.Cmd.ProcessState; !st.Success() {
		return fmt.Errorf("%s: %s", strings.Join(p.Cmd.Args[:2], " "), st)
	}
	return nil
}

func (p *proc) mem() job.Memory { return job.MemoryOf(strconv.Itoa(p.Pid())) }

// fillTopic produces n generated events to the broker at addr, keyed by
// player, and returns the bytes of their values.
func fillTopic(ctx context.Context, addr string, n, batchBytes int) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("events"),
		kgo.ProducerBatchMaxBytes(int32(batchBytes)), kgo.MaxBufferedRecords(50_000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return fill.Events(ctx, cl, laketest.Config{Events: n, Players: 20_000, Span: 24 * time.Hour, Seed: 7}, nil)
}

// goHeap reads the Go heap's figures from the process's /metrics.
func goHeap(httpAddr string) string {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return "metrics: " + err.Error()
	}
	defer resp.Body.Close()
	var out []string
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		name, v, ok := strings.Cut(s.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_sys_bytes":
			var f float64
			fmt.Sscanf(v, "%g", &f)
			out = append(out, fmt.Sprintf("%s %.0f MiB", strings.TrimPrefix(strings.TrimSuffix(name, "_bytes"), "go_memstats_"), f/(1<<20)))
		}
	}
	return "Go: " + strings.Join(out, ", ")
}

func du(dir string) (bytes int64, files int) {
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
