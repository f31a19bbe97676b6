package loadgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/golden"
)

// fixedResult is a run with known figures: 1000 requests in 2.5 s by 10
// workers, latencies 1..1000 ms in 1 ms steps, 3 transport errors, 5 503s,
// 40 404s.
func fixedResult(t *testing.T, actions []string) *Result {
	t.Helper()
	r := &Result{
		Elapsed: 2500 * time.Millisecond,
		Clients: 10,
		Latency: NewHistogram(),
		Lag:     newActionHistogram(),
		Actions: make([]ActionResult, len(actions)),
		ErrorMessages: []ErrorMessage{
			{Message: "dial tcp 127.0.0.1:9: connect: connection refused", Count: 3},
		},
	}
	for i := range r.Actions {
		r.Actions[i] = ActionResult{Name: actions[i], Latency: newActionHistogram()}
	}
	for i := 1; i <= 1000; i++ {
		s := Sample{Action: i % len(actions), Status: 200, Bytes: 2}
		switch {
		case i <= 3:
			s = Sample{Action: s.Action, Err: os.ErrDeadlineExceeded}
		case i <= 8:
			s.Status = 503
		case i <= 48:
			s.Status = 404
			s.ExpectFailure = i%2 == 0
		}
		r.Counts.add(s)
		r.Actions[s.Action].Counts.add(s)
		us := int64(i) * 1000
		if err := r.Latency.RecordValue(us); err != nil {
			t.Fatal(err)
		}
		if err := r.Actions[s.Action].Latency.RecordValue(us); err != nil {
			t.Fatal(err)
		}
		if err := r.Lag.RecordValue(int64(i)); err != nil { // 1 µs .. 1 ms
			t.Fatal(err)
		}
	}
	return r
}

func TestSummaryText(t *testing.T) {
	tests := []struct {
		name    string
		golden  string
		rate    float64
		actions []string
		meta    Meta
	}{
		{
			name:    "single closed",
			golden:  "summary_single.golden",
			actions: []string{"request"},
			meta:    Meta{Mode: "single", Method: "GET", URL: "http://127.0.0.1:5000/"},
		},
		{
			name:    "scenario open",
			golden:  "summary_scenario.golden",
			rate:    400,
			actions: []string{"signup", "buy", "sell_unowned"},
			meta: Meta{Mode: "scenario", Scenario: "players", Mix: "built-in", RunID: "abcd1234", URL: "http://127.0.0.1:5000",
				Setup: &SetupResult{Players: 10, Requests: 21, Elapsed: 1250 * time.Millisecond}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fixedResult(t, tc.actions)
			r.Rate = tc.rate
			s := Summarize(r, tc.meta)
			var buf bytes.Buffer
			if err := s.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			want := golden.Want(t, path, buf.Bytes())
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("summary differs from %s (rerun with -update if intended):\n%s", path, buf.String())
			}
		})
	}
}

func TestSummaryFigures(t *testing.T) {
	s := Summarize(fixedResult(t, []string{"request"}), Meta{Mode: "single", Method: "GET", URL: "http://x/"})
	tests := []struct {
		name      string
		got, want float64
	}{
		{"requests per second", s.RequestsPerSecond, 400},
		{"time per request", s.TimePerRequestMs, 25},
		{"time per request across all", s.TimePerRequestAllMs, 2.5},
		{"errors", float64(s.Errors), 8},
		{"error rate", s.ErrorRate, 0.008},
		{"non-2xx", float64(s.Non2xx), 45},
		{"intended failures", float64(s.IntendedFailures), 20},
		{"unexpected 4xx", float64(s.Unexpected4xx), 20},
		{"ok", float64(s.OK), 952},
		{"p50", s.Latency.P50, 500},
		{"p99", s.Latency.P99, 990},
		{"p100", s.Latency.P100, 1000},
		{"min", s.Latency.Min, 1},
		{"status 200", float64(s.StatusCodes["200"]), 952},
		{"status error", float64(s.StatusCodes["error"]), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// HDR keeps 3 significant digits.
			if d := tc.got - tc.want; d > tc.want/500 || d < -tc.want/500 {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	if s.Model != "closed" || s.Actions != nil {
		t.Errorf("single closed run: model %q, actions %v", s.Model, s.Actions)
	}
}

// TestSummaryJSONShape pins the field names machines read from --format json.
func TestSummaryJSONShape(t *testing.T) {
	r := fixedResult(t, []string{"signup", "buy"})
	r.Rate = 100
	s := Summarize(r, Meta{Mode: "scenario", Scenario: "players", Mix: "built-in", RunID: "r1", URL: "http://x",
		Setup: &SetupResult{Players: 4, Requests: 8, Elapsed: 1500 * time.Millisecond}})
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	numbers := []string{"concurrency", "rate", "duration_seconds", "requests", "ok", "errors", "error_rate",
		"transport_errors", "server_errors", "non_2xx", "intended_failures", "unexpected_4xx",
		"unexpected_successes", "bytes_received", "requests_per_second", "time_per_request_ms",
		"time_per_request_all_ms", "transfer_kb_per_second"}
	for _, k := range numbers {
		if _, ok := doc[k].(float64); !ok {
			t.Errorf("%s: want a number, got %#v", k, doc[k])
		}
	}
	if lag, ok := doc["schedule_lag_ms"].(map[string]any); !ok || lag["p99"] == nil {
		t.Errorf("schedule_lag_ms: want an object with p99 in the open model, got %#v", doc["schedule_lag_ms"])
	}
	for k, want := range map[string]string{"mode": "scenario", "scenario": "players", "model": "open", "run_id": "r1", "url": "http://x"} {
		if doc[k] != want {
			t.Errorf("%s = %#v, want %q", k, doc[k], want)
		}
	}
	lat, ok := doc["latency_ms"].(map[string]any)
	if !ok {
		t.Fatalf("latency_ms: want an object, got %#v", doc["latency_ms"])
	}
	for _, k := range []string{"min", "mean", "stdev", "p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "p100"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency_ms.%s: want a number, got %#v", k, lat[k])
		}
	}
	codes, ok := doc["status_codes"].(map[string]any)
	if !ok || codes["200"] == nil || codes["error"] == nil {
		t.Errorf("status_codes: want counts by code and under \"error\", got %#v", doc["status_codes"])
	}
	acts, ok := doc["actions"].([]any)
	if !ok || len(acts) != 2 {
		t.Fatalf("actions: want 2 entries, got %#v", doc["actions"])
	}
	first := acts[0].(map[string]any)
	for _, k := range []string{"action", "requests", "ok", "errors", "intended_failures", "unexpected_4xx", "status_codes", "latency_ms"} {
		if _, ok := first[k]; !ok {
			t.Errorf("actions[0].%s missing: %#v", k, first)
		}
	}
	setup, ok := doc["setup"].(map[string]any)
	if !ok || setup["players"] != 4.0 || setup["requests"] != 8.0 || setup["duration_seconds"] != 1.5 {
		t.Errorf("setup: want {players 4, requests 8, duration_seconds 1.5}, got %#v", doc["setup"])
	}
	if msgs, ok := doc["error_messages"].([]any); !ok || len(msgs) != 1 {
		t.Errorf("error_messages: got %#v", doc["error_messages"])
	}
}
