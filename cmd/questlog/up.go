package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

func newUpCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
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
				fmt.Fprintf(out, "dashboard  http://%s/dashboard\n", s.listener.Addr())
				return func() {}, nil
			})
		},
	}
	o.register(cmd.Flags())
	return cmd
}
