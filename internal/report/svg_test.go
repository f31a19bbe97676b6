package report_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/report"
	"github.com/questlog/questlog/internal/report/browsertest"
)

// drawnText is one text of a drawing, where the browser puts it: a box on
// its baseline, turned about a point when the text is turned.
type drawnText struct {
	text    string
	x, y    float64 // the start of the baseline
	size    float64 // font size
	width   float64
	angle   float64 // degrees, clockwise
	cx, cy  float64 // what it turns about
	corners [4][2]float64
}

var (
	textElement = regexp.MustCompile(`<text ([^>]*)>(?:<title>[^<]*</title>)?([^<]*)</text>`)
	attribute   = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)
	fontSize    = regexp.MustCompile(`font-size:([0-9.]+)px`)
	rotation    = regexp.MustCompile(`rotate\(([-0-9.]+),([-0-9.]+),([-0-9.]+)\)`)
	viewBox     = regexp.MustCompile(`viewBox="0 0 ([0-9.]+) ([0-9.]+)"`)
)

// drawnTexts reads the texts of an SVG drawing. A text is as wide as its
// textLength, which a browser keeps to in whatever font it draws with;
// without one, as wide as DejaVu Sans' digits (0.64 em, the widest of the
// usual sans-serif fonts) times its runes.
func drawnTexts(t *testing.T, svg string) []drawnText {
	t.Helper()
	var out []drawnText
	for _, m := range textElement.FindAllStringSubmatch(svg, -1) {
		attrs := map[string]string{}
		for _, a := range attribute.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = a[2]
		}
		d := drawnText{text: strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'").Replace(m[2])}
		var err error
		num := func(s string) float64 {
			v, e := strconv.ParseFloat(s, 64)
			if e != nil && err == nil {
				err = fmt.Errorf("%q: %w", s, e)
			}
			return v
		}
		d.x, d.y = num(attrs["x"]), num(attrs["y"])
		if f := fontSize.FindStringSubmatch(attrs["style"]); f != nil {
			d.size = num(f[1])
		} else {
			t.Fatalf("text %q has no font size: %s", d.text, m[0])
		}
		d.width = 0.64 * d.size * float64(utf8.RuneCountInString(d.text))
		if l, ok := attrs["textLength"]; ok {
			d.width = num(l)
		}
		if r := rotation.FindStringSubmatch(attrs["transform"]); r != nil {
			d.angle, d.cx, d.cy = num(r[1]), num(r[2]), num(r[3])
		}
		if err != nil {
			t.Fatalf("text %s: %v", m[0], err)
		}
		out = append(out, d.placed())
	}
	return out
}

// placed works out the corners: the glyphs of digits and lower case letters
// rise about 0.8 em above the baseline and fall 0.2 em below it.
func (d drawnText) placed() drawnText {
	top, bottom := d.y-0.8*d.size, d.y+0.2*d.size
	box := [4][2]float64{{d.x, top}, {d.x + d.width, top}, {d.x + d.width, bottom}, {d.x, bottom}}
	sin, cos := math.Sincos(d.angle * math.Pi / 180)
	for i, p := range box {
		dx, dy := p[0]-d.cx, p[1]-d.cy
		if d.angle != 0 {
			box[i] = [2]float64{d.cx + dx*cos - dy*sin, d.cy + dx*sin + dy*cos}
		}
	}
	d.corners = box
	return d
}

// overlap reports whether two texts' boxes overlap by more than half a unit
// (boxes that only touch do not), by the separating axis test: two convex
// shapes are apart if, along one of their edges' normals, their shadows are.
func overlap(a, b drawnText) bool {
	for _, box := range [][4][2]float64{a.corners, b.corners} {
		for i := range 2 {
			ex, ey := box[i+1][0]-box[i][0], box[i+1][1]-box[i][1]
			n := math.Hypot(ex, ey)
			if n == 0 {
				continue
			}
			nx, ny := -ey/n, ex/n
			amin, amax := shadow(a.corners, nx, ny)
			bmin, bmax := shadow(b.corners, nx, ny)
			if amax-bmin <= 0.5 || bmax-amin <= 0.5 {
				return false
			}
		}
	}
	return true
}

