package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/game/gametest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/loadgen"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/node/nodetest"
	"github.com/questlog/questlog/internal/state/redistest"
	"github.com/questlog/questlog/internal/stream"
	"github.com/questlog/questlog/internal/syncbuf"
)

// spread is a load balancer in front of the API servers: it sends each
// request to the next server in turn, tagged with an X-Request-Id (an
// allow-listed header the event keeps), and remembers the ids answered
// 2xx.
type spread struct {
	rt    http.RoundTripper
	hosts []string
	n     atomic.Int64

	mu   sync.Mutex
	ok   map[string]string // request id -> method and path, answered 2xx
	sent map[string]int    // requests per server
}

func (s *spread) RoundTrip(r *http.Request) (*http.Response, error) {
	i := s.n.Add(1)
	host := s.hosts[int(i)%len(s.hosts)]
	r = r.Clone(r.Context())
	r.URL.Host, r.Host = host, ""
	id := fmt.Sprintf("scale-%d", i)
	r.Header.Set("X-Request-Id", id)
	resp, err := s.rt.RoundTrip(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[host]++
	if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		s.ok[id] = r.Method + " " + r.URL.Path
	}
	return resp, err
}

// extractWorker runs `questlog extract --follow --group` as a process.
type extractWorker struct {
	cmd *exec.Cmd
	out *syncbuf.Buffer
}

func startExtractWorker(t *testing.T, brokers, lakeDir string) *extractWorker {
	t.Helper()
	cmd := exec.Command(binary, "extract", "--follow", "--group", "lake-writers", "--brokers", brokers,
		"--lake", lakeDir, "--max-age", "300ms", "--compact-interval", "1s", "--log-level", "info")
	w := &extractWorker{cmd: cmd, out: &syncbuf.Buffer{}}
	cmd.Stdout, cmd.Stderr = w.out, w.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return w
}

