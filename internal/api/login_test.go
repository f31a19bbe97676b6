package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/api"
)

// A wrong password and an unknown user get the same answer, byte for byte;
// the events keep the precise reason.
func TestLoginAnswerDoesNotTellUsersApart(t *testing.T) {
	m := newMemServer(t, nil)
	m.signup(t, "ada", "pw-ada")
	pairs := []struct {
		name, method, wrong, unknown, body string
	}{
		{"seed", "GET", "/login?username=ada&password=nope", "/login?username=nobody&password=nope", ""},
		{"v1", "POST", `{"username":"ada","password":"nope"}`, `{"username":"nobody","password":"nope"}`, "json"},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			var answers []answer
			for _, c := range []struct{ in, reason, user string }{{p.wrong, "bad_password", "ada"}, {p.unknown, "unknown_user", "nobody"}} {
				target, body := c.in, ""
				if p.body == "json" {
					target, body = "/v1/login", c.in
				}
				a, ev := m.oneEvent(t, p.method, target, body)
				if ev["error"] != c.reason || ev["user"] != c.user || ev["event_type"] != "login" {
					t.Errorf("event = %v, want error %s", ev, c.reason)
				}
				answers = append(answers, a)
			}
			if !reflect.DeepEqual(answers[0], answers[1]) {
				t.Errorf("answers differ:\nwrong password: %+v\nunknown user:   %+v", answers[0], answers[1])
			}
			if answers[0].code != http.StatusUnauthorized || !strings.Contains(answers[0].body, "bad_credentials") {
				t.Errorf("answer = %+v", answers[0])
			}
		})
	}
}

