package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/node/nodetest"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/stream"
)

const topic = "events"

// harness is a real API over HTTP, on the embedded broker and SQLite (or
// another store): the node that `questlog serve` runs, in-process.
type harness struct {
	t      *testing.T
	url    string
	node   *node.Node
	broker *stream.Broker
	store  state.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOptions{})
}

// harnessOptions vary the harness for the fault tests.
type harnessOptions struct {
	dir     string                                     // data directory; default a temporary one
	store   func(t *testing.T, dir string) state.Store // default SQLite in dir
	timeout time.Duration                              // the request and delivery timeout; default 1s
	logger  *slog.Logger                               // default slog.Default()
	gold    int64                                      // starting gold; default the game's
}

func newHarnessWith(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.timeout == 0 {
		o.timeout = time.Second
	}
	cfg := node.Config{
		Role: node.Serve, DataDir: o.dir, HTTP: "127.0.0.1:0", BrokerListen: "127.0.0.1:0", Topic: topic, Partitions: 3,
		Game:           game.Config{PasswordCost: 4, RequestTimeout: o.timeout, SettleEvery: 50 * time.Millisecond, StartingGold: o.gold},
		ProduceTimeout: max(o.timeout, stream.MinDeliveryTimeout),
		Logger:         o.logger,
	}
	if o.store != nil {
		cfg.Store = o.store(t, o.dir)
	}
	n := nodetest.Start(t, cfg)
	return &harness{t: t, url: n.URL(), node: n, broker: n.Broker, store: n.Store}
}

// client is a player with a cookie jar, like curl -c jar -b jar.
func (h *harness) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 60 * time.Second}
}

type reply struct {
	code int
	body string
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, r.body)
	}
	return m
}

