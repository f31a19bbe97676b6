package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseWrk(t *testing.T) {
	testParse(t, "wrk", parseWrk, []parseCase{
		{file: "wrk_ok.txt", rps: 40819.16, p50: 0.88, p99: 8.41, requests: 163597},
		{file: "wrk_errors.txt", rps: 1200.5, p50: 0.812, p99: 2010, requests: 4810, errs: 7, bad: 12},
	})
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("wrk output without a rate accepted")
	}
}

// parseCase is a load tool's output in testdata and the figures its
// parser must read from it; note says whether it must add a Note.
type parseCase struct {
	file                string
	rps, p50, p99       float64
	requests, errs, bad int64
	note                bool
}

// testParse runs parse over each case's testdata file, in a subtest named
// after the file, and checks the tool and the figures it read.
func testParse(t *testing.T, tool string, parse func(string) (Measurement, error), tests []parseCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := parse(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if m.Tool != tool || m.RequestsPerSecond != tc.rps || m.P50Ms != tc.p50 || m.P99Ms != tc.p99 ||
				m.Requests != tc.requests || m.Errors != tc.errs || m.Non2xx != tc.bad || (m.Note != "") != tc.note {
				t.Errorf("got %+v", m)
			}
		})
	}
}

// readTestdata is the content of testdata/name.
func readTestdata(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestGetRatios(t *testing.T) {
	const bare, serve = "bare", "serve"
	m := func(target, tool string, round, conns int, rps float64) Measurement {
		return Measurement{Target: target, Tool: tool, Round: round, Conns: conns, RequestsPerSecond: rps}
	}
	ms := []Measurement{
		// Round 1: bare peaks at -c 50, serve at -c 200.
		m(bare, "wrk", 1, 50, 40000), m(serve, "wrk", 1, 50, 20000),
		m(bare, "wrk", 1, 200, 36000), m(serve, "wrk", 1, 200, 26000),
		// Round 2.
		m(bare, "wrk", 2, 50, 50000), m(serve, "wrk", 2, 50, 25000),
		m(bare, "wrk", 2, 200, 40000), m(serve, "wrk", 2, 200, 32000),
		// Round 3 lost serve's -c 200 figure: no ratio at that count.
		m(bare, "wrk", 3, 50, 40000), m(serve, "wrk", 3, 50, 30000),
		m(bare, "wrk", 3, 200, 40000),
		// Another tool, one round, one count.
		m(bare, "questlog load", 1, 50, 20000), m(serve, "questlog load", 1, 50, 14000),
		// Not GET / rounds: ignored.
		m(serve, "questlog load", 0, 0, 9000),
		m("other", "wrk", 1, 50, 1),
	}
	want := []Ratio{
		{Tool: "wrk", Median: 0.65, Rounds: []float64{0.65, 0.64, 0.75}},
		{Tool: "wrk", Conns: 50, Median: 0.5, Rounds: []float64{0.5, 0.5, 0.75}},
		{Tool: "wrk", Conns: 200, Median: 0.761111, Rounds: []float64{26000.0 / 36000, 0.8}},
		{Tool: "questlog load", Median: 0.7, Rounds: []float64{0.7}},
		{Tool: "questlog load", Conns: 50, Median: 0.7, Rounds: []float64{0.7}},
	}
	got := getRatios(ms, bare, serve)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if len(got) != len(want) {
		t.Fatalf("got %d ratios, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		ok := g.Tool == w.Tool && g.Conns == w.Conns && near(g.Median, w.Median) && len(g.Rounds) == len(w.Rounds)
		for j := 0; ok && j < len(w.Rounds); j++ {
			ok = near(g.Rounds[j], w.Rounds[j])
		}
		if !ok {
			t.Errorf("ratio %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestParseConns(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "50", want: []int{50}},
		{in: "50,200", want: []int{50, 200}},
		{in: " 64 , 256,64", want: []int{64, 256}},
		{in: "0", wantErr: true},
		{in: "50,", wantErr: true},
		{in: "fifty", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseConns(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseConns(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseAb(t *testing.T) {
	testParse(t, "ab", parseAb, []parseCase{
		// The seed under ab -n 3000 -c 10: no failure.
		{file: "ab_ok.txt", rps: 442.20, p50: 17, p99: 201, requests: 3000},
		// 136 answers of another length (no error), 7 receive errors and 7
		// exceptions, 15 non-2xx.
		{file: "ab_errors.txt", rps: 812.27, p50: 4, p99: 41, requests: 500, errs: 14, bad: 15, note: true},
	})
	if _, err := parseAb(readTestdata(t, "ab_refused.txt")); err == nil {
		t.Error("ab output without a rate accepted")
	}
}

func TestParseSections(t *testing.T) {
	tests := []struct {
		in      string
		want    sections
		wantErr bool
	}{
		{in: "oneplayer", want: sections{oneplayer: true}},
		{in: "get, players", want: sections{get: true, players: true}},
		{in: "get,players,oneplayer", want: allSections},
		{in: "", wantErr: true},
		{in: "seed", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseSections(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseSections(%q) = %+v, %v; want %+v (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseVariants(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: "default", want: []string{""}},
		{in: "default;--produce-linger 0", want: []string{"", "--produce-linger 0"}},
		{in: " ; --produce-linger 0 ;default", want: []string{"", "--produce-linger 0"}},
		{in: "--fsync", want: []string{"--fsync"}},
	}
	for _, tc := range tests {
		if got := parseVariants(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("parseVariants(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitEnv(t *testing.T) {
	tests := []struct {
		in        string
		env, args []string
	}{
		{in: "", env: nil, args: nil},
		{in: "--produce-linger 0", env: nil, args: []string{"--produce-linger", "0"}},
		{in: "GOGC=100", env: []string{"GOGC=100"}, args: nil},
		{in: "GOGC=100 GOMAXPROCS=1 --produce-linger 0", env: []string{"GOGC=100", "GOMAXPROCS=1"}, args: []string{"--produce-linger", "0"}},
		{in: "--catalog=x.json GOGC=100", env: nil, args: []string{"--catalog=x.json", "GOGC=100"}},
	}
	for _, tc := range tests {
		env, args := splitEnv(tc.in)
		if !slices.Equal(env, tc.env) || !slices.Equal(args, tc.args) {
			t.Errorf("splitEnv(%q) = %q, %q; want %q, %q", tc.in, env, args, tc.env, tc.args)
		}
	}
}

// A seed whose topic gained fewer records than it answered requests is
// said to drop events, and to be no fair baseline.
func TestPrintOnePlayerDrops(t *testing.T) {
	op := &OnePlayer{Path: onePlayerPath, Goal: goalOverSeed, Seed: "gunicorn", Delivery: []Delivery{
		{Target: "questlog serve GET /buy_sword, one player", Answered: 1000, Events: 1003, Topic: 1010, ReadBack: 1010},
		{Target: "seed (Flask, gunicorn -w 2) GET /buy_sword?username=u1", Answered: 1000, Events: 900, Topic: 905, ReadBack: 905},
	}}
	var b strings.Builder
	printOnePlayer(&b, op, nil)
	out := b.String()
	if !strings.Contains(out, "one player: 1000 answered 2xx, 1003 records appended meanwhile, none lost") {
		t.Errorf("serve's delivery not reported as complete:\n%s", out)
	}
	if !strings.Contains(out, "100 events DROPPED (the seed does not deliver every event: not a fair baseline)") {
		t.Errorf("the seed's dropped events not reported:\n%s", out)
	}
}

func TestSeedRatios(t *testing.T) {
	serve := &onePlayerTarget{name: "serve"}
	seed := &onePlayerTarget{name: "seed", seed: true}
	bare := &onePlayerTarget{name: "bare", bare: true}
	m := func(target, tool string, round int, rps, cpu float64) Measurement {
		return Measurement{Target: target, Tool: tool, Round: round, RequestsPerSecond: rps, ServerCPUMicros: cpu}
	}
	ms := []Measurement{
		m("serve", "wrk", 1, 10000, 100), m("seed", "wrk", 1, 1000, 1500), m("bare", "wrk", 1, 20000, 40),
		m("serve", "wrk", 2, 6000, 120), m("seed", "wrk", 2, 500, 1800), m("bare", "wrk", 2, 15000, 0),
		m("serve", "wrk", 3, 8000, 110), m("seed", "wrk", 3, 1000, 1650), m("bare", "wrk", 3, 16000, 40),
		// ab: one round, the seed's CPU unknown.
		m("serve", "ab", 1, 2000, 300), m("seed", "ab", 1, 500, 0), m("bare", "ab", 1, 4000, 100),
	}
	got := seedRatios(ms, []string{"wrk", "ab"}, []*onePlayerTarget{serve, seed, bare})
	want := []SeedRatio{
		{Target: "serve", Tool: "wrk", Median: 10, Rounds: []float64{10, 12, 8}, CPUMedian: 15, CPURounds: []float64{15, 15, 15}},
		{Target: "serve", Tool: "ab", Median: 4, Rounds: []float64{4}},
		{Target: "bare", Tool: "wrk", Median: 20, Rounds: []float64{20, 30, 16}, CPUMedian: 39.375, CPURounds: []float64{37.5, 41.25}},
		{Target: "bare", Tool: "ab", Median: 8, Rounds: []float64{8}},
	}
	near := func(a, b []float64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-9 {
				return false
			}
		}
		return true
	}
	if len(got) != len(want) {
		t.Fatalf("got %d ratios, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Target != w.Target || g.Tool != w.Tool || math.Abs(g.Median-w.Median) > 1e-9 || math.Abs(g.CPUMedian-w.CPUMedian) > 1e-9 ||
			!near(g.Rounds, w.Rounds) || !near(g.CPURounds, w.CPURounds) {
			t.Errorf("ratio %d: got %+v, want %+v", i, g, w)
		}
	}
	if seedRatios(ms, []string{"wrk"}, []*onePlayerTarget{serve, bare}) != nil {
		t.Error("ratios without a seed")
	}
}
