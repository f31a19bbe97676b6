package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/questlog/questlog/internal/api"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/redisstore"
	"github.com/questlog/questlog/internal/state/sqlitestore"
	"github.com/questlog/questlog/internal/stream"
)

// brokerOptions configure the embedded broker (up, serve, broker).
type brokerOptions struct {
	partitions int32
	fsync      bool
}

func (b *brokerOptions) register(fs *pflag.FlagSet) {
	fs.Int32Var(&b.partitions, "partitions", 4, "partitions of the topic when the embedded broker creates it")
	fs.BoolVar(&b.fsync, "fsync", false, "embedded broker: fsync every batch before acknowledging it (survives power loss; slower)")
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
	fs.DurationVar(&o.produceLinger, "produce-linger", 250*time.Microsecond, "how long an event waits for others to share its produce request (0: send at once; at most 100ms): fewer, larger produce requests for up to this much latency")
}

// validate refuses bad flags before anything is created or started.
func (o *serveOptions) validate() error {
	if o.produceTimeout < stream.MinDeliveryTimeout {
		return fmt.Errorf("--produce-timeout %v: must be at least %v", o.produceTimeout, stream.MinDeliveryTimeout)
	}
	if o.produceLinger < 0 || o.produceLinger > stream.MaxLinger {
		return fmt.Errorf("--produce-linger %v: must be between 0 and %v", o.produceLinger, stream.MaxLinger)
	}
	if o.loginFailuresPerUser < 0 {
		return fmt.Errorf("--login-failures-per-user %d: must be 0 (no limit) or more", o.loginFailuresPerUser)
	}
	if o.loginFailuresPerAddress < 0 {
		return fmt.Errorf("--login-failures-per-address %d: must be 0 (no limit) or more", o.loginFailuresPerAddress)
	}
	return o.game(nil).Validate()
}

// game is the game's configuration from the flags, with the catalog. An
// action waits for the player and the store no longer than it would for
// the log, so that every request is answered within about
// --produce-timeout.
func (o *serveOptions) game(cat *game.Catalog) game.Config {
	return game.Config{
		Catalog: cat, StartingGold: o.startingGold, SessionTTL: o.sessionTTL, PasswordCost: o.passwordCost,
		RequestTimeout: o.produceTimeout,
	}
}

// faultEnv names a fault point (game.FaultAcked) at which the process kills
// itself with SIGKILL: the crash tests' hook, never set in production.
const faultEnv = "QUESTLOG_FAULT"

// faultFromEnv returns the game's fault hook for QUESTLOG_FAULT, or nil.
func faultFromEnv() func(string) {
	point := os.Getenv(faultEnv)
	if point == "" {
		return nil
	}
	return func(at string) {
		if at == point {
			fmt.Fprintf(os.Stderr, "%s=%s: killing the process here\n", faultEnv, point)
			if self, err := os.FindProcess(os.Getpid()); err == nil {
				_ = self.Kill() // SIGKILL on Unix
			}
			select {} // the signal is on its way
		}
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
			return runStack(cmd.Context(), g, o, cmd.OutOrStdout(), nil)
		},
	}
	o.register(cmd.Flags())
	return cmd
}

