package api

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics of requests.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// byRoute holds each route's latency observer and request counters
	// (route pattern -> *routeMetrics), made on a route's first request.
	byRoute sync.Map
}

// routeMetrics are one route's latency histogram and its request counters
// by status code.
type routeMetrics struct {
	route   string
	latency prometheus.Observer
	// codes are the request counters by status code - 100, each made on
	// its code's first request, so that /metrics shows only codes seen and
	// a request skips the label lookup.
	codes [500]atomic.Pointer[prometheus.Counter]
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "questlog_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "questlog_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern, from the first byte read to the last byte written.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observeRequest counts and times one request.
func (m *metrics) observeRequest(route string, code int, d time.Duration) {
	rm, ok := m.byRoute.Load(route)
	if !ok {
		rm, _ = m.byRoute.LoadOrStore(route, &routeMetrics{route: route, latency: m.latency.WithLabelValues(route)})
	}
	r := rm.(*routeMetrics)
	if code == 0 {
		code = 200
	}
	if code >= 100 && code < 600 {
		c := r.codes[code-100].Load()
		if c == nil {
			child := m.requests.WithLabelValues(route, strconv.Itoa(code))
			c = &child
			r.codes[code-100].Store(c)
		}
		(*c).Inc()
	} else {
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	}
	r.latency.Observe(d.Seconds())
}
