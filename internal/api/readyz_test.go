package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/questlog/questlog/internal/api"
)

// /readyz runs the extra checks after the store and the publisher, and
// names the first one that fails.
func TestReadyzRunsExtraChecks(t *testing.T) {
	m := newMemServer(t, nil)
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name   string
		checks []api.Check
		code   int
		body   string
	}{
		{"no checks", nil, 200, "ready\n"},
		{"all pass", []api.Check{{Name: "a", Check: ok}, {Name: "b", Check: ok}}, 200, "ready\n"},
		{"one fails", []api.Check{{Name: "a", Check: ok}, {Name: "embedded broker at 127.0.0.1:9092", Check: down}}, 503,
			"embedded broker at 127.0.0.1:9092 unavailable\n"},
		{"first failure answers", []api.Check{{Name: "a", Check: down}, {Name: "b", Check: down}}, 503, "a unavailable\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := api.New(api.Config{Game: m.game, Store: m.store, Log: m.log, Checks: tt.checks})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tt.code || rec.Body.String() != tt.body {
				t.Errorf("readyz = %d %q, want %d %q", rec.Code, rec.Body.String(), tt.code, tt.body)
			}
		})
	}
}

// A check without a name or a function is refused up front.
func TestNewRefusesIncompleteChecks(t *testing.T) {
	m := newMemServer(t, nil)
	for _, c := range []api.Check{{Name: "broker"}, {Check: func(context.Context) error { return nil }}} {
		_, err := api.New(api.Config{Game: m.game, Store: m.store, Log: m.log, Checks: []api.Check{c}})
		if err == nil || !strings.Contains(err.Error(), "readiness check") {
			t.Errorf("New with check %+v: %v", c, err)
		}
	}
}