// stack is a running API with what it stands on.
type stack struct {
	broker   *stream.Broker // nil with --brokers
	brokers  []string
	store    state.Store
	producer *stream.Producer
	api      *api.Server
	listener net.Listener
	closers  []func() // in start order; stopped in reverse
}

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startStack starts the broker (unless --brokers), the state store, the
// producer and the API listener, in that order. On error, what was started
// is stopped again.
func startStack(ctx context.Context, g *globalOptions, o *serveOptions, out io.Writer, log *slog.Logger) (_ *stack, err error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	s := &stack{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var cat *game.Catalog
	if o.catalog != "" {
		if cat, err = game.LoadCatalog(o.catalog); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(g.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}

	s.brokers = splitList(g.brokers)
	if len(s.brokers) == 0 {
		dir := filepath.Join(g.dataDir, "broker")
		s.broker, err = stream.StartBroker(stream.BrokerConfig{
			Dir: dir, Listen: g.brokerListen, Topic: g.topic, Partitions: o.broker.partitions,
			SyncWrites: o.broker.fsync, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.broker.Close)
		s.brokers = []string{s.broker.Addr()}
		fmt.Fprintf(out, "broker     %s  (Kafka protocol, topic %q, log in %s%s)\n", s.broker.Addr(), g.topic, dir, fsyncNote(o.broker.fsync))
	} else {
		ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := stream.EnsureTopic(ectx, s.brokers, g.topic, o.broker.partitions)
		cancel()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "brokers    %s  (topic %q)\n", strings.Join(s.brokers, ","), g.topic)
	}

	if s.store, err = openStore(ctx, g, o, out); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.store.Close() })

	pc := stream.ProducerConfig{
		Brokers: s.brokers, Topic: g.topic, DeliveryTimeout: o.produceTimeout, Linger: o.produceLinger,
	}
	if s.broker != nil {
		// The API and the embedded broker share the process: the
		// producer's connection is in-process, not a loopback socket.
		pc.Dial = s.broker.DialContext
	}
	if s.producer, err = stream.NewProducer(pc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.producer.Close)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = s.producer.Start(pctx)
	cancel()
	if err != nil {
		return nil, err
	}

	var checks []api.Check
	if s.broker != nil {
		// The producer's ping goes through its in-process connection;
		// /readyz also answers for kcat, tail and extract, which connect
		// over TCP.
		checks = append(checks, api.Check{Name: "embedded broker at " + s.broker.Addr(), Check: s.broker.Ping})
	}
	gc := o.game(cat)
	gc.Fault = faultFromEnv()
	s.api, err = api.New(api.Config{
		Store: s.store, Publisher: s.producer, Logger: log,
		Game: gc, Checks: checks,
		LoginLimits: &api.LoginLimits{PerUser: o.loginFailuresPerUser, PerAddress: o.loginFailuresPerAddress},
	})
	if err != nil {
		return nil, err
	}
	// Settle what an earlier run left pending before serving anyone.
	if err := s.api.Start(ctx); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.api.Stop(sctx)
	})
	if s.listener, err = net.Listen("tcp", o.http); err != nil {
		return nil, fmt.Errorf("listen for http: %w", err)
	}
	s.closers = append(s.closers, func() { _ = s.listener.Close() })
	fmt.Fprintf(out, "api        http://%s\n", s.listener.Addr())
	return s, nil
}

// runStack runs the API until ctx ends; extra, if set, starts more
// components (up's extract and dashboard) once the API is built.
func runStack(ctx context.Context, g *globalOptions, o *serveOptions, out io.Writer, extra func(context.Context, *stack) (func(), error)) error {
	log := newLogger(g)
	s, err := startStack(ctx, g, o, out, log)
	if err != nil {
		return err
	}
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if extra != nil {
		stop, err := extra(ctx, s)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintln(out, "ready; Ctrl-C stops")
	err = s.api.Serve(ctx, s.listener)
	fmt.Fprintln(out, "stopping")
	return err
}

// openStore opens Redis with --redis, else SQLite in the data directory.
func openStore(ctx context.Context, g *globalOptions, o *serveOptions, out io.Writer) (state.Store, error) {
	if o.redis != "" {
		st, err := redisstore.Open(ctx, o.redis)
		if err != nil {
			return nil, fmt.Errorf("open redis %s: %w", redactURL(o.redis), err)
		}
		fmt.Fprintf(out, "state      %s\n", redactURL(o.redis))
		return st, nil
	}
	path := filepath.Join(g.dataDir, "state.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "state      sqlite %s\n", path)
	return st, nil
}

// redactURL hides a password in a URL, for log lines.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func fsyncNote(fsync bool) string {
	if fsync {
		return ", fsync on every batch"
	}
	return ""
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
			if g.brokers != "" {
				return errors.New("broker runs the embedded broker; --brokers makes no sense here")
			}
			dir := filepath.Join(g.dataDir, "broker")
			br, err := stream.StartBroker(stream.BrokerConfig{
				Dir: dir, Listen: g.brokerListen, Topic: g.topic, Partitions: b.partitions,
				SyncWrites: b.fsync, Logger: newLogger(g),
			})
			if err != nil {
				return err
			}
			defer br.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "broker     %s  (Kafka protocol, topic %q, log in %s%s)\n", br.Addr(), g.topic, dir, fsyncNote(b.fsync))
			fmt.Fprintln(out, "ready; Ctrl-C stops")
			<-cmd.Context().Done()
			fmt.Fprintln(out, "stopping")
			return nil
		},
	}
	b.register(cmd.Flags())
	return cmd
}
