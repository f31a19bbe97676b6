package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/redisstore"
	"github.com/questlog/questlog/internal/state/redistest"
	"github.com/questlog/questlog/internal/state/statetest"
)

func open(t testing.TB, url string, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs the suite on one real redis-server, each subtest
// under its own key prefix.
func TestConformance(t *testing.T) {
	url := redistest.Start(t)
	var n atomic.Int64
	statetest.Run(t, func(t *testing.T) state.Store {
		return open(t, url, redisstore.WithPrefix(fmt.Sprintf("test%d:", n.Add(1))))
	})
}

func TestPrefixesAreSeparate(t *testing.T) {
	ctx := context.Background()
	url := redistest.Start(t)
	a, b := open(t, url, redisstore.WithPrefix("a:")), open(t, url, redisstore.WithPrefix("b:"))
	defer a.Close()
	defer b.Close()
	if err := a.CreateAccount(ctx, state.Account{User: "ada", Gold: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Player(ctx, "ada"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Player under another prefix = %v, want ErrNotFound", err)
	}
	if err := b.CreateAccount(ctx, state.Account{User: "ada", Gold: 2}); err != nil {
		t.Errorf("CreateAccount under another prefix: %v", err)
	}
}

// TestLockAcrossProcesses plays two API servers, each with its own Store on
// the same Redis: a lock held by one excludes the other, is renewed while
// held for longer than its TTL, and expires once its holder is gone.
func TestLockAcrossProcesses(t *testing.T) {
	const ttl = time.Second
	url := redistest.Start(t)
	one := open(t, url, redisstore.WithLockTTL(ttl))
	two := open(t, url, redisstore.WithLockTTL(ttl))
	defer two.Close()

	if _, err := one.Lock(context.Background(), "ada"); err != nil {
		t.Fatalf("Lock in the first server: %v", err)
	}
	// Held well past its TTL, the lock is still held thanks to renewals.
	time.Sleep(ttl + ttl/2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if u, err := two.Lock(ctx, "ada"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u()
		}
		t.Fatalf("Lock in the second server while the first holds it = %v, want context.DeadlineExceeded", err)
	}

	// The first server dies without unlocking: the lock frees itself.
	one.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*ttl)
	defer cancel()
	unlock, err := two.Lock(ctx, "ada")
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	unlock()
}

func TestOpenErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "redis://" + l.Addr().String() + "/0"
	l.Close() // nothing listens there any more

	tests := []struct {
		name string
		url  string
		opts []redisstore.Option
		want string
	}{
		{"bad scheme", "http://127.0.0.1:6379", nil, "parse URL"},
		{"nothing listening, password kept out of errors", "redis://:s3cret@" + l.Addr().String() + "/0", nil, "ping redis"},
		{"lock TTL too short", closed, []redisstore.Option{redisstore.WithLockTTL(time.Millisecond)}, "lock TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := redisstore.Open(ctx, tc.url, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.url)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) = %q, want it to mention %q", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open error shows the password: %q", err)
			}
		})
	}
}

func benchStore(b *testing.B) state.Store {
	s := open(b, redistest.Start(b))
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkApply(b *testing.B)    { statetest.BenchApply(b, benchStore(b)) }
func BenchmarkPlayer(b *testing.B)   { statetest.BenchPlayer(b, benchStore(b)) }
func BenchmarkPurchase(b *testing.B) { statetest.BenchPurchase(b, benchStore(b)) }
func BenchmarkSession(b *testing.B)  { statetest.BenchSession(b, benchStore(b)) }
