package retain_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/retain"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitetest"
	"github.com/questlog/questlog/internal/stream"
)

const topic = "events"

// fixture is an embedded broker whose one partition holds 10 records:
// 0..4 produced before the instant mid, 5..9 after it; a lake; a store.
type fixture struct {
	broker *stream.Broker
	lake   lake.Storage
	store  state.Store
	mid    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	b, err := stream.NewBroker(stream.BrokerConfig{
		Dir: filepath.Join(t.TempDir(), "broker"), Listen: "127.0.0.1:0", Topic: topic, Partitions: 1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: []string{b.Addr()}, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	publish := func(from int) {
		for i := from; i < from+5; i++ {
			if _, err := p.PublishGroup(ctx, 0, [][2][]byte{{[]byte("k"), fmt.Appendf(nil, `{"n":%d}`, i)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0)
	time.Sleep(20 * time.Millisecond) // timestamps are in milliseconds
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	publish(5)
	st, err := lake.Open(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{broker: b, lake: st, store: sqlitetest.Open(t), mid: mid}
}

func (f *fixture) checkpoint(t *testing.T, next int64) {
	t.Helper()
	cp := &lake.Checkpoint{Topic: topic, Partitions: map[int32]lake.PartitionMark{0: {Start: 0, Next: next}}}
	if err := cp.Write(context.Background(), f.lake, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// A pass deletes the records that are old enough, in the lake, and read by
// no pending intent: the lowest of the three limits wins, and the broker
// keeps a partition's last record.
func TestPass(t *testing.T) {
	const retention = time.Hour
	tests := []struct {
		name       string
		checkpoint int64 // -1: no checkpoint
		pending    int64 // a pending intent's After; -2: none
		old        string
		wantStart  int64
		wantLimit  retain.Limit
	}{
		{name: "no checkpoint keeps everything", checkpoint: -1, pending: -2, old: "all", wantStart: 0, wantLimit: retain.ByLake},
		{name: "the lake's checkpoint", checkpoint: 7, pending: -2, old: "all", wantStart: 7, wantLimit: retain.ByLake},
		{name: "the age", checkpoint: 10, pending: -2, old: "first five", wantStart: 5, wantLimit: retain.ByAge},
		{name: "nothing old enough", checkpoint: 10, pending: -2, old: "none", wantStart: 0, wantLimit: retain.ByAge},
		{name: "a pending intent", checkpoint: 10, pending: 2, old: "all", wantStart: 3, wantLimit: retain.ByPending},
		{name: "a pending intent from the start", checkpoint: 10, pending: -1, old: "all", wantStart: 0, wantLimit: retain.ByPending},
		// Everything may go; the broker keeps the last record.
		{name: "all of it but the last record", checkpoint: 10, pending: -2, old: "all", wantStart: 9, wantLimit: retain.ByAge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.checkpoint >= 0 {
				f.checkpoint(t, tc.checkpoint)
			}
			if tc.pending >= -1 {
				in := state.Intent{EventID: "e1", Partition: 0, After: tc.pending, Created: time.Now(),
					Changes: []state.Change{{GoldDelta: -10}}}
				if err := f.store.Prepare(context.Background(), "alice", in); err != nil {
					t.Fatal(err)
				}
			}
			now := map[string]time.Time{
				"all":        time.Now().Add(retention + time.Minute),
				"first five": f.mid.Add(retention),
				"none":       time.Now(),
			}[tc.old]
			tr, err := retain.New(retain.Config{
				Brokers: []string{f.broker.Addr()}, Topic: topic, Lake: f.lake, Retention: retention, Store: f.store,
				Now: func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			pass, err := tr.Pass(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(pass) != 1 || pass[0].Start != tc.wantStart || pass[0].Limit != tc.wantLimit {
				t.Fatalf("pass: %+v; want start %d, limited by %s", pass, tc.wantStart, tc.wantLimit)
			}
			u, err := f.broker.Usage()
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Partitions[0]; got.Start != tc.wantStart || got.End != 10 {
				t.Errorf("the broker's partition runs %d..%d, want %d..10", got.Start, got.End, tc.wantStart)
			}
		})
	}
}

// Start trims at once and then every interval, as the lake's checkpoint
// moves; Stop ends the passes.
func TestTrimmerRuns(t *testing.T) {
	f := newFixture(t)
	f.checkpoint(t, 4)
	tr, err := retain.New(retain.Config{
		Brokers: []string{f.broker.Addr()}, Topic: topic, Lake: f.lake, Retention: time.Hour,
		Interval: 20 * time.Millisecond, Now: func() time.Time { return time.Now().Add(2 * time.Hour) },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := func() int64 {
		u, err := f.broker.Usage()
		if err != nil {
			t.Fatal(err)
		}
		return u.Partitions[0].Start
	}
	if got := start(); got != 4 {
		t.Errorf("after Start the partition starts at %d, want 4 (the checkpoint)", got)
	}
	f.checkpoint(t, 8)
	deadline := time.Now().Add(30 * time.Second)
	for start() != 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := start(); got != 8 {
		t.Errorf("after the checkpoint moved to 8 the partition starts at %d", got)
	}
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.checkpoint(t, 10)
	time.Sleep(100 * time.Millisecond) // five intervals: a pass would have run
	if got := start(); got != 8 {
		t.Errorf("after Stop a pass still ran: the partition starts at %d", got)
	}
}

func TestNewValidates(t *testing.T) {
	st, err := lake.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  retain.Config
	}{
		{"no brokers", retain.Config{Topic: topic, Lake: st, Retention: time.Hour}},
		{"no lake", retain.Config{Brokers: []string{"127.0.0.1:1"}, Topic: topic, Retention: time.Hour}},
		{"retention under a second", retain.Config{Brokers: []string{"127.0.0.1:1"}, Topic: topic, Lake: st, Retention: time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := retain.New(tc.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}
