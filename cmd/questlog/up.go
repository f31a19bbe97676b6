package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/questlog/questlog/internal/node"
)

func newUpCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	co := &compactOptions{}
	var maxAge, refresh time.Duration
	var lf lakeFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything: embedded broker, state, API, extract --follow and the dashboard",
		Long: `up starts, in order, the embedded broker (unless --brokers), the state store
(SQLite in --data-dir unless --redis), the API on --http, the extract job
following the topic into --lake, the compaction that merges the lake's small
files every --compact-interval (see 'questlog lake compact'), and the dashboard
at /dashboard; Ctrl-C stops them in reverse order. Starting it again keeps every
user, inventory and event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := o.node(g, node.Up, cmd.OutOrStdout())
			cfg.MaxAge, cfg.Refresh = maxAge, refresh
			cfg.Compaction = co.node()
			cfg.LockTTL, cfg.CacheDir, cfg.CacheSize = lf.lockTTL, lf.cacheDir, int64(lf.cacheSize)
			return runNode(cmd.Context(), cfg)
		},
	}
	o.register(cmd.Flags())
	cmd.Flags().DurationVar(&maxAge, "max-age", node.DefaultMaxAge, "extract: roll a file at least this often, so new events are queryable within about this long")
	cmd.Flags().DurationVar(&refresh, "refresh", node.DefaultRefresh, "dashboard: how often charts are rebuilt from the lake")
	co.register(cmd.Flags(), true, "compaction: ")
	lf.registerLock(cmd.Flags())
	lf.registerCache(cmd.Flags())
	return cmd
}
