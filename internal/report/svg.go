package report

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"github.com/go-analyze/charts"
)

// Drawing sizes, in SVG user units; the page scales the drawing to its column.
const (
	chartWidth  = 640
	chartHeight = 360
)

// SVG draws the chart with go-analyze/charts. An empty chart has no drawing.
func (c *Chart) SVG() ([]byte, error) {
	if c.Empty() {
		return nil, nil
	}
	values := make([][]float64, len(c.Series))
	names := make([]string, len(c.Series))
	for i, s := range c.Series {
		values[i], names[i] = s.Values, s.Name
	}
	categories := c.Categories
	if c.Kind == HBar {
		// go-analyze draws the first category at the bottom; the largest goes on top.
		categories = slices.Clone(categories)
		slices.Reverse(categories)
		for i := range values {
			values[i] = slices.Clone(values[i])
			slices.Reverse(values[i])
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
		opt := charts.NewLineChartOptionWithData(values)
		opt.Title, opt.Legend = title, legend
		opt.XAxis.Labels = c.Categories
		opt.XAxis.Title = c.XLabel
		labels := 8
		if len(c.Categories) > 0 && len(c.Categories[0]) > 5 {
			labels = 5 // "01-02 15:04" needs room
		}
		opt.XAxis.LabelCount = min(len(c.Categories), labels)
		opt.YAxis = []charts.YAxisOption{{Title: c.YLabel, ValueFormatter: axisNumber, Min: charts.Ptr(0.0)}}
		opt.Symbol = charts.Symbol{Shape: charts.SymbolNone}
		opt.LineStrokeWidth = 2
		painter = p()
		if err := painter.LineChart(opt); err != nil {
			return nil, fmt.Errorf("draw %s: %w", c.ID, err)
		}
	case Bar, StackedBar, HBar:
		opt := charts.NewBarChartOptionWithData(values)
		opt.Title, opt.Legend = title, legend
		opt.CategoryAxis.Labels = categories
		opt.CategoryAxis.Title = c.XLabel
		opt.ValueAxis = []charts.ValueAxisOption{{Title: c.YLabel, ValueFormatter: axisNumber, Min: charts.Ptr(0.0)}}
		opt.ValueFormatter = axisNumber
		if c.Kind == StackedBar {
			opt.StackSeries = charts.Ptr(true)
		}
		if c.Kind == HBar {
			opt.Horizontal = true
			height = max(chartHeight/2, 110+26*len(c.Categories))
		}
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
	return b, nil
}

// axisNumber labels an axis compactly: 950, 1.2k, 3.4M.
func axisNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return trimZero(fmt.Sprintf("%.2f", v))
}

func trimZero(s string) string {
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if len(s) > 1 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
