package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/questlog/questlog/internal/api"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/heapfloor"
	"github.com/questlog/questlog/internal/node"
	"github.com/questlog/questlog/internal/retain"
)

// brokerOptions configure the embedded broker (up, serve, broker).
type brokerOptions struct {
	partitions     int32
	fsync          bool
	topicRetention time.Duration
}

func (b *brokerOptions) register(fs *pflag.FlagSet) {
	fs.Int32Var(&b.partitions, "partitions", 4, "partitions of the topic when the embedded broker creates it")
	fs.BoolVar(&b.fsync, "fsync", false, "embedded broker: fsync every batch before acknowledging it (survives power loss; slower)")
	fs.DurationVar(&b.topicRetention, "topic-retention", retain.DefaultRetention,
		"embedded broker: delete records older than this once the lake at --lake holds them (checked every minute; 0: keep every record; a Kafka cluster keeps its own retention.ms)")
}

// retention is --topic-retention as node.Config takes it: 0 there is the
// default, and keeping everything is negative.
func (b *brokerOptions) retention() time.Duration {
	if b.topicRetention == 0 {
		return -1
	}
	return b.topicRetention
}

// serveOptions configure the API (up, serve).
type serveOptions struct {
	broker         brokerOptions
	http           string
	redis          string
	catalog        string
	startingGold   int64
	passwordCost   int
	sessionTTL     time.Duration
	produceTimeout time.Duration
	produceLinger  time.Duration
	// Failed logins allowed per username and per client address in
	// api.LoginLimits' window; 0 is no limit.
	loginFailuresPerUser    int
	loginFailuresPerAddress int
	seedSessions            bool
	seedSessionTTL          time.Duration
}

func (o *serveOptions) register(fs *pflag.FlagSet) {
	o.broker.register(fs)
	fs.StringVar(&o.http, "http", "127.0.0.1:5000", "where the API listens")
	fs.StringVar(&o.redis, "redis", "", "Redis state store as redis://host:port/db (empty: embedded SQLite in --data-dir)")
	fs.StringVar(&o.catalog, "catalog", "", "JSON file with the shop's items and qualities (empty: the built-in catalog)")
	fs.Int64Var(&o.startingGold, "starting-gold", 1000, "gold a new player starts with")
	fs.IntVar(&o.passwordCost, "password-cost", 10, "bcrypt cost of stored password hashes (4..31; each step doubles the work)")
	fs.DurationVar(&o.sessionTTL, "session-ttl", 24*time.Hour, "how long a session lasts")
	fs.DurationVar(&o.produceTimeout, "produce-timeout", 5*time.Second, "how long a request waits for the event log before answering 503 (at least 1s)")
	limits := api.DefaultLoginLimits()
	window := int(limits.Window.Minutes())
	fs.IntVar(&o.loginFailuresPerUser, "login-failures-per-user", limits.PerUser,
		fmt.Sprintf("failed logins (wrong password or unknown user) one username may have in %d minutes; past it, its logins get 429 until the window closes (0: no limit)", window))
	fs.IntVar(&o.loginFailuresPerAddress, "login-failures-per-address", limits.PerAddress,
		fmt.Sprintf("failed logins one client address (an IPv6 /64; loopback clients are not counted) may cause in %d minutes; past it, its logins get 429 (0: no limit; raise it behind a remote proxy)", window))
	fs.BoolVar(&o.seedSessions, "seed-sessions", false,
		"the classic GET routes also act as the seed course's server did: a request without a session cookie acts as the player its ?username= names, if that player signed up or logged in from the same Host within --seed-session-ttl. Anyone who can reach the server and knows a username and its Host can act as that player: for classroom replays on localhost only")
	fs.DurationVar(&o.seedSessionTTL, "seed-session-ttl", 2*time.Hour, "with --seed-sessions: how long a signup or login on a classic route binds the player to its Host")
	fs.DurationVar(&o.produceLinger, "produce-linger", 250*time.Microsecond, "how long an event that finds the broker idle waits for others to share its produce request, when requests lately carried several callers' events (0: send at once; at most 100ms): fewer, larger produce requests for up to this much latency")
}

