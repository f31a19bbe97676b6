package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Meta says what was driven, for the summary's header.
type Meta struct {
	// Mode is "single" (one request over and over, like ab) or "scenario".
	Mode string
	// Scenario and Mix name the scenario and where its mix came from.
	Scenario string
	Mix      string
	// RunID prefixes the scenario's usernames.
	RunID string
	// Method and URL are the request in single mode, the base URL in a scenario.
	Method string
	URL    string
	// Setup is what the scenario's setup did before the measured run; nil
	// when there was none.
	Setup *SetupResult
}

// Summary is a run's report: ApacheBench's figures, plus the outcome classes
// of a scenario. Its JSON form is what --format json prints; fields may be
// added, never renamed.
type Summary struct {
	Mode     string `json:"mode"`
	Scenario string `json:"scenario,omitempty"`
	Mix      string `json:"mix,omitempty"`
	RunID    string `json:"run_id,omitempty"`
	Method   string `json:"method,omitempty"`
	URL      string `json:"url"`
	// Model is "closed" (as fast as the workers allow) or "open" (fixed rate).
	Model string `json:"model"`
	// Setup, in a scenario run with a setup, is the signing up and logging
	// in of every player before the measured window; nothing below counts it.
	Setup       *SetupSummary `json:"setup,omitempty"`
	Concurrency int           `json:"concurrency"`
	Rate        float64       `json:"rate,omitempty"`

	DurationSeconds float64 `json:"duration_seconds"`
	Requests        int64   `json:"requests"`
	OK              int64   `json:"ok"`
	// Errors are transport errors plus 5xx answers; ErrorRate is their
	// share of Requests, the figure --max-errors checks.
	Errors            int64   `json:"errors"`
	ErrorRate         float64 `json:"error_rate"`
	TransportErrors   int64   `json:"transport_errors"`
	ServerErrors      int64   `json:"server_errors"`
	Non2xx            int64   `json:"non_2xx"`
	IntendedFailures  int64   `json:"intended_failures"`
	Unexpected4xx     int64   `json:"unexpected_4xx"`
	UnexpectedSuccess int64   `json:"unexpected_successes"`
	BytesReceived     int64   `json:"bytes_received"`

	RequestsPerSecond float64 `json:"requests_per_second"`
	// TimePerRequestMs is ab's "time per request (mean)": concurrency ×
	// duration / requests; TimePerRequestAllMs is duration / requests.
	TimePerRequestMs    float64 `json:"time_per_request_ms"`
	TimePerRequestAllMs float64 `json:"time_per_request_all_ms"`
	TransferKBPerSecond float64 `json:"transfer_kb_per_second"`

	// StatusCodes counts answers by status code ("200"), and transport
	// errors under "error".
	StatusCodes map[string]int64 `json:"status_codes"`
	Latency     Latency          `json:"latency_ms"`
	// ScheduleLag (open model only) is how late requests were sent after
	// they were due: timer lateness plus waits for a free worker. It is
	// included in Latency; a large lag asks for more workers.
	ScheduleLag   *Latency        `json:"schedule_lag_ms,omitempty"`
	Actions       []ActionSummary `json:"actions,omitempty"`
	ErrorMessages []ErrorMessage  `json:"error_messages,omitempty"`
}

// SetupSummary is the scenario's unmeasured setup.
type SetupSummary struct {
	Players         int     `json:"players"`
	Requests        int64   `json:"requests"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// Latency is a latency distribution in milliseconds, with ab's percentiles.
type Latency struct {
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	Stdev float64 `json:"stdev"`
	P50   float64 `json:"p50"`
	P66   float64 `json:"p66"`
	P75   float64 `json:"p75"`
	P80   float64 `json:"p80"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P98   float64 `json:"p98"`
	P99   float64 `json:"p99"`
	P100  float64 `json:"p100"`
}

