package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game/gametest"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/redisstore"
	"github.com/questlog/questlog/internal/state/redistest"
	"github.com/questlog/questlog/internal/syncbuf"
)

// The faults of issue 11, driven for real against the API over HTTP, each
// ending with the fold check: for every player, the state equals the fold
// of the player's ok events on the topic.

// records is the whole topic, as its records' values.
func (h *harness) records() [][]byte {
	h.t.Helper()
	var out [][]byte
	for _, line := range bytes.Split(bytes.TrimSpace(h.rawTopic()), []byte("\n")) {
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
}

// settled waits until no player has a pending change.
func (h *harness) settled() {
	h.t.Helper()
	gametest.Settled(h.t, h.store)
}

// idle waits until every acknowledged change is in the store.
func (h *harness) idle() {
	h.t.Helper()
	if err := h.node.Game.Idle(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
}

// player waits for the game to be idle and returns user's stored state.
func (h *harness) player(user string) state.Player {
	h.t.Helper()
	h.idle()
	p, err := h.store.Player(h.t.Context(), user)
	if err != nil {
		h.t.Fatalf("player %s: %v", user, err)
	}
	return p
}

// checkFold waits for the pending changes to settle and checks the fold.
func (h *harness) checkFold(users ...string) {
	h.t.Helper()
	h.settled()
	if n := gametest.Check(h.t, h.store, h.records(), users...); n == 0 {
		h.t.Error("the fold compared no player")
	}
}

// signup signs user up on c with the password "pw", through the seed route.
func (h *harness) signup(c *http.Client, user string) {
	h.t.Helper()
	if r := h.get(c, "/signup?username="+user+"&password=pw"); r.code != 201 {
		h.t.Fatalf("signup %s: %v", user, r)
	}
}

// signupToken signs a player up over the JSON API and returns the token.
func (h *harness) signupToken(user string) string {
	h.t.Helper()
	r := h.do(http.DefaultClient, "POST", "/v1/signup", fmt.Sprintf(`{"username":%q,"password":"pw-%s"}`, user, user))
	if r.code != 201 {
		h.t.Fatalf("signup %s: %v", user, r)
	}
	return r.json(h.t)["token"].(string)
}

// signupTokens signs players p0, p1, ... up over the JSON API and returns
// their tokens.
func (h *harness) signupTokens(n int) []string {
	h.t.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = h.signupToken(fmt.Sprintf("p%d", i))
	}
	return tokens
}

// resetAfterSending sends one request on a new connection and resets the
// connection (SO_LINGER 0) as soon as it is written, without reading the
// answer: a mobile client that drops.
func resetAfterSending(t *testing.T, base, req string) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	tc := c.(*net.TCPConn)
	if _, err := io.WriteString(tc, req); err != nil {
		t.Error(err)
	}
	tc.SetLinger(0)
	tc.Close()
}

func buyRequest(token, body string) string {
	return "POST /v1/buy HTTP/1.1\r\nHost: questlog\r\nAuthorization: Bearer " + token +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
}

// waitEvents waits until the topic holds n events of the type.
func (h *harness) waitEvents(typ string, n int) []map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []map[string]any
		for _, e := range h.events() {
			if e["event_type"] == typ {
				got = append(got, e)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openRedisStore opens a state store on the Redis at url, closed when t
// ends.
func openRedisStore(t *testing.T, url string, opts ...redisstore.Option) state.Store {
	t.Helper()
	st, err := redisstore.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("open the redis store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Clients that reset their connection right after sending a purchase: each
// request is one event, ok or failed with client_closed, never an ok event
// whose purchase did not happen, and no ERROR line per disconnect.
func TestClientResetsLeaveNoPhantomPurchase(t *testing.T) {
	stores := map[string]func(t *testing.T, dir string) state.Store{
		"sqlite": nil,
		"redis": func(t *testing.T, _ string) state.Store {
			return openRedisStore(t, redistest.Start(t))
		},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			var logs syncbuf.Buffer
			h := newHarnessWith(t, harnessOptions{store: store, logger: slog.New(slog.NewTextHandler(&logs, nil))})
			token := h.signupToken("ada")
			const n = 100
			var wg sync.WaitGroup
			sem := make(chan struct{}, 10)
			for range n {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					resetAfterSending(t, h.url, buyRequest(token, `{"item":"potion"}`))
				})
			}
			wg.Wait()
			buys := h.waitEvents("buy_item", n)
			if len(buys) != n {
				t.Fatalf("%d buy_item events for %d requests, want exactly one each", len(buys), n)
			}
			ok := 0
			for _, e := range buys {
				switch {
				case e["status"] == "ok":
					ok++
				case e["error"] != "client_closed":
					t.Errorf("failed buy_item event with error %v, want client_closed", e["error"])
				}
			}
			t.Logf("%d of %d purchases happened before their clients left", ok, n)
			h.checkFold("ada")
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("ERROR lines for clients that left:\n%s", logs.String())
			}
		})
	}
}

// result is one answer of a load run.
type result struct {
	code       int
	retryAfter string
	err        error
	took       time.Duration
}

