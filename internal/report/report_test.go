package report_test

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/golden"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
	"github.com/questlog/questlog/internal/report"
)

// sent is the game as the test saw it go by, event by event.
type sent struct {
	events    []event.Event
	byType    map[string]float64
	failed    map[string]float64
	bought    map[string]float64 // "item/quality" -> quantity
	goldSpent float64
	spentBy   map[string]float64
}

func record(w report.Window) (*sent, func(*event.Event)) {
	s := &sent{byType: map[string]float64{}, failed: map[string]float64{}, bought: map[string]float64{}, spentBy: map[string]float64{}}
	return s, func(ev *event.Event) {
		s.events = append(s.events, *ev)
		if (!w.Since.IsZero() && ev.Time.Before(w.Since)) || (!w.Until.IsZero() && !ev.Time.Before(w.Until)) {
			return
		}
		s.byType[ev.Type]++
		if ev.Status == event.StatusFailed {
			s.failed[ev.Error]++
			return
		}
		switch ev.Type {
		case event.TypeBuyItem:
			s.bought[ev.ItemType+"/"+ev.Quality] += float64(ev.Quantity.V)
			fallthrough
		case event.TypeCheckout:
			s.goldSpent += float64(ev.TotalPrice.V)
			s.spentBy[ev.User] += float64(ev.TotalPrice.V)
		}
	}
}

// funnel counts the funnel the way its note says, from the events sent.
func (s *sent) funnel(w report.Window) [3]float64 {
	in := func(ev *event.Event) bool {
		return ev.Status == event.StatusOK && (w.Since.IsZero() || !ev.Time.Before(w.Since)) && (w.Until.IsZero() || ev.Time.Before(w.Until))
	}
	signup, login := map[string]time.Time{}, map[string]time.Time{}
	bought := map[string]bool{}
	for i := range s.events { // events come in time order
		ev := &s.events[i]
		if !in(ev) || ev.User == "" {
			continue
		}
		_, signed := signup[ev.User]
		_, logged := login[ev.User]
		switch {
		case ev.Type == event.TypeSignup && !signed:
			signup[ev.User] = ev.Time
		case ev.Type == event.TypeLogin && signed && !logged:
			login[ev.User] = ev.Time
		case (ev.Type == event.TypeBuyItem || ev.Type == event.TypeCheckout) && logged:
			bought[ev.User] = true
		}
	}
	return [3]float64{float64(len(signup)), float64(len(login)), float64(len(bought))}
}

// guilds replays joins and leaves up to the window's end.
func (s *sent) guilds(w report.Window) map[string]float64 {
	member := map[string]string{}
	for _, ev := range s.events {
		if ev.Status != event.StatusOK || (!w.Until.IsZero() && !ev.Time.Before(w.Until)) {
			continue
		}
		switch ev.Type {
		case event.TypeJoinGuild:
			member[ev.User] = ev.Guild
		case event.TypeLeaveGuild:
			delete(member, ev.User)
		}
	}
	sizes := map[string]float64{}
	for _, g := range member {
		sizes[g]++
	}
	return sizes
}

