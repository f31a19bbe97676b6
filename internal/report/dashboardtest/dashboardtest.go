// Package dashboardtest checks a live questlog dashboard in a browser page:
// that its script ran, that every chart is drawn with data, and that the
// page logged no errors. It serves the dashboard's own tests and end-to-end
// tests of `questlog up` alike.
//
// It knows the dashboard's markup (section.chart, #live-table, the
// data-live-updates and data-report-updates counters its script keeps) and
// nothing of how the dashboard is served.
package dashboardtest

import (
	"context"
	"fmt"
	"strings"

	"github.com/questlog/questlog/internal/report"
	"github.com/questlog/questlog/internal/report/browsertest"
)

// Chart is what the browser shows of one chart.
type Chart struct {
	ID     string  `json:"id"`
	Points int     `json:"points"` // non-zero values behind the drawing
	Width  float64 `json:"width"`  // the drawing's size on screen
	Height float64 `json:"height"`
	Marks  int     `json:"marks"` // drawn shapes
	Rows   int     `json:"rows"`  // rows of the table fallback
}

// Drawn reports whether the chart shows data.
func (c Chart) Drawn() bool {
	return c.Points > 0 && c.Width >= 100 && c.Height >= 50 && c.Marks >= 3 && c.Rows > 0
}

// State is what the page shows.
type State struct {
	Charts []Chart
	Live   map[string]string // live counters: event type -> events/s as shown
	Total  string            // total events/s as shown
	Errors []string          // errors logged by the page, or written into it by its script
}

const chartsJS = `[...document.querySelectorAll("section.chart")].map(s => {
	const svg = s.querySelector("svg");
	const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
	return {id: s.id, points: Number(s.dataset.points), width: box.width, height: box.height,
		marks: svg ? svg.querySelectorAll("path, rect, polyline").length : 0,
		rows: s.querySelectorAll("tbody tr").length};
})`

// WaitRefreshed waits until the page's script has polled the live counters
// at least twice and reloaded the charts at least once since it loaded.
func WaitRefreshed(ctx context.Context, p *browsertest.Page) error {
	return p.WaitFor(ctx, `Number(document.body.dataset.liveUpdates) >= 2 && Number(document.body.dataset.reportUpdates) >= 1`)
}

// Read reports what the page shows now.
func Read(ctx context.Context, p *browsertest.Page) (State, error) {
	var s State
	if err := p.Eval(ctx, chartsJS, &s.Charts); err != nil {
		return s, err
	}
	err := p.Eval(ctx, `Object.fromEntries([...document.querySelectorAll("#live-table tbody tr")].map(r => [r.cells[0].textContent, r.cells[1].textContent]))`, &s.Live)
	if err != nil {
		return s, err
	}
	if err := p.Eval(ctx, `document.getElementById("live-total").textContent`, &s.Total); err != nil {
		return s, err
	}
	var shown []string
	if err := p.Eval(ctx, `[...document.querySelectorAll("#page-errors li")].map(li => li.textContent)`, &shown); err != nil {
		return s, err
	}
	s.Errors = append(p.Errors(), shown...)
	return s, nil
}

// Verify waits for the page to refresh, then checks that every chart of the
// report is on it and drawn with data, and that the page logged no errors.
// The error lists every problem found.
func Verify(ctx context.Context, p *browsertest.Page) (State, error) {
	if err := WaitRefreshed(ctx, p); err != nil {
		return State{}, fmt.Errorf("the dashboard's script did not refresh: %w (page errors: %q)", err, p.Errors())
	}
	s, err := Read(ctx, p)
	if err != nil {
		return s, err
	}
	var problems []string
	seen := map[string]bool{}
	for _, c := range s.Charts {
		seen[c.ID] = true
		if !c.Drawn() {
			problems = append(problems, fmt.Sprintf("chart %s is not drawn with data: %+v", c.ID, c))
		}
	}
	for _, id := range report.ChartIDs {
		if !seen[id] {
			problems = append(problems, "chart "+id+" is missing")
		}
	}
	for _, e := range s.Errors {
		problems = append(problems, "page error: "+e)
	}
	if len(problems) > 0 {
		return s, fmt.Errorf("dashboard:\n%s", strings.Join(problems, "\n"))
	}
	return s, nil
}
