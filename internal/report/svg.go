package report

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-analyze/charts"
)

// Drawing sizes, in SVG user units; the page scales the drawing to its column.
const (
	chartWidth  = 640
	chartHeight = 360
)

// How labels are laid out, in SVG user units unless said otherwise.
const (
	labelPoints   = 12 // go-analyze's text size
	labelHeight   = 16 // labelPoints at 96 dpi
	labelGap      = 10 // the least room between two labels side by side
	maxValueTicks = 6  // intervals on a vertical value axis
	maxBarLabel   = 14 // runes of a category name under a bar, when the names are slanted
	maxHBarLabel  = 22 // runes of a category name beside a horizontal bar
)

// SVG draws the chart with go-analyze/charts. An empty chart has no drawing.
//
// go-analyze places labels by their width in its own font, which the
// browser may not have: fitText makes every text as wide as go-analyze
// measured it, so that the layout chosen here holds in any font. On that
// layout, no two labels overlap: value axes get as few round ticks as their
// labels need, time axes label round times only, and category names that
// would collide under bars are slanted and shortened (the table has them
// whole).
func (c *Chart) SVG() ([]byte, error) {
	if c.Empty() {
		return nil, nil
	}
	t := newMeasure()
	cut := map[string]string{} // shortened category names, to their whole
	shorten := func(name string, n int) string {
		short := shortened(name, n)
		if short != name {
			if whole, ok := cut[short]; ok && whole != name {
				name = "" // two names cut alike: neither is told
			}
			cut[short] = name
		}
		return short
	}
	values := make([][]float64, len(c.Series))
	names := make([]string, len(c.Series))
	for i, s := range c.Series {
		values[i], names[i] = s.Values, s.Name
	}
	whole := true
	for _, vs := range values {
		for _, v := range vs {
			whole = whole && v == math.Trunc(v)
		}
	}
	legend := charts.LegendOption{SeriesNames: names, Offset: charts.OffsetStr{Left: "20", Top: "34"}}
	if len(c.Series) < 2 {
		legend.Show = charts.Ptr(false)
	}
	title := charts.TitleOption{Text: c.Title, Offset: charts.OffsetStr{Left: "20", Top: "8"}}
	height := chartHeight
	p := func() *charts.Painter {
		return charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: chartWidth, Height: height})
	}
	var painter *charts.Painter
	switch c.Kind {
	case Line:
		if c.Time == nil {
			return nil, fmt.Errorf("draw %s: a line chart without a time axis", c.ID)
		}
		drawn := values
		if c.Time.Partial {
			drawn = make([][]float64, len(values))
			for i, vs := range values {
				drawn[i] = vs[:len(vs)-1]
			}
		}
		yAxis := newValueAxis(top(drawn, false), whole, func(a valueAxis) bool { return a.n <= maxValueTicks })
		x := newTimeTicks(t, c.Time, len(c.Categories), plotWidth(t.widest(yAxis.labels())))
		opt := charts.NewLineChartOptionWithData(x.values(values, c.Time.Partial))
		opt.Title, opt.Legend = title, legend
		opt.XAxis.Labels = x.labels(c.Time)
		opt.XAxis.Title = c.XLabel
		opt.XAxis.LabelCount = x.labelled()
		opt.XAxis.BoundaryGap = charts.Ptr(false) // points, ticks and labels line up
		opt.YAxis = []charts.YAxisOption{yAxis.option(c.YLabel)}
		opt.Symbol = charts.Symbol{Shape: charts.SymbolNone}
		opt.LineStrokeWidth = 2
		painter = p()
		if err := painter.LineChart(opt); err != nil {
			return nil, fmt.Errorf("draw %s: %w", c.ID, err)
		}
	case Bar, StackedBar:
		yAxis := newValueAxis(top(values, c.Kind == StackedBar), whole, func(a valueAxis) bool { return a.n <= maxValueTicks })
		opt := charts.NewBarChartOptionWithData(values)
		opt.Title, opt.Legend = title, legend
		opt.CategoryAxis = categoryAxis(t, c.Categories, plotWidth(t.widest(yAxis.labels())), shorten)
		opt.CategoryAxis.Title = c.XLabel
		opt.ValueAxis = []charts.ValueAxisOption{yAxis.option(c.YLabel)}
		opt.ValueFormatter = yAxis.label
		if c.Kind == StackedBar {
			opt.StackSeries = charts.Ptr(true)
		}
		painter = p()
		if err := painter.BarChart(opt); err != nil {
			return nil, fmt.Errorf("draw %s: %w", c.ID, err)
		}
	case HBar:
		// go-analyze draws the first category at the bottom; the largest goes on top.
		categories := make([]string, len(c.Categories))
		for i, name := range c.Categories {
			categories[len(categories)-1-i] = shorten(name, maxHBarLabel)
		}
		for i := range values {
			values[i] = slices.Clone(values[i])
			slices.Reverse(values[i])
		}
		length := plotWidth(t.widest(categories))
		xAxis := newValueAxis(top(values, false), whole, func(a valueAxis) bool { return fitsFromStart(t.widths(a.labels()), float64(length)/float64(a.n)) })
		opt := charts.NewBarChartOptionWithData(values)
		opt.Title, opt.Legend = title, legend
		opt.Horizontal = true
		opt.CategoryAxis.Labels = categories
		opt.CategoryAxis.Title = c.XLabel
		opt.ValueAxis = []charts.ValueAxisOption{xAxis.option(c.YLabel)}
		opt.ValueFormatter = xAxis.label
		height = max(chartHeight/2, 110+26*len(c.Categories))
		painter = p()
		if err := painter.BarChart(opt); err != nil {
			return nil, fmt.Errorf("draw %s: %w", c.ID, err)
		}
	default:
		return nil, fmt.Errorf("draw %s: unknown chart kind %d", c.ID, c.Kind)
	}
	b, err := painter.Bytes()
	if err != nil {
		return nil, fmt.Errorf("draw %s: %w", c.ID, err)
	}
	if i := bytes.Index(b, []byte("<svg")); i > 0 {
		b = b[i:] // inline SVG takes no XML declaration
	}
	return t.fitText(b, cut), nil
}

