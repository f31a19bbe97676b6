// Package api is questlog's HTTP API: the JSON API under /v1/, the seed's
// plain-text GET routes, and /healthz, /readyz and /metrics.
//
// It parses requests, asks the game service, and maps outcomes to status
// codes in one place (statusOf). It holds a state.Store (for readiness), a
// game service and a producer, and knows nothing of SQLite, Redis or Kafka
// beyond the interfaces it is given.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state"
)

// Publisher is the event log (stream.Producer): it writes one record and
// returns once it is acknowledged, with where it went; says where a key's
// next record will go; and finds a record again.
type Publisher interface {
	Publish(ctx context.Context, key, value []byte) (partition int32, offset int64, err error)
	Next(key []byte) (partition int32, after int64)
	Contains(ctx context.Context, partition int32, after int64, match func(value []byte) bool) (bool, error)
	Ping(ctx context.Context) error
}

// Check is a readiness check beyond the store's and the publisher's pings,
// such as whether clients outside the process reach the embedded broker.
type Check struct {
	Name  string // in /readyz's answer: "<Name> unavailable"
	Check func(context.Context) error
}

// Config configures a Server.
type Config struct {
	Store     state.Store
	Publisher Publisher
	Game      game.Config
	Logger    *slog.Logger // default slog.Default()
	// MaxBody bounds a request body; default 64 KiB.
	MaxBody int64
	// Checks run, in order, after the store and the publisher answered
	// /readyz's pings; default none.
	Checks []Check
	// LoginLimits bounds failed logins; nil means DefaultLoginLimits().
	LoginLimits *LoginLimits
}

// Server serves the API.
type Server struct {
	store   state.Store
	pub     Publisher
	game    *game.Service
	log     *slog.Logger
	metrics *metrics
	maxBody int64
	bufs    sync.Pool
	handler http.Handler
	extra   *http.ServeMux
	rates   rates
	checks  []Check
	// byPattern maps each ServeMux pattern of a game route to its route.
	byPattern map[string]*gameRoute
	logins    *loginLimiter
}

// New builds a Server and its game service.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Publisher == nil {
		return nil, errors.New("api: a store and a publisher are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	for _, c := range cfg.Checks {
		if c.Name == "" || c.Check == nil {
			return nil, errors.New("api: a readiness check needs a name and a function")
		}
	}
	limits := DefaultLoginLimits()
	if cfg.LoginLimits != nil {
		limits = *cfg.LoginLimits
	}
	if err := limits.validate(); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{
		store:   cfg.Store,
		pub:     cfg.Publisher,
		log:     cfg.Logger,
		metrics: newMetrics(),
		maxBody: cfg.MaxBody,
		extra:   http.NewServeMux(),
		checks:  slices.Clone(cfg.Checks),
		logins:  newLoginLimiter(limits),
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	if cfg.Game.Logger == nil {
		cfg.Game.Logger = cfg.Logger
	}
	g, err := game.NewService(cfg.Store, journal{s}, cfg.Game)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.game = g
	s.handler = s.routes()
	return s, nil
}

// Start starts the game service: it settles what an earlier run left
// pending, and keeps settling in the background (game.Service.Start).
func (s *Server) Start(ctx context.Context) error { return s.game.Start(ctx) }

// Stop stops the game service's background work (game.Service.Stop).
func (s *Server) Stop(ctx context.Context) error { return s.game.Stop(ctx) }

// Handle mounts an extra handler (the dashboard) on the server's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.extra.Handle(pattern, h) }

// EventCounts returns how many events of each type the log acknowledged since
// the server started, for live counters.
func (s *Server) EventCounts() map[string]uint64 { return s.metrics.eventCounts() }

// EventRates returns acknowledged events per second by type, measured over
// the second (or more) before the previous call: the dashboard's live
// counters poll it.
func (s *Server) EventRates() map[string]float64 {
	return s.rates.sample(time.Now(), s.metrics.eventCounts())
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// HTTPServer wraps the API in an http.Server with timeouts that bound slow
// clients (no slowloris).
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Serve serves on ln until ctx ends, then shuts down gracefully, letting
// requests in flight finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.HTTPServer(ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.handleGameRoutes(mux)
	// Operations.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.Handle("/dashboard", s.extra)
	mux.Handle("/dashboard/", s.extra)
	return s.instrument(s.canonicalPaths(mux))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: state store", "err", err)
		writeText(w, http.StatusServiceUnavailable, "state store unavailable\n")
		return
	}
	if err := s.pub.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready: event log", "err", err)
		writeText(w, http.StatusServiceUnavailable, "event log unavailable\n")
		return
	}
	for _, c := range s.checks {
		if err := c.Check(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready: "+c.Name, "err", err)
			writeText(w, http.StatusServiceUnavailable, c.Name+" unavailable\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ready\n")
}

// instrument counts, times and logs every request, and turns a panic into
// a 500. It logs the path without its query (which may hold a password) and
// no header.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					writeText(sw, http.StatusInternalServerError, "internal error\n")
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			d := time.Since(start)
			s.metrics.observeRequest(route, sw.status, d)
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.DebugContext(r.Context(), "request", "method", r.Method, "route", route,
					"path", r.URL.Path, "status", sw.status, "duration", d)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// WriteString lets io.WriteString reach net/http's own WriteString, which
// copies the string into its buffer without converting it to a []byte.
func (w *statusWriter) WriteString(s string) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return io.WriteString(w.ResponseWriter, s)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// journal records the game's events on the event log.
type journal struct{ s *Server }

func (j journal) Record(ctx context.Context, ev *event.Event) (game.Position, error) {
	s := j.s
	bp := s.bufs.Get().(*[]byte)
	buf := ev.AppendJSON((*bp)[:0])
	start := time.Now()
	partition, offset, err := s.pub.Publish(ctx, ev.Key(), buf)
	s.metrics.produceDuration.Observe(time.Since(start).Seconds())
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		s.bufs.Put(bp)
	}
	if err != nil {
		s.metrics.eventNotAcked(ev.Type) // the game logs the outage
		return game.Position{}, err
	}
	s.metrics.eventAcked(ev.Type, ev.Status)
	return game.Position{Partition: partition, Offset: offset}, nil
}

