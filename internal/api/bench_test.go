package api_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/node/nodetest"
)

// benchServer is the real API handler over the embedded broker and SQLite,
// called without a network in between so a profile shows the server's own
// cost per request: game, event encoding, the produce and its ack, metrics.
// Its game has config g.
func benchServer(b *testing.B, g game.Config) http.Handler {
	b.Helper()
	n := nodetest.Start(b, node.Config{
		Role: node.Serve, DataDir: b.TempDir(), HTTP: "127.0.0.1:0", BrokerListen: "127.0.0.1:0", Topic: topic,
		Game: g, Logger: slog.New(slog.DiscardHandler),
	})
	return n.API
}

// discard is a ResponseWriter that keeps only the status, reused across
// requests so the benchmark measures the server, not a recorder.
type discard struct {
	header http.Header
	code   int
}

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

// serve runs one request through the handler and fails on an unexpected
// status.
func serve(b *testing.B, srv http.Handler, w *discard, req *http.Request, want int) {
	clear(w.header)
	w.code = 0
	srv.ServeHTTP(w, req)
	if w.code != want {
		b.Fatalf("%s %s: status %d, want %d", req.Method, req.URL.Path, w.code, want)
	}
}

// BenchmarkServeDefault is the seed's GET /: one acknowledged event per
// request, anonymous, no state.
func BenchmarkServeDefault(b *testing.B) {
	srv := benchServer(b, game.Config{PasswordCost: 4})
	b.ReportAllocs()
	b.SetParallelism(16) // requests waiting for acks, as under HTTP load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("User-Agent", "bench")
		w := &discard{header: http.Header{}}
		for pb.Next() {
			serve(b, srv, w, req, http.StatusOK)
		}
	})
}

// BenchmarkServePlayer is a logged-in player's request mix on the players
// path: a session lookup, the player read, an event, and for a purchase
// the state change.
func BenchmarkServePlayer(b *testing.B) {
	for _, tc := range []struct {
		name, path string
	}{
		{"inventory", "/inventory"},
		{"buy_potion", "/buy?item=potion"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := benchServer(b, game.Config{PasswordCost: 4})
			var players atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				cookie := signup(b, srv, fmt.Sprintf("p%d", players.Add(1)))
				bought := 0
				w := &discard{header: http.Header{}}
				for pb.Next() {
					if tc.name == "buy_potion" && bought == 190 { // 1,000 gold buys 200 potions
						cookie = signup(b, srv, fmt.Sprintf("p%d", players.Add(1)))
						bought = 0
					}
					req := httptest.NewRequest("GET", tc.path, nil)
					req.Header.Set("Cookie", cookie)
					serve(b, srv, w, req, http.StatusOK)
					bought++
				}
			})
		})
	}
}

// signup creates a player and returns its session cookie header.
func signup(b *testing.B, srv http.Handler, user string) string {
	req := httptest.NewRequest("GET", "/signup?username="+user+"&password=pw", nil)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("signup %s: status %d: %s", user, rec.Code, rec.Body)
	}
	c := rec.Result().Cookies()
	if len(c) == 0 {
		b.Fatalf("signup %s: no cookie", user)
	}
	return c[0].Name + "=" + c[0].Value
}

// BenchmarkServeOnePlayer is the seed's own load test: one player, whose
// cookie every concurrent request carries, buying a sword over and over.
// Its actions wait on each other (each is decided on the state the one
// before left), so this measures a player's rounds, not the CPU.
func BenchmarkServeOnePlayer(b *testing.B) {
	srv := benchServer(b, game.Config{PasswordCost: 4, StartingGold: 2_000_000_000})
	cookie := signup(b, srv, "u1")
	b.ReportAllocs()
	b.SetParallelism(25) // 50 requests at once on 2 cores, as wrk -c 50
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/buy_sword", nil)
		req.Header.Set("Cookie", cookie)
		w := &discard{header: http.Header{}}
		for pb.Next() {
			serve(b, srv, w, req, http.StatusOK)
		}
	})
}
