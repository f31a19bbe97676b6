package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/questlog/questlog/internal/api"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/journal"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitetest"
)

// memLog is an event log in memory: the Publisher of the tests that call
// the handler directly (no broker, no sockets), fast enough to fuzz. It is
// the one fake of the event log in this package.
type memLog struct {
	mu      sync.Mutex
	records []record
}

type record struct{ key, value []byte }

// memLog has one partition; a record's offset is its index.
func (l *memLog) Publish(_ context.Context, key, value []byte) (int32, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, record{bytes.Clone(key), bytes.Clone(value)})
	return 0, int64(len(l.records) - 1), nil
}

func (l *memLog) PublishGroup(_ context.Context, _ int32, records [][2][]byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := int64(len(l.records))
	for _, r := range records {
		l.records = append(l.records, record{bytes.Clone(r[0]), bytes.Clone(r[1])})
	}
	return first, nil
}

func (l *memLog) Next([]byte) (int32, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 0, int64(len(l.records) - 1)
}

func (l *memLog) Contains(_ context.Context, _ int32, after int64, match func([]byte) bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records[after+1:] {
		if match(r.value) {
			return true, nil
		}
	}
	return false, nil
}

func (l *memLog) Ping(context.Context) error { return nil }

func (l *memLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.records)
}

// since decodes the events recorded after the first n, checking that each
// is a JSON object keyed by its user.
func (l *memLog) since(n int) ([]map[string]any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for i, r := range l.records[n:] {
		var m map[string]any
		if err := json.Unmarshal(r.value, &m); err != nil {
			return nil, fmt.Errorf("event %d is not JSON: %w: %s", n+i, err, r.value)
		}
		if u, _ := m["user"].(string); u != string(r.key) {
			return nil, fmt.Errorf("event %d: key %q, user %q", n+i, r.key, u)
		}
		out = append(out, m)
	}
	return out, nil
}

// clock is a settable time for the login limits.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// memServer is the API on a real SQLite store and a memLog, served by
// calling its handler.
type memServer struct {
	srv   *api.Server
	game  *game.Service
	store state.Store
	log   *memLog
	clock *clock
}

// newMemServer starts a memServer; limits, when not nil, replace the
// default login limits (their clock is the server's).
func newMemServer(tb testing.TB, limits *api.LoginLimits) *memServer {
	tb.Helper()
	return newMemServerWith(tb, limits, game.Config{PasswordCost: 4})
}

// newMemServerWith is newMemServer with the game configured by cfg.
func newMemServerWith(tb testing.TB, limits *api.LoginLimits, cfg game.Config) *memServer {
	tb.Helper()
	st := sqlitetest.Open(tb)
	m := &memServer{store: st, log: &memLog{}, clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	if limits == nil {
		d := api.DefaultLoginLimits()
		limits = &d
	}
	limits.Now = m.clock.Now
	reg := prometheus.NewRegistry()
	var err error
	m.game, err = game.NewService(st, journal.New(m.log, journal.NewMetrics(reg)), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	m.srv, err = api.New(api.Config{
		Game: m.game, Store: st, Log: m.log, Registry: reg, MaxBody: 4 << 10,
		LoginLimits: limits,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// answer is a recorded response.
type answer struct {
	code   int
	header http.Header
	body   string
}

// do serves one request. header holds name, value pairs; a "RemoteAddr"
// pair sets the client's address, a "Host" pair the request's Host.
func (m *memServer) do(method, target, body string, header ...string) answer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(header); i += 2 {
		switch header[i] {
		case "RemoteAddr":
			r.RemoteAddr = header[i+1]
			continue
		case "Host":
			r.Host = header[i+1]
			continue
		}
		r.Header.Add(header[i], header[i+1])
	}
	return m.serve(r)
}

func (m *memServer) serve(r *http.Request) answer {
	w := httptest.NewRecorder()
	m.srv.ServeHTTP(w, r)
	return answer{w.Code, w.Result().Header, w.Body.String()}
}

// cookie is the session cookie an answer set, as a request header value.
func (a answer) cookie() string {
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "session" && c.Value != "" {
			return "session=" + c.Value
		}
	}
	return ""
}

// signup makes a player through the seed route and returns its Cookie.
func (m *memServer) signup(tb testing.TB, user, password string) string {
	tb.Helper()
	a := m.do("GET", "/signup?username="+user+"&password="+password, "")
	if a.code != http.StatusCreated || a.cookie() == "" {
		tb.Fatalf("signup %s = %d %s", user, a.code, a.body)
	}
	return a.cookie()
}

func (m *memServer) player(tb testing.TB, user string) state.Player {
	tb.Helper()
	if err := m.game.Idle(context.Background()); err != nil {
		tb.Fatal(err)
	}
	p, err := m.store.Player(context.Background(), user)
	if err != nil {
		tb.Fatalf("player %s: %v", user, err)
	}
	return p
}

// exists reports whether user is in the store, failing on any error but
// state.ErrNotFound.
func (m *memServer) exists(tb testing.TB, user string) bool {
	tb.Helper()
	_, err := m.store.Player(context.Background(), user)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		tb.Fatalf("player %s: %v", user, err)
	}
	return err == nil
}

// oneEvent serves a request and returns its answer and the one event it
// recorded, failing when it recorded none or several.
func (m *memServer) oneEvent(tb testing.TB, method, target, body string, header ...string) (answer, map[string]any) {
	tb.Helper()
	n := m.log.len()
	a := m.do(method, target, body, header...)
	evs, err := m.log.since(n)
	if err != nil {
		tb.Fatal(err)
	}
	if len(evs) != 1 {
		tb.Fatalf("%s %s = %d %q: %d events, want 1: %v", method, target, a.code, a.body, len(evs), evs)
	}
	return a, evs[0]
}

// noEvent serves a request and fails when it recorded an event.
func (m *memServer) noEvent(tb testing.TB, method, target, body string, header ...string) answer {
	tb.Helper()
	n := m.log.len()
	a := m.do(method, target, body, header...)
	if k := m.log.len() - n; k != 0 {
		tb.Fatalf("%s %s = %d %q: %d events, want none", method, target, a.code, a.body, k)
	}
	return a
}
