package main

import (
	"fmt"
	"time"

	"github.com/questlog/questlog/internal/report"
	"github.com/spf13/cobra"
)

func newReportCmd(g *globalOptions) *cobra.Command {
	var out, since, until string
	var lf lakeFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write an HTML report with charts",
		Long: `Write one self-contained HTML file (styles and SVG charts inline, nothing
fetched from the network) answering the standing questions about the lake:
events per minute by type, purchases by item type and quality, gold spent
over time, failed actions by reason, the signup → login → first purchase
funnel, guild sizes and top players by gold spent. Each chart has a table.

--since and --until take an RFC 3339 time, a UTC date (2026-01-02), or a
duration before now (90m).`,
		Example: `  questlog report --out report.html
  questlog report --since 1h --out last-hour.html
  questlog report --since 2026-01-02 --until 2026-01-03`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			w, err := report.ParseWindow(since, until, now)
			if err != nil {
				return err
			}
			r, err := report.WriteFile(cmd.Context(), g.lakeLocation(), out, w, now, lf.query()...)
			if err != nil {
				return err
			}
			events := "no events"
			if !r.First.IsZero() {
				events = fmt.Sprintf("events from %s to %s UTC", r.First.Format(time.DateTime), r.Last.Format(time.DateTime))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d charts, %s\n", out, len(r.Charts), events)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "report.html", "the HTML file to write")
	f.StringVar(&since, "since", "", "report events at or after this time (default: from the first)")
	f.StringVar(&until, "until", "", "report events before this time (default: to the last)")
	lf.registerCache(f)
	return cmd
}
