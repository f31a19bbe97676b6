package api

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/questlog/questlog/internal/game"
)

// Every refusal maps to its status in one place; every 503 carries
// Retry-After; only an error no rejection explains is logged at ERROR.
func TestRefusalAnswers(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		code       int
		reason     string
		retryAfter string
		logged     bool
	}{
		{"log unavailable", fmt.Errorf("%w: broker gone", game.ErrLogUnavailable), 503, "log_unavailable", "1", false},
		{"store unavailable", game.ErrStoreUnavailable, 503, "store_unavailable", "1", false},
		{"player busy", fmt.Errorf("buy: %w", game.ErrPlayerBusy), 503, "player_busy", "1", false},
		{"client closed", game.ErrClientGone, 499, "client_closed", "", false},
		{"rate limited", game.ErrRateLimited, 429, "rate_limited", "", false},
		{"method not allowed", game.ErrMethodNotAllowed, 405, "method_not_allowed", "", false},
		{"invalid item", game.ErrInvalidItem, 400, "invalid_item", "", false},
		{"bad request", game.ErrBadRequest, 400, "bad_request", "", false},
		{"unknown item", game.ErrUnknownItem, 404, "unknown_item", "", false},
		{"bad password", game.ErrBadPassword, 401, "bad_credentials", "", false},
		{"unknown user", game.ErrUnknownUser, 401, "bad_credentials", "", false},
		{"unauthenticated", game.ErrUnauthenticated, 401, "unauthenticated", "", false},
		{"too large", errTooLarge, 413, "body_too_large", "", false},
		{"unexpected", errors.New("disk on fire"), 500, "internal_error", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"json", "text"} {
				var logs bytes.Buffer
				s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
				w := httptest.NewRecorder()
				if format == "json" {
					s.fail(w, tt.err)
				} else {
					s.failText(w, tt.err)
				}
				if w.Code != tt.code || w.Header().Get("Retry-After") != tt.retryAfter {
					t.Errorf("%s: %d Retry-After %q, want %d %q", format, w.Code, w.Header().Get("Retry-After"), tt.code, tt.retryAfter)
				}
				if !bytes.Contains(w.Body.Bytes(), []byte(tt.reason)) {
					t.Errorf("%s: body %q lacks %s", format, w.Body, tt.reason)
				}
				if got := bytes.Contains(logs.Bytes(), []byte("level=ERROR")); got != tt.logged {
					t.Errorf("%s: logged at ERROR %v, want %v: %s", format, got, tt.logged, logs.Bytes())
				}
			}
		})
	}
}

// A longer Retry-After that a handler set stays.
func TestRefusalKeepsRetryAfter(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	w.Header().Set("Retry-After", "30")
	s.fail(w, game.ErrStoreUnavailable)
	if got := w.Header().Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q", got)
	}
}
