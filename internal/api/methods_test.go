package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/questlog/questlog/internal/state"
)

// sameState fails when ada's state differs from before.
func sameState(t *testing.T, before, after state.Player) {
	t.Helper()
	if before.Gold != after.Gold || before.Guild != after.Guild ||
		!reflect.DeepEqual(before.Inventory, after.Inventory) || !reflect.DeepEqual(before.Cart, after.Cart) {
		t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// methodRefused fails unless a is a 405 with Allow allow and no session
// cookie, and ev ada's failed event of type typ with error
// method_not_allowed.
func methodRefused(t *testing.T, a answer, ev map[string]any, allow, typ string) {
	t.Helper()
	if a.code != http.StatusMethodNotAllowed || a.header.Get("Allow") != allow || a.cookie() != "" {
		t.Errorf("answer = %d Allow %q cookie %q", a.code, a.header.Get("Allow"), a.cookie())
	}
	if ev["event_type"] != typ || ev["status"] != "failed" || ev["error"] != "method_not_allowed" || ev["user"] != "ada" {
		t.Errorf("event = %v", ev)
	}
}

// HEAD never changes state: on the seed's routes that change state it is
// refused with 405 and one failed event; on read-only routes it is GET
// without a body.
func TestHeadNeverChangesState(t *testing.T) {
	m := newMemServer(t, nil)
	ada := m.signup(t, "ada", "pw-ada")
	if a := m.do("GET", "/join_guild?guild=mages", "", "Cookie", ada); a.code != 200 {
		t.Fatal(a)
	}
	before := m.player(t, "ada")
	refused := []struct{ path, typ string }{
		{"/signup?username=bob&password=pw-bob", "signup"},
		{"/login?username=ada&password=pw-ada", "login"},
		{"/logout", "logout"},
		{"/buy_sword", "buy_item"},
		{"/buy?item=armor&quality=legendary", "buy_item"},
		{"/join_guild?guild=knights", "join_guild"},
		{"/leave_guild", "leave_guild"},
	}
	for _, tt := range refused {
		t.Run("HEAD "+tt.path, func(t *testing.T) {
			a, ev := m.oneEvent(t, "HEAD", tt.path, "", "Cookie", ada)
			methodRefused(t, a, ev, "GET", tt.typ)
			if ev["http"].(map[string]any)["method"] != "HEAD" {
				t.Errorf("event http = %v", ev["http"])
			}
			sameState(t, before, m.player(t, "ada"))
		})
	}
	if a := m.do("GET", "/inventory", "", "Cookie", ada); a.code != 200 {
		t.Errorf("HEAD /logout ended the session: %v", a)
	}
	if m.exists(t, "bob") {
		t.Error("HEAD /signup created bob")
	}

	read := []struct{ path, typ string }{
		{"/", "default"},
		{"/inventory", "view_inventory"},
		{"/v1/items", "view_catalog"},
		{"/v1/inventory", "view_inventory"},
		{"/v1/cart", "view_cart"},
	}
	for _, tt := range read {
		t.Run("HEAD "+tt.path, func(t *testing.T) {
			a, ev := m.oneEvent(t, "HEAD", tt.path, "", "Cookie", ada)
			if a.code != 200 || ev["event_type"] != tt.typ || ev["status"] != "ok" {
				t.Errorf("HEAD %s = %d, event %v", tt.path, a.code, ev)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if a := m.noEvent(t, "HEAD", path, ""); a.code != 200 {
			t.Errorf("HEAD %s = %d", path, a.code)
		}
	}
}

// A method a game route does not take is one failed event and a 405 with
// the route's Allow header, in the route's format; an unknown path is a
// 404 with no event.
func TestWrongMethodIsOneFailedEvent(t *testing.T) {
	m := newMemServer(t, nil)
	ada := m.signup(t, "ada", "pw-ada")
	before := m.player(t, "ada")
	tests := []struct {
		method, target, allow, typ string
		seed                       bool
	}{
		{"PUT", "/v1/buy", "POST", "buy_item", false},
		{"GET", "/v1/buy?item=sword", "POST", "buy_item", false},
		{"OPTIONS", "/v1/buy", "POST", "buy_item", false},
		{"TRACE", "/buy_sword", "GET", "buy_item", true},
		{"POST", "/buy_sword", "GET", "buy_item", true},
		{"POST", "/buy?item=sword", "GET", "buy_item", true},
		{"POST", "/login?username=ada&password=pw-ada", "GET", "login", true},
		{"PUT", "/signup?username=bob&password=pw", "GET", "signup", true},
		{"DELETE", "/v1/signup", "POST", "signup", false},
		{"GET", "/v1/login", "POST", "login", false},
		{"GET", "/v1/logout", "POST", "logout", false},
		{"PATCH", "/v1/cart/items", "POST", "cart_add", false},
		{"GET", "/v1/cart/items/sword", "DELETE", "cart_remove", false},
		{"POST", "/v1/cart/items/sword", "DELETE", "cart_remove", false},
		{"GET", "/v1/cart/checkout", "POST", "checkout", false},
		{"GET", "/v1/guild/join?guild=x", "POST", "join_guild", false},
		{"DELETE", "/v1/guild/leave", "POST", "leave_guild", false},
		{"POST", "/v1/items", "GET, HEAD", "view_catalog", false},
		{"DELETE", "/v1/inventory", "GET, HEAD", "view_inventory", false},
		{"PUT", "/v1/cart", "GET, HEAD", "view_cart", false},
		{"POST", "/", "GET, HEAD", "default", true},
		{"DELETE", "/inventory", "GET, HEAD", "view_inventory", true},
		{"CONNECT", "/buy_sword", "GET", "buy_item", true},
		{"BREW", "/leave_guild", "GET", "leave_guild", true},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			a, ev := m.oneEvent(t, tt.method, tt.target, `{"item":"sword"}`, "Cookie", ada)
			methodRefused(t, a, ev, tt.allow, tt.typ)
			want := "Error: this route does not take that method (method_not_allowed)\n"
			if !tt.seed {
				want = `{"error":"method_not_allowed","message":"this route does not take that method"}` + "\n"
			}
			if a.body != want {
				t.Errorf("body = %q, want %q", a.body, want)
			}
			sameState(t, before, m.player(t, "ada"))
		})
	}
	if m.exists(t, "bob") {
		t.Error("PUT /signup created bob")
	}
	for _, tt := range []struct{ method, target string }{
		{"GET", "/nope"}, {"POST", "/v1/nope"}, {"GET", "/buy_sword/"}, {"DELETE", "/v1/cart/items/"},
		{"GET", "/v1/buy/x"}, {"GET", "/BUY_SWORD"}, {"GET", "/buy_sword.json"},
	} {
		if a := m.noEvent(t, tt.method, tt.target, ""); a.code != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", tt.method, tt.target, a.code)
		}
	}
	if a := m.noEvent(t, "POST", "/healthz", ""); a.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d", a.code)
	}
}

// A path that is not canonical is never redirected: a game route's is a
// 400 with one failed event, any other a 404.
func TestNonCanonicalPathIsNeverRedirected(t *testing.T) {
	m := newMemServer(t, nil)
	ada := m.signup(t, "ada", "pw-ada")
	before := m.player(t, "ada")
	tests := []struct {
		method, target, body string
		code                 int
		typ                  string // "" for no event
		canonical            string
	}{
		{"GET", "//buy_sword", "", 400, "buy_item", "/buy_sword"},
		{"GET", "/./buy?item=armor&quality=legendary&quantity=5", "", 400, "buy_item", "/buy"},
		{"POST", "/v1//buy", `{"item":"sword"}`, 400, "buy_item", "/v1/buy"},
		{"POST", "/v1/./buy", `{"item":"sword"}`, 400, "buy_item", "/v1/buy"},
		{"GET", "/buy_sword/.", "", 400, "buy_item", "/buy_sword"},
		{"GET", "/buy_sword/./", "", 404, "", ""},
		{"GET", "/inventory/../buy_sword", "", 400, "buy_item", "/buy_sword"},
		{"GET", "/buy_sword/..", "", 400, "default", "/"},
		{"GET", "/join_guild/../join_guild?guild=x", "", 400, "join_guild", "/join_guild"},
		{"DELETE", "/v1/cart/items//sword", "", 400, "cart_remove", "/v1/cart/items/sword"},
		{"PUT", "//buy_sword", "", 400, "buy_item", "/buy_sword"},
		{"HEAD", "//buy_sword", "", 400, "buy_item", "/buy_sword"},
		{"GET", "///", "", 400, "default", "/"},
		{"GET", "//nope", "", 404, "", ""},
		{"GET", "/v1/../../etc/passwd", "", 404, "", ""},
		{"GET", "/%2e/buy_sword", "", 404, "", ""},
		{"GET", "/buy_sword%2f", "", 404, "", ""},
		{"GET", "//healthz", "", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			var a answer
			if tt.typ == "" {
				a = m.noEvent(t, tt.method, tt.target, tt.body, "Cookie", ada)
			} else {
				var ev map[string]any
				a, ev = m.oneEvent(t, tt.method, tt.target, tt.body, "Cookie", ada)
				if ev["event_type"] != tt.typ || ev["status"] != "failed" || ev["error"] != "bad_request" {
					t.Errorf("event = %v", ev)
				}
				if !strings.Contains(a.body, "use the canonical path "+tt.canonical) {
					t.Errorf("body = %q", a.body)
				}
			}
			if a.code != tt.code || a.header.Get("Location") != "" {
				t.Errorf("answer = %d Location %q %q, want %d", a.code, a.header.Get("Location"), a.body, tt.code)
			}
			sameState(t, before, m.player(t, "ada"))
		})
	}
}