func (h *harness) do(c *http.Client, method, path, body string, header ...string) reply {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" { // which net/http sends from req.Host alone
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

func (h *harness) get(c *http.Client, path string) reply { return h.do(c, "GET", path, "") }

// events reads the whole topic back, in order within each partition.
func (h *harness) events() []map[string]any {
	h.t.Helper()
	var out []map[string]any
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := stream.Tail(ctx, stream.TailConfig{Brokers: []string{h.broker.Addr()}, Topic: topic, Start: mustStart("beginning"), ExitAtEnd: true},
		func(r stream.Record) error {
			var m map[string]any
			if err := json.Unmarshal(r.Value, &m); err != nil {
				return fmt.Errorf("record %d/%d is not JSON: %w", r.Partition, r.Offset, err)
			}
			if u, _ := m["user"].(string); u != string(r.Key) {
				return fmt.Errorf("record %d/%d: key %q, user %q", r.Partition, r.Offset, r.Key, u)
			}
			out = append(out, m)
			return nil
		})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) rawTopic() []byte {
	h.t.Helper()
	var all bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := stream.Tail(ctx, stream.TailConfig{Brokers: []string{h.broker.Addr()}, Topic: topic, Start: mustStart("beginning"), ExitAtEnd: true},
		func(r stream.Record) error { all.Write(r.Value); all.WriteByte('\n'); return nil })
	if err != nil {
		h.t.Fatal(err)
	}
	return all.Bytes()
}

func mustStart(s string) stream.Start {
	st, err := stream.ParseStart(s)
	if err != nil {
		panic(err)
	}
	return st
}

func ofUser(evs []map[string]any, user any) []map[string]any {
	var out []map[string]any
	for _, e := range evs {
		if e["user"] == user {
			out = append(out, e)
		}
	}
	return out
}

// The curl journey of DESIGN.md, with a cookie jar, then the events read
// back from the topic field by field.
func TestCurlJourneyEndToEnd(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	steps := []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "This is the default response!\n"},
		{"/buy_sword", 401, "Error: log in first: no valid session (unauthenticated)\n"},
		{"/signup?username=ada&password=s3cret-pw", 201, "Signed up as ada. You have 1000 gold.\n"},
		{"/buy_sword", 200, "Sword Purchased! You have 950 gold.\n"},
		{"/buy?item=shield&quality=epic", 200, "Purchased 1 epic shield for 320 gold. You have 630 gold.\n"},
		{"/join_guild?guild=knights", 200, "Joined guild knights.\n"},
		{"/inventory", 200, "ada: 630 gold, guild knights\n1 epic shield\n1 common sword\n"},
		{"/buy?item=armor&quality=legendary", 402, "Error: not enough gold (insufficient_gold)\n"},
		{"/leave_guild", 200, "Left guild.\n"},
		{"/logout", 200, "Logged out.\n"},
		{"/inventory", 401, "Error: log in first: no valid session (unauthenticated)\n"},
		{"/login?username=ada&password=s3cret-pw", 200, "Logged in as ada. You have 630 gold.\n"},
	}
	for _, s := range steps {
		got := h.get(c, s.path)
		if got.code != s.code || got.body != s.body {
			t.Fatalf("GET %s = %d %q, want %d %q", s.path, got.code, got.body, s.code, s.body)
		}
	}

	evs := h.events()
	if len(evs) != len(steps) {
		t.Fatalf("%d events on the topic, want one per request (%d)", len(evs), len(steps))
	}
	ada := ofUser(evs, "ada")
	want := []struct {
		typ, status, errReason, path string
		fields                       map[string]any
	}{
		{"signup", "ok", "", "/signup", map[string]any{"gold_after": 1000.0}},
		{"buy_item", "ok", "", "/buy_sword", map[string]any{"item_type": "sword", "quality": "common", "quantity": 1.0, "unit_price": 50.0, "total_price": 50.0, "gold_after": 950.0}},
		{"buy_item", "ok", "", "/buy", map[string]any{"item_type": "shield", "quality": "epic", "quantity": 1.0, "unit_price": 320.0, "total_price": 320.0, "gold_after": 630.0}},
		{"join_guild", "ok", "", "/join_guild", map[string]any{"guild": "knights"}},
		{"view_inventory", "ok", "", "/inventory", map[string]any{"gold_after": 630.0}},
		{"buy_item", "failed", "insufficient_gold", "/buy", map[string]any{"item_type": "armor", "quality": "legendary", "total_price": 1920.0, "gold_after": 630.0}},
		{"leave_guild", "ok", "", "/leave_guild", map[string]any{"guild": "knights"}},
		{"logout", "ok", "", "/logout", nil},
		{"login", "ok", "", "/login", nil},
	}
	if len(ada) != len(want) {
		t.Fatalf("%d events of ada, want %d: %v", len(ada), len(want), ada)
	}
	prevID := ""
	for i, w := range want {
		e := ada[i]
		rc := 0.0
		if w.status == "failed" {
			rc = 1
		}
		if e["event_type"] != w.typ || e["status"] != w.status || e["return_code"] != rc || e["schema_version"] != 1.0 {
			t.Errorf("event %d = %v, want %s/%s", i, e, w.typ, w.status)
		}
		if w.errReason != "" && e["error"] != w.errReason {
			t.Errorf("event %d error = %v, want %s", i, e["error"], w.errReason)
		}
		for k, v := range w.fields {
			if e[k] != v {
				t.Errorf("event %d (%s) %s = %v, want %v", i, w.typ, k, e[k], v)
			}
		}
		httpObj, _ := e["http"].(map[string]any)
		if httpObj["method"] != "GET" || httpObj["path"] != w.path || httpObj["user_agent"] != "Go-http-client/1.1" || !strings.HasPrefix(httpObj["remote_addr"].(string), "127.0.0.1:") {
			t.Errorf("event %d http = %v", i, httpObj)
		}
		ts, err := time.Parse(time.RFC3339Nano, e["event_time"].(string))
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
			t.Errorf("event %d event_time %v: %v", i, e["event_time"], err)
		}
		id := e["event_id"].(string)
		if id <= prevID {
			t.Errorf("event_id %s not after %s", id, prevID)
		}
		prevID = id
	}
	anon := ofUser(evs, nil)
	if len(anon) != 3 || anon[0]["event_type"] != "default" || anon[1]["error"] != "unauthenticated" {
		t.Errorf("anonymous events = %v", anon)
	}

	raw := h.rawTopic()
	for _, secret := range []string{"s3cret-pw", "password", cookieValue(t, c, h.url)} {
		if secret != "" && bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the topic contains %q", secret)
		}
	}
}

