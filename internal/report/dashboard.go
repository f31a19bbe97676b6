package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/questlog/questlog/internal/query"
)

// Dashboard serves the report live: the page at <prefix> (default
// /dashboard), the charts alone at <prefix>/report for the page to refresh
// itself, and the live counters at <prefix>/live.json.
//
// The charts are rebuilt from the lake at most once per refresh interval,
// however many browsers watch, and each rebuild reads only the files
// published since the last one (the events read so far stay in DuckDB's
// memory). The counters come from the caller's function on every request.
type Dashboard struct {
	db       *query.DB
	counters func() map[string]float64
	cfg      dashboardConfig

	mu      sync.Mutex // one rebuild at a time
	events  *snapshot  // the lake's events read so far
	built   time.Time
	current *pageData
	lastErr error
}

type dashboardConfig struct {
	prefix  string
	refresh time.Duration
	window  time.Duration
	now     func() time.Time
	log     *slog.Logger
	lake    []query.Option
}

// DashboardOption configures a Dashboard.
type DashboardOption func(*dashboardConfig)

// WithPrefix is the path the dashboard is mounted at. Default "/dashboard".
func WithPrefix(p string) DashboardOption {
	return func(c *dashboardConfig) { c.prefix = "/" + strings.Trim(p, "/") }
}

// WithRefresh is how often the page reloads its charts, and how old the
// charts may be before a request rebuilds them from the lake. Default 5s.
func WithRefresh(d time.Duration) DashboardOption {
	return func(c *dashboardConfig) { c.refresh = d }
}

// WithLast limits the charts to the events of the last d. Default 0: every
// event in the lake.
func WithLast(d time.Duration) DashboardOption {
	return func(c *dashboardConfig) { c.window = d }
}

// WithClock sets the clock used for the window and the page's timestamps.
// Default time.Now.
func WithClock(now func() time.Time) DashboardOption {
	return func(c *dashboardConfig) { c.now = now }
}

// WithLogger sets where rebuild failures are logged. Default slog.Default().
func WithLogger(l *slog.Logger) DashboardOption {
	return func(c *dashboardConfig) { c.log = l }
}

// WithLakeOptions are given to query.Open for the dashboard's DuckDB: the
// cache of an s3:// lake, a bound on DuckDB's memory. Default none.
func WithLakeOptions(opts ...query.Option) DashboardOption {
	return func(c *dashboardConfig) { c.lake = opts }
}

// LiveCounters is the JSON of <prefix>/live.json.
type LiveCounters struct {
	Time            time.Time          `json:"time"`
	EventsPerSecond map[string]float64 `json:"events_per_second"`
	Total           float64            `json:"total"`
}

// NewDashboard opens the lake at location for a live dashboard. counters
// returns events per second by event type, as the server measures them
// right now; nil shows none. Close the Dashboard to release DuckDB.
func NewDashboard(ctx context.Context, location string, counters func() map[string]float64, opts ...DashboardOption) (*Dashboard, error) {
	cfg := dashboardConfig{prefix: "/dashboard", refresh: 5 * time.Second, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.refresh <= 0:
		return nil, errors.New("the dashboard's refresh interval must be positive")
	case cfg.window < 0:
		return nil, errors.New("the dashboard's window must not be negative")
	case cfg.prefix == "/":
		return nil, errors.New("the dashboard's prefix must not be the root")
	}
	if counters == nil {
		counters = func() map[string]float64 { return nil }
	}
	db, err := query.Open(ctx, location, append(cfg.lake[:len(cfg.lake):len(cfg.lake)], query.WithoutViews())...)
	if err != nil {
		return nil, err
	}
	events, err := newSnapshot(db, time.Time{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("start the events snapshot: %w", err)
	}
	return &Dashboard{db: db, counters: counters, cfg: cfg, events: events}, nil
}

// Close waits for a rebuild in progress and releases the lake's DuckDB.
// Requests after Close fail; stop serving first.
func (d *Dashboard) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.db.Close()
}

// Prefix is the path the dashboard answers under.
func (d *Dashboard) Prefix() string { return d.cfg.prefix }

// ServeHTTP answers <prefix>, <prefix>/, <prefix>/report and <prefix>/live.json.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, d.cfg.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch rest {
	case "", "/":
		d.serveReport(w, r, "page")
	case "/report":
		d.serveReport(w, r, "body")
	case "/live.json":
		d.serveLive(w)
	default:
		http.NotFound(w, r)
	}
}

func (d *Dashboard) serveLive(w http.ResponseWriter) {
	live := LiveCounters{Time: d.cfg.now().UTC(), EventsPerSecond: map[string]float64{}}
	for typ, rate := range d.counters() {
		live.EventsPerSecond[typ] = rate
		live.Total += rate
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(live)
}

func (d *Dashboard) serveReport(w http.ResponseWriter, r *http.Request, tmpl string) {
	data, err := d.report(r.Context())
	if err != nil {
		http.Error(w, "the report could not be built from the lake: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := execute(&buf, tmpl, data); err != nil {
		d.cfg.log.Error("dashboard: render", "err", err)
		http.Error(w, "the report could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// report returns the charts, rebuilt from the lake when they are older than
// the refresh interval. A failed rebuild keeps serving the last good charts.
func (d *Dashboard) report(ctx context.Context) (*pageData, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.now()
	if d.current != nil && now.Sub(d.built) < d.cfg.refresh {
		return d.current, nil
	}
	data, err := d.rebuild(ctx, now)
	if err != nil {
		if d.lastErr == nil || d.lastErr.Error() != err.Error() {
			d.cfg.log.Error("dashboard: rebuild from the lake", "lake", d.db.Lake(), "err", err)
		}
		d.lastErr = err
		if d.current != nil {
			return d.current, nil
		}
		return nil, err
	}
	d.current, d.built, d.lastErr = data, now, nil
	return data, nil
}

func (d *Dashboard) rebuild(ctx context.Context, now time.Time) (*pageData, error) {
	if err := d.events.sync(ctx); err != nil {
		return nil, err
	}
	var w Window
	if d.cfg.window > 0 {
		w.Since = now.Add(-d.cfg.window)
	}
	rep, err := build(ctx, d.db, d.events, w, now)
	if err != nil {
		return nil, err
	}
	data, err := rep.pageData()
	if err != nil {
		return nil, err
	}
	data.Live = true
	data.Base = d.cfg.prefix
	data.RefreshMS = d.cfg.refresh.Milliseconds()
	return data, nil
}
