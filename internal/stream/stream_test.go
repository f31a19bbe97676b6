package stream

import (
	"context"
	"errors"
	"fmt"
	"github.com/twmb/franz-go/pkg/kgo"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStart(t *testing.T) {
	tests := []struct {
		in      string
		want    Start
		wantErr bool
	}{
		{"beginning", Start{kind: startBeginning}, false},
		{"end", Start{kind: startEnd}, false},
		{"", Start{kind: startEnd}, false},
		{"42", Start{kind: startOffset, offset: 42}, false},
		{"0", Start{kind: startOffset, offset: 0}, false},
		{"-1", Start{}, true},
		{"first", Start{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStart(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseStart(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

func startBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := StartBroker(BrokerConfig{Dir: dir, Topic: "events", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startProducer makes and starts a producer, closed when the test ends.
func startProducer(t *testing.T, cfg ProducerConfig) *Producer {
	t.Helper()
	p, err := NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

func publish(t *testing.T, b *Broker, keys ...string) {
	t.Helper()
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events"})
	defer p.Close()
	for i, k := range keys {
		if _, _, err := p.Publish(context.Background(), []byte(k), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
}

func tail(t *testing.T, b *Broker, start string) map[string][]string {
	t.Helper()
	s, err := ParseStart(start)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = Tail(ctx, TailConfig{Brokers: []string{b.Addr()}, Topic: "events", Start: s, ExitAtEnd: true}, func(r Record) error {
		got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Produce, close, reopen, verify: the embedded broker keeps every
// acknowledged record in its data directory.
func TestBrokerPersistsAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")

	b := startBroker(t, dir)
	publish(t, b, "ada", "bob", "ada")
	b.Close()

	b = startBroker(t, dir)
	defer b.Close()
	publish(t, b, "ada")
	got := tail(t, b, "beginning")
	if len(got["ada"]) != 3 || len(got["bob"]) != 1 {
		t.Fatalf("after restart: %v", got)
	}
	// Per key, order is kept: ada's records are 0, 2, then 0 again from
	// the second producer.
	if got["ada"][0] != `{"n":0}` || got["ada"][1] != `{"n":2}` || got["ada"][2] != `{"n":0}` {
		t.Errorf("ada's records out of order: %v", got["ada"])
	}
}

func TestTailStartsAndEnds(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	publish(t, b, "k", "k", "k", "k")
	tests := []struct {
		start string
		want  int
	}{
		{"beginning", 4},
		{"2", 2}, // the key's partition holds offsets 0..3
		{"end", 0},
		{"99", 0},
	}
	for _, tt := range tests {
		t.Run(tt.start, func(t *testing.T) {
			if got := tail(t, b, tt.start); len(got["k"]) != tt.want {
				t.Errorf("-o %s -e read %d records, want %d", tt.start, len(got["k"]), tt.want)
			}
		})
	}
}

func TestPublishFailsWhenBrokerIsGone(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events", DeliveryTimeout: time.Second})
	if _, _, err := p.Publish(context.Background(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// The topic's partitions are known: the record waits on the broker,
	// which never comes back, and fails about DeliveryTimeout later.
	start := time.Now()
	_, _, err := p.Publish(context.Background(), []byte("k"), []byte("v"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish with the broker gone = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Publish with the broker gone answered after %v; DeliveryTimeout is 1s (kgo refreshes metadata at most every MetadataMinAge)", d)
	}
}

// A producer with a linger, under traffic from many callers, holds a batch
// that long for company: concurrent records are all acknowledged, and
// none before the linger has passed. A lone caller publishing one record
// after the other's ack is never held back.
func TestPublishLingers(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	const linger = 60 * time.Millisecond
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events", Linger: linger})
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	publish := func(key string, i int) error {
		_, _, err := p.Publish(context.Background(), []byte(key), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		return err
	}

	// Alone: one record at a time, each after the last one's ack.
	for i := range 5 {
		if err := publish("alone", i); err != nil {
			t.Fatal(err)
		}
	}
	if n := lingered(p); n != 0 {
		t.Errorf("a lone caller's 5 records waited for company %d times", n)
	}

	// Many callers at once: the first burst's records share requests,
	// which teaches the sink that callers come together; the next burst
	// finds it idle and waits the linger for company.
	burst := func(n int) time.Duration {
		start := time.Now()
		errs := make(chan error, n)
		for i := range n {
			go func() { errs <- publish("k", i) }()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	burst(30)
	before := lingered(p)
	if d := burst(10); d < linger {
		t.Errorf("10 concurrent records with a %v linger were acknowledged after %v", linger, d)
	}
	if n := lingered(p) - before; n == 0 {
		t.Errorf("10 concurrent records after a burst never waited for company")
	}
	got := tail(t, b, "beginning")
	if len(got["k"]) != 40 || len(got["alone"]) != 5 {
		t.Errorf("read %d and %d records, want 40 and 5", len(got["k"]), len(got["alone"]))
	}
}

// lingered is how many requests p's sinks held back for company.
func lingered(p *Producer) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, s := range p.sinks {
		n += s.lingered.Load()
	}
	return n
}

// NewProducer refuses a DeliveryTimeout under kgo's shortest (1s) and a
// Linger outside 0..MaxLinger with an error that names the setting, and
// takes the bounds themselves.
func TestNewProducerValidates(t *testing.T) {
	tests := []struct {
		timeout, linger time.Duration
		wantErr         string // "" for a producer
	}{
		{timeout: 20 * time.Millisecond, wantErr: "timeout"},
		{timeout: 999 * time.Millisecond, wantErr: "timeout"},
		{timeout: time.Second},
		{timeout: time.Hour},
		{linger: -time.Microsecond, wantErr: "linger"},
		{linger: 250 * time.Microsecond},
		{linger: MaxLinger},
		{linger: MaxLinger + 1, wantErr: "linger"},
	}
	for _, tt := range tests {
		p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "events", DeliveryTimeout: tt.timeout, Linger: tt.linger})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("NewProducer with DeliveryTimeout %v, Linger %v: %v", tt.timeout, tt.linger, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("NewProducer with DeliveryTimeout %v, Linger %v: %v, want an error about the %s", tt.timeout, tt.linger, err, tt.wantErr)
		}
		if err == nil {
			p.Close()
		}
	}
}

func TestStartBrokerValidates(t *testing.T) {
	if _, err := StartBroker(BrokerConfig{Topic: "events"}); err == nil {
		t.Error("a broker without a directory started")
	}
	if _, err := StartBroker(BrokerConfig{Dir: t.TempDir()}); err == nil {
		t.Error("a broker without a topic started")
	}
	if _, err := StartBroker(BrokerConfig{Dir: t.TempDir(), Topic: "events", SegmentBytes: 4096}); err == nil {
		t.Error("a broker with 4 KiB log files started")
	}
}

// The producer chooses a keyed record's partition as Kafka's default
// partitioner does (so a player's events stay on the partition they were
// on before), says where a key's next record goes, and reports each
// record's position.
func TestProducerPositions(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx := context.Background()

	// A plain kgo client with its default partitioner writes first.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defaultPart := map[string]int32{}
	for _, k := range []string{"ada", "bob", "cy", "dee", "ada"} {
		r := &kgo.Record{Key: []byte(k), Value: []byte(`{}`)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		defaultPart[k] = r.Partition
	}
	cl.Close()

	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events"})
	for k, want := range defaultPart {
		part, after := p.Next([]byte(k))
		if part != want {
			t.Errorf("Next(%q) partition = %d, kgo's default partitioner chose %d", k, part, want)
		}
		if after < 0 {
			t.Errorf("Next(%q) after = %d, want the offset of the records already there", k, after)
		}
	}
	for range 3 {
		part, after := p.Next([]byte("ada"))
		gotPart, off, err := p.Publish(ctx, []byte("ada"), []byte(`{"event_id":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		if gotPart != part || off <= after {
			t.Errorf("Publish(ada) at %d/%d, Next said partition %d past offset %d", gotPart, off, part, after)
		}
		if _, now := p.Next([]byte("ada")); now != off {
			t.Errorf("Next(ada) after a publish at offset %d says %d", off, now)
		}
	}
	// Records without a key spread over the partitions.
	seen := map[int32]bool{}
	for range 2 * 256 {
		part, _ := p.Next(nil)
		seen[part] = true
	}
	if len(seen) != 2 {
		t.Errorf("records without a key went to partitions %v, want both", seen)
	}
}

// Contains finds a record past an offset, and only there.
func TestProducerContains(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events"})
	var part int32
	offsets := map[string]int64{}
	for i := range 20 {
		id := fmt.Sprintf("e%02d", i)
		pt, off, err := p.Publish(ctx, []byte("ada"), []byte(`{"event_id":"`+id+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		part, offsets[id] = pt, off
	}
	is := func(id string) func([]byte) bool {
		return func(v []byte) bool { return string(v) == `{"event_id":"`+id+`"}` }
	}
	tests := []struct {
		name  string
		id    string
		after int64
		want  bool
	}{
		{"from the start", "e07", -1, true},
		{"just past the one before", "e07", offsets["e07"] - 1, true},
		{"the last one", "e19", offsets["e19"] - 1, true},
		{"not past its own offset", "e07", offsets["e07"], false},
		{"never written", "e99", -1, false},
		{"past the end", "e19", offsets["e19"] + 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Contains(ctx, part, tt.after, is(tt.id))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Contains(%d, after %d, %s) = %v, want %v", part, tt.after, tt.id, got, tt.want)
			}
		})
	}
	if _, err := p.Contains(ctx, 99, -1, is("e01")); err == nil {
		t.Errorf("Contains(no such partition) = nil error")
	}
}

// A publish ends by its context's deadline when that comes before the
// DeliveryTimeout, and a producer that was not started refuses.
func TestPublishHonoursDeadline(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events", DeliveryTimeout: 10 * time.Second})
	if _, _, err := p.Publish(context.Background(), []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := p.Publish(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish with the broker gone = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Publish with a 500ms deadline answered after %v (DeliveryTimeout 10s)", d)
	}

	idle, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "events"})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, _, err := idle.Publish(context.Background(), []byte("k"), []byte("v")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Publish before Start = %v, want ErrUnavailable", err)
	}
}
