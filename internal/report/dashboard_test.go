package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
	"github.com/questlog/questlog/internal/report"
	"github.com/questlog/questlog/internal/report/browsertest"
	"github.com/questlog/questlog/internal/report/dashboardtest"
)

// clock is a test's hand-moved time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time             { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration)        { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock(t time.Time) *clock           { return &clock{t: t} }
func day(n int) time.Time                   { return time.Date(2026, 1, n, 10, 0, 0, 0, time.UTC) }
func countEvents(n *int) func(*event.Event) { return func(*event.Event) { *n++ } }

// rates are live counters a test can change under the dashboard.
type rates struct {
	mu sync.Mutex
	m  map[string]float64
}

func (r *rates) get() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]float64{}
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

func (r *rates) set(m map[string]float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m = m
}

// serveDashboard mounts a Dashboard as `questlog up` does.
func serveDashboard(t *testing.T, lake string, counters func() map[string]float64, opts ...report.DashboardOption) *httptest.Server {
	t.Helper()
	opts = append([]report.DashboardOption{report.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))}, opts...)
	d, err := report.NewDashboard(context.Background(), lake, counters, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard", d)
	mux.Handle("/dashboard/", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		d.Close()
	})
	return srv
}

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

var eventsFigure = regexp.MustCompile(`<span class="value">([0-9,]+)</span><span class="label">events</span>`)

func figureEvents(t *testing.T, html string) string {
	t.Helper()
	m := eventsFigure.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no events figure in:\n%.2000s", html)
	}
	return m[1]
}

func TestDashboardRoutes(t *testing.T) {
	ctx := context.Background()
	lake := filepath.Join(t.TempDir(), "lake")
	var n1, n2 int
	if err := laketest.Build(ctx, lake, laketest.Config{Events: 700, Start: day(1)}, laketest.Layout{}, countEvents(&n1)); err != nil {
		t.Fatal(err)
	}
	live := &rates{m: map[string]float64{"buy_item": 12.5, "signup": 2, "login": 0.5}}
	clk := newClock(day(3))
	srv := serveDashboard(t, lake, live.get, report.WithRefresh(10*time.Second), report.WithClock(clk.Now))

	t.Run("page", func(t *testing.T) {
		code, ctype, body := get(t, srv.URL+"/dashboard")
		if code != 200 || !strings.HasPrefix(ctype, "text/html") {
			t.Fatalf("GET /dashboard: %d %s", code, ctype)
		}
		if n := strings.Count(body, `<section class="chart"`); n != 7 {
			t.Errorf("%d charts, want 7", n)
		}
		if n := strings.Count(body, "<svg"); n != 7 {
			t.Errorf("%d drawings, want 7", n)
		}
		for _, w := range []string{`data-base="/dashboard"`, `data-refresh-ms="10000"`, "<script>", `id="live"`} {
			if !strings.Contains(body, w) {
				t.Errorf("page lacks %s", w)
			}
		}
		if got := figureEvents(t, body); got != fmtCount(float64(n1)) {
			t.Errorf("page shows %s events, sent %d", got, n1)
		}
		if code, _, _ := get(t, srv.URL+"/dashboard/"); code != 200 {
			t.Errorf("GET /dashboard/: %d", code)
		}
	})
	t.Run("live counters", func(t *testing.T) {
		for _, m := range []map[string]float64{live.get(), {"checkout": 3}} {
			live.set(m)
			code, ctype, body := get(t, srv.URL+"/dashboard/live.json")
			if code != 200 || ctype != "application/json" {
				t.Fatalf("GET live.json: %d %s", code, ctype)
			}
			var got report.LiveCounters
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			var total float64
			for k, v := range m {
				total += v
				if got.EventsPerSecond[k] != v {
					t.Errorf("%s: %g/s, server counts %g/s", k, got.EventsPerSecond[k], v)
				}
			}
			if len(got.EventsPerSecond) != len(m) || got.Total != total || !got.Time.Equal(clk.Now()) {
				t.Errorf("live.json %+v, want %v total %g at %v", got, m, total, clk.Now())
			}
		}
	})
	t.Run("charts follow the lake", func(t *testing.T) {
		if err := laketest.Build(ctx, lake, laketest.Config{Events: 500, Start: day(2), Seed: 2}, laketest.Layout{}, countEvents(&n2)); err != nil {
			t.Fatal(err)
		}
		_, _, body := get(t, srv.URL+"/dashboard/report")
		if got := figureEvents(t, body); got != fmtCount(float64(n1)) {
			t.Errorf("within the refresh interval the charts show %s events, want the cached %d", got, n1)
		}
		if strings.Contains(body, "<html") || strings.Contains(body, "<script") {
			t.Error("/dashboard/report is a whole page, want the charts alone")
		}
		clk.Add(10 * time.Second)
		_, _, body = get(t, srv.URL+"/dashboard/report")
		if got := figureEvents(t, body); got != fmtCount(float64(n1+n2)) {
			t.Errorf("after the refresh interval the charts show %s events, sent %d", got, n1+n2)
		}
	})
	t.Run("a rewritten lake is read again", func(t *testing.T) {
		var n3 int
		if err := os.RemoveAll(lake); err != nil {
			t.Fatal(err)
		}
		if err := laketest.Build(ctx, lake, laketest.Config{Events: 300, Start: day(5), Seed: 3}, laketest.Layout{}, countEvents(&n3)); err != nil {
			t.Fatal(err)
		}
		clk.Add(10 * time.Second)
		_, _, body := get(t, srv.URL+"/dashboard/report")
		if got := figureEvents(t, body); got != fmtCount(float64(n3)) {
			t.Errorf("after the lake was rewritten the charts show %s events, it holds %d", got, n3)
		}
	})
	t.Run("many browsers at once share one rebuild", func(t *testing.T) {
		clk.Add(10 * time.Second)
		bodies := make([]string, 8)
		var wg sync.WaitGroup
		for i := range bodies {
			wg.Go(func() {
				resp, err := http.Get(srv.URL + "/dashboard/report")
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				bodies[i] = string(b)
			})
		}
		wg.Wait()
		for i, b := range bodies {
			if b != bodies[0] {
				t.Errorf("browser %d saw other charts than browser 0", i)
			}
		}
	})
	t.Run("other requests", func(t *testing.T) {
		if code, _, _ := get(t, srv.URL+"/dashboard/nope"); code != http.StatusNotFound {
			t.Errorf("GET /dashboard/nope: %d", code)
		}
		resp, err := http.Post(srv.URL+"/dashboard", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /dashboard: %d", resp.StatusCode)
		}
	})
}