func build(t *testing.T, cfg laketest.Config, layout laketest.Layout, w report.Window) (string, *sent, *report.Report) {
	t.Helper()
	ctx := context.Background()
	lake := filepath.Join(t.TempDir(), "lake")
	s, seen := record(w)
	if err := laketest.Build(ctx, lake, cfg, layout, seen); err != nil {
		t.Fatal(err)
	}
	db, err := query.Open(ctx, lake)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := report.Build(ctx, db, w, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return lake, s, r
}

func chart(t *testing.T, r *report.Report, id string) *report.Chart {
	t.Helper()
	for i := range r.Charts {
		if r.Charts[i].ID == id {
			return &r.Charts[i]
		}
	}
	t.Fatalf("no chart %s", id)
	return nil
}

// byCategory sums a one-series chart (or every series) by category.
func byCategory(c *report.Chart) map[string]float64 {
	m := map[string]float64{}
	for _, s := range c.Series {
		for i, v := range s.Values {
			m[c.Categories[i]] += v
		}
	}
	return m
}

func sum(c *report.Chart) float64 {
	var n float64
	for _, s := range c.Series {
		for _, v := range s.Values {
			n += v
		}
	}
	return n
}

func TestChartsAnswerWhatWasSent(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		cfg    laketest.Config
		layout laketest.Layout
		window report.Window
		empty  []string // charts that may be empty in the window
	}{
		{"whole lake", laketest.Config{Players: 60, Events: 4000, Seed: 3}, laketest.Layout{Partitions: 3}, report.Window{}, nil},
		{"window of the middle, type only in path", laketest.Config{Players: 30, Events: 3000, Seed: 5, Start: start, Span: time.Hour},
			laketest.Layout{Partitions: 2, TypeOnlyInPath: true},
			report.Window{Since: start.Add(10 * time.Minute), Until: start.Add(40 * time.Minute)},
			[]string{report.ChartFunnel}}, // every player signed up in the first minutes
		{"a day and more, coarse buckets", laketest.Config{Players: 80, Events: 3000, Seed: 9, Span: 30 * time.Hour}, laketest.Layout{}, report.Window{}, nil},
		{"a game that just started, buckets of seconds", laketest.Config{Players: 20, Events: 1500, Seed: 13, Span: 3 * time.Minute}, laketest.Layout{}, report.Window{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, want, r := build(t, tc.cfg, tc.layout, tc.window)
			var total float64
			for _, n := range want.byType {
				total += n
			}
			if got := r.Figures[0]; got.Label != "events" || got.Value != fmtCount(total) {
				t.Errorf("figure %v, want events %s", got, fmtCount(total))
			}

			epm := chart(t, r, report.ChartEventsPerMinute)
			minutes := bucketMinutes(t, epm)
			if got := sum(epm) * minutes; !near(got, total) {
				t.Errorf("events per minute × %g min sum to %g, sent %g", minutes, got, total)
			}
			for _, s := range epm.Series {
				if s.Name == "other" {
					continue
				}
				var n float64
				for _, v := range s.Values {
					n += v * minutes
				}
				if !near(n, want.byType[s.Name]) {
					t.Errorf("events of %s: %g, sent %g", s.Name, n, want.byType[s.Name])
				}
			}

			pur := chart(t, r, report.ChartPurchases)
			got := map[string]float64{}
			for _, s := range pur.Series {
				for i, v := range s.Values {
					if v != 0 {
						got[pur.Categories[i]+"/"+s.Name] = v
					}
				}
			}
			equalMaps(t, "purchases", got, want.bought)

			if got := sum(chart(t, r, report.ChartGoldSpent)); got != want.goldSpent {
				t.Errorf("gold spent over time sums to %g, sent %g", got, want.goldSpent)
			}
			equalMaps(t, "failures", byCategory(chart(t, r, report.ChartFailures)), want.failed)

			f := chart(t, r, report.ChartFunnel)
			if wf := want.funnel(tc.window); !slices.Equal(f.Series[0].Values, wf[:]) {
				t.Errorf("funnel %v, sent %v", f.Series[0].Values, wf)
			}
			equalMaps(t, "guild sizes", byCategory(chart(t, r, report.ChartGuilds)), want.guilds(tc.window))

			top := chart(t, r, report.ChartTopSpenders)
			players := make([]string, 0, len(want.spentBy))
			for p := range want.spentBy {
				players = append(players, p)
			}
			slices.SortFunc(players, func(a, b string) int {
				return cmp.Or(cmp.Compare(want.spentBy[b], want.spentBy[a]), strings.Compare(a, b))
			})
			players = players[:min(len(players), 15)]
			if !slices.Equal(top.Categories, players) {
				t.Errorf("top players %v, sent %v", top.Categories, players)
			}
			for i, p := range top.Categories {
				if top.Series[0].Values[i] != want.spentBy[p] {
					t.Errorf("%s spent %g, sent %g", p, top.Series[0].Values[i], want.spentBy[p])
				}
			}
			for _, c := range r.Charts {
				if c.Empty() && !slices.Contains(tc.empty, c.ID) {
					t.Errorf("chart %s is empty", c.ID)
				}
				if c.Title == "" || c.XLabel == "" || c.YLabel == "" {
					t.Errorf("chart %s lacks a title or an axis label: %q %q %q", c.ID, c.Title, c.XLabel, c.YLabel)
				}
			}
		})
	}
}

