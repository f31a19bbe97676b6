package main

import (
	"os"
	"path/filepath"
	"testing"
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
