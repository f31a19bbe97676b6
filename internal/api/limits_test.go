package api

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// Concurrent guesses cannot pass a limit together: each attempt in flight
// holds a place until it ends.
func TestLoginLimiterConcurrentGuesses(t *testing.T) {
	l := newLoginLimiter(LoginLimits{PerUser: 10, PerAddress: 1000})
	var passed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			at, _, ok := l.begin("ada", fmt.Sprintf("192.0.2.%d", i%50))
			if !ok {
				return
			}
			passed.Add(1)
			time.Sleep(time.Millisecond) // the password check
			at.end(true, false)
		}()
	}
	close(start)
	wg.Wait()
	if n := passed.Load(); n != 10 {
		t.Errorf("%d concurrent guesses passed a limit of 10", n)
	}
	if _, wait, ok := l.begin("ada", "192.0.2.99"); ok || wait < 14*time.Minute {
		t.Errorf("after 10 failures: ok %v, wait %v", ok, wait)
	}
}

// An attempt in flight that succeeds gives its place back; one that ends
// neither failed nor succeeded (bad input, an outage) too.
func TestLoginLimiterInFlight(t *testing.T) {
	l := newLoginLimiter(LoginLimits{PerUser: 2})
	a1, _, ok1 := l.begin("ada", "a")
	a2, _, ok2 := l.begin("ada", "a")
	_, wait, ok3 := l.begin("ada", "a")
	if !ok1 || !ok2 || ok3 || wait != time.Second {
		t.Fatalf("two in flight of 2: %v %v %v wait %v", ok1, ok2, ok3, wait)
	}
	a1.end(false, false)
	a2.end(false, true)
	for i := range 2 {
		a, _, ok := l.begin("ada", "a")
		if !ok {
			t.Fatalf("attempt %d refused after the places were given back", i)
		}
		a.end(true, false)
	}
	if _, _, ok := l.begin("ada", "a"); ok {
		t.Fatal("third failure let through")
	}
}

// The tracked keys are bounded: past MaxKeys the key whose window closes
// first is forgotten, and closed windows are dropped.
func TestLoginLimiterMemoryIsBounded(t *testing.T) {
	c := &testClock{now: time.Unix(1e9, 0)}
	l := newLoginLimiter(LoginLimits{PerUser: 1, MaxKeys: 100, Window: time.Minute, Now: c.Now})
	for i := range 1000 {
		a, _, ok := l.begin(fmt.Sprint("user", i), "")
		if !ok {
			t.Fatalf("user%d refused", i)
		}
		a.end(true, false)
		c.advance(time.Millisecond)
	}
	if n := len(l.users.keys); n != 100 || l.users.order.Len() != 100 {
		t.Fatalf("%d keys tracked (%d in order), want the cap of 100", n, l.users.order.Len())
	}
	if _, _, ok := l.begin("user999", ""); ok {
		t.Error("the newest key was forgotten")
	}
	if a, _, ok := l.begin("user0", ""); !ok {
		t.Error("the oldest key was kept")
	} else {
		a.end(false, false)
	}
	c.advance(time.Minute)
	a, _, ok := l.begin("user999", "")
	if !ok {
		t.Fatal("user999 still limited after the window")
	}
	a.end(false, false)
	if n := len(l.users.keys); n != 0 {
		t.Errorf("%d keys tracked after every window closed", n)
	}
}

func TestClientAddress(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:5000", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:5000", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"[::1]:1", ""},         // loopback: not counted per address
		{"127.0.0.1:5000", ""},  // loopback
		{"127.8.9.10:5000", ""}, // all of 127/8
		{"[::ffff:127.0.0.1]:1", ""},
		{"not an address", "not an address"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := clientAddress(tt.remote); got != tt.want {
			t.Errorf("clientAddress(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

func TestLoginLimitsValidate(t *testing.T) {
	for _, l := range []LoginLimits{{PerUser: -1}, {PerAddress: -1}, {Window: -time.Second}, {MaxKeys: -1}} {
		if l.validate() == nil {
			t.Errorf("%+v accepted", l)
		}
	}
	if err := DefaultLoginLimits().validate(); err != nil {
		t.Error(err)
	}
}

// A loopback client is not limited per address (the README's local load
// test sends wrong passwords from 127.0.0.1 on purpose) but is per user.
func TestLoopbackIsLimitedPerUserOnly(t *testing.T) {
	lim := DefaultLoginLimits()
	lim.PerUser, lim.PerAddress = 2, 3
	l := newLoginLimiter(lim)
	local := clientAddress("127.0.0.1:40000")
	for i := range 10 {
		a, _, ok := l.begin(fmt.Sprintf("user%d", i), local)
		if !ok {
			t.Fatalf("failed login %d from loopback refused: loopback must not count per address", i)
		}
		a.end(true, false)
	}
	for range 2 {
		a, _, ok := l.begin("ada", local)
		if !ok {
			t.Fatal("refused before the per-user limit")
		}
		a.end(true, false)
	}
	if _, _, ok := l.begin("ada", local); ok {
		t.Error("a loopback client passed the per-user limit")
	}
}
