// Package node assembles one questlog process from its parts, in the order
// they start: the embedded broker (or a Kafka cluster's topic), the state
// store, the producer, the game service, the HTTP API, and for `up` the
// extract follower, the lake's compactor and the dashboard. `serve`, `up` and `broker` run a
// Node; so do the tests and benchmarks that need the real thing in-process.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/questlog/questlog/internal/api"
	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/journal"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/query"
	"github.com/questlog/questlog/internal/report"
	"github.com/questlog/questlog/internal/retain"
	"github.com/questlog/questlog/internal/service"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/redisstore"
	"github.com/questlog/questlog/internal/state/sqlitestore"
	"github.com/questlog/questlog/internal/stream"
)

// Role says which parts a node runs.
type Role int

const (
	// Broker is the embedded broker alone (`questlog broker`).
	Broker Role = iota
	// Serve is the game API, with the embedded broker unless Brokers are
	// given (`questlog serve`).
	Serve
	// Up is Serve plus the extract following the topic into the lake and
	// the dashboard (`questlog up`).
	Up
)

// Config is what a node is made of: the shared flags of DESIGN.md and the
// serve/up flags. Zero values take the defaults the commands document.
type Config struct {
	Role         Role
	DataDir      string   // default ./questlog-data
	HTTP         string   // where the API listens; default 127.0.0.1:5000
	BrokerListen string   // where the embedded broker listens; default 127.0.0.1:9092
	Brokers      []string // a Kafka cluster; empty: the embedded broker
	Topic        string   // default "events"
	Partitions   int32    // of the topic when created; default 4
	Fsync        bool     // embedded broker: fsync every batch

	Redis string // redis://host:port/db; empty: SQLite in DataDir
	// Store, when set, is used instead of opening Redis or SQLite (and
	// not closed by the node): tests that hold a store of their own.
	Store state.Store
	Lake  string // default DataDir/lake
	// LockTTL is the time to live of an s3:// lake's locks (see
	// lake.LockTTL); CacheDir and CacheSize bound the dashboard's local
	// copies of its files (see query.CacheDir). Zero: their defaults.
	LockTTL   time.Duration
	CacheDir  string
	CacheSize int64

	Catalog        string      // a catalog file; empty: Game.Catalog or the built-in
	Game           game.Config // RequestTimeout defaults to ProduceTimeout
	ProduceTimeout time.Duration
	ProduceLinger  time.Duration
	LoginLimits    *api.LoginLimits // nil: api.DefaultLoginLimits()

	// TopicRetention is how long the embedded broker keeps records the
	// lake already holds; default retain.DefaultRetention, negative: keep
	// them all. (A Kafka cluster's own retention applies to Brokers.)
	TopicRetention time.Duration
	RetainInterval time.Duration // between retention passes; default retain.DefaultInterval

	MaxAge  time.Duration // Up: the extract rolls files at least this often; default DefaultMaxAge
	Refresh time.Duration // Up: the dashboard rebuilds this often; default DefaultRefresh
	// Compaction is how Up merges the lake's small files; nil: the
	// compact package's defaults.
	Compaction *Compaction

	// Out hears where each part listens, a line each, as the commands
	// print it; nil: nothing.
	Out    io.Writer
	Logger *slog.Logger // default slog.Default()
}

// Compaction configures the compactor of Up. Every field is as given
// (zero is zero): the command's flags fill them all.
type Compaction struct {
	Off            bool          // no compactor
	TargetFileSize int64         // about how large a merged file grows
	Interval       time.Duration // how often a pass runs
	Grace          time.Duration // how long a replaced file (or a retired day's) stays before it is removed
	// LakeRetention drops the lake's days that ended this long ago
	// (compact.LakeRetention); 0 keeps them all. It needs the compactor.
	LakeRetention time.Duration
}

// options are the compactor's options for topic.
func (c *Compaction) options(topic string, log *slog.Logger) []compact.Option {
	opts := []compact.Option{compact.Topic(topic), compact.Logger(log)}
	if c != nil {
		opts = append(opts, compact.TargetFileSize(c.TargetFileSize), compact.Interval(c.Interval), compact.Grace(c.Grace),
			compact.LakeRetention(c.LakeRetention))
	}
	return opts
}

