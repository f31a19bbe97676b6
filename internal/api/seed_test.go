package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/node"
)

// courseHost is the Host of the seed course's commands (curl localhost:5000).
const courseHost = "localhost:5000"

func newSeedServer(tb testing.TB) *memServer {
	return newMemServerWith(tb, nil, game.Config{PasswordCost: 4, SeedSessions: true})
}

// With seed sessions on, the seed course's commands (no cookie, the player
// in the query) act as the player who signed up or logged in from the same
// Host, on the classic routes; the events are those of any player.
func TestSeedSessionsActAsThePlayer(t *testing.T) {
	m := newSeedServer(t)
	other := "127.0.0.1:5000"
	bob := m.signup(t, "bob", "pw-bob")
	steps := []struct {
		what, method, target string
		header               []string // besides Host: courseHost
		code                 int
		body                 string // a part of the answer
		user, reason         string // the event's; reason "" for ok
	}{
		{"signup", "GET", "/signup?username=user1&password=pw1", nil, 201, "Signed up as user1", "user1", ""},
		{"buy_sword", "GET", "/buy_sword?username=user1", nil, 200, "You have 950 gold", "user1", ""},
		{"join_guild names no guild, as in the course", "GET", "/join_guild?username=user1", nil, 400, "(invalid_guild)", "user1", "invalid_guild"},
		{"join_guild with a guild", "GET", "/join_guild?username=user1&guild=knights", nil, 200, "Joined guild knights", "user1", ""},
		{"login", "GET", "/login?username=user1&password=pw1", nil, 200, "Logged in as user1", "user1", ""},
		{"buy", "GET", "/buy?item=shield&quality=epic&username=user1", nil, 200, "You have 630 gold", "user1", ""},
		{"inventory", "GET", "/inventory?username=user1", nil, 200, "user1: 630 gold, guild knights", "user1", ""},
		{"the default route is attributed", "GET", "/?username=user1", nil, 200, "default response", "user1", ""},
		{"a refused method is attributed", "HEAD", "/buy_sword?username=user1", nil, 405, "", "user1", "method_not_allowed"},
		{"another Host is not the player", "GET", "/buy_sword?username=user1", []string{"Host", other}, 401, "(unauthenticated)", "", "unauthenticated"},
		{"another Host's default route is anonymous", "GET", "/?username=user1", []string{"Host", other}, 200, "default response", "", ""},
		{"a cookie wins: not a session", "GET", "/buy_sword?username=user1", []string{"Cookie", "session=00112233445566778899aabbccddeeff"}, 401, "(unauthenticated)", "", "unauthenticated"},
		{"a cookie wins: an empty one", "GET", "/buy_sword?username=user1", []string{"Cookie", "session="}, 401, "(unauthenticated)", "", "unauthenticated"},
		{"a bearer token wins", "GET", "/buy_sword?username=user1", []string{"Authorization", "Bearer 00112233445566778899aabbccddeeff"}, 401, "(unauthenticated)", "", "unauthenticated"},
		{"a cookie wins: bob's", "GET", "/buy_sword?username=user1", []string{"Cookie", bob}, 200, "You have 950 gold", "bob", ""},
		{"an unknown player", "GET", "/buy_sword?username=nobody", nil, 401, "(unauthenticated)", "", "unauthenticated"},
		{"the JSON API is unchanged", "GET", "/v1/inventory?username=user1", nil, 401, `"unauthenticated"`, "", "unauthenticated"},
		{"the JSON API is unchanged: buy", "POST", "/v1/buy?username=user1", []string{"Content-Type", "application/json"}, 401, `"unauthenticated"`, "", "unauthenticated"},
		{"logout", "GET", "/logout?username=user1", nil, 200, "Logged out", "user1", ""},
		{"logged out", "GET", "/buy_sword?username=user1", nil, 401, "(unauthenticated)", "", "unauthenticated"},
		{"login from another Host", "GET", "/login?username=user1&password=pw1", []string{"Host", other}, 200, "Logged in as user1", "user1", ""},
		{"binds that Host", "GET", "/buy_sword?username=user1", []string{"Host", other}, 200, "You have 580 gold", "user1", ""},
		{"not this one", "GET", "/buy_sword?username=user1", nil, 401, "(unauthenticated)", "", "unauthenticated"},
	}
	for _, st := range steps {
		body := ""
		if st.method == "POST" {
			body = `{"item":"sword"}`
		}
		header := append([]string{"Host", courseHost}, st.header...)
		a, ev := m.oneEvent(t, st.method, st.target, body, header...)
		if a.code != st.code || !strings.Contains(a.body, st.body) {
			t.Errorf("%s: %s %s = %d %q, want %d with %q", st.what, st.method, st.target, a.code, a.body, st.code, st.body)
		}
		user, _ := ev["user"].(string)
		reason, _ := ev["error"].(string)
		if user != st.user || reason != st.reason {
			t.Errorf("%s: event user %q error %q, want %q %q: %v", st.what, user, reason, st.user, st.reason, ev)
		}
		host := courseHost
		if len(st.header) == 2 && st.header[0] == "Host" {
			host = st.header[1]
		}
		if got := ev["http"].(map[string]any)["host"]; got != host {
			t.Errorf("%s: event host %v, want %s", st.what, got, host)
		}
	}
	if p := m.player(t, "user1"); p.Gold != 580 || p.Guild != "knights" {
		t.Errorf("user1 = %+v", p)
	}
}

