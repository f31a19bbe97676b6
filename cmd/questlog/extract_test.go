package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestExtractOnceThenLakeCheck(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = cl.ProduceSync(context.Background(),
		&kgo.Record{Value: []byte(`{"event_type":"signup","event_time":"2026-11-29T06:30:00.000001Z","user":"ada","status":"ok"}`)},
		&kgo.Record{Value: []byte(`{"event_type":"buy_item","event_time":"2026-11-29T06:30:01.000001Z","user":"ada","quantity":1}`)},
		&kgo.Record{Value: []byte(`not an event`)},
	).FirstErr()
	if err != nil {
		t.Fatal(err)
	}
	lakeDir := filepath.Join(t.TempDir(), "lake")

	out, err := runCLI(t, "extract", "--once", "--brokers", addr, "--lake", lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`records\s+3`, `quarantined\s+1`, `  buy_item\s+1`, `  signup\s+1`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("summary lacks %s:\n%s", want, out)
		}
	}

	out, err = runCLI(t, "lake", "check", "--lake", lakeDir)
	if err != nil || !strings.Contains(out, "ok: every offset") {
		t.Fatalf("lake check: %v\n%s", err, out)
	}

	// A lake that lost a file fails the check with exit status 1.
	files, _ := filepath.Glob(filepath.Join(lakeDir, "events", "event_type=signup", "*", "*.parquet"))
	if len(files) != 1 {
		t.Fatalf("signup files: %v", files)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "lake", "check", "--lake", lakeDir)
	var exit exitError
	if !errors.As(err, &exit) || exit.code != 1 || !strings.Contains(out, "problem: partition") {
		t.Errorf("lake check of a broken lake: %v\n%s", err, out)
	}
}

func TestExtractFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"once and follow", []string{"extract", "--once", "--follow"}, "--follow and --once cannot be combined"},
		{"group without follow", []string{"extract", "--group", "lake-writers"}, "--group needs --follow"},
		{"object store without a bucket", []string{"extract", "--lake", "s3:///lake"}, "names no bucket"},
		{"unknown scheme", []string{"extract", "--lake", "gs://bucket/lake"}, `unknown scheme "gs"`},
		{"bad compression", []string{"extract", "--lake", "LAKE", "--compression", "lzma"}, "unknown compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			for i, a := range args {
				if a == "LAKE" {
					args[i] = t.TempDir()
				}
			}
			_, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
