package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
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
