package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// runSingle drives one prepared GET against srv.
func runSingle(t *testing.T, ctx context.Context, srv *httptest.Server, workers int, cfg Config) *Result {
	t.Helper()
	tr := NewTransport(workers, 10*time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	clients, err := NewSingleClients(ctx, tr, Request{Method: http.MethodGet, URL: srv.URL + "/"}, workers)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, cfg, clients)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunCountsAndClassifies(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		cfg     Config
		// answer gives the status of the i-th request (from 1).
		answer     func(i int64) int
		wantReqs   int64
		wantErrors int64
		wantStatus map[int]int64
	}{
		{
			name: "closed all ok", workers: 4, cfg: Config{Requests: 200},
			answer:   func(int64) int { return 200 },
			wantReqs: 200, wantStatus: map[int]int64{200: 200},
		},
		{
			name: "every tenth is a 500", workers: 3, cfg: Config{Requests: 100},
			answer:   func(i int64) int { return map[bool]int{true: 500, false: 200}[i%10 == 0] },
			wantReqs: 100, wantErrors: 10, wantStatus: map[int]int64{200: 90, 500: 10},
		},
		{
			name: "4xx is not an error", workers: 2, cfg: Config{Requests: 50},
			answer:   func(int64) int { return 404 },
			wantReqs: 50, wantStatus: map[int]int64{404: 50},
		},
		{
			name: "open model at a rate", workers: 2, cfg: Config{Requests: 40, Rate: 2000},
			answer:   func(int64) int { return 200 },
			wantReqs: 40, wantStatus: map[int]int64{200: 40},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.answer(hits.Add(1)))
				_, _ = w.Write([]byte("ok"))
			}))
			defer srv.Close()
			res := runSingle(t, context.Background(), srv, tc.workers, tc.cfg)
			if res.Requests != tc.wantReqs || hits.Load() != tc.wantReqs {
				t.Errorf("recorded %d requests, server saw %d, want %d", res.Requests, hits.Load(), tc.wantReqs)
			}
			if res.Errors() != tc.wantErrors {
				t.Errorf("errors = %d, want %d", res.Errors(), tc.wantErrors)
			}
			for code, n := range tc.wantStatus {
				if res.Status[code] != n {
					t.Errorf("status %d: %d, want %d (all: %v)", code, res.Status[code], n, res.Status)
				}
			}
			if res.Latency.TotalCount() != tc.wantReqs {
				t.Errorf("histogram holds %d values, want %d", res.Latency.TotalCount(), tc.wantReqs)
			}
			if res.Bytes != 2*tc.wantReqs {
				t.Errorf("bytes = %d, want %d", res.Bytes, 2*tc.wantReqs)
			}
		})
	}
}

func TestRunTransportErrors(t *testing.T) {
	// A server that hangs up without answering: every request is a
	// transport error, and an error message says why.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	res := runSingle(t, context.Background(), srv, 2, Config{Requests: 20})
	if res.Requests != 20 || res.TransportErrors != 20 || res.ErrorRate() != 1 {
		t.Errorf("requests %d, transport errors %d, rate %v; want 20, 20, 1", res.Requests, res.TransportErrors, res.ErrorRate())
	}
	if len(res.ErrorMessages) == 0 || res.ErrorMessages[0].Count == 0 {
		t.Errorf("no error message kept: %v", res.ErrorMessages)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	// 200/s for 250ms schedules exactly the slots due before the deadline:
	// 0, 5, ..., 245 ms.
	res := runSingle(t, context.Background(), srv, 2, Config{Duration: 250 * time.Millisecond, Rate: 200})
	if res.Requests != 50 {
		t.Errorf("open model 200/s for 250ms: %d requests, want 50", res.Requests)
	}
}

func TestRunCancelDoesNotCountAborted(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if started.Add(1) > 5 {
			select { // later requests hang until the client gives up
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{Requests: 1000, Progress: func(p Progress) {
		if p.Requests >= 5 {
			cancel()
		}
	}, ProgressEvery: time.Millisecond}
	res := runSingle(t, ctx, srv, 1, cfg)
	if res.Requests != 5 || res.Errors() != 0 {
		t.Errorf("cancelled run: %d requests, %d errors; want the 5 answered and no errors", res.Requests, res.Errors())
	}
}

// TestOpenModelShowsStall is the point of the open model: one stall of the
// server delays every request due during it, and those delays are latency.
// A closed-model client would record one slow request and simply send
// fewer (coordinated omission).
func TestOpenModelShowsStall(t *testing.T) {
	const (
		stall = 300 * time.Millisecond
		rate  = 200 // a request due every 5 ms
	)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 20 {
			time.Sleep(stall)
		}
	}))
	defer srv.Close()

	res := runSingle(t, context.Background(), srv, 1, Config{Requests: 150, Rate: rate})
	if res.Requests != 150 {
		t.Fatalf("%d requests, want 150", res.Requests)
	}
	// The stalled request started on time took >= 300 ms; the ones due in
	// the first half of the stall waited >= 150 ms for the one worker: about
	// 30 of them, whatever else slowed the machine down.
	slow := res.Latency.TotalCount() - countBelow(res, 150*time.Millisecond)
	if slow < 20 {
		t.Errorf("only %d requests took >= 150ms around a 300ms stall at %d/s; the stall is hidden", slow, rate)
	}
	if max := time.Duration(res.Latency.Max()) * time.Microsecond; max < stall {
		t.Errorf("longest request %s, want >= the %s stall", max, stall)
	}
	// The requests queued behind the stall were sent late, and say so.
	if lag := time.Duration(res.Lag.Max()) * time.Microsecond; lag < stall/2 {
		t.Errorf("largest schedule lag %s, want >= %s", lag, stall/2)
	}
}

func countBelow(r *Result, d time.Duration) int64 {
	limit := int64(d / time.Microsecond)
	var n int64
	for _, b := range r.Latency.Distribution() {
		if b.To <= limit {
			n += b.Count
		}
	}
	return n
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		clients int
	}{
		{"no clients", Config{Requests: 1}, 0},
		{"no limit", Config{}, 1},
		{"negative requests", Config{Requests: -1}, 1},
		{"negative duration", Config{Duration: -time.Second}, 1},
		{"negative rate", Config{Requests: 1, Rate: -1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.cfg, make([]Client, tc.clients)); err == nil {
				t.Error("want an error")
			}
		})
	}
}
