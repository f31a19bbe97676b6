package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/report"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{
		{0, 1}, {10, 1}, {11, 2}, {50, 5}, {90, 9}, {99, 10}, {100, 10},
	} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("percentile(1..10, %g) = %g, want %g", tc.p, got, tc.want)
		}
	}
	if !slices.Equal(xs, []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}) {
		t.Error("percentile sorted its argument")
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing is not NaN")
	}
	// 200 values 0..199: p99 is the 198th. Two never seen (1%) leave it
	// finite; a third makes it infinite.
	var lat []float64
	for i := range 200 {
		lat = append(lat, float64(i))
	}
	lat[7] = math.Inf(1)
	if got := percentile(lat, 99); got != 198 {
		t.Errorf("p99 with one unseen = %g, want 198", got)
	}
	lat[8] = math.Inf(1)
	if got := percentile(lat, 99); got != 199 {
		t.Errorf("p99 with two unseen = %g, want 199", got)
	}
	lat[9] = math.Inf(1)
	if got := percentile(lat, 99); !math.IsInf(got, 1) {
		t.Errorf("p99 with three unseen of 200 = %g, want +Inf", got)
	}
	l := summarize(lat)
	if l.Seen != 197 || l.Unseen != 3 || l.P50 != 102 || !math.IsInf(float64(l.Max), 1) {
		t.Errorf("summarize = %+v", l)
	}
	raw, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"p50_s":102,"p90_s":182,"p99_s":null,"max_s":null,"seen":197,"unseen":3}`; string(raw) != want {
		t.Errorf("JSON %s, want %s", raw, want)
	}
	if got := seconds(math.Inf(1)).format(30 * time.Second); got != ">30s" {
		t.Errorf("format(+Inf) = %q", got)
	}
	if got := seconds(1.23456).format(time.Second); got != "1.23" {
		t.Errorf("format(1.23456) = %q", got)
	}
}

func TestParseCompare(t *testing.T) {
	got := parseCompare(";--max-age 2s  --refresh 1s ; defaults;--max-age 1s")
	want := []string{"", "--max-age 2s --refresh 1s", "", "--max-age 1s"}
	if !slices.Equal(got, want) {
		t.Errorf("parseCompare = %q, want %q", got, want)
	}
}

func TestStampPlayer(t *testing.T) {
	for _, tc := range []struct {
		item string
		p    int
		ok   bool
	}{
		{"stamp0", 0, true}, {"stamp12", 12, true}, {"stamp", 0, false}, {"stamp01", 0, false},
		{"stamp-1", 0, false}, {"sword", 0, false}, {"stamp1x", 0, false},
	} {
		p, ok := stampPlayer(tc.item)
		if p != tc.p || ok != tc.ok {
			t.Errorf("stampPlayer(%q) = %d, %v", tc.item, p, ok)
		}
	}
	if p, ok := stampPlayer(stampItem(7)); p != 7 || !ok {
		t.Errorf("stampPlayer(stampItem(7)) = %d, %v", p, ok)
	}
}

// TestPurchases reads the table of a page rendered by the report package's
// own template, so a change to the page shows here.
func TestPurchases(t *testing.T) {
	r := &report.Report{
		Lake: "lake", GeneratedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Charts: []report.Chart{
			{ID: report.ChartEventsPerMinute, Title: "Events", Kind: report.Line, Categories: []string{"10:00"},
				Series: []report.Series{{Name: "stamp0", Values: []float64{99}}}},
			{ID: report.ChartPurchases, Title: "Purchases", Kind: report.StackedBar, XLabel: "item type", YLabel: "items bought",
				Categories: []string{"potion", "stamp1", "stamp0", "ring"},
				Series: []report.Series{
					{Name: "common", Values: []float64{12345, 1234, 7, 0}},
					{Name: "rare", Values: []float64{3, 0, 0, 2}},
				}},
		},
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	got, err := purchases(page.String(), "common")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"potion": 12345, "stamp1": 1234, "stamp0": 7}
	if !mapsEqual(got, want) {
		t.Errorf("purchases common = %v, want %v", got, want)
	}
	if got, err := purchases(page.String(), "rare"); err != nil || !mapsEqual(got, map[string]int64{"potion": 3, "ring": 2}) {
		t.Errorf("purchases rare = %v, %v", got, err)
	}
	if got := stampCounts(want); !mapsEqual(got, map[int]int64{1: 1234, 0: 7}) {
		t.Errorf("stampCounts = %v", got)
	}
	// Nothing bought in the quality, or nothing bought at all: no counts.
	if got, err := purchases(page.String(), "epic"); err != nil || len(got) != 0 {
		t.Errorf("purchases epic = %v, %v", got, err)
	}
	r.Charts[1].Categories, r.Charts[1].Series = nil, nil
	page.Reset()
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if got, err := purchases(page.String(), "common"); err != nil || len(got) != 0 {
		t.Errorf("purchases of an empty chart = %v, %v", got, err)
	}
	if _, err := purchases("<html>no charts</html>", "common"); err == nil {
		t.Error("a page without the purchases chart was read")
	}
}

func mapsEqual[K comparable](a, b map[K]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestStampCatalog(t *testing.T) {
	raw, err := stampCatalog(3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := game.LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	def := game.DefaultCatalog()
	if cat.DefaultQuality() != def.DefaultQuality() {
		t.Errorf("default quality %s, want %s", cat.DefaultQuality(), def.DefaultQuality())
	}
	// Every built-in entry at its price (the players scenario buys them),
	// and the stamps at 1 gold in the default quality.
	for _, e := range def.Entries() {
		if p, err := cat.Price(e.ItemType, e.Quality); err != nil || p != e.Price {
			t.Errorf("%s %s: %d, %v; want %d", e.Quality, e.ItemType, p, err, e.Price)
		}
	}
	for p := range 3 {
		if price, err := cat.Price(stampItem(p), def.DefaultQuality()); err != nil || price != 1 {
			t.Errorf("%s: %d, %v", stampItem(p), price, err)
		}
	}
	if want := len(def.Entries()) + 3*len(def.Qualities()); len(cat.Entries()) != want {
		t.Errorf("%d entries, want %d", len(cat.Entries()), want)
	}
}

func TestTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tr := newTracker()
	tr.addPlayer(0, 1000)
	// Player 0's stamps leave 999, 998, 997; player 1 (starting at 500)
	// one stamp at 499.
	tr.acked(stamp{stampKey: stampKey{0, 999}, acked: at(0)})
	tr.acked(stamp{stampKey: stampKey{0, 998}, acked: at(1)})
	tr.acked(stamp{stampKey: stampKey{0, 997}, acked: at(2)})
	tr.addPlayer(1, 500)
	tr.acked(stamp{stampKey: stampKey{1, 499}, acked: at(3)})
	if tr.allSeen() {
		t.Fatal("all seen before any observation")
	}
	// The query sees the first two at 4 s, the third and a stamp whose
	// answer was lost at 5 s, player 1's at 6 s and again later.
	tr.sawQuery([]stampKey{{0, 999}, {0, 998}}, at(4))
	tr.sawQuery([]stampKey{{0, 999}, {0, 998}, {0, 997}, {0, 996}}, at(5))
	tr.sawQuery([]stampKey{{1, 499}}, at(6))
	tr.sawQuery([]stampKey{{1, 499}}, at(9))
	// The dashboard counts 2 of player 0's at 4.5 s, 3 at 7 s; player 1's
	// one at 8 s.
	tr.sawDashboard(map[int]int64{}, at(4.2))
	tr.sawDashboard(map[int]int64{0: 2}, at(4.5))
	tr.sawDashboard(map[int]int64{0: 2}, at(5.5))
	if tr.allSeen() {
		t.Fatal("all seen with the dashboard behind")
	}
	tr.sawDashboard(map[int]int64{0: 3}, at(7))
	tr.sawDashboard(map[int]int64{0: 4, 1: 1}, at(8))
	if !tr.allSeen() {
		t.Fatal("not all seen")
	}
	q, d := tr.latencies()
	if want := []float64{4, 3, 3, 3}; !slices.Equal(q, want) {
		t.Errorf("query latencies %v, want %v", q, want)
	}
	if want := []float64{4.5, 3.5, 5, 5}; !slices.Equal(d, want) {
		t.Errorf("dashboard latencies %v, want %v", d, want)
	}
	if n := tr.unackedInLake(); n != 1 {
		t.Errorf("unacked in lake %d, want 1", n)
	}
	// A stamp nobody saw is infinitely late.
	tr.acked(stamp{stampKey: stampKey{1, 498}, acked: at(10)})
	q, d = tr.latencies()
	if !math.IsInf(q[4], 1) || !math.IsInf(d[4], 1) || tr.allSeen() {
		t.Errorf("unseen stamp: query %g, dashboard %g", q[4], d[4])
	}
}

func TestPollSummary(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l pollLog
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// Dated at their start, then one dated at its answer.
	l.add(ms(0), ms(0), ms(50), nil)
	l.add(ms(100), ms(100), ms(150), nil)
	l.add(ms(150), ms(650), ms(650), os.ErrNotExist)
	p := l.summary()
	if p.Polls != 3 || p.Errors != 1 || p.MeanMs != 325 || p.MaxGap != 550 || p.TookP50Ms != 50 || p.TookMaxMs != 500 {
		t.Errorf("summary = %+v", p)
	}
}