func (c *Config) withDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./questlog-data"
	}
	if c.HTTP == "" {
		c.HTTP = "127.0.0.1:5000"
	}
	if c.BrokerListen == "" {
		c.BrokerListen = "127.0.0.1:9092"
	}
	if c.Topic == "" {
		c.Topic = "events"
	}
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Lake == "" {
		c.Lake = filepath.Join(c.DataDir, "lake")
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 5 * time.Second
	}
	if c.Game.RequestTimeout == 0 {
		// An action waits for the player and the store no longer than it
		// would for the log: every request is answered within about
		// --produce-timeout.
		c.Game.RequestTimeout = c.ProduceTimeout
	}
	if c.TopicRetention == 0 {
		c.TopicRetention = retain.DefaultRetention
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate refuses a configuration before anything is created or started.
func (c Config) Validate() error {
	c.withDefaults()
	if c.Role == Broker && len(c.Brokers) > 0 {
		return errors.New("broker runs the embedded broker; --brokers makes no sense here")
	}
	if c.Partitions < 1 {
		return fmt.Errorf("--partitions %d: must be at least 1", c.Partitions)
	}
	if c.TopicRetention > 0 && c.TopicRetention < time.Second {
		return fmt.Errorf("--topic-retention %v: must be 0 (keep everything) or at least 1s", c.TopicRetention)
	}
	if c.Role == Broker {
		return nil
	}
	if c.Role == Up && c.Compaction != nil && c.Compaction.Off && c.Compaction.LakeRetention != 0 {
		return errors.New("--lake-retention is applied by the background compaction: give --compact-interval above 0")
	}
	if c.Role == Up && (c.Compaction == nil || !c.Compaction.Off) {
		if err := compact.Validate(c.Compaction.options(c.Topic, nil)...); err != nil {
			return err
		}
	}
	if c.ProduceTimeout < stream.MinDeliveryTimeout {
		return fmt.Errorf("--produce-timeout %v: must be at least %v", c.ProduceTimeout, stream.MinDeliveryTimeout)
	}
	if c.ProduceLinger < 0 || c.ProduceLinger > stream.MaxLinger {
		return fmt.Errorf("--produce-linger %v: must be between 0 and %v", c.ProduceLinger, stream.MaxLinger)
	}
	if l := c.LoginLimits; l != nil {
		if l.PerUser < 0 {
			return fmt.Errorf("--login-failures-per-user %d: must be 0 (no limit) or more", l.PerUser)
		}
		if l.PerAddress < 0 {
			return fmt.Errorf("--login-failures-per-address %d: must be 0 (no limit) or more", l.PerAddress)
		}
	}
	return c.Game.Validate()
}

// Node is one questlog process: its parts, started in order and stopped in
// reverse. The fields are set as the parts start.
type Node struct {
	cfg   Config
	group *service.Group

	Broker    *stream.Broker // the embedded broker; nil with Brokers
	Store     state.Store
	Producer  *stream.Producer
	Journal   *journal.Journal
	Game      *game.Service
	API       *api.Server
	HTTP      *api.Listener
	Extract   *extract.Follower
	Compactor *compact.Compactor // nil when compaction is off
	Dashboard *report.Dashboard
	Retention *retain.Trimmer // the embedded broker's; nil with Brokers or without retention

	brokers   []string
	reg       *prometheus.Registry
	dashboard atomic.Pointer[report.Dashboard] // served once started
}

// New checks cfg and lays out the node's parts; Start starts them.
func New(cfg Config) (*Node, error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Catalog != "" {
		cat, err := game.LoadCatalog(cfg.Catalog)
		if err != nil {
			return nil, err
		}
		cfg.Game.Catalog = cat
	}
	if cfg.Game.Logger == nil {
		cfg.Game.Logger = cfg.Logger
	}
	n := &Node{cfg: cfg, group: service.NewGroup(cfg.Logger), brokers: cfg.Brokers}
	n.group.Add(service.Named("data directory", service.Funcs{OnStart: n.makeDataDir}))
	if len(cfg.Brokers) == 0 {
		n.group.Add(service.Named("broker", service.Funcs{OnStart: n.startBroker, OnStop: n.stopBroker}))
	} else {
		n.group.Add(service.Named("topic", service.Funcs{OnStart: n.ensureTopic}))
	}
	// The embedded broker's retention: after the game, whose pending
	// intents keep the records they read (the broker alone has none).
	retention := service.Named("topic retention", &lazy{start: n.startRetention, part: func() service.Part { return n.Retention }})
	trims := len(cfg.Brokers) == 0 && cfg.TopicRetention > 0
	if cfg.Role == Broker {
		if trims {
			n.group.Add(retention)
		}
		return n, nil
	}
	n.group.Add(
		service.Named("state", service.Funcs{OnStart: n.openStore, OnStop: n.closeStore}),
		service.Named("producer", service.Funcs{OnStart: n.startProducer, OnStop: n.stopProducer}),
		service.Named("game", service.Funcs{OnStart: n.startGame, OnStop: n.stopGame}),
	)
	if trims {
		n.group.Add(retention)
	}
	n.group.Add(service.Named("api", &lazy{start: n.startAPI, part: func() service.Part { return n.HTTP }}))
	if cfg.Role == Up {
		n.group.Add(
			service.Named("extract", &lazy{start: n.startExtract, part: func() service.Part { return n.Extract }}),
		)
		if cfg.Compaction == nil || !cfg.Compaction.Off {
			n.group.Add(service.Named("compactor", &lazy{start: n.startCompactor, part: func() service.Part { return n.Compactor }}))
		}
		n.group.Add(service.Named("dashboard", service.Funcs{OnStart: n.startDashboard, OnStop: n.stopDashboard}))
	}
	return n, nil
}

// Start starts the parts in order, each once the one before is ready.
func (n *Node) Start(ctx context.Context) error { return n.group.Start(ctx) }

// Stop stops the started parts in reverse order.
func (n *Node) Stop(ctx context.Context) error { return n.group.Stop(ctx) }

// Run starts the node, calls ready, and runs until ctx ends or a part
// fails (its error is Run's), then stops it.
func (n *Node) Run(ctx context.Context, ready func()) error { return n.group.Run(ctx, ready) }

// URL is where the API answers, once started.
func (n *Node) URL() string { return n.HTTP.URL() }

// BrokerAddrs are the Kafka brokers the node produces to.
func (n *Node) BrokerAddrs() []string { return n.brokers }

func (n *Node) makeDataDir(context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

func (n *Node) startBroker(ctx context.Context) error {
	dir := filepath.Join(n.cfg.DataDir, "broker")
	b, err := stream.NewBroker(stream.BrokerConfig{
		Dir: dir, Listen: n.cfg.BrokerListen, Topic: n.cfg.Topic, Partitions: n.cfg.Partitions,
		SyncWrites: n.cfg.Fsync, Logger: n.cfg.Logger,
	})
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	n.Broker, n.brokers = b, []string{b.Addr()}
	fsync := ""
	if n.cfg.Fsync {
		fsync = ", fsync on every batch"
	}
	fmt.Fprintf(n.cfg.Out, "broker     %s  (Kafka protocol, topic %q, log in %s%s)\n", b.Addr(), n.cfg.Topic, dir, fsync)
	return nil
}

func (n *Node) stopBroker(ctx context.Context) error { return n.Broker.Stop(ctx) }

// startRetention trims the embedded broker's topic below what the lake
// (at --lake) holds, once older than TopicRetention.
func (n *Node) startRetention(ctx context.Context) (service.Part, error) {
	st, err := lake.Open(n.cfg.Lake)
	if err != nil {
		return nil, err
	}
	t, err := retain.New(retain.Config{
		Brokers: n.brokers, Topic: n.cfg.Topic, Lake: st, Retention: n.cfg.TopicRetention, Store: n.Store,
		Interval: n.cfg.RetainInterval, Logger: n.cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := t.Start(ctx); err != nil {
		return nil, err
	}
	n.Retention = t
	return t, nil
}

func (n *Node) ensureTopic(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := stream.EnsureTopic(ctx, n.brokers, n.cfg.Topic, n.cfg.Partitions); err != nil {
		return err
	}
	fmt.Fprintf(n.cfg.Out, "brokers    %s  (topic %q)\n", strings.Join(n.brokers, ","), n.cfg.Topic)
	return nil
}

// openStore opens Redis with Redis, else SQLite in the data directory.
func (n *Node) openStore(ctx context.Context) error {
	switch {
	case n.cfg.Store != nil:
		n.Store = n.cfg.Store
		fmt.Fprintf(n.cfg.Out, "state      %T\n", n.Store)
	case n.cfg.Redis != "":
		st, err := redisstore.Open(ctx, n.cfg.Redis)
		if err != nil {
			return fmt.Errorf("open redis %s: %w", redactURL(n.cfg.Redis), err)
		}
		n.Store = st
		fmt.Fprintf(n.cfg.Out, "state      %s\n", redactURL(n.cfg.Redis))
	default:
		path := filepath.Join(n.cfg.DataDir, "state.db")
		st, err := sqlitestore.Open(ctx, path)
		if err != nil {
			return err
		}
		n.Store = st
		fmt.Fprintf(n.cfg.Out, "state      sqlite %s\n", path)
	}
	return nil
}

func (n *Node) closeStore(context.Context) error {
	if n.cfg.Store != nil {
		return nil // the caller's
	}
	return n.Store.Close()
}

func (n *Node) startProducer(ctx context.Context) error {
	pc := stream.ProducerConfig{
		Brokers: n.brokers, Topic: n.cfg.Topic, DeliveryTimeout: n.cfg.ProduceTimeout, Linger: n.cfg.ProduceLinger,
	}
	if n.Broker != nil {
		// The API and the embedded broker share the process: the
		// producer's connection is in-process, not a loopback socket.
		pc.Dial = n.Broker.DialContext
	}
	p, err := stream.NewProducer(pc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		p.Close()
		return err
	}
	n.Producer = p
	return nil
}

func (n *Node) stopProducer(ctx context.Context) error { return n.Producer.Stop(ctx) }

func (n *Node) startGame(ctx context.Context) error {
	reg := n.registry()
	n.Journal = journal.New(n.Producer, journal.NewMetrics(reg))
	g, err := game.NewService(n.Store, n.Journal, n.cfg.Game)
	if err != nil {
		return err
	}
	// Settles what an earlier run left pending before anyone is served.
	if err := g.Start(ctx); err != nil {
		return err
	}
	n.Game = g
	return nil
}

func (n *Node) stopGame(ctx context.Context) error { return n.Game.Stop(ctx) }

// registry holds the process's metrics: the API's, the journal's, Go's,
// the embedded broker's usage and (in Up) the lake's.
func (n *Node) registry() *prometheus.Registry {
	if n.reg == nil {
		n.reg = prometheus.NewRegistry()
		n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if n.Broker != nil {
			n.reg.MustRegister(newBrokerUsage(n.Broker))
		}
		if n.cfg.Role == Up {
			// Locate: the extract creates the lake when it starts.
			if st, err := lake.Locate(n.cfg.Lake, lake.LockTTL(n.cfg.LockTTL)); err == nil {
				n.reg.MustRegister(newLakeUsage(st, lakeUsageEvery, time.Now))
			} else {
				n.cfg.Logger.Warn("no lake usage in /metrics", "err", err)
			}
		}
	}
	return n.reg
}

func (n *Node) startAPI(ctx context.Context) (service.Part, error) {
	var checks []api.Check
	if n.Broker != nil {
		// The producer's ping goes through its in-process connection;
		// /readyz also answers for kcat, tail and extract, which connect
		// over TCP.
		checks = append(checks, api.Check{Name: "embedded broker at " + n.Broker.Addr(), Check: n.Broker.Ping})
	}
	a, err := api.New(api.Config{
		Game: n.Game, Store: n.Store, Log: n.Producer, Registry: n.registry(), Logger: n.cfg.Logger,
		Checks: checks, LoginLimits: n.cfg.LoginLimits,
	})
	if err != nil {
		return nil, err
	}
	n.API = a
	n.HTTP = api.NewListener(n.cfg.HTTP, n.handler(), n.cfg.Logger)
	if err := n.HTTP.Start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(n.cfg.Out, "api        %s\n", n.HTTP.URL())
	if ttl := n.Game.SeedSessionTTL(); ttl > 0 {
		fmt.Fprintf(n.cfg.Out, "warning    --seed-sessions: the classic GET routes act as the player ?username= names, "+
			"for %s after that player signed up or logged in from the request's Host: anyone who can reach %s "+
			"and knows a username and its Host can act as that player (for classroom replays on localhost only)\n",
			shortDuration(ttl), n.HTTP.URL())
	}
	return n.HTTP, nil
}

// shortDuration is d as a person writes it: 2h, not 2h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// handler is what the listener serves: the dashboard under /dashboard
// (once it started), the API everywhere else. It is not a ServeMux, which
// would redirect non-canonical paths before the API could refuse them.
func (n *Node) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == dashboardPrefix || strings.HasPrefix(p, dashboardPrefix+"/") {
			if d := n.dashboard.Load(); d != nil {
				d.ServeHTTP(w, r)
				return
			}
		}
		n.API.ServeHTTP(w, r)
	})
}

const dashboardPrefix = "/dashboard"

func (n *Node) startExtract(ctx context.Context) (service.Part, error) {
	st, err := lake.Open(n.cfg.Lake, lake.LockTTL(n.cfg.LockTTL))
	if err != nil {
		return nil, err
	}
	ex, err := extract.New(
		extract.Brokers(n.brokers...), extract.Topic(n.cfg.Topic), extract.Lake(st),
		extract.Follow(), extract.MaxAge(n.cfg.MaxAge), extract.Logger(n.cfg.Logger),
	)
	if err != nil {
		return nil, err
	}
	f, err := ex.Follower()
	if err != nil {
		return nil, err
	}
	if err := f.Start(ctx); err != nil {
		return nil, err
	}
	n.Extract = f
	fmt.Fprintf(n.cfg.Out, "extract    following %q into %s (files roll every %s)\n", n.cfg.Topic, n.cfg.Lake, n.cfg.MaxAge)
	return f, nil
}

func (n *Node) startCompactor(ctx context.Context) (service.Part, error) {
	st, err := lake.Open(n.cfg.Lake, lake.LockTTL(n.cfg.LockTTL))
	if err != nil {
		return nil, err
	}
	c, err := compact.New(st, n.cfg.Compaction.options(n.cfg.Topic, n.cfg.Logger)...)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	n.Compactor = c
	fmt.Fprintf(n.cfg.Out, "compact    every %s into files of %d MiB (replaced files removed after %s)\n",
		c.Interval(), c.TargetFileSize()>>20, c.Grace())
	if keep := c.LakeRetention(); keep > 0 {
		fmt.Fprintf(n.cfg.Out, "retention  the lake's days dropped once they ended %s ago\n", shortDuration(keep))
	}
	return c, nil
}

// DefaultMaxAge and DefaultRefresh are up's file roll and dashboard
// refresh: an acknowledged event reaches questlog query within about
// DefaultMaxAge and the dashboard within about both (issue 14's goal: 5 s
// at p99; BENCHMARKS.md "Freshness"). The compaction keeps the files
// that short rolls make down to a few per day.
const (
	DefaultMaxAge  = 2 * time.Second
	DefaultRefresh = time.Second
)

// DashboardMemory bounds the dashboard's DuckDB, which keeps every event
// read so far: past it (about 1.5M events), it spills to the data
// directory's dashboard-spill folder, so that up's memory stays flat
// however long it runs.
const DashboardMemory = 128 << 20

func (n *Node) startDashboard(ctx context.Context) error {
	spill := filepath.Join(n.cfg.DataDir, "dashboard-spill")
	// What a crashed run left there is of no use to this one.
	if err := os.RemoveAll(spill); err != nil {
		return fmt.Errorf("clear the dashboard's spill folder: %w", err)
	}
	d, err := report.NewDashboard(ctx, n.cfg.Lake, n.Journal.EventRates,
		report.WithPrefix(dashboardPrefix), report.WithRefresh(n.cfg.Refresh), report.WithLogger(n.cfg.Logger),
		report.WithLakeOptions(query.CacheDir(n.cfg.CacheDir), query.CacheSize(n.cfg.CacheSize), query.WithMemory(DashboardMemory, spill)))
	if err != nil {
		return err
	}
	n.Dashboard = d
	n.dashboard.Store(d)
	fmt.Fprintf(n.cfg.Out, "dashboard  %s%s\n", n.HTTP.URL(), dashboardPrefix)
	return nil
}

func (n *Node) stopDashboard(context.Context) error {
	n.dashboard.Store(nil)
	return n.Dashboard.Close()
}

// lazy is a part made when it starts (it needs what the parts before it
// made): start makes and starts it, part returns it for Stop and Failed.
type lazy struct {
	start func(context.Context) (service.Part, error)
	part  func() service.Part
}

func (l *lazy) Start(ctx context.Context) error {
	_, err := l.start(ctx)
	return err
}

func (l *lazy) Stop(ctx context.Context) error { return l.part().Stop(ctx) }

// Failed forwards the part's failures, when it reports them.
func (l *lazy) Failed() <-chan error {
	if w, ok := l.part().(service.Watched); ok {
		return w.Failed()
	}
	return nil
}

// redactURL hides a password in a URL, for log lines.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