// plotWidth is about how wide the plot is beside labels of that width on
// its left: go-analyze's padding (20 a side), label margins (9), the axis
// title turned on its side (20) and the axis line; a little less, to be safe.
func plotWidth(leftLabels int) int {
	return chartWidth - 2*20 - (9 + leftLabels + 20 + 1) - 4
}

// top is the largest value, or the largest stack of values.
func top(values [][]float64, stacked bool) float64 {
	var m float64
	for i := range values {
		for j, v := range values[i] {
			if stacked {
				v = 0
				for k := range values {
					v += values[k][j]
				}
			}
			m = max(m, v)
		}
	}
	return m
}

// measure gives text the width go-analyze lays it out with, in its default
// font at labelPoints.
type measure struct {
	p    *charts.Painter
	font charts.FontStyle
}

func newMeasure() measure {
	return measure{
		p:    charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: chartWidth, Height: chartHeight}),
		font: charts.FontStyle{Font: charts.GetDefaultFont(), FontSize: labelPoints, FontColor: charts.ColorBlack},
	}
}

func (m measure) width(s string) int { return m.p.MeasureText(s, 0, m.font).Width() }

func (m measure) widths(labels []string) []int {
	out := make([]int, len(labels))
	for i, s := range labels {
		out[i] = m.width(s)
	}
	return out
}

func (m measure) widest(labels []string) int {
	return slices.Max(append(m.widths(labels), 0))
}

// svgText is a text element as go-analyze writes it: attributes, then the
// escaped text.
var svgText = regexp.MustCompile(`<text ([^>]*?)(font-size:([0-9.]+)px[^>]*)>([^<]*)</text>`)

// fitText sets every text's length to the width go-analyze measured it at
// (textLength): a browser without go-analyze's font (Roboto) draws the text
// in its own sans-serif squeezed or stretched to that width, and the labels
// stay where go-analyze made room for them. A shortened name gets its whole
// as a title, which a browser shows on hovering it.
func (m measure) fitText(svg []byte, cut map[string]string) []byte {
	return svgText.ReplaceAllFunc(svg, func(el []byte) []byte {
		sub := svgText.FindSubmatch(el)
		px, err := strconv.ParseFloat(string(sub[3]), 64)
		if err != nil || len(sub[4]) == 0 {
			return el
		}
		text := html.UnescapeString(string(sub[4]))
		font := m.font
		font.FontSize = px * 72 / 96 // go-analyze writes points at 96 dpi
		w := m.p.MeasureText(text, 0, font).Width()
		var title string
		if whole := cut[text]; whole != "" {
			title = "<title>" + html.EscapeString(whole) + "</title>"
		}
		return fmt.Appendf(nil, `<text %s%s textLength="%d" lengthAdjust="spacingAndGlyphs">%s%s</text>`, sub[1], sub[2], w, title, sub[4])
	})
}

