package main

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/questlog/questlog/internal/envflag"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/lakecache"
	"github.com/questlog/questlog/internal/lake/s3store"
	"github.com/questlog/questlog/internal/query"
)

// globalOptions are the flags every command shares (DESIGN.md, "Flags shared by
// the commands"). Each can also be set as QUESTLOG_<NAME> in the environment.
type globalOptions struct {
	dataDir      string
	brokers      string
	brokerListen string
	topic        string
	lake         string
	logLevel     string
}

// brokerList is where a client command connects: --brokers when given, else
// the embedded broker's --broker-listen address.
func (g *globalOptions) brokerList() []string {
	if g.brokers != "" {
		return splitList(g.brokers)
	}
	return []string{g.brokerListen}
}

// lakeFlags are the flags of the commands that lock the lake (its writers)
// or read it through DuckDB.
type lakeFlags struct {
	lockTTL   time.Duration
	cacheDir  string
	cacheSize byteSize
}

// registerLock adds --lock-ttl.
func (l *lakeFlags) registerLock(fs *pflag.FlagSet) {
	fs.DurationVar(&l.lockTTL, "lock-ttl", s3store.DefaultTTL, "s3:// lake: how long the lock of a writer that stopped renewing it (a killed process) keeps others out; renewed every third of it (a local lake's lock dies with its process)")
}

// registerCache adds --cache-dir and --cache-size.
func (l *lakeFlags) registerCache(fs *pflag.FlagSet) {
	l.cacheSize = lakecache.DefaultSize
	fs.StringVar(&l.cacheDir, "cache-dir", "", "s3:// lake: where local copies of its files are kept for DuckDB (default: questlog/ in the user's cache directory)")
	fs.Var(&l.cacheSize, "cache-size", "s3:// lake: how much the local copies may take; the least recently used are removed past it (a statement's files stay while it runs)")
}

// open opens the lake of g for writing.
func (l *lakeFlags) open(g *globalOptions) (lake.Storage, error) {
	return lake.Open(g.lakeLocation(), lake.LockTTL(l.lockTTL))
}

// query are the options of query.Open for these flags.
func (l *lakeFlags) query() []query.Option {
	return []query.Option{query.CacheDir(l.cacheDir), query.CacheSize(int64(l.cacheSize))}
}

// lakeLocation is --lake, defaulting to <data-dir>/lake.
func (g *globalOptions) lakeLocation() string {
	if g.lake != "" {
		return g.lake
	}
	return filepath.Join(g.dataDir, "lake")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "questlog",
		Short: "Game-event analytics in one binary: API → Kafka topic → Parquet lake → SQL and reports",
		Long: `questlog is a game-event analytics pipeline in one binary.

A game API (accounts, sessions, a shop, a cart, inventories, guilds) turns every
request into a JSON event on a Kafka topic; extract turns the topic into a
Parquet lake exactly once; query and report answer questions with DuckDB; load
plays thousands of players against the API.

Every flag can also be set in the environment as QUESTLOG_<FLAG>, with dashes
as underscores: --data-dir is QUESTLOG_DATA_DIR. A flag on the command line
wins over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return envflag.Bind(cmd.Flags())
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.dataDir, "data-dir", "./questlog-data", "directory for the embedded broker's log, the SQLite state and the default lake")
	pf.StringVar(&g.brokers, "brokers", "", "external Kafka cluster as host:port,... (empty: the embedded broker at --broker-listen)")
	pf.StringVar(&g.brokerListen, "broker-listen", "127.0.0.1:9092", "where the embedded broker listens (up, serve, broker) or is found (other commands)")
	pf.StringVar(&g.topic, "topic", "events", "the event topic")
	pf.StringVar(&g.lake, "lake", "", "the lake: a directory (default <data-dir>/lake) or s3://bucket/prefix (endpoint, region and credentials from the AWS_* environment variables)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")

	root.AddCommand(
		newUpCmd(g),
		newServeCmd(g),
		newBrokerCmd(g),
		newTailCmd(g),
		newExtractCmd(g),
		newLakeCmd(g),
		newQueryCmd(g),
		newReportCmd(g),
		newLoadCmd(g),
	)
	return root
}
