package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/node/nodetest"
)

// `up` with a short --topic-retention deletes the embedded broker's
// records once the lake holds them and they are old enough: the topic's
// partitions start past their first records, the lake still holds every
// offset exactly once, and /metrics shows the broker's usage and the
// lake's.
func TestUpTrimsWhatTheLakeHolds(t *testing.T) {
	dir := t.TempDir()
	n := nodetest.Start(t, node.Config{
		Role: node.Up, DataDir: dir, HTTP: "127.0.0.1:0", BrokerListen: "127.0.0.1:0", Partitions: 1,
		Game:           game.Config{PasswordCost: 4},
		TopicRetention: time.Second, RetainInterval: 50 * time.Millisecond, MaxAge: 200 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	for range 40 {
		resp, err := http.Get(n.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %s", resp.Status)
		}
	}
	// One more event per partition after the first ones are old, so that
	// the ones before it can go (a partition keeps its last record).
	time.Sleep(time.Second)
	for range 10 {
		resp, err := http.Get(n.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}

	deadline := time.Now().Add(30 * time.Second)
	var trimmed bool
	for !trimmed && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		u, err := n.Broker.Usage()
		if err != nil {
			t.Fatal(err)
		}
		trimmed = u.Partitions[0].Start >= 40
	}
	if !trimmed {
		u, _ := n.Broker.Usage()
		t.Fatalf("the old records were not deleted: %+v", u.Partitions)
	}

	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{"questlog_broker_bytes ", "questlog_broker_files ", `questlog_broker_log_start_offset{partition="0"}`,
		`questlog_lake_files{dataset="events"}`, `questlog_lake_bytes{dataset="quarantine"}`, "questlog_lake_usage_errors 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	u, err := n.Broker.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := lake.Open(dir + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	// The lake's checkpoint is at or past every partition's start: nothing
	// went before it was extracted, and the lake holds each offset once.
	report, err := lake.Check(context.Background(), st, "events")
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("lake check: %v", report.Problems)
	}
	for _, p := range u.Partitions {
		if m := report.Checkpoint.Partitions[p.Partition]; m.Start != 0 || m.Next < p.Start {
			t.Errorf("partition %d starts at %d in the topic, the lake holds %d..%d", p.Partition, p.Start, m.Start, m.Next)
		}
	}

}
