// Command scale measures how questlog scales out on one machine (issue 15):
// the players scenario's throughput with 1, 2 and 3 `questlog serve`
// processes sharing one broker and one Redis, and the extract's throughput
// with 1, 2 and 3 workers of one consumer group. It knows nothing of how
// serve or extract work: it runs the binary as an operator would.
//
// It builds questlog from ./cmd/questlog, then:
//
//   - starts a real redis-server and one `questlog broker` (the embedded
//     Kafka-protocol broker, in a process of its own, the topic with
//     -partitions partitions) on free 127.0.0.1 ports;
//   - for each count N of -servers: starts N `questlog serve --brokers
//     BROKER --redis REDIS`, waits for each /readyz, warms them up, then
//     plays the players scenario with N `questlog load` processes at once,
//     one per server, -users/N players each (players stay on one server, as
//     behind any load balancer; their state is in Redis either way), and
//     stops the servers. A row is the sum of the load processes'
//     requests/s, the worst of their p50 and p99 (their histograms are not
//     merged), and the CPU each process used over the window, in cores;
//   - fills a topic of its own with -events realistic game events, and for
//     each count M of -workers: runs M `questlog extract --follow --group
//     NAME` (rolling files every -max-age, no compaction) into a fresh lake
//     directory and times how long the lake's checkpoint takes to cover
//     every offset of every partition, with each worker's CPU. Without
//     --group (not merged yet), only one worker runs and the other counts
//     say so.
//
// The machine's CPU model and load average are printed with the figures:
// on a shared machine they move from run to run.
//
// Run it from the repository root:
//
//	go run ./bench/scale
//	go run ./bench/scale -duration 20s -users 300 -events 1000000 -json scale.json
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/bench/internal/fill"
	"github.com/questlog/questlog/bench/internal/harness"
	"github.com/questlog/questlog/bench/internal/job"
	"github.com/questlog/questlog/bench/internal/procstat"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/loadgen"
)

type options struct {
	servers      []int
	workers      []int
	users        int
	duration     time.Duration
	warmup       time.Duration
	events       int
	partitions   int
	passwordCost int
	questlog     string
	redis        string
	jsonOut      string
	only         string
	maxAge       time.Duration
}

func main() {
	o := options{servers: []int{1, 2, 3}, workers: []int{1, 2, 3}}
	flag.Func("servers", "counts of questlog serve processes to measure, comma-separated (default 1,2,3)", func(v string) (err error) {
		o.servers, err = harness.ParseCounts(v, "count")
		return err
	})
	flag.Func("workers", "counts of extract workers to measure, comma-separated (default 1,2,3)", func(v string) (err error) {
		o.workers, err = harness.ParseCounts(v, "count")
		return err
	})
	flag.IntVar(&o.users, "users", 120, "players in the players scenario, over all servers")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each players measurement")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured play on each server before its measurement")
	flag.IntVar(&o.events, "events", 400_000, "events on the extract's topic")
	flag.IntVar(&o.partitions, "partitions", 6, "partitions of each topic (the most extract workers that can share it)")
	flag.IntVar(&o.passwordCost, "password-cost", 4, "serve's --password-cost: bcrypt at its default of 10 would measure bcrypt (see bench/ingest)")
	flag.StringVar(&o.questlog, "questlog", "", "a questlog binary to use instead of building ./cmd/questlog")
	flag.StringVar(&o.redis, "redis-server", "redis-server", "the redis-server binary")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this JSON file")
	flag.DurationVar(&o.maxAge, "max-age", time.Second, "the workers' extract --max-age: each partition's files roll at least this often, so the checkpoint reaches the topic's end at most this long after the last record is read")
	flag.StringVar(&o.only, "only", "serve,extract", "sections to run: serve, extract")
	flag.Parse()
	if o.users < slices.Max(o.servers) || o.duration < time.Second || o.events < 1 || o.partitions < 1 {
		fmt.Fprintln(os.Stderr, "scale: want -users >= the most servers, -duration >= 1s, -events >= 1, -partitions >= 1")
		os.Exit(2)
	}
	harness.Main("scale", func(ctx context.Context, tmp string) error { return run(ctx, o, tmp) })
}