// node is the node of these flags; role says which parts it runs.
func (o *serveOptions) node(g *globalOptions, role node.Role, out io.Writer) node.Config {
	return node.Config{
		Role: role, DataDir: g.dataDir, HTTP: o.http, BrokerListen: g.brokerListen,
		Brokers: splitList(g.brokers), Topic: g.topic, Partitions: o.broker.partitions, Fsync: o.broker.fsync,
		TopicRetention: o.broker.retention(),
		Redis:          o.redis, Lake: g.lakeLocation(), Catalog: o.catalog,
		Game: game.Config{
			StartingGold: o.startingGold, SessionTTL: o.sessionTTL, PasswordCost: o.passwordCost,
			SeedSessions: o.seedSessions, SeedSessionTTL: o.seedSessionTTL,
			Fault: faultFromEnv(),
		},
		ProduceTimeout: o.produceTimeout, ProduceLinger: o.produceLinger,
		LoginLimits: &api.LoginLimits{PerUser: o.loginFailuresPerUser, PerAddress: o.loginFailuresPerAddress},
		Out:         out, Logger: newLogger(g),
	}
}

// faultEnv names a fault point (game.FaultAcked) at which the process kills
// itself with SIGKILL: the crash tests' hook, never set in production.
const faultEnv = "QUESTLOG_FAULT"

// faultFromEnv returns the game's fault hook for QUESTLOG_FAULT, or nil.
func faultFromEnv() func(string) error {
	point := os.Getenv(faultEnv)
	if point == "" {
		return nil
	}
	return func(at string) error {
		if at == point {
			fmt.Fprintf(os.Stderr, "%s=%s: killing the process here\n", faultEnv, point)
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Kill() // SIGKILL on Unix
			}
			select {} // the signal is on its way
		}
		return nil
	}
}

func newServeCmd(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the game API (with the embedded broker in-process unless --brokers is given)",
		Long: `serve runs the game API alone: no extract, no dashboard.

Without --brokers it also runs the embedded broker in-process, listening on
--broker-listen, so that kcat and any Kafka client can read the topic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd.Context(), o.node(g, node.Serve, cmd.OutOrStdout()))
		},
	}
	o.register(cmd.Flags())
	return cmd
}

// heapFloor is how large a node's heap may grow before the collector
// runs (unless GOGC is set): a server allocates a few KiB per request
// and keeps a few MiB live, so Go's 4 MiB goal would collect dozens of
// times a second under load.
const heapFloor = 64 << 20

// runNode runs a node until ctx ends (Ctrl-C) or one of its parts fails.
func runNode(ctx context.Context, cfg node.Config) error {
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	floor, err := heapfloor.Start(heapFloor)
	if err != nil {
		return err
	}
	defer floor.Stop()
	err = n.Run(ctx, func() { fmt.Fprintln(cfg.Out, "ready; Ctrl-C stops") })
	fmt.Fprintln(cfg.Out, "stopping")
	return err
}

func newLogger(g *globalOptions) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func newBrokerCmd(g *globalOptions) *cobra.Command {
	b := &brokerOptions{}
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker alone",
		Long: `broker runs only the embedded broker (franz-go's kfake, persisted in
<data-dir>/broker), listening on --broker-listen. Any Kafka client can produce
to and consume from it; the other questlog commands find it there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd.Context(), node.Config{
				Role: node.Broker, DataDir: g.dataDir, BrokerListen: g.brokerListen, Brokers: splitList(g.brokers),
				Topic: g.topic, Partitions: b.partitions, Fsync: b.fsync, TopicRetention: b.retention(), Lake: g.lakeLocation(),
				Out: cmd.OutOrStdout(), Logger: newLogger(g),
			})
		},
	}
	b.register(cmd.Flags())
	return cmd
}
