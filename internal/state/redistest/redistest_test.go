package redistest_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/questlog/questlog/internal/state/redistest"
)

func TestStartServesRedis(t *testing.T) {
	u := redistest.Start(t)
	if parsed, err := url.Parse(u); err != nil || parsed.Hostname() != "127.0.0.1" {
		t.Fatalf("Start() = %q (%v), want a redis:// URL on 127.0.0.1", u, err)
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	// Two servers at once do not share data.
	c2opt, _ := redis.ParseURL(redistest.Start(t))
	c2 := redis.NewClient(c2opt)
	defer c2.Close()
	if err := c2.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET on a second server = %v, want redis.Nil", err)
	}
}

// A durable server keeps what it acknowledged across a kill; a paused one
// answers nothing until resumed.
func TestServerKillRestartPause(t *testing.T) {
	s := redistest.StartServer(t, redistest.Options{Durable: true})
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Kill()
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET answered by a killed server")
	}
	s.Restart()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after restart = %q, %v; want v", got, err)
	}
	s.Pause()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = c.Get(short, "k").Err()
	cancel()
	if err == nil {
		t.Fatal("GET answered by a paused server")
	}
	s.Resume()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after resume = %q, %v; want v", got, err)
	}
}
