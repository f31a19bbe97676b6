package api_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The fuzz targets send hostile query strings, JSON bodies and headers to
// the game's routes and check what must hold whatever a client sends: no
// panic and no 5xx (the log and the store are up); exactly one event per
// request, ok if and only if the answer is 2xx, of the route's type; a
// refused request changes no state; the event's http object holds no
// password, token or cookie value sent in the request; a /v1 answer is
// JSON, with "error" when it refuses. Seed corpora are in
// testdata/fuzz/<target>/; `make fuzz` runs each target briefly.

// fuzzUser plays every fuzzed request that needs a session.
const fuzzUser = "fuzzer"

// fuzzGame is a memServer with a logged-in player.
type fuzzGame struct {
	*memServer
	password string // fuzzUser's, random
	token    string // fuzzUser's session
}

func newFuzzGame(f *testing.F) *fuzzGame {
	g := &fuzzGame{memServer: newMemServer(f, nil), password: "pw-" + rand.Text()}
	a := g.do("POST", "/v1/signup", `{"username":"`+fuzzUser+`","password":"`+g.password+`"}`)
	if a.code != http.StatusCreated {
		f.Fatalf("signup: %d %s", a.code, a.body)
	}
	g.token = tokenOf(a)
	return g
}

func tokenOf(a answer) string {
	var s struct{ Token string }
	_ = json.Unmarshal([]byte(a.body), &s)
	return s.Token
}

// session logs fuzzUser in again when a fuzzed request logged it out. Each
// request moves the clock a minute, so the login limits' windows close as
// the fuzzer goes on.
func (g *fuzzGame) session(t *testing.T) {
	g.clock.advance(time.Minute)
	if a := g.do("GET", "/v1/inventory", "", "Authorization", "Bearer "+g.token); a.code == http.StatusOK {
		return
	}
	login := `{"username":"` + fuzzUser + `","password":"` + g.password + `"}`
	a := g.do("POST", "/v1/login", login, "RemoteAddr", "203.0.113.250:1")
	if a.code == http.StatusTooManyRequests {
		g.clock.advance(time.Hour)
		a = g.do("POST", "/v1/login", login, "RemoteAddr", "203.0.113.250:1")
	}
	if a.code != http.StatusOK {
		t.Fatalf("log in again: %d %s", a.code, a.body)
	}
	g.token = tokenOf(a)
}

// fuzzRoute is a game route the targets aim at.
type fuzzRoute struct {
	method, path, typ string
	v1                bool
}

var (
	seedRoutes = []fuzzRoute{
		{"GET", "/", "default", false},
		{"GET", "/signup", "signup", false},
		{"GET", "/login", "login", false},
		{"GET", "/logout", "logout", false},
		{"GET", "/buy_sword", "buy_item", false},
		{"GET", "/buy", "buy_item", false},
		{"GET", "/join_guild", "join_guild", false},
		{"GET", "/leave_guild", "leave_guild", false},
		{"GET", "/inventory", "view_inventory", false},
	}
	v1Routes = []fuzzRoute{
		{"POST", "/v1/signup", "signup", true},
		{"POST", "/v1/login", "login", true},
		{"POST", "/v1/logout", "logout", true},
		{"POST", "/v1/buy", "buy_item", true},
		{"POST", "/v1/sell", "sell_item", true},
		{"POST", "/v1/cart/items", "cart_add", true},
		{"POST", "/v1/cart/checkout", "checkout", true},
		{"POST", "/v1/guild/join", "join_guild", true},
		{"POST", "/v1/guild/leave", "leave_guild", true},
		{"GET", "/v1/items", "view_catalog", true},
		{"GET", "/v1/inventory", "view_inventory", true},
		{"GET", "/v1/cart", "view_cart", true},
		{"DELETE", "/v1/cart/items/potion", "cart_remove", true},
	}
)

// exchange is one fuzzed request: what was sent and what must hold.
type exchange struct {
	route   fuzzRoute
	req     *http.Request
	secrets []string // must not reach the http object
	// named is a username the request names (signup, login): a refused
	// request must not create it.
	named string
}

