package journal

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/questlog/questlog/internal/event"
)

// Metrics are the journal's Prometheus metrics.
type Metrics struct {
	eventsProduced  *prometheus.CounterVec
	eventsFailed    *prometheus.CounterVec
	produceDuration prometheus.Histogram

	// byType counts acknowledged events per type for the live dashboard
	// and holds each type's Prometheus counters; the map is filled once and
	// only its counters change.
	byType map[string]*typeMetrics
}

// typeMetrics are one event type's counters. The Prometheus children are
// looked up once, on first use, so that /metrics shows only series that
// counted something and the request path skips the label lookup.
type typeMetrics struct {
	acked    atomic.Uint64
	ok       lazyCounter
	failed   lazyCounter
	notAcked lazyCounter
}

// lazyCounter is a Prometheus counter child made on its first Inc.
type lazyCounter struct {
	c atomic.Pointer[prometheus.Counter]
}

func (l *lazyCounter) inc(vec *prometheus.CounterVec, labels ...string) {
	c := l.c.Load()
	if c == nil {
		child := vec.WithLabelValues(labels...)
		c = &child
		l.c.Store(c)
	}
	(*c).Inc()
}

// knownTypes are the event types counted individually; others count as
// "default".
var knownTypes = [...]string{
	event.TypeDefault, event.TypeSignup, event.TypeLogin, event.TypeLogout,
	event.TypeBuyItem, event.TypeSellItem, event.TypeCartAdd, event.TypeCartRemove,
	event.TypeCheckout, event.TypeJoinGuild, event.TypeLeaveGuild,
	event.TypeViewInventory, event.TypeViewCatalog, event.TypeViewCart,
}

// NewMetrics makes the journal's metrics and registers them in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
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
		byType: make(map[string]*typeMetrics, len(knownTypes)),
	}
	for _, t := range knownTypes {
		m.byType[t] = new(typeMetrics)
	}
	reg.MustRegister(m.eventsProduced, m.eventsFailed, m.produceDuration)
	return m
}

// eventAcked counts an event the log acknowledged.
func (m *Metrics) eventAcked(typ, status string) {
	t, ok := m.byType[typ]
	if !ok {
		m.eventsProduced.WithLabelValues(typ, status).Inc()
		m.byType[event.TypeDefault].acked.Add(1)
		return
	}
	switch status {
	case event.StatusOK:
		t.ok.inc(m.eventsProduced, typ, status)
	case event.StatusFailed:
		t.failed.inc(m.eventsProduced, typ, status)
	default:
		m.eventsProduced.WithLabelValues(typ, status).Inc()
	}
	t.acked.Add(1)
}

// eventNotAcked counts an event the log did not acknowledge.
func (m *Metrics) eventNotAcked(typ string) {
	if t, ok := m.byType[typ]; ok {
		t.notAcked.inc(m.eventsFailed, typ)
		return
	}
	m.eventsFailed.WithLabelValues(typ).Inc()
}

// EventCounts returns how many events of each type the log acknowledged.
func (m *Metrics) eventCounts() map[string]uint64 {
	out := make(map[string]uint64, len(m.byType))
	for t, c := range m.byType {
		out[t] = c.acked.Load()
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