func cookieValue(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base, nil)
	for _, ck := range c.Jar.Cookies(req.URL) {
		if ck.Name == "session" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie in the jar")
	return ""
}

// The JSON API: every route, with a bearer token.
func TestV1API(t *testing.T) {
	h := newHarness(t)
	c := &http.Client{Timeout: 10 * time.Second}
	signup := h.do(c, "POST", "/v1/signup", `{"username":"bob","password":"pw"}`)
	if signup.code != 201 {
		t.Fatalf("signup = %d %s", signup.code, signup.body)
	}
	s := signup.json(t)
	token, _ := s["token"].(string)
	if s["user"] != "bob" || s["gold"] != 1000.0 || len(token) != 32 {
		t.Fatalf("signup answer = %v", s)
	}
	if _, err := time.Parse(time.RFC3339, s["expires_at"].(string)); err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	auth := []string{"Authorization", "Bearer " + token}
	steps := []struct {
		method, path, body string
		code               int
		check              map[string]any
	}{
		{"POST", "/v1/login", `{"username":"bob","password":"pw"}`, 200, map[string]any{"user": "bob", "gold": 1000.0}},
		{"POST", "/v1/login", `{"username":"bob","password":"wrong"}`, 401, map[string]any{"error": "bad_credentials"}},
		{"POST", "/v1/login", `{"username":"nobody","password":"pw"}`, 401, map[string]any{"error": "bad_credentials"}},
		{"POST", "/v1/signup", `{"username":"bob","password":"pw"}`, 409, map[string]any{"error": "already_exists"}},
		{"POST", "/v1/buy", `{"item":"bow","quality":"rare","quantity":2}`, 200, map[string]any{"gold": 640.0, "total_price": 360.0}},
		{"POST", "/v1/sell", `{"item":"bow","quality":"rare"}`, 200, map[string]any{"gold": 730.0, "total_price": 90.0}},
		{"POST", "/v1/sell", `{"item":"bow","quality":"rare","quantity":5}`, 409, map[string]any{"error": "insufficient_items"}},
		{"POST", "/v1/buy", `{"item":"ring","quality":"legendary"}`, 402, map[string]any{"error": "insufficient_gold"}},
		{"POST", "/v1/buy", `{"item":"spoon"}`, 404, map[string]any{"error": "unknown_item"}},
		{"POST", "/v1/cart/items", `{"item":"potion","quantity":4}`, 200, map[string]any{"cart_size": 4.0, "total_price": 20.0}},
		{"POST", "/v1/cart/items", `{"item":"helmet","quality":"uncommon"}`, 200, map[string]any{"cart_size": 5.0, "total_price": 80.0}},
		{"DELETE", "/v1/cart/items/potion?quantity=1", "", 200, map[string]any{"cart_size": 4.0, "total_price": 75.0}},
		{"DELETE", "/v1/cart/items/staff", "", 404, map[string]any{"error": "not_in_cart"}},
		{"GET", "/v1/cart", "", 200, map[string]any{"cart_size": 4.0}},
		{"POST", "/v1/cart/checkout", "", 200, map[string]any{"gold": 655.0, "total_price": 75.0}},
		{"POST", "/v1/cart/checkout", "", 409, map[string]any{"error": "empty_cart"}},
		{"POST", "/v1/guild/join", `{"guild":"mages"}`, 200, map[string]any{"guild": "mages"}},
		{"POST", "/v1/guild/join", `{"guild":"knights"}`, 409, map[string]any{"error": "already_in_guild"}},
		{"POST", "/v1/guild/leave", "", 200, map[string]any{"guild": ""}},
		{"POST", "/v1/guild/leave", "", 409, map[string]any{"error": "not_in_guild"}},
		{"GET", "/v1/inventory", "", 200, map[string]any{"user": "bob", "gold": 655.0}},
		{"POST", "/v1/logout", "", 200, nil},
		{"GET", "/v1/inventory", "", 401, map[string]any{"error": "unauthenticated"}},
	}
	for _, st := range steps {
		got := h.do(c, st.method, st.path, st.body, auth...)
		if got.code != st.code {
			t.Fatalf("%s %s = %d %s, want %d", st.method, st.path, got.code, got.body, st.code)
		}
		m := got.json(t)
		for k, v := range st.check {
			if m[k] != v {
				t.Errorf("%s %s: %s = %v, want %v (%s)", st.method, st.path, k, m[k], v, got.body)
			}
		}
		if got.code >= 400 && m["message"] == "" {
			t.Errorf("%s %s: error without a message", st.method, st.path)
		}
	}
	items := h.get(c, "/v1/items").json(t)["items"].([]any)
	if len(items) != 40 {
		t.Errorf("%d catalog rows, want 40", len(items))
	}
	first := items[0].(map[string]any)
	if first["item_type"] != "sword" || first["quality"] != "common" || first["price"] != 50.0 {
		t.Errorf("first catalog row = %v", first)
	}
	p := h.player("bob")
	if p.Gold != 655 || len(p.Inventory) != 3 {
		t.Errorf("stored player = %+v", p)
	}
	if n := len(h.events()); n != len(steps)+2 {
		t.Errorf("%d events, want %d (one per request)", n, len(steps)+2)
	}
}