// bucketMinutes reads the bucket width off the time axis' first two labels.
func bucketMinutes(t *testing.T, c *report.Chart) float64 {
	t.Helper()
	if len(c.Categories) < 2 {
		return 1
	}
	layout := map[int]string{5: "15:04", 8: "15:04:05", 11: "01-02 15:04"}[len(c.Categories[0])]
	a, err1 := time.Parse(layout, c.Categories[0])
	b, err2 := time.Parse(layout, c.Categories[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("time labels %q %q", c.Categories[0], c.Categories[1])
	}
	return b.Sub(a).Minutes()
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

func equalMaps(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s: %g, sent %g", what, k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s: %g, but none sent", what, k, v)
		}
	}
}

func fmtCount(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func TestEmptyLake(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "report.html")
	r, err := report.WriteFile(ctx, filepath.Join(t.TempDir(), "no-lake"), out, report.Window{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Charts {
		if !c.Empty() {
			t.Errorf("chart %s has data in an empty lake", c.ID)
		}
	}
	html, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(html), "No data yet."); n != len(r.Charts) {
		t.Errorf("%d charts say there is no data, want %d", n, len(r.Charts))
	}
}

// The report must open with no network: nothing but inline data is loaded.
func TestReportFileIsSelfContained(t *testing.T) {
	ctx := context.Background()
	lake := filepath.Join(t.TempDir(), "lake")
	if err := laketest.Build(ctx, lake, laketest.Config{Events: 800}, laketest.Layout{}, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report.html")
	r, err := report.WriteFile(ctx, lake, out, report.Window{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if n := strings.Count(html, "<svg"); n != len(r.Charts) {
		t.Errorf("%d inline SVGs for %d charts", n, len(r.Charts))
	}
	if n := strings.Count(html, "<table>"); n != len(r.Charts) {
		t.Errorf("%d tables for %d charts", n, len(r.Charts))
	}
	for _, re := range []string{`(?i)\b(src|href)\s*=\s*["']?(?:[a-z]+:)?//`, `(?i)<script\b[^>]*\bsrc`, `(?i)@import|url\(`} {
		if m := regexp.MustCompile(re).FindString(html); m != "" {
			t.Errorf("the report loads something from elsewhere: %q", m)
		}
	}
	for _, link := range regexp.MustCompile(`(?i)<link\b[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(link, `href="data:`) {
			t.Errorf("the report links to something: %s", link)
		}
	}
	if strings.Contains(html, "<script") {
		t.Error("the static report carries a script")
	}
}

func TestWindowIsChecked(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		since, until string
		want         report.Window
		err          string
	}{
		{"", "", report.Window{}, ""},
		{"2026-01-02", "2026-01-03T00:00:00Z", report.Window{Since: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}, ""},
		{"90m", "", report.Window{Since: now.Add(-90 * time.Minute)}, ""},
		{"2026-01-02 15:04", "2026-01-02T16:04:00+01:00", report.Window{}, "is not before"},
		{"yesterday", "", report.Window{}, "--since"},
		{"", "-5m", report.Window{}, "--until"},
	} {
		t.Run(tc.since+" to "+tc.until, func(t *testing.T) {
			w, err := report.ParseWindow(tc.since, tc.until, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || !w.Since.Equal(tc.want.Since) || !w.Until.Equal(tc.want.Until) {
				t.Errorf("window %v %v, want %v", w, err, tc.want)
			}
		})
	}
}

var svgElement = regexp.MustCompile(`(?s)<svg.*?</svg>`)

// The page's skeleton (everything but the drawings) is a golden file.
func TestReportHTMLSkeleton(t *testing.T) {
	lake, _, r := build(t, laketest.Config{Players: 12, Events: 600, Seed: 11}, laketest.Layout{Quarantine: 2}, report.Window{})
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(buf.String(), lake, "LAKE")
	got = svgElement.ReplaceAllString(got, "<svg>…</svg>")
	// The stylesheet has its own file; the skeleton is the markup.
	got = regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(got, "<style>…</style>")
	path := filepath.Join("testdata", "report.golden.html")
	want := golden.Want(t, path, []byte(got))
	if got != string(want) {
		t.Errorf("report skeleton differs from %s (run go test -update after checking the change):\n%s", path, firstDiff(got, string(want)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got:  " + al[i] + "\n want: " + bl[i]
		}
	}
	return "lengths differ"
}

// lineStroke is a series' line in go-analyze's SVG: 2 units wide (legend
// marks are 3, grid and axis lines 1).
var lineStroke = regexp.MustCompile(`<path d="([^"]*)" style="stroke-width:2;`)

// A last bucket that the data only reaches into holds a part of a bucket's
// events: drawn, it would read as a drop. The lines stop before it.
func TestStillFillingBucketIsNotDrawnAsADrop(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	cfg := laketest.Config{Players: 40, Events: 6001, Seed: 7, Start: start, Span: 30 * time.Minute} // an event every 0.3 s, the last at 10:30:00
	for _, tc := range []struct {
		name    string
		until   time.Time
		last    string // the last bucket
		partial bool
	}{
		{"window ends mid-minute", start.Add(20*time.Minute + 10*time.Second), "10:20", true},
		{"window ends on the minute", start.Add(20 * time.Minute), "10:19", false},
		// The game's last event is at 10:30:00 sharp: the lake reaches no
		// further into that minute.
		{"lake ends at the start of a minute", time.Time{}, "10:30", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, r := build(t, cfg, laketest.Layout{}, report.Window{Until: tc.until})
			var page bytes.Buffer
			if err := r.WriteHTML(&page); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{report.ChartEventsPerMinute, report.ChartGoldSpent} {
				c := chart(t, r, id)
				n := len(c.Categories)
				if c.Categories[n-1] != tc.last || c.Time.Partial != tc.partial {
					t.Fatalf("%s: last bucket %s, still filling %v; want %s, %v", id, c.Categories[n-1], c.Time.Partial, tc.last, tc.partial)
				}
				svg, err := c.SVG()
				if err != nil {
					t.Fatal(err)
				}
				want := n // points on each line: one per bucket drawn
				if tc.partial {
					want--
				}
				lines := lineStroke.FindAllStringSubmatch(string(svg), -1)
				if len(lines) != len(c.Series) {
					t.Fatalf("%s: %d lines drawn for %d series", id, len(lines), len(c.Series))
				}
				for i, l := range lines {
					if got := strings.Count(l[1], "M") + strings.Count(l[1], "L"); got != want {
						t.Errorf("%s: the line of %s has %d points, want %d of %d buckets", id, c.Series[i].Name, got, want, n)
					}
				}
				noted := strings.Contains(c.Note, "The last bucket, "+tc.last+", is still filling")
				marked := strings.Contains(page.String(), "<th>"+tc.last+" (still filling)</th>")
				if noted != tc.partial || marked != tc.partial {
					t.Errorf("%s: the note says it is still filling: %v, the table: %v; want %v (note %q)", id, noted, marked, tc.partial, c.Note)
				}
			}
		})
	}
}