// check serves x and checks every property.
func (g *fuzzGame) check(t *testing.T, x exchange) {
	t.Helper()
	before := g.player(t, fuzzUser)
	namedBefore := x.named != "" && g.exists(t, x.named)
	n := g.log.len()
	a := g.serve(x.req)
	evs, err := g.log.since(n)
	if err != nil {
		t.Fatal(err)
	}
	what := fmt.Sprintf("%s %s", x.req.Method, x.req.URL)
	if a.code >= 500 {
		t.Fatalf("%s = %d %q", what, a.code, a.body)
	}
	if len(evs) != 1 {
		t.Fatalf("%s = %d: %d events, want 1", what, a.code, len(evs))
	}
	ev := evs[0]
	ok := a.code >= 200 && a.code < 300
	if ev["event_type"] != x.route.typ || (ev["status"] == "ok") != ok {
		t.Fatalf("%s = %d, event %v", what, a.code, ev)
	}
	if u, _ := ev["user"].(string); u != "" && u != fuzzUser && u != x.named {
		t.Fatalf("%s = %d: event of user %q", what, a.code, u)
	}
	if !ok {
		after, err := g.store.Player(t.Context(), fuzzUser)
		if err != nil {
			t.Fatal(err)
		}
		if before.Gold != after.Gold || before.Guild != after.Guild || fmt.Sprint(before.Inventory, before.Cart) != fmt.Sprint(after.Inventory, after.Cart) {
			t.Fatalf("%s = %d changed state:\n%+v\n%+v", what, a.code, before, after)
		}
		if x.named != "" && !namedBefore && g.exists(t, x.named) {
			t.Fatalf("%s = %d created %q", what, a.code, x.named)
		}
		if c := a.cookie(); c != "" {
			t.Fatalf("%s = %d set a session cookie", what, a.code)
		}
	}
	httpObj, _ := json.Marshal(ev["http"])
	for _, s := range append(x.secrets, g.password, g.token) {
		if s != "" && strings.Contains(string(httpObj), s) {
			t.Fatalf("%s: the event's http object holds the secret %q: %.400s", what, s, httpObj)
		}
	}
	if x.route.v1 {
		var body struct {
			Error *string
		}
		if err := json.Unmarshal([]byte(a.body), &body); err != nil {
			t.Fatalf("%s = %d: answer is not JSON: %v: %q", what, a.code, err, a.body)
		}
		if !ok && (body.Error == nil || *body.Error == "") {
			t.Fatalf("%s = %d: refusal without error: %q", what, a.code, a.body)
		}
	} else if !ok && !strings.HasPrefix(a.body, "Error: ") {
		t.Fatalf("%s = %d: refusal %q", what, a.code, a.body)
	}
}

// newRequest builds a request without parsing a target, so that anything
// goes in the query.
func newRequest(method, path, rawQuery string, body string) *http.Request {
	r := httptest.NewRequest(method, "/", strings.NewReader(body))
	r.URL = &url.URL{Path: path, RawQuery: rawQuery}
	r.RequestURI = r.URL.RequestURI()
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	return r
}

// FuzzClassicQuery sends a query string to each of the seed's routes, with
// the player's session cookie.
func FuzzClassicQuery(f *testing.F) {
	g := newFuzzGame(f)
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		g.session(t)
		rt := seedRoutes[int(route)%len(seedRoutes)]
		r := newRequest(rt.method, rt.path, query, "")
		r.Header.Set("Cookie", "session="+g.token)
		x := exchange{route: rt, req: r}
		q := r.URL.Query()
		if rt.path == "/signup" || rt.path == "/login" {
			x.named = q.Get("username")
		}
		if pw := q.Get("password"); len(pw) >= 8 && !strings.Contains(rt.path+" example.com 192.0.2.1:1234", pw) {
			x.secrets = append(x.secrets, pw)
		}
		g.check(t, x)
	})
}