func (j journal) Next(user string) game.Position {
	var key []byte
	if user != "" {
		key = []byte(user)
	}
	p, after := j.s.pub.Next(key)
	return game.Position{Partition: p, Offset: after}
}

func (j journal) Contains(ctx context.Context, at game.Position, eventID string) (bool, error) {
	return j.s.pub.Contains(ctx, at.Partition, at.Offset, func(v []byte) bool { return event.HasID(v, eventID) })
}

// statusOf maps the game's outcomes to HTTP status codes: the one place
// where that mapping lives.
func statusOf(err error) int {
	var rej *game.Rejection
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, game.ErrLogUnavailable):
		return http.StatusServiceUnavailable
	case errors.As(err, &rej):
		switch rej.Reason {
		case game.ErrUnauthenticated.Reason, game.ErrBadPassword.Reason, game.ErrUnknownUser.Reason:
			return http.StatusUnauthorized
		case game.ErrInsufficientGold.Reason:
			return http.StatusPaymentRequired
		case game.ErrUnknownItem.Reason, game.ErrUnknownQuality.Reason, game.ErrNotInCart.Reason:
			return http.StatusNotFound
		case game.ErrMethodNotAllowed.Reason:
			return http.StatusMethodNotAllowed
		case game.ErrAlreadyExists.Reason, game.ErrInsufficientItem.Reason, game.ErrCartFull.Reason,
			game.ErrEmptyCart.Reason, game.ErrAlreadyInGuild.Reason, game.ErrNotInGuild.Reason:
			return http.StatusConflict
		case reasonTooLarge:
			return http.StatusRequestEntityTooLarge
		case game.ErrRateLimited.Reason:
			return http.StatusTooManyRequests
		case game.ErrClientGone.Reason:
			return statusClientClosed
		case game.ErrStoreUnavailable.Reason, game.ErrPlayerBusy.Reason:
			return http.StatusServiceUnavailable
		default:
			// bad_request and every invalid_* (invalid_item included).
			return http.StatusBadRequest
		}
	default:
		return http.StatusInternalServerError
	}
}

// statusClientClosed is nginx's 499, for a client that hung up before its
// action was carried out: nobody reads the answer, the metrics count it.
const statusClientClosed = 499

// The answer to a wrong password and to an unknown user: byte for byte the
// same, so that it does not tell which usernames exist (the timing is the
// same too). The events keep the precise reason.
const (
	reasonBadCredentials  = "bad_credentials"
	messageBadCredentials = "wrong username or password"
)

// refusal is how a refused request is answered: its status, reason and
// message. It sets Retry-After on a 503 (a caller may have set a longer
// one), and logs only what no rejection explains.
func (s *Server) refusal(w http.ResponseWriter, err error) (code int, reason, message string) {
	code = statusOf(err)
	var rej *game.Rejection
	switch {
	case code == http.StatusServiceUnavailable && errors.Is(err, game.ErrLogUnavailable):
		// Not acknowledged is not proof of not written: the change is
		// applied if the log took the event after all (game.settle).
		reason, message = "log_unavailable", "the event log did not acknowledge the action, so it was not applied (unless the log took it after all: look before trying again)"
	case errors.As(err, &rej) && (rej.Reason == game.ErrBadPassword.Reason || rej.Reason == game.ErrUnknownUser.Reason):
		reason, message = reasonBadCredentials, messageBadCredentials
	case rej != nil:
		reason, message = rej.Reason, rej.Message
	default:
		s.log.Error("request failed", "err", err)
		reason, message = "internal_error", "something went wrong on our side"
	}
	if code == http.StatusServiceUnavailable {
		if h := w.Header(); h.Get("Retry-After") == "" {
			h["Retry-After"] = retryAfterOne
		}
	}
	return code, reason, message
}

var retryAfterOne = []string{"1"}
