package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/questlog/questlog/internal/loadgen"
)

// runCLI runs questlog with args and returns its stdout and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// flakyServer answers 500 to one request in every `every`, 200 otherwise.
func flakyServer(t *testing.T, every int64) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%every == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadMaxErrorsExitCode(t *testing.T) {
	srv := flakyServer(t, 10) // a 10% error rate, exactly, over 100 requests
	tests := []struct {
		name     string
		max      string
		wantExit int // 0: no error
	}{
		{"below the budget", "0.2", 0},
		{"at the budget", "0.1", 0},
		{"over the budget", "0.05", exitOverErrorBudget},
		{"no budget", "0", exitOverErrorBudget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, "load", "-n", "100", "-c", "1", "--max-errors", tc.max, srv.URL+"/")
			var exit exitError
			switch {
			case tc.wantExit == 0 && err != nil:
				t.Fatalf("want success, got %v", err)
			case tc.wantExit != 0 && (!errors.As(err, &exit) || exit.code != tc.wantExit):
				t.Fatalf("want exit status %d, got %v", tc.wantExit, err)
			}
			if !strings.Contains(out, "Failed requests:        10 (transport 0, 5xx 10)") {
				t.Errorf("summary does not show the 10 failures:\n%s", out)
			}
		})
	}
}

func TestLoadJSONFormat(t *testing.T) {
	srv := flakyServer(t, 1000)
	out, err := runCLI(t, "load", "-n", "50", "-c", "5", "--format", "json", "-X", "post", "-H", "X-Test: 1", srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Mode        string           `json:"mode"`
		Method      string           `json:"method"`
		Requests    int64            `json:"requests"`
		Concurrency int              `json:"concurrency"`
		StatusCodes map[string]int64 `json:"status_codes"`
		Latency     map[string]float64
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, out)
	}
	if s.Mode != "single" || s.Method != "POST" || s.Requests != 50 || s.Concurrency != 5 || s.StatusCodes["200"] != 50 {
		t.Errorf("summary: %+v", s)
	}
}

func TestLoadRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"format", []string{"--format", "xml"}, "--format"},
		{"scenario name", []string{"--scenario", "raid"}, `only scenario is "players"`},
		{"-c with a scenario", []string{"--scenario", "players", "-c", "4"}, "--users"},
		{"--users without a scenario", []string{"--users", "4"}, "--scenario only"},
		{"--setup without a scenario", []string{"--setup=false"}, "--scenario only"},
		{"max errors", []string{"--max-errors", "2"}, "fraction"},
		{"header", []string{"-H", "nocolon"}, "Name: value"},
		{"cookie", []string{"-C", "novalue"}, "name=value"},
		{"n below c", []string{"-n", "2", "-c", "3"}, "less than -c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLI(t, append(append([]string{"load"}, tc.args...), "http://127.0.0.1:1/")...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := runCLI(t, "load", "ftp://x/"); err == nil {
		t.Error("ftp URL accepted")
	}
}

// enteringServer is the least of the API a players run needs: a catalog of
// the built-in mix at 1 gold, signups and logins that set a session cookie,
// players without gold, and 200 "{}" to the rest. It counts every request.
func enteringServer(t *testing.T, requests *atomic.Int64) *httptest.Server {
	mix := loadgen.DefaultMix()
	var items []map[string]any
	for it := range mix.Items {
		for q := range mix.Qualities {
			items = append(items, map[string]any{"item_type": it, "quality": q, "price": 1})
		}
	}
	catalog, err := json.Marshal(map[string]any{"items": items})
	if err != nil {
		t.Fatal(err)
	}
	var sessions atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/items":
			_, _ = w.Write(catalog)
		case "/v1/signup":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"gold":0}`))
		case "/v1/login":
			http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprint(sessions.Add(1)), Path: "/"})
			_, _ = w.Write([]byte(`{"gold":0}`))
		default:
			_, _ = w.Write([]byte("{}"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLoadScenarioSetup(t *testing.T) {
	tests := []struct {
		name      string
		setupFlag string
		wantSetup bool
	}{
		{"setup by default", "", true},
		{"no setup", "--setup=false", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			srv := enteringServer(t, &served)
			args := []string{"load", "--scenario", "players", "--users", "3", "-n", "30", "--format", "json"}
			if tc.setupFlag != "" {
				args = append(args, tc.setupFlag)
			}
			out, err := runCLI(t, append(args, srv.URL)...)
			if err != nil {
				t.Fatal(err)
			}
			var s loadgen.Summary
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("stdout is not the JSON summary: %v\n%s", err, out)
			}
			if s.Requests != 30 {
				t.Errorf("%d requests measured, want 30", s.Requests)
			}
			unmeasured := int64(1) // the catalog
			if tc.wantSetup {
				if s.Setup == nil || s.Setup.Players != 3 || s.Setup.Requests != 6 {
					t.Fatalf("setup = %+v, want 3 players and 6 requests", s.Setup)
				}
				unmeasured += s.Setup.Requests
			} else if s.Setup != nil {
				t.Errorf("--setup=false reported a setup: %+v", s.Setup)
			}
			if got := served.Load(); got != unmeasured+s.Requests {
				t.Errorf("server answered %d requests, want %d unmeasured + %d measured", got, unmeasured, s.Requests)
			}
		})
	}

	var served atomic.Int64
	out, err := runCLI(t, "load", "--scenario", "players", "--users", "2", "-n", "10", enteringServer(t, &served).URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nSetup:                  2 players signed up and logged in in ") {
		t.Errorf("text summary lacks the setup line:\n%s", out)
	}
}
