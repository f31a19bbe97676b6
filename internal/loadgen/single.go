package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// NewTransport returns an HTTP transport for a run with conns concurrent
// workers: it keeps up to conns idle keep-alive connections to one host so
// that every worker reuses its connection, does not ask for compression
// (that would cost the client CPU it shares with the server), and gives up
// on an answer whose headers take longer than timeout (0: no limit).
func NewTransport(conns int, timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if timeout > 0 && timeout < d.Timeout {
		d.Timeout = timeout
	}
	return &http.Transport{
		Proxy:                 nil, // load goes where it is aimed, never via a proxy
		DialContext:           d.DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		WriteBufferSize:       4 << 10,
		ReadBufferSize:        4 << 10,
	}
}

// Request is the one request single mode sends over and over.
type Request struct {
	Method string
	URL    string
	// Header holds extra headers; a "Host" entry sets the Host header.
	Header http.Header
	// Cookies are sent in one Cookie header, as "name=value" pairs.
	Cookies []string
	Body    []byte
}

// Validate checks the request can be sent: an http(s) URL with a host, a
// method, well-formed cookies.
func (r *Request) Validate() error {
	if r.Method == "" {
		return fmt.Errorf("request: no method")
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return fmt.Errorf("request: url %q: %w", r.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("request: url %q: want http://host[:port]/path", r.URL)
	}
	for _, c := range r.Cookies {
		if name, _, ok := strings.Cut(c, "="); !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("request: cookie %q: want name=value", c)
		}
	}
	return nil
}

// singleClient sends one prepared request; the *http.Request is built once
// and reused, which net/http allows once the previous answer's body is
// closed, so a request costs no allocation of ours.
type singleClient struct {
	rt   http.RoundTripper
	req  *http.Request
	body *bytes.Reader
	raw  []byte
}

// NewSingleClients returns n clients that each send r through rt. Each
// client builds its *http.Request once and reuses it, so ctx, not the one
// given to Do, bounds every request they send.
func NewSingleClients(ctx context.Context, rt http.RoundTripper, r Request, n int) ([]Client, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	out := make([]Client, n)
	for i := range out {
		c := &singleClient{rt: rt, raw: r.Body}
		var body io.Reader
		if r.Body != nil {
			c.body = bytes.NewReader(r.Body)
			body = c.body
		}
		req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
		if err != nil {
			return nil, fmt.Errorf("request: %w", err)
		}
		for k, vs := range r.Header {
			if http.CanonicalHeaderKey(k) == "Host" && len(vs) > 0 {
				req.Host = vs[0]
				continue
			}
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if len(r.Cookies) > 0 {
			req.Header.Set("Cookie", strings.Join(r.Cookies, "; "))
		}
		if req.Header.Get("User-Agent") == "" {
			req.Header.Set("User-Agent", "questlog-load")
		}
		if c.body != nil {
			// The body is rewound before each send; NopCloser keeps the
			// transport's Close from ending the reader.
			req.Body = io.NopCloser(c.body)
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(r.Body)), nil }
		}
		c.req = req
		out[i] = c
	}
	return out, nil
}

func (c *singleClient) Do(context.Context) Sample {
	if c.body != nil {
		c.body.Reset(c.raw)
	}
	resp, err := c.rt.RoundTrip(c.req)
	if err != nil {
		return Sample{Err: err}
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return Sample{Err: fmt.Errorf("read answer: %w", err), Bytes: n}
	}
	return Sample{Status: resp.StatusCode, Bytes: n}
}
