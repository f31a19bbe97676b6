package event

import (
	"net/http"
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
		Host:           clip(r.Host),
		RemoteAddr:     clip(r.RemoteAddr),
		UserAgent:      clip(first(h, "User-Agent")),
		Accept:         clip(first(h, "Accept")),
		AcceptLanguage: clip(first(h, "Accept-Language")),
		AcceptEncoding: clip(first(h, "Accept-Encoding")),
		ContentType:    clip(first(h, "Content-Type")),
		Referer:        clip(stripQuery(first(h, "Referer"))),
		Origin:         clip(first(h, "Origin")),
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

// stripQuery drops a URL's query and fragment: a referring page's query may
// hold a password (the seed's GET /login takes one).
func stripQuery(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' || s[i] == '#' {
			return s[:i]
		}
	}
	return s
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
