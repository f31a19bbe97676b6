package main

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// stampKey names one stamp in the lake: the stamp player's index (its
// item is stamp<player>) and the gold its buy left (gold_after). Each buy
// of a stamp costs 1 gold, so a player's gold_after values are distinct.
type stampKey struct {
	player int
	gold   int64
}

// stamp is one acknowledged stamp.
type stamp struct {
	stampKey
	sent, acked time.Time
}

// tracker keeps the stamps sent and what the observers saw, each side
// written by its own goroutine; the latencies are joined at the end.
type tracker struct {
	mu       sync.Mutex
	start    map[int]int64 // each stamp player's gold before its first stamp
	stamps   []stamp
	failed   int                    // stamps answered other than 2xx, or not at all
	query    map[stampKey]time.Time // first answer of a query poll that held the stamp
	dashFrom map[int][]time.Time    // [player][k-1]: first time the dashboard counted k of its stamps
}

func newTracker() *tracker {
	return &tracker{start: map[int]int64{}, query: map[stampKey]time.Time{}, dashFrom: map[int][]time.Time{}}
}

func (t *tracker) addPlayer(player int, gold int64) {
	t.mu.Lock()
	t.start[player] = gold
	t.mu.Unlock()
}

func (t *tracker) acked(s stamp) {
	t.mu.Lock()
	t.stamps = append(t.stamps, s)
	t.mu.Unlock()
}

func (t *tracker) fail() {
	t.mu.Lock()
	t.failed++
	t.mu.Unlock()
}

// sawQuery records the stamps a query poll answered with at time at.
func (t *tracker) sawQuery(keys []stampKey, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if _, ok := t.query[k]; !ok {
			t.query[k] = at
		}
	}
}

// sawDashboard records the dashboard's count of each stamp player's
// stamps (items stamp<player> bought) at time at.
func (t *tracker) sawDashboard(counts map[int]int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, n := range counts {
		for int64(len(t.dashFrom[p])) < n {
			t.dashFrom[p] = append(t.dashFrom[p], at)
		}
	}
}

// dashboardSeen is when the dashboard first counted stamp s: a player's
// buys are in one partition (the topic is keyed by user), whose files the
// extract publishes in offset order, so its k-th stamp is on the page
// exactly when the page counts k of them; k is the gold the player had
// before its first stamp minus the stamp's gold_after.
func (t *tracker) dashboardSeen(s stampKey) (time.Time, bool) {
	k := t.start[s.player] - s.gold
	if k < 1 || k > int64(len(t.dashFrom[s.player])) {
		return time.Time{}, false
	}
	return t.dashFrom[s.player][k-1], true
}

// allSeen reports whether both observers have seen every acked stamp.
func (t *tracker) allSeen() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.stamps {
		if _, ok := t.query[s.stampKey]; !ok {
			return false
		}
		if _, ok := t.dashboardSeen(s.stampKey); !ok {
			return false
		}
	}
	return true
}

// unackedInLake counts the stamps a query saw that were not acknowledged.
func (t *tracker) unackedInLake() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	acked := make(map[stampKey]bool, len(t.stamps))
	for _, s := range t.stamps {
		acked[s.stampKey] = true
	}
	n := 0
	for k := range t.query {
		if !acked[k] {
			n++
		}
	}
	return n
}

// latencies joins the acks with what the observers saw: first seen − ack,
// +Inf for a stamp that was never seen.
func (t *tracker) latencies() (query, dash []float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.stamps {
		q, d := math.Inf(1), math.Inf(1)
		if at, ok := t.query[s.stampKey]; ok {
			q = at.Sub(s.acked).Seconds()
		}
		if at, ok := t.dashboardSeen(s.stampKey); ok {
			d = at.Sub(s.acked).Seconds()
		}
		query, dash = append(query, q), append(dash, d)
	}
	return query, dash
}

// percentile is the nearest-rank percentile (p in 0..100) of xs: the
// smallest value at least p% of xs are at or below. NaN for no values.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// seconds is a duration in seconds whose JSON is null when it is not
// finite (a stamp never seen makes every percentile at or past it +Inf).
type seconds float64

func (s seconds) MarshalJSON() ([]byte, error) {
	f := float64(s)
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return []byte("null"), nil
	}
	return json.Marshal(math.Round(f*1000) / 1000)
}

// String writes s for the table: "3.214", or ">30s" past the wait.
func (s seconds) format(wait time.Duration) string {
	f := float64(s)
	switch {
	case math.IsNaN(f):
		return "–"
	case math.IsInf(f, 1):
		return ">" + wait.String()
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// Latencies are one observer's latencies over a run's stamps.
type Latencies struct {
	P50    seconds `json:"p50_s"`
	P90    seconds `json:"p90_s"`
	P99    seconds `json:"p99_s"`
	Max    seconds `json:"max_s"`
	Seen   int     `json:"seen"`
	Unseen int     `json:"unseen"`
}

func summarize(xs []float64) Latencies {
	l := Latencies{
		P50: seconds(percentile(xs, 50)), P90: seconds(percentile(xs, 90)),
		P99: seconds(percentile(xs, 99)), Max: seconds(percentile(xs, 100)),
	}
	for _, x := range xs {
		if math.IsInf(x, 1) {
			l.Unseen++
		} else {
			l.Seen++
		}
	}
	return l
}