// fitsFromStart reports whether labels of these widths fit side by side at
// even spacing as go-analyze draws them along a horizontal axis: each starts
// at its tick, but the last ends at its tick, the axis' end.
func fitsFromStart(widths []int, spacing float64) bool {
	n := len(widths)
	for i := 0; i+1 < n; i++ {
		need := widths[i] + labelGap
		if i+2 == n {
			need += widths[n-1]
		}
		if spacing < float64(need)+2 { // go-analyze rounds positions to whole units
			return false
		}
	}
	return true
}

// valueAxis runs from 0 in n steps of step, the last at or above the
// largest value.
type valueAxis struct {
	step float64
	n    int
}

// newValueAxis picks the finest step of 1, 2 or 5 × 10^k that fits; whole
// numbers (counts) get whole steps.
func newValueAxis(largest float64, whole bool, fits func(valueAxis) bool) valueAxis {
	if largest <= 0 {
		largest = 1
	}
	for mag := math.Pow(10, math.Floor(math.Log10(largest))-2); ; mag *= 10 {
		for _, m := range []float64{1, 2, 5} {
			a := valueAxis{step: m * mag}
			if whole && a.step < 1 {
				continue
			}
			a.n = max(1, int(math.Ceil(largest/a.step-1e-9)))
			if a.n == 1 || fits(a) {
				return a
			}
		}
	}
}

func (a valueAxis) labels() []string {
	out := make([]string, a.n+1)
	for i := range out {
		out[i] = a.label(float64(i) * a.step)
	}
	return out
}

// label writes a tick's value compactly, with as many decimals as the step
// needs: 0, 500, 1k, 1.5k, 2k; 1.2M.
func (a valueAxis) label(v float64) string {
	scale, suffix := 1.0, ""
	switch av := math.Abs(v) * (1 + 1e-9); {
	case av >= 1e6:
		scale, suffix = 1e6, "M"
	case av >= 1e3:
		scale, suffix = 1e3, "k"
	}
	pow := math.Pow(10, float64(decimals(a.step/scale)))
	return strconv.FormatFloat(math.Round(v/scale*pow)/pow, 'f', -1, 64) + suffix
}

// decimals is how many decimals x needs, at most 6.
func decimals(x float64) int {
	d := 0
	for ; d < 6; d++ {
		p := math.Pow(10, float64(d))
		if math.Abs(x*p-math.Round(x*p)) < 1e-6 {
			break
		}
	}
	return d
}

func (a valueAxis) option(title string) charts.ValueAxisOption {
	return charts.ValueAxisOption{
		Title: title, Min: charts.Ptr(0.0), Max: charts.Ptr(a.step * float64(a.n)),
		LabelCount: a.n + 1, PreferNiceIntervals: charts.Ptr(false), ValueFormatter: a.label,
	}
}

// categoryAxis names the categories under vertical bars, each centred under
// its bar: level when they fit side by side, else slanted and shortened.
func categoryAxis(t measure, categories []string, length int, shorten func(string, int) string) charts.CategoryAxisOption {
	// Without BoundaryGap, go-analyze puts the names of many bars at ticks
	// between them.
	opt := charts.CategoryAxisOption{Labels: categories, LabelCount: len(categories), BoundaryGap: charts.Ptr(true)}
	slot := float64(length) / float64(len(categories))
	w := t.widths(categories)
	level := true
	for i := 0; i+1 < len(w); i++ {
		level = level && slot >= float64(w[i]+w[i+1])/2+labelGap+2
	}
	if level {
		return opt
	}
	opt.Labels = make([]string, len(categories))
	for i, name := range categories {
		opt.Labels[i] = shorten(name, maxBarLabel)
	}
	// Names slanted at 45° stand apart by the slot's width across them.
	opt.LabelRotation = charts.DegreesToRadians(-45)
	if slot*math.Sqrt2/2 < labelHeight+4 {
		opt.LabelRotation = charts.DegreesToRadians(-90)
	}
	return opt
}

