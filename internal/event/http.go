package event

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxHeaderValue bounds what one header may put into an event.
const maxHeaderValue = 256

// FromRequest describes r for an event's http object. Only the headers on the
// allow-list are read; Authorization, Cookie and every other header are not,
// so no credential can reach the topic, and a header named like an envelope
// field (event_type, user, ...) has nowhere to go.
func FromRequest(r *http.Request) HTTP {
	h := r.Header
	return HTTP{
		Method:         r.Method,
		Path:           clip(r.URL.Path),
		Host:           clip(hostOnly(r.Host)),
		RemoteAddr:     clip(r.RemoteAddr),
		UserAgent:      clip(first(h, "User-Agent")),
		Accept:         clip(first(h, "Accept")),
		AcceptLanguage: clip(first(h, "Accept-Language")),
		AcceptEncoding: clip(first(h, "Accept-Encoding")),
		ContentType:    clip(first(h, "Content-Type")),
		Referer:        clip(safeURL(first(h, "Referer"), true)),
		Origin:         clip(safeOrigin(first(h, "Origin"))),
		ForwardedFor:   clip(first(h, "X-Forwarded-For")),
		RequestID:      clip(first(h, "X-Request-Id")),
		ClientVersion:  clip(first(h, "X-Client-Version")),
	}
}

// first reads a canonical header key without allocating.
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// safeURL keeps a URL-valued header's scheme, host and port, and with
// withPath its path: nothing a client or a referring page can put a secret
// in. Userinfo (http://user:password@host/) goes, and so do the query and the
// fragment (the seed's GET /login takes its password in the query, so a
// page's own address may hold one). A value that does not parse as a URL
// with a host is dropped whole rather than kept raw: browsers send absolute
// URLs, and in anything else a parser and a reader may disagree about where
// the userinfo is ("http:/\user:pw@host").
func safeURL(s string, withPath bool) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" || u.Scheme == "" {
		return ""
	}
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	if withPath {
		out.Path, out.RawPath = u.Path, u.RawPath
	}
	return out.String()
}

// safeOrigin is an Origin header as safeURL keeps it, scheme and host only;
// "null" (an opaque origin) stays as it is.
func safeOrigin(s string) string {
	if s == "null" {
		return s
	}
	return safeURL(s, false)
}

// hostOnly drops userinfo from a Host value. net/http's server refuses a Host
// header with an '@', so this guards callers that build requests themselves.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		return h[i+1:]
	}
	return h
}

// clip bounds a value's length without splitting a UTF-8 sequence.
func clip(s string) string {
	if len(s) <= maxHeaderValue {
		return s
	}
	s = s[:maxHeaderValue]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