// Bad input gets a clear 4xx, changes nothing, and is logged as a failed event.
func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	h.signup(c, "eve")
	before := h.player("eve")
	long := strings.Repeat("x", 33)
	tests := []struct {
		name, method, path, body string
		code                     int
		reason                   string
	}{
		{"missing item", "POST", "/v1/buy", `{}`, 400, "invalid_item"},
		{"empty item", "POST", "/v1/buy", `{"item":""}`, 400, "invalid_item"},
		{"null item", "POST", "/v1/buy", `{"item":null,"quantity":1}`, 400, "invalid_item"},
		{"no body", "POST", "/v1/buy", "", 400, "invalid_item"},
		{"seed missing item", "GET", "/buy?quality=epic", "", 400, "invalid_item"},
		{"cart missing item", "POST", "/v1/cart/items", `{"quantity":2}`, 400, "invalid_item"},
		{"sell null item", "POST", "/v1/sell", `{"item":null}`, 400, "invalid_item"},
		{"unknown quality", "POST", "/v1/buy", `{"item":"sword","quality":"shiny"}`, 404, "unknown_quality"},
		{"zero quantity", "POST", "/v1/buy", `{"item":"sword","quantity":0}`, 400, "invalid_quantity"},
		{"negative quantity", "POST", "/v1/buy", `{"item":"sword","quantity":-3}`, 400, "invalid_quantity"},
		{"huge quantity", "POST", "/v1/buy", `{"item":"sword","quantity":99999999999999999999}`, 400, "invalid_quantity"},
		{"fractional quantity", "POST", "/v1/buy", `{"item":"sword","quantity":1.5}`, 400, "invalid_quantity"},
		{"string quantity", "POST", "/v1/buy", `{"item":"sword","quantity":"2"}`, 400, "invalid_quantity"},
		{"malformed JSON", "POST", "/v1/buy", `{"item":`, 400, "bad_request"},
		{"two objects", "POST", "/v1/buy", `{"item":"sword"}{"item":"sword"}`, 400, "bad_request"},
		{"wrong type", "POST", "/v1/buy", `{"item":7}`, 400, "bad_request"},
		{"oversized body", "POST", "/v1/buy", `{"item":"sword","pad":"` + strings.Repeat("a", 80<<10) + `"}`, 413, "body_too_large"},
		{"over-long guild", "POST", "/v1/guild/join", `{"guild":"` + long + `"}`, 400, "invalid_guild"},
		{"empty guild", "GET", "/join_guild?guild=", "", 400, "invalid_guild"},
		{"non-UTF-8 guild", "GET", "/join_guild?guild=%ff%fe", "", 400, "invalid_guild"},
		{"over-long username", "POST", "/v1/signup", `{"username":"` + long + `","password":"pw"}`, 400, "invalid_username"},
		{"missing password", "POST", "/v1/signup", `{"username":"mallory"}`, 400, "invalid_password"},
		{"non-UTF-8 username", "GET", "/signup?username=%ff&password=pw", "", 400, "invalid_username"},
		{"over-long password", "POST", "/v1/signup", `{"username":"mallory","password":"` + strings.Repeat("p", 73) + `"}`, 400, "invalid_password"},
		{"seed quantity not a number", "GET", "/buy?item=sword&quantity=lots", "", 400, "invalid_quantity"},
		{"cart remove bad quantity", "DELETE", "/v1/cart/items/sword?quantity=-1", "", 400, "invalid_quantity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.do(c, tt.method, tt.path, tt.body)
			if got.code != tt.code || !strings.Contains(got.body, tt.reason) {
				t.Fatalf("%s %s = %d %s, want %d %s", tt.method, tt.path, got.code, got.body, tt.code, tt.reason)
			}
		})
	}
	after := h.player("eve")
	if after.Gold != before.Gold || len(after.Inventory) != 0 || after.Guild != "" {
		t.Errorf("bad input changed state: %+v", after)
	}
	if _, err := h.store.Player(context.Background(), "mallory"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("mallory was created: %v", err)
	}
	evs := h.events()
	if len(evs) != len(tests)+1 {
		t.Fatalf("%d events, want one per request (%d)", len(evs), len(tests)+1)
	}
	// The topic is read partition by partition, so eve's signup (the one
	// ok event) need not come first.
	signups := 0
	for _, e := range evs {
		if e["event_type"] == "signup" && e["user"] == "eve" && e["status"] == "ok" {
			signups++
			continue
		}
		if e["status"] != "failed" || e["error"] == nil {
			t.Errorf("event for bad input = %v", e)
		}
	}
	if signups != 1 {
		t.Errorf("%d ok signup events for eve, want 1", signups)
	}
}

