package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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