// The whole scaled-out path, in one test: a 3-broker Kafka cluster (kfake,
// in-process), a real redis-server, 3 API servers sharing them, and 3
// extract workers in one consumer group writing one lake. The players
// scenario plays across all servers while one extract worker is killed
// (SIGKILL: no commit, its group membership times out) and one broker
// node is removed from the cluster. Then: every 2xx answer has its ok
// event on the topic, the store is the fold of the ok events (no gold
// spent twice), and the lake holds every offset exactly once. Slow: the
// killed worker's partitions wait for its session to time out (10 s).
// kfake's RemoveNode stands for a broker's death: its listener closes and
// its partitions' leadership and the group's coordinator move to the
// others (kfake keeps one copy of the data, so nothing is lost with it,
// unlike a real broker without replicas).
func TestScaleOutSurvivesKilledWorkerAndBrokerSlow(t *testing.T) {
	redisURL := redistest.Start(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(4, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	brokers := strings.Join(addrs, ",")

	// Three stateless API servers behind the "load balancer".
	lb := &spread{rt: loadgen.NewTransport(64, 30*time.Second), ok: map[string]string{}, sent: map[string]int{}}
	var servers []*node.Node
	for range 3 {
		n := nodetest.Start(t, node.Config{
			Role: node.Serve, DataDir: t.TempDir(), HTTP: "127.0.0.1:0", Brokers: addrs, Redis: redisURL,
			Game: game.Config{PasswordCost: 4}, Logger: slog.New(slog.DiscardHandler),
		})
		servers = append(servers, n)
		u, err := url.Parse(n.URL())
		if err != nil {
			t.Fatal(err)
		}
		lb.hosts = append(lb.hosts, u.Host)
	}

	lakeDir := filepath.Join(t.TempDir(), "lake")
	workers := []*extractWorker{
		startExtractWorker(t, brokers, lakeDir),
		startExtractWorker(t, brokers, lakeDir),
		startExtractWorker(t, brokers, lakeDir),
	}

	// The players play for 8 s at least; a worker and a broker go down
	// meanwhile.
	ctx := context.Background()
	players, err := loadgen.NewPlayers(ctx, lb, loadgen.PlayersConfig{BaseURL: servers[0].URL(), Players: 24, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	faults := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Second)
		// Killed while it holds partitions, with files open.
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(workers[0].out.String(), "partition resumed from the lake's checkpoint"); {
			if time.Now().After(deadline) {
				faults <- fmt.Errorf("the first worker holds no partition after 30 s:\n%s", workers[0].out)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := workers[0].cmd.Process.Kill(); err != nil {
			faults <- err
			return
		}
		_ = workers[0].cmd.Wait()
		time.Sleep(2 * time.Second)
		faults <- cluster.RemoveNode(1)
	}()
	// They play on, a round at a time, until both faults happened (a
	// loaded machine may start the worker late) and 500 requests were
	// answered 2xx (or fewer per second), for two minutes at most.
	var (
		requests    int64
		faultsEnded bool
		faultErr    error
	)
	playing := time.Now()
	for round := 8 * time.Second; ; round = 2 * time.Second {
		res, err := loadgen.Run(ctx, loadgen.Config{Duration: round, Actions: loadgen.ScenarioActions()}, players.Clients())
		if err != nil {
			t.Fatal(err)
		}
		requests += res.Requests
		if !faultsEnded {
			select {
			case faultErr = <-faults:
				faultsEnded = true
			default:
			}
		}
		lb.mu.Lock()
		answered := len(lb.ok)
		lb.mu.Unlock()
		if faultsEnded && answered >= 500 || time.Since(playing) > 2*time.Minute {
			break
		}
	}
	if !faultsEnded {
		faultErr = <-faults
	}
	if faultErr != nil {
		t.Fatalf("kill a worker, remove a broker: %v", faultErr)
	}
	lb.mu.Lock()
	t.Logf("%d requests in %v, %d answered 2xx, per server %v", requests, time.Since(playing).Round(time.Second), len(lb.ok), lb.sent)
	if len(lb.ok) < 500 {
		t.Fatalf("only %d requests answered 2xx: the test proves little", len(lb.ok))
	}
	for _, h := range lb.hosts {
		if lb.sent[h] == 0 {
			t.Errorf("server %s got no request", h)
		}
	}
	lb.mu.Unlock()

	// Every 2xx has its ok event on the topic.
	var records [][]byte
	perType := map[string]int64{}
	tailCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start, _ := stream.ParseStart("beginning")
	err = stream.Tail(tailCtx, stream.TailConfig{Brokers: addrs[:1], Topic: "events", Start: start, ExitAtEnd: true},
		func(r stream.Record) error {
			records = append(records, r.Value)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	okEvents := map[string]int{}
	for _, b := range records {
		var ev struct {
			Type   string `json:"event_type"`
			Status string `json:"status"`
			HTTP   struct {
				RequestID string `json:"x_request_id"`
			} `json:"http"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("a record is not an event: %v", err)
		}
		perType[ev.Type]++
		if ev.Status == "ok" {
			okEvents[ev.HTTP.RequestID]++
		}
	}
	lb.mu.Lock()
	for id, route := range lb.ok {
		if okEvents[id] != 1 {
			t.Errorf("%s (%s) was answered 2xx and has %d ok events", id, route, okEvents[id])
		}
	}
	lb.mu.Unlock()

	// The store is the fold of the ok events once the servers settled.
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := gametest.Decode(records)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := gametest.Mismatches(ctx, servers[0].Store, evs)
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			break // Check says what differs
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := gametest.Check(t, servers[0].Store, records); n < 24 {
		t.Errorf("the fold compared %d players, want at least 24", n)
	}

	// The surviving workers take the killed one's partitions over and
	// bring the lake to the topic's end; stopped, they commit.
	waitLakeAt(t, lakeDir, int64(len(records)), 3*time.Minute, workers[1:])
	for _, w := range workers[1:] {
		if err := w.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("a worker did not stop cleanly: %v\n%s", err, w.out)
		}
	}
	r, err := lake.Check(ctx, lake.Dir(lakeDir), "events")
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("lake check:\n%s", strings.Join(r.Problems, "\n"))
	}
	if d := extracttest.CountsDiffer(r.Rows, perType); d != "" {
		t.Errorf("the lake's rows per type differ from the topic's: %s", d)
	}
	if out, err := runCLI(t, "lake", "check", "--lake", lakeDir); err != nil || !strings.Contains(out, "ok: every offset") {
		t.Errorf("questlog lake check: %v\n%s", err, out)
	}
}

// waitLakeAt waits until the lake's checkpoints cover n records in all.
func waitLakeAt(t *testing.T, lakeDir string, n int64, timeout time.Duration, workers []*extractWorker) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cp, _, err := lake.ReadCheckpoint(context.Background(), lake.Dir(lakeDir), "events")
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		for _, m := range cp.Partitions {
			got += m.Next - m.Start
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, w := range workers {
				logs.WriteString(w.out.String())
			}
			t.Fatalf("the lake holds %d of %d records after %v (%s)\n%s", got, n, timeout, cp, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
