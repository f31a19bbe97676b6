package api_test

import (
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/node/nodetest"
	"github.com/questlog/questlog/internal/state/redistest"
)

// startServersSharingRedis starts two API servers with game config g that
// keep their state in one new Redis. The first runs the embedded broker; the
// second produces to it as to a Kafka cluster.
func startServersSharingRedis(t *testing.T, g game.Config) (first, second *node.Node) {
	t.Helper()
	cfg := node.Config{Role: node.Serve, HTTP: "127.0.0.1:0", BrokerListen: "127.0.0.1:0", Topic: topic, Partitions: 2,
		Redis: redistest.Start(t), Game: g, DataDir: t.TempDir()}
	first = nodetest.Start(t, cfg)
	cfg.DataDir, cfg.Brokers = t.TempDir(), first.BrokerAddrs()
	return first, nodetest.Start(t, cfg)
}

// Two stateless API servers share one Redis and one broker, as behind a
// load balancer: a player's session works on both, and racing purchases
// through both cannot spend the same gold twice (the per-player lock lives
// in Redis).
func TestTwoServersShareRedis(t *testing.T) {
	first, second := startServersSharingRedis(t, game.Config{PasswordCost: 4})
	servers := []string{first.URL(), second.URL()}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	h := &harness{t: t, broker: first.Broker, store: first.Store}
	h.url = servers[0]
	h.signup(c, "ada")
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
	h.checkFold("ada")
}
