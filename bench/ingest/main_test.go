package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		file                string
		rps, p50, p99       float64
		requests, errs, bad int64
	}{
		{file: "wrk_ok.txt", rps: 40819.16, p50: 0.88, p99: 8.41, requests: 163597},
		{file: "wrk_errors.txt", rps: 1200.5, p50: 0.812, p99: 2010, requests: 4810, errs: 7, bad: 12},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := parseWrk(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if m.RequestsPerSecond != tc.rps || m.P50Ms != tc.p50 || m.P99Ms != tc.p99 ||
				m.Requests != tc.requests || m.Errors != tc.errs || m.Non2xx != tc.bad {
				t.Errorf("got %+v", m)
			}
		})
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("wrk output without a rate accepted")
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       time.Duration
		wantErr    bool
	}{
		{name: "plain", line: "4242 (questlog) S 1 4242 4242 0 -1 4194560 9046 0 0 0 1234 567 0 0 20 0 9 0 100 2000000 3000 18446744073709551615\n", want: 18010 * time.Millisecond},
		{name: "command with spaces and parentheses", line: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1\n", want: 110 * time.Millisecond},
		{name: "truncated", line: "7 (x) R 1 7 7 0\n", wantErr: true},
		{name: "no command", line: "garbage", wantErr: true},
		{name: "not a number", line: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 five 6 0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStat(tc.line)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseProcStat = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// The real file of this process parses, where there is one.
	if raw, err := os.ReadFile("/proc/self/stat"); err == nil {
		if _, err := parseProcStat(string(raw)); err != nil {
			t.Errorf("/proc/self/stat: %v", err)
		}
	}
}