// Without the flag nothing changes: the course's commands get 401s, one
// failed event each. With it, a request that names no player with a seed
// session for its Host gets the same answer and the same event as without.
func TestSeedSessionsOffOrUnboundChangeNothing(t *testing.T) {
	off, on := newMemServer(t, nil), newSeedServer(t)
	course := []struct {
		target string
		code   int
	}{
		{"/signup?username=user1&password=pw1", 201},
		{"/buy_sword?username=user1", 401},
		{"/join_guild?username=user1", 401},
		{"/login?username=user1&password=pw1", 200},
		{"/buy_sword?username=user1", 401},
	}
	for _, st := range course {
		a, ev := off.oneEvent(t, "GET", st.target, "", "Host", courseHost)
		if a.code != st.code {
			t.Errorf("without the flag, GET %s = %d %q, want %d", st.target, a.code, a.body, st.code)
		}
		if a.code == 401 && (a.body != "Error: log in first: no valid session (unauthenticated)\n" || ev["user"] != nil || ev["error"] != "unauthenticated") {
			t.Errorf("without the flag, GET %s = %q, event %v", st.target, a.body, ev)
		}
	}
	on.signup(t, "user1", "pw1") // from httptest's Host, example.com

	unbound := []struct {
		what, method, target string
		header               []string
	}{
		{"the course's Host", "GET", "/buy_sword?username=user1", []string{"Host", courseHost}},
		{"join_guild", "GET", "/join_guild?username=user1", []string{"Host", courseHost}},
		{"inventory", "GET", "/inventory?username=user1", []string{"Host", courseHost}},
		{"logout", "GET", "/logout?username=user1", []string{"Host", courseHost}},
		{"default", "GET", "/?username=user1", []string{"Host", courseHost}},
		{"HEAD", "HEAD", "/buy_sword?username=user1", []string{"Host", courseHost}},
		{"a bad quantity", "GET", "/buy?item=sword&quantity=x&username=user1", []string{"Host", courseHost}},
		{"a cookie that is no session", "GET", "/buy_sword?username=user1", []string{"Cookie", "session=00112233445566778899aabbccddeeff"}},
		{"no username", "GET", "/buy_sword", nil},
		{"the JSON API", "GET", "/v1/inventory?username=user1", nil},
	}
	for _, u := range unbound {
		t.Run(u.what, func(t *testing.T) {
			wantA, wantEv := off.oneEvent(t, u.method, u.target, "", u.header...)
			gotA, gotEv := on.oneEvent(t, u.method, u.target, "", u.header...)
			if !reflect.DeepEqual(gotA, wantA) {
				t.Errorf("answer with the flag:\n%+v\nwithout:\n%+v", gotA, wantA)
			}
			for _, ev := range []map[string]any{gotEv, wantEv} {
				delete(ev, "event_id")
				delete(ev, "event_time")
			}
			if !reflect.DeepEqual(gotEv, wantEv) {
				t.Errorf("event with the flag:\n%v\nwithout:\n%v", gotEv, wantEv)
			}
		})
	}
}

// Two API servers share Redis: a player who logged in on one is the player
// the seed course's commands name on the other, from the same Host.
func TestSeedSessionsAcrossServersSharingRedis(t *testing.T) {
	first, second := startServersSharingRedis(t, game.Config{PasswordCost: 4, SeedSessions: true})
	// No cookie jar: the course's curl keeps none.
	c := &http.Client{Timeout: 30 * time.Second}
	h := &harness{t: t}
	get := func(server *node.Node, path string) reply {
		h.url = server.URL()
		return h.do(c, "GET", path, "", "Host", courseHost)
	}
	if r := get(first, "/signup?username=user1&password=pw1"); r.code != 201 {
		t.Fatalf("signup on the first server = %v", r)
	}
	if r := get(second, "/buy_sword?username=user1"); r.code != 200 || r.body != "Sword Purchased! You have 950 gold.\n" {
		t.Fatalf("buy_sword on the second server = %v", r)
	}
	if r := get(second, "/logout?username=user1"); r.code != 200 {
		t.Fatalf("logout on the second server = %v", r)
	}
	if r := get(first, "/buy_sword?username=user1"); r.code != 401 {
		t.Fatalf("buy_sword on the first server after the logout = %v", r)
	}
}
