package api

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/questlog/questlog/internal/event"
)

// metrics are the server's Prometheus metrics, on a registry of its own.
type metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	eventsProduced  *prometheus.CounterVec
	eventsFailed    *prometheus.CounterVec
	produceDuration prometheus.Histogram

	// byType counts acknowledged events per type for the live dashboard;
	// the map is filled once and only its counters change.
	byType map[string]*atomic.Uint64
}

// knownTypes are the event types counted individually; others count as
// "default".
var knownTypes = [...]string{
	event.TypeDefault, event.TypeSignup, event.TypeLogin, event.TypeLogout,
	event.TypeBuyItem, event.TypeSellItem, event.TypeCartAdd, event.TypeCartRemove,
	event.TypeCheckout, event.TypeJoinGuild, event.TypeLeaveGuild,
	event.TypeViewInventory, event.TypeViewCatalog, event.TypeViewCart,
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "questlog_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "questlog_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, from the first byte read to the last byte written.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		eventsProduced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "questlog_events_produced_total",
			Help: "Events acknowledged by the event log, by type and status.",
		}, []string{"event_type", "status"}),
		eventsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "questlog_events_failed_total",
			Help: "Events the event log did not acknowledge (their requests were refused with 503).",
		}, []string{"event_type"}),
		produceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "questlog_produce_duration_seconds",
			Help:    "Time from handing an event to the producer to its acknowledgement.",
			Buckets: []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1, 5},
		}),
		byType: make(map[string]*atomic.Uint64, len(knownTypes)),
	}
	for _, t := range knownTypes {
		m.byType[t] = new(atomic.Uint64)
	}
	m.registry.MustRegister(
		m.requests, m.latency, m.eventsProduced, m.eventsFailed, m.produceDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) countEvent(typ string) {
	c, ok := m.byType[typ]
	if !ok {
		c = m.byType[event.TypeDefault]
	}
	c.Add(1)
}

// EventCounts returns how many events of each type the log acknowledged.
func (m *metrics) eventCounts() map[string]uint64 {
	out := make(map[string]uint64, len(m.byType))
	for t, c := range m.byType {
		out[t] = c.Load()
	}
	return out
}

// rates turns the cumulative event counts into events per second, measured
// over at least a second between samples.
type rates struct {
	mu     sync.Mutex
	at     time.Time
	counts map[string]uint64
	last   map[string]float64
}

func (r *rates) sample(now time.Time, counts map[string]uint64) map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.at, r.counts = now, counts
		return map[string]float64{}
	}
	if dt := now.Sub(r.at).Seconds(); dt >= 1 {
		r.last = make(map[string]float64, len(counts))
		for t, n := range counts {
			if d := n - r.counts[t]; d > 0 {
				r.last[t] = float64(d) / dt
			}
		}
		r.at, r.counts = now, counts
	}
	out := make(map[string]float64, len(r.last))
	for t, v := range r.last {
		out[t] = v
	}
	return out
}
