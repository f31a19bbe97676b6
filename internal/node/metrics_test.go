package node

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/questlog/questlog/internal/lake"
)

// The lake's usage in /metrics comes from the storage's listing, measured
// at most once per interval, whatever the scrapes.
func TestLakeUsageMetrics(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("events/event_type=buy_item/event_date=2026-01-01/part-0-0-9.parquet", 100)
	write("events/event_type=buy_item/event_date=2026-01-02/part-0-10-19.parquet", 200)
	write("events/event_type=login/event_date=2026-01-02/part-1-0-4.parquet", 50)
	write("quarantine/part-1-5-5.parquet", 7)
	write("_checkpoints/events.json", 1000) // not data

	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	u := newLakeUsage(lake.Dir(dir), time.Minute, func() time.Time { return now })
	reg := prometheus.NewRegistry()
	reg.MustRegister(u)
	gather := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += "{" + l.GetName() + "=" + l.GetValue() + "}"
				}
				got[key] = m.GetGauge().GetValue()
			}
		}
		return got
	}
	want := func(want map[string]float64) {
		t.Helper()
		got := gather()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if _, ok := got["questlog_lake_usage_age_seconds"]; !ok {
			t.Error("no questlog_lake_usage_age_seconds")
		}
	}
	first := map[string]float64{
		"questlog_lake_bytes{dataset=events}":                 350,
		"questlog_lake_bytes{dataset=quarantine}":             7,
		"questlog_lake_files{dataset=events}":                 3,
		"questlog_lake_files{dataset=quarantine}":             1,
		"questlog_lake_event_type_bytes{event_type=buy_item}": 300,
		"questlog_lake_event_type_bytes{event_type=login}":    50,
		"questlog_lake_event_type_files{event_type=buy_item}": 2,
		"questlog_lake_event_type_files{event_type=login}":    1,
		"questlog_lake_days":                                  2,
		"questlog_lake_oldest_day_timestamp_seconds":          float64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()),
		"questlog_lake_usage_errors":                          0,
	}
	want(first)

	// Within the interval, scrapes get the last measure.
	if err := os.RemoveAll(filepath.Join(dir, "events", "event_type=buy_item", "event_date=2026-01-01")); err != nil {
		t.Fatal(err)
	}
	want(first)

	// Past it, the lake is listed again.
	now = now.Add(time.Minute)
	second := maps.Clone(first)
	second["questlog_lake_bytes{dataset=events}"] = 250
	second["questlog_lake_files{dataset=events}"] = 2
	second["questlog_lake_event_type_bytes{event_type=buy_item}"] = 200
	second["questlog_lake_event_type_files{event_type=buy_item}"] = 1
	second["questlog_lake_days"] = 1
	second["questlog_lake_oldest_day_timestamp_seconds"] = float64(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix())
	want(second)
}