// shortened cuts a name to n runes by leaving out its middle, where names
// alike ("guild 1", "guild 2") differ least.
func shortened(name string, n int) string {
	if utf8.RuneCountInString(name) <= n {
		return name
	}
	r := []rune(name)
	tail := (n - 1) / 2
	return string(r[:n-1-tail]) + "…" + string(r[len(r)-tail:])
}

// timeTicks is a time axis laid out for its labels: it runs from a round
// time at or before the first bucket to one at or after the last, one
// position per bucket, and every stride (a round duration) is labelled.
type timeTicks struct {
	first  time.Time // the axis' first position: a multiple of the stride
	bucket time.Duration
	stride time.Duration
	n      int // positions
	offset int // the position of the chart's first bucket
	// unnamedEnd leaves the axis' last position without its label.
	unnamedEnd bool
}

// roundStrides are the times between labels a time axis is tried with,
// finest first. Past them, the bucket's multiples from the first bucket.
var roundStrides = []time.Duration{
	5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour,
}

// newTimeTicks picks the finest stride whose labels fit along length for n
// buckets from a.Start.
func newTimeTicks(t measure, a *TimeAxis, n, length int) timeTicks {
	var strides []time.Duration
	for _, s := range roundStrides {
		if s >= a.Bucket && s%a.Bucket == 0 {
			strides = append(strides, s)
		}
	}
	round := len(strides)
	for k := 1; k < 4*n; k *= 2 {
		if s := time.Duration(k) * a.Bucket; round == 0 || s > strides[round-1] {
			strides = append(strides, s)
		}
	}
	last := a.Start.Add(time.Duration(n-1) * a.Bucket)
	var x timeTicks
	for i, s := range strides {
		x = timeTicks{first: a.Start, bucket: a.Bucket, stride: s}
		if i < round {
			x.first = a.Start.Truncate(s) // UTC's round times: Truncate counts from year 1
		}
		end := x.first.Add((last.Sub(x.first) + s - 1) / s * s)
		if !end.After(x.first) {
			end = end.Add(s) // an axis has two labels at least
		}
		x.n = int(end.Sub(x.first)/a.Bucket) + 1
		x.offset = int(a.Start.Sub(x.first) / a.Bucket)
		labels := x.labels(a)
		var widths []int
		for j := 0; j < len(labels); j += x.every() {
			widths = append(widths, t.width(labels[j]))
		}
		spacing := float64(length) / float64(x.n-1) * float64(x.every())
		if fitsFromStart(widths, spacing) {
			break
		}
		// The last label ends at the axis' end, nearer the one before it
		// than the others are: rather than label every other stride, leave
		// it out (its time follows from the ones before).
		widths[len(widths)-1] = 0
		if x.unnamedEnd = fitsFromStart(widths, spacing); x.unnamedEnd {
			break
		}
	}
	return x
}

func (x timeTicks) every() int { return int(x.stride / x.bucket) }

// labelled is how many positions are labelled: with that many labels,
// go-analyze labels every stride exactly.
func (x timeTicks) labelled() int { return (x.n-1)/x.every() + 1 }

// labels names every position of the axis as the chart's categories do;
// but where they carry the date, it names midnight alone, and the other
// times go without it.
func (x timeTicks) labels(a *TimeAxis) []string {
	out := make([]string, x.n)
	for i := range out {
		t := x.first.Add(time.Duration(i) * x.bucket)
		switch {
		case a.Layout != layoutDays:
			out[i] = t.Format(a.Layout)
		case t.Equal(t.Truncate(24 * time.Hour)):
			out[i] = t.Format("01-02")
		case x.bucket < time.Minute:
			out[i] = t.Format(layoutSeconds)
		default:
			out[i] = t.Format(layoutMinutes)
		}
	}
	if x.unnamedEnd {
		out[x.n-1] = ""
	}
	return out
}

// values places the chart's values on the axis. Positions without a bucket
// are left blank, and so is a last bucket that is still filling.
func (x timeTicks) values(values [][]float64, partial bool) [][]float64 {
	out := make([][]float64, len(values))
	for i, vs := range values {
		out[i] = make([]float64, x.n)
		for j := range out[i] {
			out[i][j] = charts.GetNullValue()
		}
		copy(out[i][x.offset:], vs)
		if partial && len(vs) > 0 {
			out[i][x.offset+len(vs)-1] = charts.GetNullValue()
		}
	}
	return out
}
