package api_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/api"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state/redisstore"
	"github.com/questlog/questlog/internal/state/redistest"
	"github.com/questlog/questlog/internal/stream"
)

// Two stateless API servers share one Redis and one broker, as behind a
// load balancer: a player's session works on both, and racing purchases
// through both cannot spend the same gold twice (the per-player lock lives
// in Redis).
func TestTwoServersShareRedis(t *testing.T) {
	url := redistest.Start(t)
	ctx := context.Background()
	br, err := stream.StartBroker(stream.BrokerConfig{Dir: filepath.Join(t.TempDir(), "broker"), Topic: topic, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	var servers []string
	for range 2 {
		st, err := redisstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		prod := startProducer(t, stream.ProducerConfig{Brokers: []string{br.Addr()}, Topic: topic})
		srv, err := api.New(api.Config{Store: st, Publisher: prod, Game: game.Config{PasswordCost: 4}})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(ts.Close)
		servers = append(servers, ts.URL)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	h := &harness{t: t, broker: br}
	h.url = servers[0]
	if r := h.get(c, "/signup?username=ada&password=pw"); r.code != 201 {
		t.Fatal(r)
	}
	// The cookie jar is per host; both servers are on 127.0.0.1.
	h.url = servers[1]
	if r := h.get(c, "/inventory"); r.code != 200 || r.body != "ada: 1000 gold, no guild\nno items\n" {
		t.Fatalf("inventory on the second server = %v", r)
	}

	raceEpicArmor(t, c, servers...)
	if r := h.get(c, "/inventory"); r.body != "ada: 40 gold, no guild\n1 epic armor\n" {
		t.Fatalf("inventory after the race = %q", r.body)
	}
	if n := len(h.events()); n != 1+1+8+1 {
		t.Fatalf("%d events, want %d", n, 1+1+8+1)
	}
}