// A client cannot write into the envelope with headers, and credentials
// never reach the topic.
func TestHeadersCannotForgeEnvelope(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	h.do(c, "GET", "/signup?username=ada&password=pw1234", "")
	got := h.do(c, "GET", "/buy_sword", "", "event_type", "signup", "user", "mallory", "status", "failed",
		"http", "forged", "Proxy-Authorization", "Basic forged-credentials", "X-Request-Id", "req-42")
	if got.code != 200 {
		t.Fatal(got)
	}
	evs := h.events()
	last := evs[len(evs)-1]
	if last["event_type"] != "buy_item" || last["user"] != "ada" || last["status"] != "ok" {
		t.Errorf("headers changed the envelope: %v", last)
	}
	httpObj := last["http"].(map[string]any)
	if httpObj["x_request_id"] != "req-42" {
		t.Errorf("allow-listed header missing: %v", httpObj)
	}
	if bytes.Contains(h.rawTopic(), []byte("forged")) || bytes.Contains(h.rawTopic(), []byte("pw1234")) {
		t.Error("a forged header or the password reached the topic")
	}
}

// When the event log is unreachable, changes are refused with 503 and change
// nothing.
func TestLogUnreachableRefusesChanges(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	h.signup(c, "ada")
	if r := h.get(c, "/readyz"); r.code != 200 {
		t.Fatalf("readyz = %v", r)
	}
	h.broker.Close()
	var wg sync.WaitGroup
	for _, path := range []string{"/buy_sword", "/join_guild?guild=knights", "/signup?username=bob&password=pw"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := c.Get(h.url + path)
			t.Logf("%s took %v", path, time.Since(start))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 503 || !strings.Contains(string(body), "log_unavailable") {
				t.Errorf("GET %s with the log down = %d %s, want 503", path, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if r := h.get(c, "/readyz"); r.code != 503 {
		t.Errorf("readyz with the log down = %v", r)
	}
	p := h.player("ada")
	if p.Gold != 1000 || len(p.Inventory) != 0 || p.Guild != "" {
		t.Errorf("state changed while the log was down: %+v", p)
	}
	if _, err := h.store.Player(context.Background(), "bob"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("bob signed up while the log was down")
	}
	// The first of the player's two changes to take the lock fails to
	// produce; the second finds the first pending and the log unreadable.
	if m := h.get(c, "/metrics").body; !strings.Contains(m, `questlog_events_failed_total{event_type="buy_item"} 1`) &&
		!strings.Contains(m, `questlog_events_failed_total{event_type="join_guild"} 1`) {
		t.Errorf("metrics do not count the failed produce:\n%s", grep(m, "questlog_events_failed"))
	}
}

// Racing requests of one player over HTTP cannot spend the same gold twice.
func TestConcurrentRequestsCannotOverspend(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	h.signup(c, "ada")
	raceEpicArmor(t, c, h.url)
	p := h.player("ada")
	if p.Gold != 40 {
		t.Fatalf("gold = %d, want 40", p.Gold)
	}
}

func TestOpsEndpoints(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	if r := h.get(c, "/healthz"); r.code != 200 {
		t.Errorf("healthz = %v", r)
	}
	if r := h.get(c, "/readyz"); r.code != 200 {
		t.Errorf("readyz = %v", r)
	}
	h.signup(c, "ada")
	h.get(c, "/buy_sword")
	h.get(c, "/nope")
	m := h.get(c, "/metrics").body
	for _, want := range []string{
		`questlog_http_requests_total{code="201",route="GET /signup"} 1`,
		`questlog_http_requests_total{code="200",route="GET /buy_sword"} 1`,
		`questlog_http_requests_total{code="404",route="unmatched"} 1`,
		`questlog_http_request_duration_seconds_count{route="GET /buy_sword"} 1`,
		`questlog_events_produced_total{event_type="buy_item",status="ok"} 1`,
		`questlog_produce_duration_seconds_count 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s\n%s", want, grep(m, "questlog_"))
		}
	}
	counts := h.node.Journal.EventCounts()
	if counts["signup"] != 1 || counts["buy_item"] != 1 {
		t.Errorf("EventCounts = %v", counts)
	}
}

// kcat, where installed, reads the same events from the embedded broker.
func TestKcatReadsTopic(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		kcat, err = exec.LookPath("kafkacat")
	}
	if err != nil {
		if os.Getenv("QUESTLOG_REQUIRE_TOOLS") != "" {
			t.Fatal("kcat not installed, and QUESTLOG_REQUIRE_TOOLS is set")
		}
		t.Skip("kcat not installed (apt-get install kcat); CI installs it")
	}
	h := newHarness(t)
	c := h.client()
	h.signup(c, "ada")
	h.get(c, "/buy?item=shield&quality=epic")
	h.get(c, "/join_guild?guild=knights")
	h.get(h.client(), "/") // anonymous: a null key (kcat's %K is -1), not an empty one
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", h.broker.Addr(), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%K\t%k\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("kcat read %d records, want 4:\n%s", len(lines), out)
	}
	types := map[string]bool{}
	for _, l := range lines {
		keyLen, rest, _ := strings.Cut(l, "\t")
		key, value, _ := strings.Cut(rest, "\t")
		var e map[string]any
		if err := json.Unmarshal([]byte(value), &e); err != nil {
			t.Fatalf("kcat record not JSON: %v: %s", err, value)
		}
		typ, _ := e["event_type"].(string)
		types[typ] = true
		if typ == "default" {
			if keyLen != "-1" || e["user"] != nil {
				t.Errorf("anonymous event: key length %s, user %v; want a null key (-1) and no user", keyLen, e["user"])
			}
			continue
		}
		if keyLen != "3" || key != "ada" || e["user"] != "ada" {
			t.Errorf("key %q (length %s) user %v", key, keyLen, e["user"])
		}
	}
	if !types["signup"] || !types["buy_item"] || !types["join_guild"] || !types["default"] {
		t.Errorf("kcat saw %v", types)
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// raceEpicArmor sends 8 concurrent purchases of an epic armor (960 gold) for
// a player with 1000 gold, spread over the given servers, and checks that
// exactly one succeeds and the others are refused for want of gold.
func raceEpicArmor(t *testing.T, c *http.Client, servers ...string) {
	t.Helper()
	const racers = 8
	codes := make(chan int, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(servers[i%len(servers)] + "/buy?item=armor&quality=epic")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	if count[200] != 1 || count[402] != racers-1 {
		t.Fatalf("status codes %v, want one 200 and %d 402", count, racers-1)
	}
}
