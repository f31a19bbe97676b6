package report

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.New("").ParseFS(assets, "assets/page.html"))

func asset(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return string(b)
}

var (
	style  = template.CSS(asset("page.css"))
	script = template.JS(asset("dashboard.js"))
)

// drawn is a chart ready for the page: its SVG and its table.
type drawn struct {
	*Chart
	SVG    template.HTML
	Rows   [][]string
	Points int // non-zero values drawn, for tests and the curious
}

type pageData struct {
	R         *Report
	Charts    []drawn
	Live      bool
	Base      string
	RefreshMS int64
	Style     template.CSS
	Script    template.JS
}

func (r *Report) pageData() (*pageData, error) {
	d := &pageData{R: r, Style: style, Script: script}
	for i := range r.Charts {
		c := &r.Charts[i]
		svg, err := c.SVG()
		if err != nil {
			return nil, err
		}
		dc := drawn{Chart: c, SVG: template.HTML(svg)} // go-analyze escapes its text
		for j, cat := range c.Categories {
			if c.Time != nil && c.Time.Partial && j == len(c.Categories)-1 {
				cat += " (still filling)"
			}
			row := []string{cat}
			zero := true
			for _, s := range c.Series {
				row = append(row, formatNum(s.Values[j]))
				if s.Values[j] != 0 {
					dc.Points++
					zero = false
				}
			}
			if zero && c.Kind == Line {
				continue // quiet minutes would bury the table
			}
			dc.Rows = append(dc.Rows, row)
		}
		d.Charts = append(d.Charts, dc)
	}
	return d, nil
}

// WriteHTML writes the report as one self-contained HTML page: styles and
// SVG inline, no script, nothing fetched from the network.
func (r *Report) WriteHTML(w io.Writer) error {
	d, err := r.pageData()
	if err != nil {
		return err
	}
	return execute(w, "page", d)
}

func execute(w io.Writer, name string, d *pageData) error {
	var buf bytes.Buffer
	if err := page.ExecuteTemplate(&buf, name, d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
