package api

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// LoginLimits bounds failed logins (a wrong password or an unknown user),
// per username and per client address, each over a window that opens at a
// key's first failure. Past a limit, logins for that user or from that
// address are refused with 429 and Retry-After until the window closes,
// without checking the password, the right one included: otherwise the
// answer would still tell a guess right from wrong. A successful login
// clears its user's failures (not its address's: an attacker's own account
// must not reset the count of the accounts it guesses at).
//
// Both limits count an unknown user's failures like a known user's, so a
// 429 says nothing about whether an account exists.
type LoginLimits struct {
	// PerUser is how many failed logins one username may have in a Window;
	// 0 means no limit. Default 10: a player who mistypes ten times in a
	// quarter of an hour waits, and online guessing at one account gets at
	// most ~1,000 tries a day.
	PerUser int
	// PerAddress is how many failed logins one client address (the TCP
	// peer; an IPv6 address counts by its /64, which one host usually
	// holds whole) may cause in a Window; 0 means no limit. Default 100:
	// the per-user limit does not see one address trying a common password
	// on many accounts, and 100 leaves room for a household, a classroom
	// or a small office behind one NAT. X-Forwarded-For is not read: any
	// client can write it. Loopback clients (127.0.0.0/8, ::1) are not
	// counted per address: on questlog's default listen address every
	// client is local, and the README's journey runs a load test that
	// sends wrong passwords on purpose (the per-user limit still applies
	// to them). Behind a proxy every client shares the proxy's address:
	// on the same host that is loopback, elsewhere raise this or set 0,
	// and limit at the proxy.
	PerAddress int
	// Window is how long failures count; default 15 minutes.
	Window time.Duration
	// MaxKeys bounds the users and the addresses tracked (each, with about
	// 200 bytes per key); default 65,536. When full, the key whose window
	// closes first is forgotten.
	MaxKeys int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultLoginLimits are the limits of a server whose Config sets none.
func DefaultLoginLimits() LoginLimits {
	return LoginLimits{PerUser: 10, PerAddress: 100, Window: 15 * time.Minute, MaxKeys: 1 << 16}
}

// validate refuses limits that make no sense.
func (l LoginLimits) validate() error {
	switch {
	case l.PerUser < 0 || l.PerAddress < 0:
		return fmt.Errorf("login limits %d per user, %d per address: must be 0 (no limit) or more", l.PerUser, l.PerAddress)
	case l.Window < 0 || l.MaxKeys < 0:
		return errors.New("login limits: the window and the key cap cannot be negative")
	}
	return nil
}

// loginLimiter applies LoginLimits. Safe for concurrent use.
type loginLimiter struct {
	users, addrs *failures // nil: no limit
}

func newLoginLimiter(l LoginLimits) *loginLimiter {
	def := DefaultLoginLimits()
	if l.Window == 0 {
		l.Window = def.Window
	}
	if l.MaxKeys == 0 {
		l.MaxKeys = def.MaxKeys
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return &loginLimiter{users: newFailures(l.PerUser, l), addrs: newFailures(l.PerAddress, l)}
}

// maxUserKey bounds a username as a key: twice the longest valid one.
const maxUserKey = 64

// attempt is a login let through: end says how it went.
type attempt struct {
	l          *loginLimiter
	user, addr string
}

// begin lets a login for user from addr through, or says how long to wait.
// A login let through holds a place under both limits until end, so that
// concurrent guesses cannot all pass a limit that only one more failure
// would reach.
func (l *loginLimiter) begin(user, addr string) (attempt, time.Duration, bool) {
	if len(user) > maxUserKey {
		// No valid username is this long (the game refuses it before any
		// password check); keep the key small.
		user = user[:maxUserKey]
	}
	if addr != "" {
		if wait, ok := l.addrs.begin(addr); !ok {
			return attempt{}, wait, false
		}
	}
	if wait, ok := l.users.begin(user); !ok {
		if addr != "" {
			l.addrs.end(addr, false)
		}
		return attempt{}, wait, false
	}
	return attempt{l: l, user: user, addr: addr}, 0, true
}

// end records the outcome: failed for a wrong password or an unknown user,
// succeeded for a login that opened a session; neither (bad input, an
// outage) only gives the place back.
func (a attempt) end(failed, succeeded bool) {
	if a.addr != "" {
		a.l.addrs.end(a.addr, failed)
	}
	a.l.users.end(a.user, failed)
	if succeeded {
		a.l.users.clear(a.user)
	}
}

// failures counts failures per key over a window.
type failures struct {
	limit   int
	window  time.Duration
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *tally
	// order holds the tallies by window start, so the front closes first.
	order list.List
}

type tally struct {
	key      string
	start    time.Time
	failed   int // failures in the window
	inFlight int // attempts let through and not yet ended
}

func newFailures(limit int, l LoginLimits) *failures {
	if limit == 0 {
		return nil
	}
	return &failures{limit: limit, window: l.Window, maxKeys: l.MaxKeys, now: l.Now, keys: make(map[string]*list.Element)}
}

func (f *failures) begin(key string) (time.Duration, bool) {
	if f == nil {
		return 0, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	t := f.tally(key, now)
	switch {
	case t.failed >= f.limit:
		return max(t.start.Add(f.window).Sub(now), time.Second), false
	case t.failed+t.inFlight >= f.limit:
		// The last places are held by attempts in flight, which may yet
		// succeed and give them back.
		return time.Second, false
	}
	t.inFlight++
	return 0, true
}

func (f *failures) end(key string, failed bool) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tally(key, f.now())
	if t.inFlight > 0 {
		t.inFlight--
	}
	if failed {
		t.failed++
	}
	if t.failed == 0 && t.inFlight == 0 {
		f.forget(key)
	}
}

func (f *failures) clear(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.keys[key]; ok && e.Value.(*tally).inFlight == 0 {
		f.forget(key)
	} else if ok {
		e.Value.(*tally).failed = 0
	}
}

// tally returns key's tally, opening a window when it has none or its
// window has closed, and forgets the tallies whose windows have closed.
// f.mu is held.
func (f *failures) tally(key string, now time.Time) *tally {
	for e := f.order.Front(); e != nil; e = f.order.Front() {
		t := e.Value.(*tally)
		if now.Before(t.start.Add(f.window)) {
			break
		}
		if t.inFlight > 0 {
			// Its window closed with attempts in flight: a new window
			// for those, at the back.
			t.start, t.failed = now, 0
			f.order.MoveToBack(e)
			continue
		}
		f.forget(t.key)
	}
	if e, ok := f.keys[key]; ok {
		return e.Value.(*tally)
	}
	for len(f.keys) >= f.maxKeys {
		f.forget(f.order.Front().Value.(*tally).key)
	}
	t := &tally{key: key, start: now}
	f.keys[key] = f.order.PushBack(t)
	return t
}

func (f *failures) forget(key string) {
	if e, ok := f.keys[key]; ok {
		f.order.Remove(e)
		delete(f.keys, key)
	}
}

// clientAddress is the key of r's client for the per-address limit: the
// TCP peer's IP, an IPv6 address by its /64; "" (not counted) for a
// loopback client.
func clientAddress(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsLoopback() {
		return ""
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
