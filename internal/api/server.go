// Package api is questlog's HTTP API: the JSON API under /v1/, the seed's
// plain-text GET routes, /healthz, /readyz and /metrics, and the listener
// that serves them.
//
// It parses requests, asks the game service, and maps outcomes to status
// codes in one place (statusOf). It is handed the game service, and for
// readiness the state store and the event log, and knows nothing of SQLite,
// Redis or Kafka beyond the interfaces it is given.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/questlog/questlog/internal/game"
)

// Pinger is what /readyz asks: the state store, the event log.
type Pinger interface {
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
	Game  *game.Service // required
	Store Pinger        // the state store, for readiness; required
	Log   Pinger        // the event log, for readiness; required
	// Registry is where the server's metrics go and what /metrics
	// serves; default a new registry.
	Registry *prometheus.Registry
	Logger   *slog.Logger // default slog.Default()
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
	game     *game.Service
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	maxBody  int64
	handler  http.Handler
	bufs     sync.Pool // of *[]byte: request bodies, reused
	// checks are /readyz's, in order: the store's ping, the event log's,
	// then Config.Checks.
	checks []Check
	// byPattern maps each ServeMux pattern of a game route to its route.
	byPattern    map[string]*gameRoute
	logins       *loginLimiter
	seedSessions bool // the classic routes make seed requests (classic.go)
}

// New builds a Server on a game service.
func New(cfg Config) (*Server, error) {
	if cfg.Game == nil || cfg.Store == nil || cfg.Log == nil {
		return nil, errors.New("api: a game service, a store and an event log are required")
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
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
		game:     cfg.Game,
		log:      cfg.Logger,
		registry: cfg.Registry,
		metrics:  newMetrics(cfg.Registry),
		maxBody:  cfg.MaxBody,
		checks:   append([]Check{{Name: "state store", Check: cfg.Store.Ping}, {Name: "event log", Check: cfg.Log.Ping}}, cfg.Checks...),
		logins:   newLoginLimiter(limits),

		seedSessions: cfg.Game.SeedSessionTTL() > 0,
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.handleGameRoutes(mux)
	// Operations.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	return s.instrument(s.canonicalPaths(mux))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
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