// FuzzV1Body posts (or sends) a body to each of the JSON API's routes,
// with the player's bearer token.
func FuzzV1Body(f *testing.F) {
	g := newFuzzGame(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		g.session(t)
		rt := v1Routes[int(route)%len(v1Routes)]
		r := newRequest(rt.method, rt.path, "", string(body))
		r.Header.Set("Authorization", "Bearer "+g.token)
		r.Header.Set("Content-Type", "application/json")
		x := exchange{route: rt, req: r}
		var fields map[string]any
		if json.Unmarshal(body, &fields) == nil {
			x.named, _ = fields["username"].(string)
			if pw, _ := fields["password"].(string); len(pw) >= 8 && !strings.Contains(rt.path+" example.com 192.0.2.1:1234 application/json", pw) {
				x.secrets = append(x.secrets, pw)
			}
		}
		g.check(t, x)
	})
}

// headerRoutes are routes whose requests name no user, so that the
// event's user can only be the session's.
var headerRoutes = []fuzzRoute{
	{"GET", "/", "default", false},
	{"GET", "/buy_sword", "buy_item", false},
	{"GET", "/inventory", "view_inventory", false},
	{"GET", "/join_guild", "join_guild", false},
	{"GET", "/v1/items", "view_catalog", true},
	{"GET", "/v1/inventory", "view_inventory", true},
	{"POST", "/v1/buy", "buy_item", true},
	{"POST", "/v1/guild/leave", "leave_guild", true},
}

// FuzzHeaders sends hostile headers: Host, Cookie, Authorization, Referer,
// Origin, X-Forwarded-*, Forwarded and the other allow-listed ones, long
// and not UTF-8. The bits of mode choose whether the player's token rides
// in the Cookie or the Authorization header next to the fuzzed values,
// whether the Referer and Origin carry a secret in their userinfo and
// query, and whether every value is made long.
func FuzzHeaders(f *testing.F) {
	g := newFuzzGame(f)
	f.Fuzz(func(t *testing.T, route, mode uint8, host, cookie, auth, referer, origin, other string) {
		g.session(t)
		rt := headerRoutes[int(route)%len(headerRoutes)]
		body, query := "", ""
		switch rt.path {
		case "/v1/buy":
			body = `{"item":"potion"}`
		case "/join_guild":
			query = "guild=fuzz"
		}
		r := newRequest(rt.method, rt.path, query, body)
		secret := "s3cret-" + rand.Text() // unknown to the fuzzer
		if mode&8 != 0 {
			host, cookie, auth, referer, origin, other = long(host), long(cookie), long(auth), long(referer), long(origin), long(other)
		}
		r.Host = host
		cookie += "; tracker=" + secret
		if mode&1 != 0 {
			cookie += "; session=" + g.token
		}
		r.Header["Cookie"] = []string{cookie}
		switch {
		case mode&2 != 0:
			r.Header["Authorization"] = []string{"Bearer " + g.token}
		case auth != "":
			r.Header["Authorization"] = []string{auth + " " + secret}
		}
		if mode&4 != 0 {
			referer = "http://fuzz:" + secret + "@" + referer + "/login?password=" + secret + "#" + secret
			origin = "https://" + secret + "@" + origin
		}
		r.Header["Referer"] = []string{referer}
		r.Header["Origin"] = []string{origin}
		for _, h := range []string{"User-Agent", "Accept", "Accept-Language", "X-Forwarded-For", "X-Forwarded-Proto",
			"X-Forwarded-Host", "Forwarded", "X-Request-Id", "X-Client-Version", "X-Real-Ip", "Event_type", "User"} {
			r.Header[h] = []string{other}
		}
		g.check(t, exchange{route: rt, req: r, secrets: []string{secret}})
	})
}

// long makes a value of several kilobytes, not UTF-8 at its end.
func long(s string) string { return strings.Repeat(s+"x", 4096/(len(s)+1)+1) + "\xff\xfe" }
