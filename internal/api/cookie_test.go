package api_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The session cookie is SameSite=Strict and HttpOnly on every route that
// sets or clears it, and Secure when the client came over https.
func TestSessionCookieAttributes(t *testing.T) {
	m := newMemServer(t, nil)
	m.signup(t, "ada", "pw-ada")
	over := []struct {
		name   string
		set    func(r *http.Request)
		secure bool
	}{
		{"plain http", func(*http.Request) {}, false},
		{"TLS", func(r *http.Request) { r.TLS = &tls.ConnectionState{} }, true},
		{"X-Forwarded-Proto https", func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "HTTPS") }, true},
		{"X-Forwarded-Proto https, http", func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https, http") }, true},
		{"X-Forwarded-Proto http", func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "http") }, false},
		{"Forwarded proto=https", func(r *http.Request) { r.Header.Set("Forwarded", `for=192.0.2.60;proto=https;by=203.0.113.43`) }, true},
		{"Forwarded quoted", func(r *http.Request) { r.Header.Set("Forwarded", `Proto="https"`) }, true},
		{"Forwarded proto=http", func(r *http.Request) { r.Header.Set("Forwarded", "proto=http, proto=https") }, false},
	}
	routes := []struct{ name, method, target, body string }{
		{"seed signup", "GET", "/signup?username=%s&password=pw", ""},
		{"v1 signup", "POST", "/v1/signup", `{"username":"%s","password":"pw"}`},
		{"seed login", "GET", "/login?username=ada&password=pw-ada", ""},
		{"v1 login", "POST", "/v1/login", `{"username":"ada","password":"pw-ada"}`},
		{"seed logout", "GET", "/logout", ""},
		{"v1 logout", "POST", "/v1/logout", ""},
	}
	n := 0
	for _, o := range over {
		for _, rt := range routes {
			t.Run(o.name+"/"+rt.name, func(t *testing.T) {
				n++
				user := fmt.Sprintf("u%d", n)
				var body io.Reader
				if rt.body != "" {
					body = strings.NewReader(strings.Replace(rt.body, "%s", user, 1))
				}
				r := httptest.NewRequest(rt.method, strings.Replace(rt.target, "%s", user, 1), body)
				if strings.Contains(rt.name, "logout") {
					r.Header.Set("Cookie", m.signup(t, user, "pw"))
				}
				o.set(r)
				a := m.serve(r)
				if a.code >= 300 {
					t.Fatalf("%d %s", a.code, a.body)
				}
				cookies := (&http.Response{Header: a.header}).Cookies()
				if len(cookies) != 1 {
					t.Fatalf("%d cookies: %v", len(cookies), a.header["Set-Cookie"])
				}
				c := cookies[0]
				if c.Name != "session" || c.SameSite != http.SameSiteStrictMode || !c.HttpOnly || c.Path != "/" || c.Secure != o.secure {
					t.Errorf("Set-Cookie: %s, want SameSite=Strict, HttpOnly, Path=/, Secure %v", a.header.Get("Set-Cookie"), o.secure)
				}
				if strings.Contains(rt.name, "logout") && (c.Value != "" || c.MaxAge >= 0) {
					t.Errorf("logout does not clear the cookie: %s", a.header.Get("Set-Cookie"))
				}
			})
		}
	}
}
