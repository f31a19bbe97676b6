package journal

import (
	"testing"
	"time"
)

func TestRates(t *testing.T) {
	var r rates
	t0 := time.Unix(1000, 0)
	steps := []struct {
		after  time.Duration
		counts map[string]uint64
		want   map[string]float64
	}{
		{0, map[string]uint64{"buy_item": 10}, map[string]float64{}},
		{500 * time.Millisecond, map[string]uint64{"buy_item": 20}, map[string]float64{}},
		{2 * time.Second, map[string]uint64{"buy_item": 30, "signup": 4}, map[string]float64{"buy_item": 10, "signup": 2}},
		{2500 * time.Millisecond, map[string]uint64{"buy_item": 99}, map[string]float64{"buy_item": 10, "signup": 2}},
		{4 * time.Second, map[string]uint64{"buy_item": 99, "signup": 4}, map[string]float64{"buy_item": 34.5}},
	}
	for i, s := range steps {
		got := r.sample(t0.Add(s.after), s.counts)
		if len(got) != len(s.want) {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Errorf("step %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
}