// play starts one player a token, each buying potions in a loop, and
// returns the function that stops them and returns every answer.
func (h *harness) play(tokens []string) (stop func() []result) {
	var (
		mu   sync.Mutex
		out  []result
		wg   sync.WaitGroup
		halt = make(chan struct{})
	)
	c := &http.Client{Timeout: 30 * time.Second}
	for _, tok := range tokens {
		wg.Go(func() {
			for {
				select {
				case <-halt:
					return
				default:
				}
				req, _ := http.NewRequest("POST", h.url+"/v1/buy", strings.NewReader(`{"item":"potion"}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				start := time.Now()
				resp, err := c.Do(req)
				r := result{err: err, took: time.Since(start)}
				if err == nil {
					r.code, r.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				if r.code != 200 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	return func() []result {
		close(halt)
		wg.Wait()
		return out
	}
}

// checkOutage fails the test for an answer that is not 200 or a 503 with
// Retry-After, or that took much longer than the request timeout, and
// returns how many of each it saw.
func checkOutage(t *testing.T, results []result, timeout time.Duration) (ok, unavailable int) {
	t.Helper()
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.took)
		switch {
		case r.err != nil:
			t.Errorf("request failed: %v", r.err)
		case r.code == 200:
			ok++
		case r.code == 503 && r.retryAfter != "":
			unavailable++
		default:
			t.Errorf("answer %d (Retry-After %q) during an outage: want 200 or 503 with Retry-After", r.code, r.retryAfter)
		}
	}
	// About the timeout: the request's own, plus the failed event's
	// recording and a loaded machine's scheduling.
	if slowest > 3*timeout+time.Second {
		t.Errorf("the slowest answer took %v, with a %v timeout", slowest, timeout)
	}
	t.Logf("slowest answer: %v", slowest)
	return ok, unavailable
}

// Redis killed (SIGKILL) and stopped (SIGSTOP) under load: every answer is
// 200 or 503 with Retry-After, the server recovers by itself, and every
// acknowledged purchase is in the state once Redis is back.
func TestRedisKilledAndStoppedUnderLoad(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{Durable: true})
	h := newHarnessWith(t, harnessOptions{timeout: 500 * time.Millisecond, gold: 1 << 40, store: func(t *testing.T, _ string) state.Store {
		return openRedisStore(t, srv.URL, redisstore.WithLockTTL(time.Second))
	}})
	tokens := h.signupTokens(6)
	for _, fault := range []struct {
		name          string
		break_, mend_ func()
	}{
		{"killed", srv.Kill, srv.Restart},
		{"stopped", srv.Pause, srv.Resume},
	} {
		t.Run(fault.name, func(t *testing.T) {
			stop := h.play(tokens)
			time.Sleep(300 * time.Millisecond)
			fault.break_()
			time.Sleep(time.Second)
			if r := h.get(http.DefaultClient, "/readyz"); r.code != 503 {
				t.Errorf("/readyz with Redis %s = %v, want 503", fault.name, r)
			}
			fault.mend_()
			// Recovery by itself: once /readyz says so and the changes
			// left in doubt are settled (at most --produce-timeout + 2s
			// after they were decided), every player can buy again.
			deadline := time.Now().Add(20 * time.Second)
			for h.get(http.DefaultClient, "/readyz").code != 200 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			results := stop()
			h.settled()
			ok, unavailable := checkOutage(t, results, 500*time.Millisecond)
			t.Logf("Redis %s: %d purchases answered 200, %d answered 503", fault.name, ok, unavailable)
			if unavailable == 0 {
				t.Errorf("no 503 while Redis was %s", fault.name)
			}
			// A lock whose holder's release Redis never heard frees
			// itself within its TTL (1s here).
			for i, tok := range tokens {
				r := h.do(http.DefaultClient, "POST", "/v1/buy", `{"item":"potion"}`, "Authorization", "Bearer "+tok)
				for end := time.Now().Add(5 * time.Second); r.code == 503 && time.Now().Before(end); {
					time.Sleep(100 * time.Millisecond)
					r = h.do(http.DefaultClient, "POST", "/v1/buy", `{"item":"potion"}`, "Authorization", "Bearer "+tok)
				}
				if r.code != 200 {
					t.Errorf("after recovery, p%d's purchase got %v", i, r)
				}
			}
			h.checkFold()
		})
	}
}

// The data directory on a tiny tmpfs that fills up: changes are refused
// with 503 or acknowledged and applied once there is room again; never a
// 500, and the state is the fold of the ok events.
func TestFullDiskRefusesAndRecovers(t *testing.T) {
	dir := mountTmpfs(t, "64m")
	h := newHarnessWith(t, harnessOptions{dir: dir, timeout: 500 * time.Millisecond, gold: 1 << 40})
	tokens := h.signupTokens(4)
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	stop := h.play(tokens)
	time.Sleep(1500 * time.Millisecond)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	results := stop()
	ok, unavailable := checkOutage(t, results, 500*time.Millisecond)
	t.Logf("full disk: %d purchases answered 200, %d answered 503", ok, unavailable)
	if unavailable == 0 {
		t.Errorf("no 503 while the disk was full")
	}
	if ok == 0 {
		t.Errorf("no purchase succeeded once there was room again")
	}
	h.checkFold()
}

// mountTmpfs mounts a tmpfs of that size for the test (it needs root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("QUESTLOG_REQUIRE_TOOLS") != "" {
			t.Fatalf("mount a tmpfs (QUESTLOG_REQUIRE_TOOLS is set): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		for range 50 {
			if exec.Command("umount", dir).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // files still open
		}
		exec.Command("umount", "-l", dir).Run()
	})
	return dir
}

// fill writes to path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return
		}
	}
}