// ServeRow is one players measurement with some number of servers.
type ServeRow struct {
	Servers           int     `json:"servers"`
	Users             int     `json:"users"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	// P50Ms and P99Ms are the worst of the load processes' (one per server).
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	Requests      int64   `json:"requests"`
	Errors        int64   `json:"errors"`
	Unexpected4xx int64   `json:"unexpected_4xx"`
	// The CPU each process used during the window, in cores (CPU seconds
	// per second): every serve, the broker, redis-server and the load
	// processes together.
	ServeCores  []float64 `json:"serve_cores"`
	BrokerCores float64   `json:"broker_cores"`
	RedisCores  float64   `json:"redis_cores"`
	LoadCores   float64   `json:"load_cores"`
	// ServerCPUMicros is the serves', broker's and redis-server's CPU per
	// request: what a request costs the back end, whatever the machine's
	// other load.
	ServerCPUMicros float64 `json:"server_cpu_us_per_request"`
}

// ExtractRow is one extract measurement with some number of workers.
type ExtractRow struct {
	Workers          int       `json:"workers"`
	Records          int64     `json:"records"`
	Seconds          float64   `json:"seconds"`
	RecordsPerSecond float64   `json:"records_per_second"`
	WorkerCores      []float64 `json:"worker_cores,omitempty"`
	// CPUMicros is the workers' CPU per record, all workers together.
	CPUMicros   float64 `json:"worker_cpu_us_per_record,omitempty"`
	BrokerCores float64 `json:"broker_cores"`
	Note        string  `json:"note,omitempty"`
}

// Results is what -json writes.
type Results struct {
	Date              string       `json:"date"`
	CPUModel          string       `json:"cpu_model"`
	CPUs              int          `json:"cpus"`
	GoVersion         string       `json:"go_version"`
	LoadAverageBefore string       `json:"load_average_before"`
	LoadAverageAfter  string       `json:"load_average_after"`
	Partitions        int          `json:"partitions"`
	Duration          string       `json:"duration"`
	MaxAge            string       `json:"extract_max_age"`
	Serve             []ServeRow   `json:"serve"`
	Extract           []ExtractRow `json:"extract"`
	// Group says whether extract has --group: without it, one worker.
	Group bool `json:"group"`
}

// run measures what o asks with the questlog binary o names or one built
// into tmp, the folder for its data and logs.
func run(ctx context.Context, o options, tmp string) error {
	bin, err := harness.Binary(ctx, o.questlog, tmp)
	if err != nil {
		return err
	}
	cpu, load := job.Machine()
	res := Results{
		Date: time.Now().UTC().Format(time.RFC3339), CPUModel: cpu, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		LoadAverageBefore: load, Partitions: o.partitions, Duration: o.duration.String(), MaxAge: o.maxAge.String(),
	}

	brokerAddr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	broker, err := start(tmp, "broker", brokerAddr, bin, "broker", "--broker-listen", brokerAddr, "--data-dir", filepath.Join(tmp, "broker"),
		"--partitions", strconv.Itoa(o.partitions), "--topic-retention", "0", "--log-level", "warn")
	if err != nil {
		return err
	}
	defer broker.Stop()
	if err := broker.waitOutput(ctx, "ready"); err != nil {
		return err
	}

	if strings.Contains(o.only, "serve") {
		rows, err := serveSection(ctx, o, tmp, bin, broker)
		if err != nil {
			return err
		}
		res.Serve = rows
	}
	if strings.Contains(o.only, "extract") {
		help, err := exec.CommandContext(ctx, bin, "extract", "--help").CombinedOutput()
		if err != nil {
			return fmt.Errorf("questlog extract --help: %w: %s", err, help)
		}
		res.Group = bytes.Contains(help, []byte("--group"))
		rows, err := extractSection(ctx, o, tmp, bin, broker, res.Group)
		if err != nil {
			return err
		}
		res.Extract = rows
	}
	_, res.LoadAverageAfter = job.Machine()
	printResults(os.Stdout, &res)
	if o.jsonOut != "" {
		return harness.WriteJSON(o.jsonOut, res)
	}
	return nil
}

// serveSection starts redis-server, then measures the players scenario
// with each count of servers.
func serveSection(ctx context.Context, o options, tmp, bin string, broker *proc) ([]ServeRow, error) {
	redisAddr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(redisAddr)
	rs, err := start(tmp, "redis", net.JoinHostPort(host, port), o.redis, "--bind", host, "--port", port, "--save", "", "--appendonly", "no", "--dir", tmp)
	if err != nil {
		return nil, fmt.Errorf("redis-server (apt-get install redis-server): %w", err)
	}
	defer rs.Stop()
	redisURL := "redis://" + redisAddr + "/0"
	if err := waitRedis(ctx, redisURL, rs); err != nil {
		return nil, err
	}

	var rows []ServeRow
	for _, n := range o.servers {
		fmt.Fprintf(os.Stderr, "players scenario, %d server(s) ...\n", n)
		row, err := measureServers(ctx, o, tmp, bin, n, broker, rs, redisURL)
		if err != nil {
			return nil, fmt.Errorf("%d servers: %w", n, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func measureServers(ctx context.Context, o options, tmp, bin string, n int, broker, rs *proc, redisURL string) (ServeRow, error) {
	servers := make([]*proc, 0, n)
	defer func() {
		for _, s := range servers {
			s.Stop()
		}
	}()
	for i := range n {
		addr, err := harness.FreeAddr()
		if err != nil {
			return ServeRow{}, err
		}
		s, err := start(tmp, fmt.Sprintf("serve-%d-%d", n, i), addr, bin, "serve", "--http", addr, "--brokers", broker.Addr,
			"--redis", redisURL, "--data-dir", filepath.Join(tmp, fmt.Sprintf("serve-%d-%d", n, i)),
			"--password-cost", strconv.Itoa(o.passwordCost), "--login-failures-per-user", "0", "--login-failures-per-address", "0",
			"--log-level", "warn")
		if err != nil {
			return ServeRow{}, err
		}
		servers = append(servers, s)
		if err := s.waitReady(ctx); err != nil {
			return ServeRow{}, err
		}
	}
	users := o.users / n
	if o.warmup > 0 {
		if _, _, err := loadAll(ctx, bin, servers, users, o.warmup); err != nil {
			return ServeRow{}, fmt.Errorf("warm up: %w", err)
		}
	}
	all := append([]*proc{broker, rs}, servers...)
	before := cpuOf(all)
	t0 := time.Now()
	sums, loadCPU, err := loadAll(ctx, bin, servers, users, o.duration)
	if err != nil {
		return ServeRow{}, err
	}
	wall := time.Since(t0).Seconds()
	after := cpuOf(all)
	cores := func(i int) float64 { return (after[i] - before[i]).Seconds() / wall }

	row := ServeRow{Servers: n, Users: users * n, BrokerCores: cores(0), RedisCores: cores(1), LoadCores: loadCPU.Seconds() / wall}
	var backend time.Duration
	for i := range all {
		backend += after[i] - before[i]
		if i >= 2 {
			row.ServeCores = append(row.ServeCores, cores(i))
		}
	}
	for _, s := range sums {
		row.RequestsPerSecond += s.RequestsPerSecond
		row.P50Ms = max(row.P50Ms, s.Latency.P50)
		row.P99Ms = max(row.P99Ms, s.Latency.P99)
		row.Requests += s.Requests
		row.Errors += s.Errors
		row.Unexpected4xx += s.Unexpected4xx
	}
	if row.Requests > 0 {
		row.ServerCPUMicros = float64(backend/time.Microsecond) / float64(row.Requests)
	}
	return row, nil
}

// loadAll plays the players scenario against every server at once, one
// questlog load each, and returns their summaries and their CPU in all.
func loadAll(ctx context.Context, bin string, servers []*proc, users int, d time.Duration) ([]loadgen.Summary, time.Duration, error) {
	sums := make([]loadgen.Summary, len(servers))
	cpus := make([]time.Duration, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, bin, "load", "--format", "json", "-q", "--scenario", "players",
				"--users", strconv.Itoa(users), "-t", d.String(), s.URL())
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("questlog load %s: %w: %s", s.Addr, err, stderr.String())
				return
			}
			cpus[i] = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			if err := json.Unmarshal(out.Bytes(), &sums[i]); err != nil {
				errs[i] = fmt.Errorf("questlog load %s: read summary: %w", s.Addr, err)
			}
		})
	}
	wg.Wait()
	var total time.Duration
	for _, c := range cpus {
		total += c
	}
	return sums, total, errors.Join(errs...)
}

// extractTopic is the extract section's own topic, so that its size is
// -events whatever the players scenario left on the other.
const extractTopic = "scale-extract"

// extractSection fills extractTopic and times each count of workers.
func extractSection(ctx context.Context, o options, tmp, bin string, broker *proc, group bool) ([]ExtractRow, error) {
	ends, err := fillTopic(ctx, broker.Addr, o.events, o.partitions)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	var rows []ExtractRow
	perRecord := func(row *ExtractRow) {
		row.Records = total
		row.RecordsPerSecond = float64(total) / row.Seconds
		for _, c := range row.WorkerCores {
			row.CPUMicros += c * row.Seconds * 1e6 / float64(total)
		}
	}
	// The control: one extract --once over the same topic, the mode
	// bench/extract measures, on the same machine at the same time.
	fmt.Fprintln(os.Stderr, "extract --once ...")
	row, err := measureWorkers(ctx, tmp, bin, broker, 1, len(o.workers), false, 0, ends)
	if err != nil {
		return nil, fmt.Errorf("extract --once: %w", err)
	}
	perRecord(&row)
	row.Note = "--once (control)"
	rows = append(rows, row)
	for run, m := range o.workers {
		if m > 1 && !group {
			rows = append(rows, ExtractRow{Workers: m, Note: "not measured: this questlog's extract has no --group"})
			continue
		}
		fmt.Fprintf(os.Stderr, "extract, %d worker(s) ...\n", m)
		row, err := measureWorkers(ctx, tmp, bin, broker, m, run, group, o.maxAge, ends)
		if err != nil {
			return nil, fmt.Errorf("%d workers: %w", m, err)
		}
		perRecord(&row)
		rows = append(rows, row)
	}
	return rows, nil
}

// measureWorkers runs m extract workers into a fresh lake until its
// checkpoint reaches ends, the topic's end offsets: with --follow, rolling
// files every maxAge, or with maxAge 0 one extract --once.
func measureWorkers(ctx context.Context, tmp, bin string, broker *proc, m, run int, group bool, maxAge time.Duration, ends map[int32]int64) (ExtractRow, error) {
	lakeDir := filepath.Join(tmp, fmt.Sprintf("lake-%d", run))
	defer os.RemoveAll(lakeDir)
	args := []string{"extract", "--brokers", broker.Addr, "--topic", extractTopic, "--lake", lakeDir, "--log-level", "warn"}
	if maxAge > 0 {
		args = append(args, "--follow", "--max-age", maxAge.String(), "--compact-interval", "0")
	} else {
		args = append(args, "--once", "-q")
	}
	if group {
		args = append(args, "--group", fmt.Sprintf("scale-%d", run))
	}
	workers := make([]*proc, 0, m)
	defer func() {
		for _, w := range workers {
			w.Stop()
		}
	}()
	brokerCPU := procstat.CPU(broker.Pid())
	t0 := time.Now()
	for i := range m {
		w, err := start(tmp, fmt.Sprintf("extract-%d-%d", run, i), "", bin, args...)
		if err != nil {
			return ExtractRow{}, err
		}
		workers = append(workers, w)
	}
	if err := waitCheckpoint(ctx, lake.Dir(lakeDir), ends, workers); err != nil {
		return ExtractRow{}, err
	}
	wall := time.Since(t0)
	row := ExtractRow{Workers: m, Seconds: wall.Seconds(), BrokerCores: (procstat.CPU(broker.Pid()) - brokerCPU).Seconds() / wall.Seconds()}
	for _, w := range workers {
		row.WorkerCores = append(row.WorkerCores, w.cpu().Seconds()/wall.Seconds())
	}
	return row, nil
}

// waitCheckpoint polls the lake's checkpoint, the extract's own word that
// every offset before it is in exactly one file, until it reaches ends.
func waitCheckpoint(ctx context.Context, st lake.Storage, ends map[int32]int64, workers []*proc) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := slices.ContainsFunc(workers, (*proc).exited)
		cp, _, err := lake.ReadCheckpoint(ctx, st, extractTopic)
		if err == nil && reached(cp, ends) {
			return nil
		}
		if exited { // an --once that ended short of the end, or a crash
			for _, w := range workers {
				if w.exited() {
					return fmt.Errorf("%s exited before the lake reached the topic's end: %s", w.name, w.LogTail())
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the lake's checkpoint did not reach the topic's end: %w (last read: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func reached(cp *lake.Checkpoint, ends map[int32]int64) bool {
	for p, end := range ends {
		if cp.Partitions[p].Next < end {
			return false
		}
	}
	return true
}

// fillTopic creates extractTopic and produces n generated game events to it,
// keyed by player as the API does; it returns each partition's end offset.
func fillTopic(ctx context.Context, addr string, n, partitions int) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(extractTopic),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, extractTopic); err != nil {
		return nil, fmt.Errorf("create topic %s: %w", extractTopic, err)
	}
	fmt.Fprintf(os.Stderr, "filling %s with %d events ...\n", extractTopic, n)
	cfg := laketest.Config{Events: n, Players: 5000, Span: 36 * time.Hour, Seed: 15}
	if _, err := fill.Events(ctx, cl, cfg, nil); err != nil {
		return nil, fmt.Errorf("fill %s: %w", extractTopic, err)
	}
	offsets, err := adm.ListEndOffsets(ctx, extractTopic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", extractTopic, err)
	}
	ends := map[int32]int64{}
	var total int64
	offsets.Each(func(o kadm.ListedOffset) {
		ends[o.Partition] = o.Offset
		total += o.Offset
	})
	if total != int64(n) {
		return nil, fmt.Errorf("%s holds %d records, want %d", extractTopic, total, n)
	}
	return ends, nil
}

func printResults(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\nScale-out benchmark, %s, %s, %d CPUs, %s; load average before %s, after %s\n",
		r.Date, r.CPUModel, r.CPUs, r.GoVersion, r.LoadAverageBefore, r.LoadAverageAfter)
	if len(r.Serve) > 0 {
		fmt.Fprintf(w, "\nPlayers scenario, %s per measurement, one questlog broker (%d partitions) and one redis-server shared by N questlog serve, one questlog load per server\n", r.Duration, r.Partitions)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "servers\tplayers\trequests/s\tp50 ms\tp99 ms\terrors\tunexpected 4xx\tserve cores (each)\tbroker cores\tredis cores\tload cores\tback end µs/req\t")
		for _, x := range r.Serve {
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.0f\t\n", x.Servers, x.Users, x.RequestsPerSecond, x.P50Ms, x.P99Ms,
				x.Errors, x.Unexpected4xx, joinFloats(x.ServeCores), x.BrokerCores, x.RedisCores, x.LoadCores, x.ServerCPUMicros)
		}
		_ = tw.Flush()
		fmt.Fprintln(w, "(p50 and p99: the worst of the load processes; cores: CPU seconds per second of the window)")
	}
	if len(r.Extract) > 0 {
		fmt.Fprintf(w, "\nExtract of %s (%d partitions) into a local lake, --follow --max-age %s, no compaction (and one --once, the control): until the lake's checkpoint covers the topic\n", extractTopic, r.Partitions, r.MaxAge)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workers\trecords\tseconds\trecords/s\tworker cores (each)\tworkers' µs/record\tbroker cores\t\t")
		for _, x := range r.Extract {
			if x.Seconds == 0 {
				fmt.Fprintf(tw, "%d\t\t\t\t\t\t\t%s\t\n", x.Workers, x.Note)
				continue
			}
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%.0f\t%s\t%.1f\t%.2f\t%s\t\n", x.Workers, x.Records, x.Seconds, x.RecordsPerSecond, joinFloats(x.WorkerCores), x.CPUMicros, x.BrokerCores, x.Note)
		}
		_ = tw.Flush()
	}
}

func joinFloats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

// proc is a process the benchmark started, its output in a log file.
type proc struct {
	*harness.Process
	name string
}

// start runs bin with args, a process that listens on addr (when it does),
// its output in <tmp>/<name>.log; it dies with this process, and stop
// gives it 30 s to end after the interrupt.
func start(tmp, name, addr, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(tmp, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	hp, err := harness.Start(cmd, addr, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hp.Log = logPath
	return &proc{Process: hp, name: name}, nil
}

// cpu is the CPU time the process has used: from /proc while it runs, from
// its exit status once it has ended (and /proc has forgotten it).
func (p *proc) cpu() time.Duration {
	if p.exited() {
		return p.Cmd.ProcessState.UserTime() + p.Cmd.ProcessState.SystemTime()
	}
	return procstat.CPU(p.Pid())
}

func (p *proc) exited() bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// waitOutput waits until the process's output holds a line starting with
// prefix.
func (p *proc) waitOutput(ctx context.Context, prefix string) error {
	return poll(ctx, p, func() bool {
		f, err := os.Open(p.Log)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				return true
			}
		}
		return false
	})
}

// waitReady waits until the server is ready (harness.Ready: /readyz, or
// /healthz on a server without it, answers 200), as poll does: every
// 50 ms for at most a minute, failing at once if the server exits, with
// its name and the end of its log in the error.
func (p *proc) waitReady(ctx context.Context) error {
	return poll(ctx, p, func() bool { return harness.Ready(p.Process) })
}

func waitRedis(ctx context.Context, url string, p *proc) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	return poll(ctx, p, func() bool { return c.Ping(ctx).Err() == nil })
}

// poll calls ready every 50 ms until it says yes, for at most a minute,
// and fails at once when p exits; the error holds the end of p's log.
func poll(ctx context.Context, p *proc, ready func() bool) error {
	if err := harness.Wait(ctx, p.Process, func(*harness.Process) bool { return ready() }, 50*time.Millisecond, time.Minute); err != nil {
		return fmt.Errorf("%s %w: %s", p.name, err, p.LogTail())
	}
	return nil
}

func cpuOf(ps []*proc) []time.Duration {
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = procstat.CPU(p.Pid())
	}
	return out
}
