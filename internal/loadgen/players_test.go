package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGame implements just enough of the /v1/ API of DESIGN.md to drive the
// players scenario: accounts, sessions in a "session" cookie, gold, items,
// a cart and guilds, with the contract's status codes. It checks what a
// load generator must get right: every player has its own session, and no
// request with a session names another player.
type fakeGame struct {
	startGold int64
	mu        sync.Mutex
	players   map[string]*fakePlayer
	sessions  map[string]string // token -> username
	prices    map[string]int64  // "item/quality" -> price
	tokens    int
	badAuth   int             // requests whose session did not match any player
	badKeys   []string        // bodies with a key the API does not take
	used      map[string]bool // sessions that authenticated a request
	counts    map[string]int
	// refuseLogins answers every login 429, as the API does past its
	// limit on failed logins per address.
	refuseLogins bool
}

type fakePlayer struct {
	password string
	gold     int64
	guild    string
	items    map[string]int64
	cart     map[string]int64
}

func newFakeGame(startGold int64) *fakeGame {
	g := &fakeGame{startGold: startGold, players: map[string]*fakePlayer{}, sessions: map[string]string{},
		prices: map[string]int64{}, counts: map[string]int{}, used: map[string]bool{}}
	base := map[string]int64{"sword": 50, "shield": 40, "potion": 5, "bow": 45, "armor": 120, "helmet": 30, "staff": 60, "ring": 80}
	mult := map[string]int64{"common": 1, "uncommon": 2, "rare": 4, "epic": 8, "legendary": 16}
	for it, p := range base {
		for q, m := range mult {
			g.prices[it+"/"+q] = p * m
		}
	}
	return g
}

func (g *fakeGame) fail(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":%q,"message":"fake"}`, reason)
}

// stack is one line of an inventory or a cart as the API answers it.
type stack struct {
	ItemType string `json:"item_type"`
	Quality  string `json:"quality"`
	Quantity int64  `json:"quantity"`
}

// stacks are the lines of held ("item/quality" -> quantity), and the
// quantity they add up to.
func stacks(held map[string]int64) ([]stack, int64) {
	items := []stack{}
	var size int64
	for k, n := range held {
		it, q, _ := strings.Cut(k, "/")
		items = append(items, stack{it, q, n})
		size += n
	}
	return items, size
}

func (g *fakeGame) inventory(w http.ResponseWriter, code int, user string, p *fakePlayer) {
	items, _ := stacks(p.items)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"user": user, "gold": p.gold, "guild": p.guild, "items": items})
}

// cartAnswer is the API's cart: its lines, with cart_size and no gold.
func (g *fakeGame) cartAnswer(w http.ResponseWriter, user string, p *fakePlayer) {
	items, size := stacks(p.cart)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"user": user, "items": items, "cart_size": size})
}

// bodyKeys are the JSON keys each route takes (README, "The HTTP API").
var bodyKeys = map[string][]string{
	"POST /v1/signup":     {"username", "password"},
	"POST /v1/login":      {"username", "password"},
	"POST /v1/buy":        {"item", "quality", "quantity"},
	"POST /v1/sell":       {"item", "quality", "quantity"},
	"POST /v1/cart/items": {"item", "quality", "quantity"},
	"POST /v1/guild/join": {"guild"},
}

