package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/laketest"
)

// smallFilesLake produces cfg's events to a new broker and extracts them
// with `extract --once --max-rows 10` into a new lake of small files; it
// returns the lake's folder and what lake check printed of it.
func smallFilesLake(t *testing.T, cfg laketest.Config) (lakeDir, check string) {
	t.Helper()
	addr := extracttest.StartBroker(t)
	extracttest.Produce(t, addr, cfg, nil)
	lakeDir = filepath.Join(t.TempDir(), "lake")
	if _, err := runCLI(t, "extract", "--once", "--brokers", addr, "--lake", lakeDir, "--max-rows", "10"); err != nil {
		t.Fatal(err)
	}
	check, err := runCLI(t, "lake", "check", "--lake", lakeDir)
	if err != nil {
		t.Fatalf("lake check: %v\n%s", err, check)
	}
	return lakeDir, check
}

// A lake of small files (an extract rolling every 10 rows), compacted by
// hand: lake compact says what it merged and removed, and lake check
// finds every record once.
func TestLakeCompactThenCheck(t *testing.T) {
	lakeDir, before := smallFilesLake(t, laketest.Config{Events: 400})
	out, err := runCLI(t, "lake", "compact", "--lake", lakeDir, "--grace", "0")
	if err != nil {
		t.Fatalf("lake compact: %v\n%s", err, out)
	}
	summary := regexp.MustCompile(`(?m)^(\d+) files merged into (\d+),.*\n(\d+) replaced files removed$`).FindStringSubmatch(out)
	if summary == nil || summary[1] == "0" || summary[1] != summary[3] || !strings.Contains(out, "merged ") {
		t.Fatalf("lake compact printed:\n%s", out)
	}
	after, err := runCLI(t, "lake", "check", "--lake", lakeDir)
	if err != nil || !strings.Contains(after, "ok: every offset") {
		t.Fatalf("lake check after compacting: %v\n%s", err, after)
	}
	events := regexp.MustCompile(`(?m)^events\s+\d+$`)
	if events.FindString(before) != events.FindString(after) {
		t.Errorf("lake check counted %q before compacting, %q after", events.FindString(before), events.FindString(after))
	}
}

func TestByteSizeFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		str  string
	}{
		{"134217728", 128 << 20, "128MiB"}, {"128MiB", 128 << 20, "128MiB"}, {"64 MB", 64e6, "64000000"},
		{"512KiB", 512 << 10, "512KiB"}, {"2GiB", 2 << 30, "2GiB"}, {"1000B", 1000, "1000"},
	} {
		var b byteSize
		if err := b.Set(tt.in); err != nil || int64(b) != tt.want || b.String() != tt.str {
			t.Errorf("Set(%q): %d %q %v; want %d %q", tt.in, int64(b), b.String(), err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"", "12 parsecs", "-1MiB", "1.5GiB"} {
		var b byteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

// extract --follow compacts as it follows: small files (a roll every 10
// rows) of days that are over are merged while it runs, and Ctrl-C leaves
// a lake that lake check finds whole.
func TestExtractFollowCompacts(t *testing.T) {
	addr := extracttest.StartBroker(t)
	want := extracttest.Produce(t, addr, laketest.Config{Events: 400}, nil)
	lakeDir := filepath.Join(t.TempDir(), "lake")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"extract", "--follow", "--brokers", addr, "--lake", lakeDir, "--max-rows", "10",
		"--compact-interval", "50ms", "--compact-grace", "0", "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	waitUntil(t, 60*time.Second, 50*time.Millisecond, "the lake to be whole and compacted", func() (bool, string) {
		r, err := lake.Check(ctx, lake.Dir(lakeDir), "events")
		return err == nil && r.OK() && r.Replaced == 0 && extracttest.CountsDiffer(r.Rows, want.PerType) == "" && mostPerGroup(t, lakeDir) == 1,
			fmt.Sprintf("%v %+v", err, r)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("extract --follow: %v\n%s", err, out.String())
	}
	if _, err := runCLI(t, "lake", "check", "--lake", lakeDir); err != nil {
		t.Fatal(err)
	}
}

func mostPerGroup(t *testing.T, lakeDir string) int {
	t.Helper()
	l, err := lake.ListData(context.Background(), lake.Dir(lakeDir))
	if err != nil {
		t.Fatal(err)
	}
	most, n := 0, map[lake.Group]int{}
	for _, f := range l.Events() {
		n[f.Group()]++
		most = max(most, n[f.Group()])
	}
	return most
}

// lake compact --lake-retention drops the days older than the retention
// (the events span the three days before today), waits --grace and removes
// them; lake check says what was dropped and finds the rest once.
func TestLakeCompactRetentionThenCheck(t *testing.T) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	oldest := today.Add(-72 * time.Hour).Format(time.DateOnly)
	lakeDir, before := smallFilesLake(t, laketest.Config{Events: 400, Start: today.Add(-72*time.Hour + 10*time.Hour)})
	// Four days: nothing is old enough.
	out, err := runCLI(t, "lake", "compact", "--lake", lakeDir, "--lake-retention", "96h", "--grace", "0")
	if err != nil || strings.Contains(out, "retired") {
		t.Fatalf("lake compact --lake-retention 96h: %v\n%s", err, out)
	}
	// Two days: the oldest of the three goes (whatever the hour now):
	// retired by the pass, its files removed after the grace.
	out, err = runCLI(t, "lake", "compact", "--lake", lakeDir, "--lake-retention", "48h", "--grace", "300ms")
	if err != nil || !strings.Contains(out, "retired day "+oldest) || !strings.Contains(out, "lake retention removed") {
		t.Fatalf("lake compact --lake-retention 48h: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(lakeDir, "events", "*", "event_date="+oldest)); len(left) > 0 {
		t.Errorf("folders of %s left: %v", oldest, left)
	}
	after, err := runCLI(t, "lake", "check", "--lake", lakeDir)
	if err != nil || !strings.Contains(after, "ok: every offset up to the checkpoint is in the lake exactly once, or in a day dropped by retention") {
		t.Fatalf("lake check after the drop: %v\n%s", err, after)
	}
	dropped := regexp.MustCompile(`(?m)^dropped\s+(\d+) records of 1 days \(` + oldest + ` to ` + oldest + `\)`).FindStringSubmatch(after)
	eventsBefore := regexp.MustCompile(`(?m)^events\s+(\d+)$`).FindStringSubmatch(before)
	eventsAfter := regexp.MustCompile(`(?m)^events\s+(\d+)$`).FindStringSubmatch(after)
	if dropped == nil || eventsBefore == nil || eventsAfter == nil || atoi(t, eventsAfter[1])+atoi(t, dropped[1]) != atoi(t, eventsBefore[1]) || dropped[1] == "0" {
		t.Errorf("lake check before:\n%s\nafter:\n%s", before, after)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLakeRetentionFlagIsChecked(t *testing.T) {
	lakeDir := t.TempDir()
	for _, args := range [][]string{
		{"lake", "compact", "--lake", lakeDir, "--lake-retention", "59m"},
		{"extract", "--follow", "--lake", lakeDir, "--brokers", "127.0.0.1:1", "--compact-interval", "0", "--lake-retention", "24h"},
		{"up", "--data-dir", lakeDir, "--compact-interval", "0", "--lake-retention", "24h"},
	} {
		if out, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), "--lake-retention") {
			t.Errorf("%v: %v, want an error about --lake-retention\n%s", args, err, out)
		}
	}
}
