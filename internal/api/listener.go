package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Listener serves a handler over HTTP as a service.Part: Start returns once
// it listens, Stop lets the requests in flight finish, and Failed reports
// a Serve that ended by itself. Its timeouts bound slow clients (no
// slowloris).
type Listener struct {
	srv    *http.Server
	ln     net.Listener
	failed chan error
}

// NewListener returns a listener for h on addr (host:port; port 0 picks a
// free one).
func NewListener(addr string, h http.Handler, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.Default()
	}
	return &Listener{
		srv: &http.Server{
			Addr:              addr,
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		failed: make(chan error, 1),
	}
}

// Start listens and serves in the background.
func (l *Listener) Start(context.Context) error {
	ln, err := net.Listen("tcp", l.srv.Addr)
	if err != nil {
		return fmt.Errorf("listen for http on %s: %w", l.srv.Addr, err)
	}
	l.ln = ln
	go func() {
		if err := l.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			l.failed <- fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
		}
	}()
	return nil
}

// Addr is the address it listens on, once started.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// URL is http://Addr.
func (l *Listener) URL() string { return "http://" + l.ln.Addr().String() }

// Stop stops accepting and waits for the requests in flight, within ctx.
func (l *Listener) Stop(ctx context.Context) error {
	if err := l.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down http on %s: %w", l.ln.Addr(), err)
	}
	return nil
}

// Failed delivers the error of a Serve that ended while it should serve.
func (l *Listener) Failed() <-chan error { return l.failed }