func (g *fakeGame) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	route := r.Method + " " + r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/v1/cart/items/") && r.Method == http.MethodDelete {
		route = "DELETE /v1/cart/items/{item}"
	}
	g.counts[route]++
	var body struct {
		Username, Password, Item, Quality, Guild string
		Quantity                                 int64
	}
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		raw, _ := io.ReadAll(r.Body)
		// The API refuses a key it does not know, spelled otherwise or
		// repeated; checking the names is enough here, as every body is
		// one flat object.
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			g.fail(w, 400, "bad_request")
			return
		}
		for k := range keys {
			if !slices.Contains(bodyKeys[route], k) || bytes.Count(raw, []byte(`"`+k+`":`)) != 1 {
				g.badKeys = append(g.badKeys, route+" "+string(raw))
				g.fail(w, 400, "bad_request")
				return
			}
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			g.fail(w, 400, "bad_request")
			return
		}
	}
	if body.Quality == "" {
		body.Quality = "common"
	}
	if body.Quantity == 0 {
		body.Quantity = 1
	}
	switch route {
	case "GET /v1/items":
		type entry struct {
			ItemType string `json:"item_type"`
			Quality  string `json:"quality"`
			Price    int64  `json:"price"`
		}
		var out []entry
		for k, p := range g.prices {
			it, q, _ := strings.Cut(k, "/")
			out = append(out, entry{it, q, p})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": out})
		return
	case "POST /v1/signup":
		if _, taken := g.players[body.Username]; taken {
			g.fail(w, 409, "already_exists")
			return
		}
		g.players[body.Username] = &fakePlayer{password: body.Password, gold: g.startGold, items: map[string]int64{}, cart: map[string]int64{}}
		g.login(w, 201, body.Username)
		return
	case "POST /v1/login":
		if g.refuseLogins {
			w.Header().Set("Retry-After", "900")
			g.fail(w, 429, "rate_limited")
			return
		}
		p, ok := g.players[body.Username]
		if !ok || p.password != body.Password {
			g.fail(w, 401, "bad_password")
			return
		}
		g.login(w, 200, body.Username)
		return
	}
	c, err := r.Cookie("session")
	if err != nil {
		g.fail(w, 401, "unauthenticated")
		return
	}
	user, ok := g.sessions[c.Value]
	if !ok {
		g.badAuth++
		g.fail(w, 401, "unauthenticated")
		return
	}
	g.used[c.Value] = true
	p := g.players[user]
	key := body.Item + "/" + body.Quality
	switch route {
	case "POST /v1/logout":
		delete(g.sessions, c.Value)
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "", Path: "/", MaxAge: -1})
		w.WriteHeader(200)
	case "GET /v1/inventory":
		g.inventory(w, 200, user, p)
	case "GET /v1/cart":
		g.cartAnswer(w, user, p)
	case "POST /v1/buy":
		price, ok := g.prices[key]
		switch {
		case !ok:
			g.fail(w, 404, "unknown_item")
		case price*body.Quantity > p.gold:
			g.fail(w, 402, "insufficient_gold")
		default:
			p.gold -= price * body.Quantity
			p.items[key] += body.Quantity
			g.inventory(w, 200, user, p)
		}
	case "POST /v1/sell":
		if p.items[key] < body.Quantity {
			g.fail(w, 409, "insufficient_items")
			return
		}
		if p.items[key] -= body.Quantity; p.items[key] == 0 {
			delete(p.items, key)
		}
		p.gold += g.prices[key] / 2 * body.Quantity
		g.inventory(w, 200, user, p)
	case "POST /v1/cart/items":
		if _, ok := g.prices[key]; !ok {
			g.fail(w, 404, "unknown_item")
			return
		}
		p.cart[key] += body.Quantity
		g.cartAnswer(w, user, p)
	case "DELETE /v1/cart/items/{item}":
		k := strings.TrimPrefix(r.URL.Path, "/v1/cart/items/") + "/" + r.URL.Query().Get("quality")
		n, _ := strconv.ParseInt(r.URL.Query().Get("quantity"), 10, 64)
		if p.cart[k] == 0 || n > p.cart[k] {
			g.fail(w, 409, "not_in_cart")
			return
		}
		if p.cart[k] -= n; p.cart[k] == 0 || n == 0 {
			delete(p.cart, k)
		}
		g.cartAnswer(w, user, p)
	case "POST /v1/cart/checkout":
		var total int64
		for k, n := range p.cart {
			total += g.prices[k] * n
		}
		switch {
		case len(p.cart) == 0:
			g.fail(w, 409, "empty_cart")
		case total > p.gold:
			g.fail(w, 402, "insufficient_gold")
		default:
			p.gold -= total
			for k, n := range p.cart {
				p.items[k] += n
			}
			clear(p.cart)
			g.inventory(w, 200, user, p)
		}
	case "POST /v1/guild/join":
		if p.guild != "" {
			g.fail(w, 409, "already_in_guild")
			return
		}
		p.guild = body.Guild
		g.inventory(w, 200, user, p)
	case "POST /v1/guild/leave":
		if p.guild == "" {
			g.fail(w, 409, "not_in_guild")
			return
		}
		p.guild = ""
		g.inventory(w, 200, user, p)
	default:
		g.fail(w, 404, "no_route")
	}
}