func shadow(box [4][2]float64, nx, ny float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range box {
		v := p[0]*nx + p[1]*ny
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// checkLegible fails the test for every two texts of a drawing that overlap
// and every text that reaches out of the w×h drawing.
func checkLegible(t *testing.T, name string, w, h float64, texts []drawnText) {
	t.Helper()
	if len(texts) < 4 {
		t.Errorf("%s: %d texts, want a title and axis labels at least", name, len(texts))
	}
	for i, a := range texts {
		for _, p := range a.corners {
			if p[0] < -0.5 || p[0] > w+0.5 || p[1] < -0.5 || p[1] > h+0.5 {
				t.Errorf("%s: %q reaches out of the %gx%g drawing: %v", name, a.text, w, h, a.corners)
				break
			}
		}
		for _, b := range texts[i+1:] {
			if overlap(a, b) {
				t.Errorf("%s: %q at (%g,%g) and %q at (%g,%g) overlap", name, a.text, a.x, a.y, b.text, b.x, b.y)
			}
		}
	}
}

// checkSVG checks the texts of a drawing where drawnTexts places them.
func checkSVG(t *testing.T, name string, svg []byte) {
	t.Helper()
	m := viewBox.FindStringSubmatch(string(svg))
	if m == nil {
		t.Fatalf("%s: no viewBox", name)
	}
	w, _ := strconv.ParseFloat(m[1], 64)
	h, _ := strconv.ParseFloat(m[2], 64)
	checkLegible(t, name, w, h, drawnTexts(t, string(svg)))
}

// Every chart of a report over a lake with large values: thousands of
// failures, players who spent thousands of gold.
func TestChartLabelsDoNotOverlap(t *testing.T) {
	_, _, r := build(t, laketest.Config{Players: 25, Events: 20000, Seed: 7, Guilds: 20}, laketest.Layout{}, report.Window{})
	if f := chart(t, r, report.ChartFailures); f.Series[0].Values[0] < 5000 {
		t.Fatalf("the lake's top failure reason counts %g, want thousands", f.Series[0].Values[0])
	}
	for _, c := range r.Charts {
		svg, err := c.SVG()
		if err != nil {
			t.Fatal(err)
		}
		checkSVG(t, c.ID, svg)
	}
	t.Run("in headless Chromium", func(t *testing.T) {
		// Where Chromium draws the texts, in the font it has.
		b := browsertest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		page := filepath.Join(browsertest.ArtifactDir(t), "report.html")
		var html bytes.Buffer
		if err := r.WriteHTML(&html); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(page, html.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := b.Open(ctx, "file://"+page)
		if err != nil {
			t.Fatal(err)
		}
		var drawings []struct {
			ID            string
			Width, Height float64
			Texts         []struct {
				Text, Transform   string
				X, Y, Size, Width float64
				Length            *float64 // textLength, where set
			}
		}
		if err := p.Eval(ctx, chromiumTextsJS, &drawings); err != nil {
			t.Fatal(err)
		}
		if len(drawings) != len(r.Charts) {
			t.Errorf("%d drawings on the page, want %d", len(drawings), len(r.Charts))
		}
		for _, d := range drawings {
			var texts []drawnText
			for _, e := range d.Texts {
				if e.Length != nil && math.Abs(e.Width-*e.Length) > 2 { // glyphs may overhang a little
					t.Errorf("%s: Chromium draws %q %g wide, not its textLength %g", d.ID, e.Text, e.Width, *e.Length)
				}
				x := drawnText{text: e.Text, x: e.X, y: e.Y, size: e.Size, width: e.Width}
				if r := rotation.FindStringSubmatch(e.Transform); r != nil {
					x.angle, _ = strconv.ParseFloat(r[1], 64)
					x.cx, _ = strconv.ParseFloat(r[2], 64)
					x.cy, _ = strconv.ParseFloat(r[3], 64)
				}
				texts = append(texts, x.placed())
			}
			checkLegible(t, d.ID+" in Chromium", d.Width, d.Height, texts)
		}
		shot := filepath.Join(browsertest.ArtifactDir(t), "report.png")
		if err := p.Screenshot(ctx, shot); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", shot)
	})
}

// chromiumTextsJS reads every chart's texts as Chromium lays them out: the
// width is what it draws (getBBox), before the text's own rotation.
const chromiumTextsJS = `[...document.querySelectorAll("section.chart svg")].map(svg => ({
	id: svg.closest("section").id, width: svg.viewBox.baseVal.width, height: svg.viewBox.baseVal.height,
	texts: [...svg.querySelectorAll("text")].map(t => ({
		text: [...t.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.data).join(""),
		transform: t.getAttribute("transform") || "",
		x: Number(t.getAttribute("x")), y: Number(t.getAttribute("y")),
		size: parseFloat(getComputedStyle(t).fontSize), width: t.getBBox().width,
		length: t.hasAttribute("textLength") ? Number(t.getAttribute("textLength")) : null,
	})),
}))`

// Charts drawn from made-up data at the edges: large and small values,
// many and long names, time axes from seconds to days.
func TestChartLabelsDoNotOverlapAtTheEdges(t *testing.T) {
	series := func(n int, f func(i int) float64) []report.Series {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return []report.Series{{Name: "value", Values: v}}
	}
	names := func(n int, format string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(format, i)
		}
		return out
	}
	timeChart := func(start time.Time, bucket time.Duration, n int, layout string, f func(i int) float64) report.Chart {
		c := report.Chart{ID: "t", Title: "Over time", Kind: report.Line, XLabel: "time (UTC)", YLabel: "per minute",
			Time: &report.TimeAxis{Start: start, Bucket: bucket, Layout: layout}, Series: series(n, f)}
		for i := range n {
			c.Categories = append(c.Categories, start.Add(time.Duration(i)*bucket).Format(layout))
		}
		return c
	}
	at := time.Date(2026, 1, 1, 10, 3, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		c    report.Chart
	}{
		{"millions on a horizontal axis", report.Chart{Kind: report.HBar, Categories: names(15, "player%04d"), Series: series(15, func(i int) float64 { return 1_987_654 - float64(i)*1000 })}},
		{"thousands and a few on a horizontal axis", report.Chart{Kind: report.HBar, Categories: names(9, "reason_%d"), Series: series(9, func(i int) float64 { return 13_987 / float64(i*i+1) })}},
		{"one on a horizontal axis", report.Chart{Kind: report.HBar, Categories: []string{"x"}, Series: series(1, func(int) float64 { return 1 })}},
		{"long names beside bars", report.Chart{Kind: report.HBar, Categories: names(20, "a guild with a very long name indeed %d"), Series: series(20, func(i int) float64 { return float64(40 - i) })}},
		{"twenty long names under bars", report.Chart{Kind: report.Bar, Categories: names(20, "the knights of the round table %d"), Series: series(20, func(i int) float64 { return float64(40 - i) })}},
		{"eight names under bars", report.Chart{Kind: report.Bar, Categories: names(8, "item type %d"), Series: series(8, func(i int) float64 { return 2345 * float64(i+1) })}},
		{"three steps", report.Chart{Kind: report.Bar, Categories: []string{"signed up", "then logged in", "then bought"}, Series: series(3, func(i int) float64 { return float64(3 - i) })}},
		{"fractions", report.Chart{Kind: report.Bar, Categories: names(4, "c%d"), Series: series(4, func(i int) float64 { return 0.37 * float64(i+1) })}},
		{"stacked thousands", report.Chart{Kind: report.StackedBar, Categories: names(8, "i%d"), Series: []report.Series{
			{Name: "common", Values: []float64{9000, 800, 700, 600, 500, 400, 300, 200}},
			{Name: "legendary", Values: []float64{5000, 80, 70, 60, 50, 40, 30, 20}},
		}}},
		{"half an hour of minutes", timeChart(at, time.Minute, 31, "15:04", func(i int) float64 { return 1400 + float64(i%7)*100 })},
		{"two hours of minutes", timeChart(at, time.Minute, 120, "15:04", func(i int) float64 { return 22_500 })},
		{"three minutes of 5 seconds", timeChart(at, 5*time.Second, 36, "15:04:05", func(i int) float64 { return 12 * float64(i%5) })},
		{"a day and more of 15 minutes", timeChart(at, 15*time.Minute, 120, "01-02 15:04", func(i int) float64 { return 3.5 })},
		{"weeks of days", timeChart(at.Truncate(24*time.Hour), 24*time.Hour, 100, "01-02 15:04", func(i int) float64 { return 1e6 + float64(i) })},
		{"one bucket", timeChart(at, time.Minute, 1, "15:04", func(int) float64 { return 7 })},
		{"two buckets", timeChart(at, time.Minute, 2, "15:04", func(int) float64 { return 7 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.ID, c.XLabel, c.YLabel = "edge", cmpOr(c.XLabel, "category"), cmpOr(c.YLabel, "value")
			c.Title = cmpOr(c.Title, "A chart")
			svg, err := c.SVG()
			if err != nil {
				t.Fatal(err)
			}
			checkSVG(t, tc.name, svg)
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