// ActionSummary is one kind of request's share of a scenario.
type ActionSummary struct {
	Action            string           `json:"action"`
	Requests          int64            `json:"requests"`
	OK                int64            `json:"ok"`
	Errors            int64            `json:"errors"`
	IntendedFailures  int64            `json:"intended_failures"`
	Unexpected4xx     int64            `json:"unexpected_4xx"`
	UnexpectedSuccess int64            `json:"unexpected_successes"`
	StatusCodes       map[string]int64 `json:"status_codes"`
	Latency           Latency          `json:"latency_ms"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	round := func(v float64) float64 { return math.Round(v) / 1000 }
	return Latency{
		Min:   ms(h.Min()),
		Mean:  round(h.Mean()),
		Stdev: round(h.StdDev()),
		P50:   ms(h.ValueAtQuantile(50)),
		P66:   ms(h.ValueAtQuantile(66)),
		P75:   ms(h.ValueAtQuantile(75)),
		P80:   ms(h.ValueAtQuantile(80)),
		P90:   ms(h.ValueAtQuantile(90)),
		P95:   ms(h.ValueAtQuantile(95)),
		P98:   ms(h.ValueAtQuantile(98)),
		P99:   ms(h.ValueAtQuantile(99)),
		P100:  ms(h.Max()),
	}
}

func statusCodes(c *Counts) map[string]int64 {
	out := make(map[string]int64, len(c.Status)+1)
	for code, n := range c.Status {
		out[strconv.Itoa(code)] = n
	}
	if c.TransportErrors > 0 {
		out["error"] = c.TransportErrors
	}
	return out
}

func non2xx(c *Counts) int64 {
	var n int64
	for code, k := range c.Status {
		if code < 200 || code > 299 {
			n += k
		}
	}
	return n
}

// Summarize turns a run's result into its report.
func Summarize(r *Result, m Meta) Summary {
	s := Summary{
		Mode:              m.Mode,
		Scenario:          m.Scenario,
		Mix:               m.Mix,
		RunID:             m.RunID,
		Method:            m.Method,
		URL:               m.URL,
		Model:             "closed",
		Concurrency:       r.Clients,
		Rate:              r.Rate,
		DurationSeconds:   r.Elapsed.Seconds(),
		Requests:          r.Requests,
		OK:                r.OK,
		Errors:            r.Errors(),
		ErrorRate:         r.ErrorRate(),
		TransportErrors:   r.TransportErrors,
		ServerErrors:      r.ServerErrors,
		Non2xx:            non2xx(&r.Counts),
		IntendedFailures:  r.IntendedFailures,
		Unexpected4xx:     r.Unexpected4xx,
		UnexpectedSuccess: r.UnexpectedSuccess,
		BytesReceived:     r.Bytes,
		StatusCodes:       statusCodes(&r.Counts),
		Latency:           latencyOf(r.Latency),
		ErrorMessages:     r.ErrorMessages,
	}
	if m.Setup != nil {
		s.Setup = &SetupSummary{Players: m.Setup.Players, Requests: m.Setup.Requests, DurationSeconds: m.Setup.Elapsed.Seconds()}
	}
	if r.Rate > 0 {
		s.Model = "open"
		lag := latencyOf(r.Lag)
		s.ScheduleLag = &lag
	}
	if secs := r.Elapsed.Seconds(); secs > 0 {
		s.RequestsPerSecond = float64(r.Requests) / secs
		s.TransferKBPerSecond = float64(r.Bytes) / 1024 / secs
	}
	if r.Requests > 0 {
		all := float64(r.Elapsed.Microseconds()) / 1000 / float64(r.Requests)
		s.TimePerRequestAllMs = all
		s.TimePerRequestMs = all * float64(r.Clients)
	}
	if m.Mode == "scenario" {
		for _, a := range r.Actions {
			s.Actions = append(s.Actions, ActionSummary{
				Action:            a.Name,
				Requests:          a.Counts.Requests,
				OK:                a.Counts.OK,
				Errors:            a.Counts.Errors(),
				IntendedFailures:  a.Counts.IntendedFailures,
				Unexpected4xx:     a.Counts.Unexpected4xx,
				UnexpectedSuccess: a.Counts.UnexpectedSuccess,
				StatusCodes:       statusCodes(&a.Counts),
				Latency:           latencyOf(a.Latency),
			})
		}
	}
	return s
}

// WriteJSON writes the summary as one indented JSON object.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// WriteText writes the summary in ApacheBench's layout.
func (s *Summary) WriteText(w io.Writer) error {
	tw := &errWriter{w: w}
	p := tw.printf
	if s.Mode == "scenario" {
		p("Scenario:               %s (%d players, mix: %s, run id %s)\n", s.Scenario, s.Concurrency, s.Mix, s.RunID)
		p("Target:                 %s\n", s.URL)
	} else {
		p("Target:                 %s %s\n", s.Method, s.URL)
	}
	if s.Model == "open" {
		p("Model:                  open, %s requests/s scheduled, %d workers; latency from the scheduled time\n", fmtFloat(s.Rate), s.Concurrency)
	} else {
		p("Model:                  closed, as fast as %d workers allow\n", s.Concurrency)
	}
	if s.Setup != nil {
		p("Setup:                  %d players signed up and logged in in %.3f s (%d requests, not measured)\n",
			s.Setup.Players, s.Setup.DurationSeconds, s.Setup.Requests)
	}
	p("\n")
	p("Time taken for tests:   %.3f seconds\n", s.DurationSeconds)
	p("Complete requests:      %d\n", s.Requests)
	p("Failed requests:        %d (transport %d, 5xx %d)\n", s.Errors, s.TransportErrors, s.ServerErrors)
	p("Error rate:             %.2f%%\n", 100*s.ErrorRate)
	if s.Mode == "scenario" {
		p("Intended failures:      %d (deliberate 4xx, not errors)\n", s.IntendedFailures)
		p("Unexpected 4xx:         %d\n", s.Unexpected4xx)
		if s.UnexpectedSuccess > 0 {
			p("Unexpected successes:   %d\n", s.UnexpectedSuccess)
		}
	}
	p("Non-2xx responses:      %d\n", s.Non2xx)
	p("Total transferred:      %d bytes (bodies)\n", s.BytesReceived)
	p("Requests per second:    %.2f [#/sec] (mean)\n", s.RequestsPerSecond)
	p("Time per request:       %.3f [ms] (mean)\n", s.TimePerRequestMs)
	p("Time per request:       %.3f [ms] (mean, across all concurrent requests)\n", s.TimePerRequestAllMs)
	p("Transfer rate:          %.2f [Kbytes/sec] received\n", s.TransferKBPerSecond)
	p("\n")
	p("Latency (ms):           min %.3f  mean %.3f  [+/-sd %.3f]  median %.3f  max %.3f\n",
		s.Latency.Min, s.Latency.Mean, s.Latency.Stdev, s.Latency.P50, s.Latency.P100)

	if l := s.ScheduleLag; l != nil {
		p("Schedule lag (ms):      median %.3f  p99 %.3f  max %.3f (sent after due; part of latency)\n", l.P50, l.P99, l.P100)
	}

	p("\nStatus codes:\n")
	codes := make([]string, 0, len(s.StatusCodes))
	for c := range s.StatusCodes {
		codes = append(codes, c)
	}
	sort.Strings(codes) // "error" sorts after the digits
	for _, c := range codes {
		p("  %-6s %10d\n", c, s.StatusCodes[c])
	}
	if len(s.ErrorMessages) > 0 {
		p("\nTransport errors (distinct messages):\n")
		for _, e := range s.ErrorMessages {
			p("  %8d  %s\n", e.Count, e.Message)
		}
	}

	if len(s.Actions) > 0 {
		p("\nActions:\n")
		t := tabwriter.NewWriter(tw, 0, 0, 2, ' ', tabwriter.AlignRight)
		// Names are padded to one width so that they read left-aligned.
		width := len("action")
		for _, a := range s.Actions {
			width = max(width, len(a.Action))
		}
		fmt.Fprintf(t, "  %-*s\trequests\tok\tintended\tunexp-4xx\terrors\tp50 ms\tp99 ms\t\n", width, "action")
		for _, a := range s.Actions {
			if a.Requests == 0 {
				continue
			}
			fmt.Fprintf(t, "  %-*s\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t\n", width, a.Action, a.Requests, a.OK,
				a.IntendedFailures, a.Unexpected4xx, a.Errors, a.Latency.P50, a.Latency.P99)
		}
		if err := t.Flush(); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
	}

	p("\nPercentage of the requests served within a certain time (ms)\n")
	l := s.Latency
	for _, row := range []struct {
		pct string
		v   float64
	}{{"50", l.P50}, {"66", l.P66}, {"75", l.P75}, {"80", l.P80}, {"90", l.P90}, {"95", l.P95}, {"98", l.P98}, {"99", l.P99}} {
		p("  %3s%% %10.3f\n", row.pct, row.v)
	}
	p("  100%% %10.3f (longest request)\n", l.P100)
	if tw.err != nil {
		return fmt.Errorf("write summary: %w", tw.err)
	}
	return nil
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// errWriter keeps the first write error so the layout code reads straight.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
