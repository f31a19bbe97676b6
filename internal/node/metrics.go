package node

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/stream"
)

// brokerUsage exports what the embedded broker holds, measured at each
// scrape (Broker.Usage reads directory entries, not files).
type brokerUsage struct {
	broker                     *stream.Broker
	bytes, files, start, end   *prometheus.Desc
	retainedBytes, usageErrors *prometheus.Desc
}

func newBrokerUsage(b *stream.Broker) *brokerUsage {
	return &brokerUsage{
		broker: b,
		bytes:  prometheus.NewDesc("questlog_broker_bytes", "Bytes of every file in the embedded broker's directory (logs, indexes, state).", nil, nil),
		files:  prometheus.NewDesc("questlog_broker_files", "Files in the embedded broker's directory.", nil, nil),
		start: prometheus.NewDesc("questlog_broker_log_start_offset",
			"A partition's first retained offset: the records below it were deleted by --topic-retention.", []string{"partition"}, nil),
		end: prometheus.NewDesc("questlog_broker_log_end_offset", "A partition's end offset (the next record's).", []string{"partition"}, nil),
		retainedBytes: prometheus.NewDesc("questlog_broker_retained_bytes",
			"Bytes of a partition's retained record batches.", []string{"partition"}, nil),
		usageErrors: prometheus.NewDesc("questlog_broker_usage_errors", "1 when the broker's usage could not be measured at this scrape.", nil, nil),
	}
}

func (u *brokerUsage) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.bytes, u.files, u.start, u.end, u.retainedBytes, u.usageErrors} {
		ch <- d
	}
}

func (u *brokerUsage) Collect(ch chan<- prometheus.Metric) {
	us, err := u.broker.Usage()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(u.usageErrors, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(u.usageErrors, prometheus.GaugeValue, 0)
	ch <- prometheus.MustNewConstMetric(u.bytes, prometheus.GaugeValue, float64(us.Bytes))
	ch <- prometheus.MustNewConstMetric(u.files, prometheus.GaugeValue, float64(us.Files))
	for _, p := range us.Partitions {
		part := strconv.Itoa(int(p.Partition))
		ch <- prometheus.MustNewConstMetric(u.start, prometheus.GaugeValue, float64(p.Start), part)
		ch <- prometheus.MustNewConstMetric(u.end, prometheus.GaugeValue, float64(p.End), part)
		ch <- prometheus.MustNewConstMetric(u.retainedBytes, prometheus.GaugeValue, float64(p.Bytes), part)
	}
}

// lakeUsageEvery is how long a measure of the lake serves scrapes: listing
// a lake (an object store's especially) costs more than a scrape should.
const lakeUsageEvery = 30 * time.Second

// lakeUsage exports what the lake's data files take, measured from the
// storage's listing at most once per interval (scrapes in between get the
// last measure).
type lakeUsage struct {
	st    lake.Storage
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	measured time.Time
	last     lake.Usage
	ok       bool // last is a measure
	failed   bool // the latest attempt failed

	bytes, files, typeBytes, typeFiles, days, oldest, age, usageErrors *prometheus.Desc
}

func newLakeUsage(st lake.Storage, every time.Duration, now func() time.Time) *lakeUsage {
	return &lakeUsage{
		st: st, every: every, now: now,
		bytes: prometheus.NewDesc("questlog_lake_bytes",
			"Bytes of the lake's data files (published, replaced by a merge, retired, pending), by dataset: events or quarantine.", []string{"dataset"}, nil),
		files: prometheus.NewDesc("questlog_lake_files", "The lake's data files, by dataset: events or quarantine.", []string{"dataset"}, nil),
		typeBytes: prometheus.NewDesc("questlog_lake_event_type_bytes",
			"Bytes of the lake's events files of an event type.", []string{"event_type"}, nil),
		typeFiles: prometheus.NewDesc("questlog_lake_event_type_files", "The lake's events files of an event type.", []string{"event_type"}, nil),
		days:      prometheus.NewDesc("questlog_lake_days", "Days (event_date folders) the lake's events files span.", nil, nil),
		oldest: prometheus.NewDesc("questlog_lake_oldest_day_timestamp_seconds",
			"Start (UTC) of the oldest day the lake holds: --lake-retention keeps it above now minus the retention and a day.", nil, nil),
		age: prometheus.NewDesc("questlog_lake_usage_age_seconds",
			"How long ago the lake's usage shown was measured (it is measured at most every 30s).", nil, nil),
		usageErrors: prometheus.NewDesc("questlog_lake_usage_errors", "1 when the latest measure of the lake failed (the values are the last good measure's).", nil, nil),
	}
}

func (u *lakeUsage) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.bytes, u.files, u.typeBytes, u.typeFiles, u.days, u.oldest, u.age, u.usageErrors} {
		ch <- d
	}
}

// measure returns the last measure, measuring again when it is older than
// the interval; ok is false while no measure ever succeeded.
func (u *lakeUsage) measure() (us lake.Usage, at time.Time, ok, failed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.ok || u.now().Sub(u.measured) >= u.every {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := lake.MeasureUsage(ctx, u.st)
		// A failure is tried again at the next interval, not at every scrape.
		u.measured, u.failed = u.now(), err != nil
		if err == nil {
			u.last, u.ok = got, true
		}
	}
	return u.last, u.measured, u.ok, u.failed
}

func (u *lakeUsage) Collect(ch chan<- prometheus.Metric) {
	us, at, ok, failed := u.measure()
	ch <- prometheus.MustNewConstMetric(u.usageErrors, prometheus.GaugeValue, b2f(failed))
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(u.age, prometheus.GaugeValue, u.now().Sub(at).Seconds())
	for _, d := range lake.DataDirs() {
		c := us.Datasets[d]
		ch <- prometheus.MustNewConstMetric(u.bytes, prometheus.GaugeValue, float64(c.Bytes), d)
		ch <- prometheus.MustNewConstMetric(u.files, prometheus.GaugeValue, float64(c.Files), d)
	}
	types := make([]string, 0, len(us.Types))
	for t := range us.Types {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		ch <- prometheus.MustNewConstMetric(u.typeBytes, prometheus.GaugeValue, float64(us.Types[t].Bytes), t)
		ch <- prometheus.MustNewConstMetric(u.typeFiles, prometheus.GaugeValue, float64(us.Types[t].Files), t)
	}
	ch <- prometheus.MustNewConstMetric(u.days, prometheus.GaugeValue, float64(us.Days))
	if day, err := time.Parse(time.DateOnly, us.Oldest); err == nil {
		ch <- prometheus.MustNewConstMetric(u.oldest, prometheus.GaugeValue, float64(day.Unix()))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