// Failed logins are limited per user and per address: past a limit, a login
// is a 429 with Retry-After and a failed event, the right password
// included; a success clears the user's failures; the window closes.
func TestLoginRateLimits(t *testing.T) {
	m := newMemServer(t, &api.LoginLimits{PerUser: 3, PerAddress: 5, Window: 15 * time.Minute})
	for _, u := range []string{"ada", "bob", "cyd"} {
		m.signup(t, u, "pw-"+u)
	}
	const (
		here  = "192.0.2.1:1000"
		there = "198.51.100.7:2000"
		third = "203.0.113.9:3000"
	)
	type step struct {
		what       string
		advance    time.Duration
		classic    bool
		user, pw   string
		from       string
		code       int
		retryAfter string
		reason     string // the event's error; "" for ok
	}
	steps := []step{
		{what: "ada guesses 1", user: "ada", pw: "x1", from: here, code: 401, reason: "bad_password"},
		{what: "ada guesses 2", user: "ada", pw: "x2", from: here, code: 401, reason: "bad_password"},
		{what: "ada logs in, clearing her failures", user: "ada", pw: "pw-ada", from: here, code: 200},
		{what: "ada guesses 3", user: "ada", pw: "x3", from: here, code: 401, reason: "bad_password"},
		{what: "ada guesses 4", user: "ada", pw: "x4", classic: true, from: there, code: 401, reason: "bad_password"},
		{what: "ada guesses 5: her third failure since the success", user: "ada", pw: "x5", from: there, code: 401, reason: "bad_password"},
		{what: "ada's right password is refused", user: "ada", pw: "pw-ada", from: there, code: 429, retryAfter: "900", reason: "rate_limited"},
		{what: "and through the seed route", advance: 5 * time.Minute, classic: true, user: "ada", pw: "pw-ada", from: here, code: 429, retryAfter: "600", reason: "rate_limited"},
		{what: "bob is not ada", user: "bob", pw: "pw-bob", from: here, code: 200},
		{what: "an unknown user counts the same", user: "nobody", pw: "a", from: third, code: 401, reason: "unknown_user"},
		{what: "unknown 2", user: "nobody", pw: "b", from: third, code: 401, reason: "unknown_user"},
		{what: "unknown 3", user: "nobody", pw: "c", from: third, code: 401, reason: "unknown_user"},
		{what: "unknown 4 is limited like a real user", user: "nobody", pw: "d", from: third, code: 429, retryAfter: "900", reason: "rate_limited"},
		{what: "bad input is not a failed login", user: "bad name!", pw: "x", from: here, code: 400, reason: "invalid_username"},
		{what: "cyd guesses from here: the address's 4th failure", user: "cyd", pw: "x", from: here, code: 401, reason: "bad_password"},
		{what: "bob guesses from here: the 5th", user: "bob", pw: "x", from: here, code: 401, reason: "bad_password"},
		{what: "the address is limited: cyd's right password", user: "cyd", pw: "pw-cyd", from: here, code: 429, retryAfter: "600", reason: "rate_limited"},
		{what: "another port of the same address", user: "cyd", pw: "pw-cyd", from: "192.0.2.1:1001", code: 429, retryAfter: "600", reason: "rate_limited"},
		{what: "cyd from elsewhere", user: "cyd", pw: "pw-cyd", from: there, code: 200},
		{what: "the window closes", advance: 10 * time.Minute, user: "ada", pw: "pw-ada", from: here, code: 200},
		{what: "and the address is free", user: "cyd", pw: "pw-cyd", from: here, code: 200},
		{what: "IPv6 counts by /64: 1", user: "bob", pw: "1", from: "[2001:db8:1:2::1]:1", code: 401, reason: "bad_password"},
		{what: "IPv6 /64: 2", user: "cyd", pw: "2", from: "[2001:db8:1:2::2]:1", code: 401, reason: "bad_password"},
		{what: "IPv6 /64: 3", user: "ada", pw: "3", from: "[2001:db8:1:2:ffff::3]:1", code: 401, reason: "bad_password"},
		{what: "IPv6 /64: 4", user: "bob", pw: "4", from: "[2001:db8:1:2::4]:1", code: 401, reason: "bad_password"},
		{what: "IPv6 /64: 5", user: "cyd", pw: "5", from: "[2001:db8:1:2::5]:1", code: 401, reason: "bad_password"},
		{what: "IPv6 /64 is limited", user: "nobody2", pw: "pw", from: "[2001:db8:1:2::7]:1", code: 429, retryAfter: "900", reason: "rate_limited"},
		{what: "another /64 is not", user: "nobody2", pw: "pw", from: "[2001:db8:1:3::7]:1", code: 401, reason: "unknown_user"},
	}
	for i, s := range steps {
		m.clock.advance(s.advance)
		method, target, body := "POST", "/v1/login", `{"username":"`+s.user+`","password":"`+s.pw+`"}`
		if s.classic {
			method, target, body = "GET", "/login?username="+s.user+"&password="+s.pw, ""
		}
		a, ev := m.oneEvent(t, method, target, body, "RemoteAddr", s.from)
		if a.code != s.code || a.header.Get("Retry-After") != s.retryAfter {
			t.Fatalf("step %d (%s): %d Retry-After %q %q, want %d %q", i, s.what, a.code, a.header.Get("Retry-After"), a.body, s.code, s.retryAfter)
		}
		if got, _ := ev["error"].(string); got != s.reason || ev["event_type"] != "login" {
			t.Fatalf("step %d (%s): event %v, want error %q", i, s.what, ev, s.reason)
		}
		if (a.cookie() != "") != (s.code == 200) {
			t.Fatalf("step %d (%s): cookie %q with %d", i, s.what, a.cookie(), a.code)
		}
	}
}

// With no limits, sixty wrong passwords and then the right one succeed.
func TestLoginLimitsOff(t *testing.T) {
	m := newMemServer(t, &api.LoginLimits{})
	m.signup(t, "ada", "pw-ada")
	for i := range 60 {
		if a := m.do("GET", "/login?username=ada&password=wrong", ""); a.code != 401 {
			t.Fatalf("guess %d = %d", i, a.code)
		}
	}
	if a := m.do("GET", "/login?username=ada&password=pw-ada", ""); a.code != 200 {
		t.Fatalf("right password after 60 guesses = %d %s", a.code, a.body)
	}
}

// By default, sixty wrong passwords lock the account for the window: the
// right one gets 429.
func TestLoginLimitsDefault(t *testing.T) {
	m := newMemServer(t, nil)
	m.signup(t, "ada", "pw-ada")
	codes := map[int]int{}
	for range 60 {
		codes[m.do("GET", "/login?username=ada&password=wrong", "").code]++
	}
	if codes[401] != 10 || codes[429] != 50 {
		t.Errorf("60 guesses answered %v, want 10 401 and 50 429", codes)
	}
	if a := m.do("GET", "/login?username=ada&password=pw-ada", ""); a.code != 429 || a.header.Get("Retry-After") != "900" {
		t.Fatalf("right password after 60 guesses = %d %s", a.code, a.body)
	}
}