// A dashboard whose DuckDB may hold less than its events spills them to
// its directory and draws the same charts as one that holds them all.
func TestDashboardSpillsPastItsMemory(t *testing.T) {
	ctx := context.Background()
	lake := filepath.Join(t.TempDir(), "lake")
	var n int
	if err := laketest.Build(ctx, lake, laketest.Config{Events: 400_000, Start: day(1)}, laketest.Layout{}, countEvents(&n)); err != nil {
		t.Fatal(err)
	}
	clk := newClock(day(3))
	page := func(opts ...report.DashboardOption) string {
		srv := serveDashboard(t, lake, nil, append(opts, report.WithClock(clk.Now))...)
		code, _, body := get(t, srv.URL+"/dashboard/report")
		if code != 200 {
			t.Fatalf("GET /dashboard/report: %d", code)
		}
		return body
	}
	spill := filepath.Join(t.TempDir(), "spill")
	bounded := page(report.WithLakeOptions(query.WithMemory(32<<20, spill)))
	if got := figureEvents(t, bounded); got != fmtCount(float64(n)) {
		t.Errorf("the bounded dashboard shows %s events, the lake has %d", got, n)
	}
	if files, _ := os.ReadDir(spill); len(files) == 0 {
		t.Errorf("nothing in %s: the dashboard's DuckDB did not spill at 32 MiB", spill)
	}
	if unbounded := page(); unbounded != bounded {
		t.Error("the charts of a dashboard limited to 32 MiB differ from an unlimited one's")
	}
}

func TestNewDashboardRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  report.DashboardOption
	}{
		{"zero refresh", report.WithRefresh(0)},
		{"negative window", report.WithLast(-time.Minute)},
		{"root prefix", report.WithPrefix("/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := report.NewDashboard(context.Background(), t.TempDir(), nil, tc.opt); err == nil {
				d.Close()
				t.Error("accepted")
			}
		})
	}
}

func TestDashboardInChromium(t *testing.T) {
	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	lake := filepath.Join(t.TempDir(), "lake")
	var n1, n2 int
	if err := laketest.Build(ctx, lake, laketest.Config{Events: 1500, Start: day(1)}, laketest.Layout{Quarantine: 1}, countEvents(&n1)); err != nil {
		t.Fatal(err)
	}
	live := &rates{m: map[string]float64{"buy_item": 40, "view_catalog": 7.5, "signup": 1}}
	srv := serveDashboard(t, lake, live.get, report.WithRefresh(300*time.Millisecond))

	p, err := b.Open(ctx, srv.URL+"/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	state, err := dashboardtest.Verify(ctx, p)
	if err != nil {
		t.Error(err)
	}
	if len(state.Charts) != len(report.ChartIDs) {
		t.Errorf("%d charts on the page, want %d", len(state.Charts), len(report.ChartIDs))
	}
	want := map[string]string{"buy_item": "40.0", "view_catalog": "7.5", "signup": "1.0"}
	if fmt.Sprint(state.Live) != fmt.Sprint(want) || state.Total != "48.5" {
		t.Errorf("live counters on the page %v total %s, want %v total 48.5", state.Live, state.Total, want)
	}

	// New files in the lake reach the open page without a reload.
	if err := laketest.Build(ctx, lake, laketest.Config{Events: 400, Start: day(2), Seed: 4}, laketest.Layout{}, countEvents(&n2)); err != nil {
		t.Fatal(err)
	}
	total := fmtCount(float64(n1 + n2))
	if err := p.WaitFor(ctx, `[...document.querySelectorAll(".figure")].some(f => f.textContent === "`+total+`events")`); err != nil {
		t.Errorf("the page never showed %s events after the lake grew: %v", total, err)
	}
	live.set(map[string]float64{"checkout": 2})
	if err := p.WaitFor(ctx, `document.getElementById("live-total").textContent === "2.0"`); err != nil {
		t.Errorf("live total did not follow the server: %v", err)
	}

	shot := filepath.Join(browsertest.ArtifactDir(t), "dashboard.png")
	if err := p.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if state, err := dashboardtest.Read(ctx, p); err != nil || len(state.Errors) > 0 {
		t.Errorf("the page logged errors (%v):\n%s", err, strings.Join(state.Errors, "\n"))
	}

	// The check itself fails on a dashboard without data.
	empty := serveDashboard(t, filepath.Join(t.TempDir(), "empty-lake"), nil, report.WithRefresh(300*time.Millisecond))
	p, err = b.Open(ctx, empty.URL+"/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dashboardtest.Verify(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "chart "+report.ChartFunnel+" is not drawn") {
		t.Errorf("Verify on an empty dashboard: %v, want every chart reported as not drawn", err)
	}
}