func (g *fakeGame) login(w http.ResponseWriter, code int, user string) {
	g.tokens++
	tok := fmt.Sprintf("tok-%d", g.tokens)
	g.sessions[tok] = user
	http.SetCookie(w, &http.Cookie{Name: "session", Value: tok, Path: "/", HttpOnly: true})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"user":%q,"token":%q,"expires_at":"2030-01-01T00:00:00Z","gold":%d}`, user, tok, g.players[user].gold)
}

// newPlayers makes cfg's players against srv, on a transport of their own
// that is closed when the test ends.
func newPlayers(t *testing.T, srv *httptest.Server, cfg PlayersConfig) *Players {
	t.Helper()
	tr := NewTransport(cfg.Players, 10*time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	cfg.BaseURL = srv.URL
	players, err := NewPlayers(context.Background(), tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return players
}

func runPlayers(t *testing.T, srv *httptest.Server, cfg PlayersConfig, run Config) (*Players, *Result) {
	t.Helper()
	players := newPlayers(t, srv, cfg)
	run.Actions = ScenarioActions()
	res, err := Run(context.Background(), run, players.Clients())
	if err != nil {
		t.Fatal(err)
	}
	return players, res
}

func TestPlayersScenario(t *testing.T) {
	tests := []struct {
		name      string
		startGold int64
		players   int
		requests  int64
		mix       Mix
		// retire: players must go broke, log out and be replaced.
		retire bool
	}{
		{name: "default mix", startGold: 1000, players: 5, requests: 3000},
		{name: "poor players are replaced", startGold: 60, players: 3, requests: 1500, retire: true},
		{name: "shopping only", startGold: 1000, players: 2, requests: 400, mix: Mix{
			Actions: map[string]int{"buy": 1}, Items: map[string]int{"potion": 1},
			Qualities: map[string]int{"rare": 1}, Guilds: []string{"g"}, MaxQuantity: 5,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			game := newFakeGame(tc.startGold)
			srv := httptest.NewServer(game)
			defer srv.Close()
			players, res := runPlayers(t, srv, PlayersConfig{Players: tc.players, Mix: tc.mix, Seed: 7},
				Config{Requests: tc.requests})

			if res.Requests != tc.requests {
				t.Errorf("%d requests recorded, want %d", res.Requests, tc.requests)
			}
			// The players' model of their gold, items, cart and guild stays
			// in step with the server: nothing meant to succeed fails.
			if res.Errors() != 0 || res.Unexpected4xx != 0 || res.UnexpectedSuccess != 0 {
				t.Errorf("errors %d, unexpected 4xx %d, unexpected successes %d; want none (by action: %s)",
					res.Errors(), res.Unexpected4xx, res.UnexpectedSuccess, describeActions(res))
			}
			if len(game.used) < tc.players {
				t.Errorf("%d distinct sessions in use for %d players: players share a cookie jar", len(game.used), tc.players)
			}
			if game.badAuth != 0 {
				t.Errorf("%d requests carried a session the server never issued", game.badAuth)
			}
			if len(game.badKeys) != 0 {
				t.Errorf("%d bodies with keys the API refuses, such as %s", len(game.badKeys), game.badKeys[0])
			}
			byName := countsByAction(res)
			if n := byName["signup"].OK; n < int64(tc.players) {
				t.Errorf("%d signups, want at least one per player (%d)", n, tc.players)
			}
			for name := range game.players {
				if !strings.HasPrefix(name, players.RunID()+"-") {
					t.Errorf("username %q lacks the run id prefix %q", name, players.RunID())
				}
			}
			if tc.retire {
				if byName["logout"].OK == 0 || len(game.players) <= tc.players {
					t.Errorf("no broke player was replaced: %d logouts, %d accounts", byName["logout"].OK, len(game.players))
				}
			}
			if tc.mix.Actions == nil {
				// The default mix plays every action, deliberate failures included.
				for _, name := range ScenarioActions() {
					if name == "logout" {
						continue
					}
					if byName[name].Requests == 0 {
						t.Errorf("action %s never played", name)
					}
				}
				if res.IntendedFailures == 0 {
					t.Error("no intended failure")
				}
				for _, name := range []string{"buy_without_gold", "sell_unowned", "unknown_item", "no_session", "wrong_password", "guild_conflict"} {
					if c := byName[name]; c.IntendedFailures != c.Requests {
						t.Errorf("%s: %d of %d requests failed as intended", name, c.IntendedFailures, c.Requests)
					}
				}
			} else {
				// Only buying, and what a broke buyer falls back to: selling,
				// or leaving for a new player.
				if byName["buy"].OK == 0 {
					t.Error("shopping-only mix: no buy")
				}
				for name, c := range byName {
					switch name {
					case "signup", "login", "logout", "buy", "sell":
					default:
						if c.Requests != 0 {
							t.Errorf("shopping-only mix played %s %d times", name, c.Requests)
						}
					}
				}
			}
		})
	}
}

// countsByAction is r's counts by action name.
func countsByAction(r *Result) map[string]Counts {
	byName := map[string]Counts{}
	for _, a := range r.Actions {
		byName[a.Name] = a.Counts
	}
	return byName
}

func describeActions(r *Result) string {
	var b strings.Builder
	for _, a := range r.Actions {
		if a.Counts.Requests > 0 {
			fmt.Fprintf(&b, "%s=%v ", a.Name, a.Counts.Status)
		}
	}
	return b.String()
}

// When the server refuses logins (its limit on failed logins per address,
// which the scenario's own wrong passwords reach), a setup stops with an
// error that says what to do, and a replaced player plays on with its
// signup's session instead of asking to log in again and again.
func TestPlayersWhenLoginsAreLimited(t *testing.T) {
	game := newFakeGame(60)
	srv := httptest.NewServer(game)
	defer srv.Close()
	players := newPlayers(t, srv, PlayersConfig{Players: 3, Seed: 7})
	if _, err := players.Setup(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	game.mu.Lock()
	game.refuseLogins = true
	game.mu.Unlock()
	res, err := Run(context.Background(), Config{Requests: 1500, Actions: ScenarioActions()}, players.Clients())
	if err != nil {
		t.Fatal(err)
	}
	login, signup := res.Actions[actLogin].Counts, res.Actions[actSignup].Counts
	if signup.OK == 0 {
		t.Fatal("no player was replaced")
	}
	// Each replacement logs in once, right after its signup; the run may
	// end between the two for each of the 3 players.
	if login.Requests > signup.OK || login.Requests < signup.OK-3 || login.Unexpected4xx != login.Requests || res.Unexpected4xx != login.Requests {
		t.Errorf("%d logins (%d refused) for %d replacements, %d unexpected 4xx in all; want one refused login each (the last 3 may be cut off by the run's end) and nothing else",
			login.Requests, login.Unexpected4xx, signup.OK, res.Unexpected4xx)
	}
	if res.Actions[actBuy].Counts.OK == 0 {
		t.Error("nobody played")
	}

	again := newPlayers(t, srv, PlayersConfig{Players: 2})
	if _, err := again.Setup(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "--login-failures-per-address 0") {
		t.Errorf("setup with logins refused: %v, want an error that names --login-failures-per-address 0", err)
	}
}

func TestPlayersRerunsDoNotCollide(t *testing.T) {
	game := newFakeGame(1000)
	srv := httptest.NewServer(game)
	defer srv.Close()
	for range 2 {
		_, res := runPlayers(t, srv, PlayersConfig{Players: 3}, Config{Requests: 30})
		if res.Actions[actSignup].Counts.OK != 3 {
			t.Errorf("signups: %v, want 3 ok", res.Actions[actSignup].Counts.Status)
		}
	}
	if len(game.players) != 6 {
		t.Errorf("%d accounts after two runs of 3 players, want 6", len(game.players))
	}
}

func TestPlayersRejectsMixTheServerDoesNotSell(t *testing.T) {
	srv := httptest.NewServer(newFakeGame(1000))
	defer srv.Close()
	mix := DefaultMix()
	mix.Items = map[string]int{"spaceship": 1}
	_, err := NewPlayers(context.Background(), NewTransport(1, time.Second), PlayersConfig{BaseURL: srv.URL, Players: 1, Mix: mix})
	if err == nil || !strings.Contains(err.Error(), "spaceship") {
		t.Errorf("err = %v, want one naming the unsold item", err)
	}
}

func TestPlayersRejectsBadConfig(t *testing.T) {
	srv := httptest.NewServer(newFakeGame(1000))
	defer srv.Close()
	tests := []struct {
		name string
		cfg  PlayersConfig
		want string
	}{
		{"no players", PlayersConfig{BaseURL: srv.URL}, "at least one player"},
		{"run id with a space", PlayersConfig{BaseURL: srv.URL, Players: 1, RunID: "a b"}, "run id"},
		{"run id too long", PlayersConfig{BaseURL: srv.URL, Players: 1, RunID: strings.Repeat("x", 17)}, "at most 16"},
		{"not http", PlayersConfig{BaseURL: "ftp://x", Players: 1}, "want http://"},
		{"no catalog", PlayersConfig{BaseURL: srv.URL + "/nothing-here", Players: 1}, "read catalog"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlayers(context.Background(), NewTransport(1, time.Second), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMix(t *testing.T) {
	example, err := LoadMix(filepath.Join("testdata", "mix.json"))
	if err != nil {
		t.Fatalf("the shipped example: %v", err)
	}
	if example.Actions["buy"] == 0 || len(example.Guilds) == 0 {
		t.Errorf("example mix looks empty: %+v", example)
	}
	tests := []struct {
		name, json, wantErr string
	}{
		{"unknown action", `{"actions":{"fly":1},"items":{"sword":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":1}`, `unknown action "fly"`},
		{"life cycle is not drawn", `{"actions":{"signup":1},"items":{"sword":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":1}`, `unknown action "signup"`},
		{"negative weight", `{"actions":{"buy":-1},"items":{"sword":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":1}`, "negative weight"},
		{"nothing to draw", `{"actions":{"buy":0},"items":{"sword":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":1}`, "no positive weight"},
		{"no items", `{"actions":{"buy":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":1}`, "items: no positive weight"},
		{"no guilds", `{"actions":{"buy":1},"items":{"sword":1},"qualities":{"common":1},"max_quantity":1}`, "no guilds"},
		{"quantity", `{"actions":{"buy":1},"items":{"sword":1},"qualities":{"common":1},"guilds":["g"],"max_quantity":0}`, "max_quantity"},
		{"typo in a field", `{"action":{"buy":1}}`, "unknown field"},
		{"not json", `buy=1`, "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mix.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadMix(path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// arrivals wraps the fake game and notes when each request reached it and
// how many signups and logins were in flight at once.
type arrivals struct {
	game     http.Handler
	mu       sync.Mutex
	at       map[string][]time.Time // route ("POST /v1/signup") -> arrival times
	inFlight int
	maxIn    int
	failWith int // when set, signups are answered with this status
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	entering := route == "POST /v1/signup" || route == "POST /v1/login"
	a.mu.Lock()
	a.at[route] = append(a.at[route], time.Now())
	if entering {
		a.inFlight++
		a.maxIn = max(a.maxIn, a.inFlight)
	}
	fail := a.failWith
	a.mu.Unlock()
	defer func() {
		if entering {
			a.mu.Lock()
			a.inFlight--
			a.mu.Unlock()
		}
	}()
	if fail != 0 && route == "POST /v1/signup" {
		http.Error(w, `{"error":"internal","message":"fake"}`, fail)
		return
	}
	a.game.ServeHTTP(w, r)
}

// count is how many requests of route arrived before t (before) and at or
// after it.
func (a *arrivals) count(route string, t time.Time) (before, after int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.at[route] {
		if at.Before(t) {
			before++
		} else {
			after++
		}
	}
	return before, after
}

func (a *arrivals) total(t time.Time) (before, after int) {
	a.mu.Lock()
	routes := make([]string, 0, len(a.at))
	for r := range a.at {
		routes = append(routes, r)
	}
	a.mu.Unlock()
	for _, r := range routes {
		b, af := a.count(r, t)
		before += b
		after += af
	}
	return before, after
}

func TestPlayersSetupIsNotMeasured(t *testing.T) {
	tests := []struct {
		name        string
		startGold   int64
		players     int
		concurrency int
		requests    int64
		// replaced: broke players are replaced during the run, and their
		// signups and logins belong to the measured window.
		replaced bool
	}{
		{name: "rich players never sign up again", startGold: 1_000_000, players: 6, concurrency: 2, requests: 300},
		{name: "replacements are measured", startGold: 60, players: 3, concurrency: 3, requests: 1500, replaced: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			game := newFakeGame(tc.startGold)
			arr := &arrivals{game: game, at: map[string][]time.Time{}}
			srv := httptest.NewServer(arr)
			defer srv.Close()
			ctx := context.Background()
			players := newPlayers(t, srv, PlayersConfig{Players: tc.players, Seed: 3})

			// Setup: every player signs up and logs in, a bounded number at once.
			setup, err := players.Setup(ctx, tc.concurrency)
			if err != nil {
				t.Fatal(err)
			}
			if setup.Players != tc.players || setup.Requests != int64(2*tc.players) || setup.Elapsed <= 0 {
				t.Errorf("setup = %+v, want %d players, %d requests, a duration", setup, tc.players, 2*tc.players)
			}
			if arr.maxIn > tc.concurrency {
				t.Errorf("%d signups and logins in flight at once, want at most %d", arr.maxIn, tc.concurrency)
			}
			game.mu.Lock()
			accounts := len(game.players)
			game.mu.Unlock()
			if accounts != tc.players {
				t.Errorf("after setup: %d accounts, want %d", accounts, tc.players)
			}

			// The measured run: it opens after the setup and counts only the play.
			res, err := Run(ctx, Config{Requests: tc.requests, Actions: ScenarioActions()}, players.Clients())
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != tc.requests || res.Latency.TotalCount() != tc.requests {
				t.Errorf("measured %d requests (%d in the histogram), want %d", res.Requests, res.Latency.TotalCount(), tc.requests)
			}
			before, after := arr.total(res.Start)
			if want := 1 + 2*tc.players; before != want { // the catalog read, then the setup
				t.Errorf("%d requests reached the server before the measured window opened, want %d", before, want)
			}
			if after != int(tc.requests) {
				t.Errorf("%d requests reached the server in the measured window, want the %d measured", after, tc.requests)
			}
			signupsBefore, signupsAfter := arr.count("POST /v1/signup", res.Start)
			loginsBefore, _ := arr.count("POST /v1/login", res.Start)
			if signupsBefore != tc.players || loginsBefore != tc.players {
				t.Errorf("%d signups and %d logins before the window, want one each per player (%d)", signupsBefore, loginsBefore, tc.players)
			}
			byName := countsByAction(res)
			if int64(signupsAfter) != byName["signup"].Requests {
				t.Errorf("%d signups reached the server in the window, %d measured", signupsAfter, byName["signup"].Requests)
			}
			if tc.replaced {
				// Every measured signup is a replacement for a player who left.
				if byName["signup"].OK == 0 || byName["signup"].OK > byName["logout"].OK {
					t.Errorf("measured signups %d, logouts %d: want replacements, one per player who left",
						byName["signup"].OK, byName["logout"].OK)
				}
			} else if byName["signup"].Requests != 0 || byName["login"].Requests != 0 {
				t.Errorf("measured %d signups and %d logins, want none: every player entered in the setup",
					byName["signup"].Requests, byName["login"].Requests)
			}
			if res.Errors() != 0 || res.Unexpected4xx != 0 {
				t.Errorf("errors %d, unexpected 4xx %d (by action: %s)", res.Errors(), res.Unexpected4xx, describeActions(res))
			}
		})
	}
}

func TestPlayersSetupFails(t *testing.T) {
	arr := &arrivals{game: newFakeGame(1000), at: map[string][]time.Time{}, failWith: http.StatusServiceUnavailable}
	srv := httptest.NewServer(arr)
	defer srv.Close()
	players := newPlayers(t, srv, PlayersConfig{Players: 4})
	_, err := players.Setup(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "signup: HTTP 503") {
		t.Errorf("setup against a server that refuses signups: err = %v, want one naming signup's 503", err)
	}
	if _, err := players.Setup(context.Background(), 0); err == nil {
		t.Error("setup with concurrency 0 accepted")
	}
}
