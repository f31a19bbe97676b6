package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/report"
)

func newUpCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	var maxAge, refresh time.Duration
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything: embedded broker, state, API, extract --follow and the dashboard",
		Long: `up starts, in order, the embedded broker (unless --brokers), the state store
(SQLite in --data-dir unless --redis), the API on --http, the extract job
following the topic into --lake, and the dashboard at /dashboard; Ctrl-C stops
them in reverse order. Starting it again keeps every user, inventory and event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			return runStack(cmd.Context(), g, o, out, func(ctx context.Context, s *stack) (func(), error) {
				log := newLogger(g)
				st, err := lake.Open(g.lakeLocation())
				if err != nil {
					return nil, err
				}
				ex, err := extract.New(
					extract.Brokers(s.brokers...), extract.Topic(g.topic), extract.Lake(st),
					extract.Follow(), extract.MaxAge(maxAge), extract.Logger(log),
				)
				if err != nil {
					return nil, err
				}
				exCtx, stopExtract := context.WithCancel(ctx)
				extracted := make(chan error, 1)
				go func() {
					_, err := ex.Run(exCtx)
					if err != nil && exCtx.Err() == nil {
						// Say so at once, not only at Ctrl-C: the API keeps
						// serving, but the lake stops following the topic.
						log.Error("extract stopped: the lake no longer follows the topic", "err", err)
					}
					extracted <- err
				}()
				fmt.Fprintf(out, "extract    following %q into %s (files roll every %s)\n", g.topic, g.lakeLocation(), maxAge)

				dash, err := report.NewDashboard(ctx, g.lakeLocation(), s.api.EventRates,
					report.WithRefresh(refresh), report.WithLogger(log))
				if err != nil {
					stopExtract()
					<-extracted
					return nil, err
				}
				s.api.Handle("/dashboard", dash)
				s.api.Handle("/dashboard/", dash)
				fmt.Fprintf(out, "dashboard  http://%s/dashboard\n", s.listener.Addr())
				return func() {
					_ = dash.Close()
					stopExtract()
					<-extracted
				}, nil
			})
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().DurationVar(&maxAge, "max-age", 10*time.Second, "extract: roll a file at least this often, so new events are queryable within about this long")
	cmd.Flags().DurationVar(&refresh, "refresh", 5*time.Second, "dashboard: how often charts are rebuilt from the lake")
	return cmd
}
