// Command ingest measures how fast questlog's API takes events in, against
// the ceiling of a bare Go net/http handler on the same machine.
//
// It builds questlog from ./cmd/questlog, then in one go:
//
//   - starts a bare handler that answers "ok" (a copy of this program, so it
//     is a process of its own like the server it is compared with), and
//     `questlog serve` on free ports with its own temporary --data-dir and
//     --broker-listen, and waits for its /readyz;
//   - drives GET / on one, then the other, with `questlog load` (closed
//     model, -c workers) and with wrk when it is installed, at each of the
//     -c connection counts, for -rounds alternating rounds (an idle server
//     costs nothing, and alternating spreads the noise of a shared machine
//     over both);
//   - plays the players scenario against serve, first as fast as
//     -users players go (the maximal rate), then at half that rate in the
//     open model; each run first signs every player up and logs it in
//     (questlog load's setup, unmeasured, its time printed), so the figures
//     are the steady-state play, replacement players' signups included;
//   - drives the bare handler at that same half rate with as many workers,
//     the floor that the machine and the load tool alone put under p99;
//   - one player (issue 13 §1): starts another serve per -oneplayer-serve
//     variant (by default one with serve's defaults and one with
//     --produce-linger 0), each with --starting-gold 2000000000, signs
//     player u1 up over GET /signup and takes its session cookie; starts
//     the seed, the course's Flask app (bench/ingest/seed/app.py) under
//     gunicorn -w 2, producing with kafka-python, fire-and-forget, to a
//     `questlog broker` of its own (-seed auto: when gunicorn and its
//     Python's flask and kafka modules are there); then, alternating for
//     -rounds rounds, drives GET /buy_sword with the cookie on each serve,
//     GET /buy_sword?username=u1 on the seed and GET /buy_sword on the bare
//     handler with wrk -t2 -c50 -d<duration>, ab -n 3000 -c 10 (a
//     connection per request, as the seed's load test ran it) when ab is
//     on PATH, and questlog load -c 50. The bare handler's figures are
//     each tool's ceiling on this machine: ab is single-threaded and tops
//     out around 5,000 requests/s here, so it cannot show a server 10× a
//     seed at 1,600. After each measurement it counts the records the
//     target's topic gained (end offsets) against the requests answered
//     2xx, and at the end reads every topic back with questlog tail; it
//     says so when the seed dropped events (it is no fair baseline then);
//   - prints requests/s, p50 and p99 of each, questlog's share of the bare
//     handler's requests/s with the same tool at the same -c, the share of
//     each server's maximal requests/s (its best over the -c counts), each
//     one-player target's requests/s over the seed's and the seed's CPU per
//     request over its own, and whether the goals are met.
//
// -only get,players,oneplayer runs some of the three sections (default
// all of them, in that order).
//
// Why more than one -c: each GET / waits for its event's ack, so at a low
// connection count serve is bound by that wait, not by the CPU (at -c 50
// it leaves 15-20% of the cores idle while the bare handler saturates
// them). A server's requests/s is its maximal rate, reached with enough
// connections to keep it busy; the ratio at each -c is printed beside it.
//
// serve runs with --password-cost 4 by default (-password-cost): bcrypt at
// its default cost of 10 takes tens of milliseconds of CPU per signup and
// login, which would measure bcrypt rather than the ingest path. It also
// runs without serve's limits on failed logins (--login-failures-per-user
// and --login-failures-per-address 0): the players scenario sends about 1%
// wrong passwords, all from this machine's address, which passes the
// per-address default within seconds and then turns every login of the
// next run into a 429; with the limits on, the work measured would also
// change as wrong passwords stop being checked.
//
// Run it from the repository root:
//
//	go run ./bench/ingest                      # 10 s per measurement
//	go run ./bench/ingest -duration 30s -c 64,256 -json results.json
//	go run ./bench/ingest -only oneplayer -duration 5s -rounds 2
//
// The seed needs `apt-get install -y gunicorn python3-flask python3-kafka`;
// without them the oneplayer section runs without it and says so.
//
// The goals (BENCHMARKS.md, "Ingest (issue 5)" and "One player (issue 13
// §1)"): on GET /, at least 0.6 of the bare handler's requests/s with
// questlog load and 0.8 with wrk (issue 13 §2); the
// players scenario at half its maximal rate with p99 under 10 ms; one
// player's GET /buy_sword at least 10× the seed's requests/s on the same
// machine.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/questlog/questlog/bench/internal/harness"
	"github.com/questlog/questlog/bench/internal/job"
	"github.com/questlog/questlog/bench/internal/procstat"
	"github.com/questlog/questlog/internal/loadgen"
)

type options struct {
	duration     time.Duration
	warmup       time.Duration
	conns        []int
	users        int
	rounds       int
	questlog     string
	wrk          string
	serveArgs    string
	passwordCost int
	jsonOut      string
	bare         string
	sections     sections
	seed         string
	ab           string
	variants     []string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measurement")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each target's first measurement")
	o.conns = []int{50, 400}
	flag.Func("c", "concurrent connections for GET / (questlog load -c, wrk -c), comma-separated: each is measured on both servers (default 50,400)", func(v string) error {
		cs, err := parseConns(v)
		o.conns = cs
		return err
	})
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds of GET / on the bare handler and on serve")
	flag.IntVar(&o.users, "users", 100, "players in the players scenario")
	flag.StringVar(&o.questlog, "questlog", "", "a questlog binary to use instead of building ./cmd/questlog")
	flag.StringVar(&o.wrk, "wrk", "auto", `wrk binary: "auto" (use it when on PATH), "off", or a path`)
	flag.StringVar(&o.serveArgs, "serve-args", "", `extra arguments for questlog serve, e.g. "--fsync"`)
	flag.IntVar(&o.passwordCost, "password-cost", 4, "serve's --password-cost, the bcrypt cost of signup and login (0: serve's default, 10)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this JSON file")
	flag.StringVar(&o.bare, "bare", "", "internal: serve the bare handler on this address and print it")
	o.sections = allSections
	flag.Func("only", "run only these sections, comma-separated: get (GET / against the bare handler), players (the players scenario), oneplayer (one player's GET /buy_sword, beside the seed) (default all)", func(v string) error {
		s, err := parseSections(v)
		o.sections = s
		return err
	})
	flag.StringVar(&o.seed, "seed", "auto", `the seed (Flask under gunicorn -w 2, bench/ingest/seed) in the oneplayer section: "auto" (when gunicorn and its Python's flask and kafka modules are there) or "off"`)
	flag.StringVar(&o.ab, "ab", "auto", `ab (ApacheBench) binary for the oneplayer section: "auto" (use it when on PATH), "off", or a path`)
	o.variants = []string{"", "--produce-linger 0"}
	flag.Func("oneplayer-serve", `the oneplayer section's serves, separated by ";": each is one more questlog serve with these arguments (after -serve-args), "default" for none; leading NAME=VALUE words set its environment, as in a shell ("GOGC=100 --produce-linger 0") (default "default;--produce-linger 0")`, func(v string) error {
		o.variants = parseVariants(v)
		return nil
	})
	flag.Parse()

	if o.bare != "" {
		if err := serveBare(o.bare); err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			os.Exit(1)
		}
		return
	}
	if o.rounds < 1 || o.duration < time.Second || o.users < 1 {
		fmt.Fprintln(os.Stderr, "ingest: want -rounds >= 1, -duration >= 1s, -users >= 1")
		os.Exit(2)
	}
	if o.seed != "auto" && o.seed != "off" {
		fmt.Fprintln(os.Stderr, `ingest: -seed is "auto" or "off"`)
		os.Exit(2)
	}
	harness.Main("ingest", func(ctx context.Context, tmp string) error { return run(ctx, o, tmp) })
}

// serveBare is the ceiling: the least a Go HTTP server can do per request.
func serveBare(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening", ln.Addr())
	ok := []byte("ok")
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(ok)
	}))
}

// Measurement is one row of the results.
type Measurement struct {
	Target            string  `json:"target"`
	Tool              string  `json:"tool"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	P50Ms             float64 `json:"p50_ms"`
	P99Ms             float64 `json:"p99_ms"`
	// Conns is the connection count of a GET / measurement.
	Conns    int   `json:"conns,omitempty"`
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Non2xx   int64 `json:"non_2xx"`
	// Round numbers the alternating GET / rounds (0: the scenario).
	Round int `json:"round,omitempty"`
	// RatioToBare is requests/s over the bare handler's with the same tool
	// and connection count in the same round.
	RatioToBare float64 `json:"ratio_to_bare,omitempty"`
	// SetupSeconds is how long the scenario's unmeasured setup (every
	// player signs up and logs in) took before the measured window.
	SetupSeconds float64 `json:"setup_seconds,omitempty"`
	// ScheduleLagP99Ms (open model) is how late the load tool sent its
	// requests after they were due, at p99: when it is near P99Ms, the
	// tail is every worker waiting on the server.
	ScheduleLagP99Ms float64 `json:"schedule_lag_p99_ms,omitempty"`
	// ServerCPUMicros is the target server's own CPU time (user + system,
	// all its threads) per request during the measurement: unlike the
	// rates and latencies it hardly moves when other processes share the
	// cores. 0 where /proc is missing.
	ServerCPUMicros float64 `json:"server_cpu_us_per_request,omitempty"`
	// BrokerCPUMicros (the seed) is the part of ServerCPUMicros spent by
	// the seed's Kafka broker, a process of its own; serve's embedded
	// broker is inside serve's process and its figure.
	BrokerCPUMicros float64 `json:"broker_cpu_us_per_request,omitempty"`
	// Answered (one-player rows) is the requests answered 2xx, and Events
	// the records the target's topic gained during the measurement: at
	// least Answered when no event was lost (the tools stop counting at
	// the end of their window while the server still answers and logs the
	// requests in flight).
	Answered int64 `json:"answered_2xx,omitempty"`
	Events   int64 `json:"events,omitempty"`
	// RatioToSeed (one-player rows) is requests/s over the seed's with the
	// same tool in the same round.
	RatioToSeed float64 `json:"ratio_to_seed,omitempty"`
	Note        string  `json:"note,omitempty"`
}

// Results is what -json writes.
type Results struct {
	Date         string        `json:"date"`
	Sections     []string      `json:"sections"`
	CPUModel     string        `json:"cpu_model,omitempty"`
	CPUs         int           `json:"cpus"`
	GoVersion    string        `json:"go_version"`
	Duration     string        `json:"duration"`
	Conns        []int         `json:"conns"`
	Users        int           `json:"users"`
	ServeArgs    []string      `json:"serve_args"`
	Measurements []Measurement `json:"measurements"`
	GoalGetRatio float64       `json:"goal_get_ratio"`
	// GoalGetRatioWrk is GET /'s goal with wrk (issue 13 §2).
	GoalGetRatioWrk float64 `json:"goal_get_ratio_wrk"`
	GoalP99Ms       float64 `json:"goal_p99_ms"`
	// GetRatio is the median over the rounds of serve's maximal requests/s
	// over the bare handler's on GET / with questlog load (each server's
	// best over the connection counts); GetRatioWrk with wrk.
	GetRatio    float64 `json:"get_ratio"`
	GetRatioWrk float64 `json:"get_ratio_wrk,omitempty"`
	// Ratios are every GET / ratio: per tool, the maximal rates' and each
	// connection count's, with their medians over the rounds.
	Ratios      []Ratio `json:"ratios"`
	HalfRateP99 float64 `json:"half_rate_p99_ms"`
	// The machine's load average (1 min) before and after: the figures
	// are only as quiet as the machine was.
	LoadAverageBefore string `json:"load_average_before"`
	LoadAverageAfter  string `json:"load_average_after"`
	// OnePlayer is the oneplayer section's summary.
	OnePlayer *OnePlayer `json:"one_player,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio is serve's share of the bare handler's GET / requests/s with one
// tool: at one connection count, or (Conns 0) of each server's maximal
// requests/s, its best over the connection counts of the round.
type Ratio struct {
	Tool   string    `json:"tool"`
	Conns  int       `json:"conns,omitempty"`
	Median float64   `json:"median"`
	Rounds []float64 `json:"rounds"`
}

// getRatios computes every Ratio from the GET / measurements (those with a
// round) of the targets named bare and serve. A round without both
// servers' figures at a connection count adds nothing at that count.
func getRatios(ms []Measurement, bare, serve string) []Ratio {
	type key struct {
		tool         string
		round, conns int
	}
	rps := map[string]map[key]float64{bare: {}, serve: {}}
	var tools []string
	var conns []int
	rounds := 0
	for _, m := range ms {
		if m.Round == 0 || rps[m.Target] == nil {
			continue
		}
		rps[m.Target][key{m.Tool, m.Round, m.Conns}] = m.RequestsPerSecond
		if !slices.Contains(tools, m.Tool) {
			tools = append(tools, m.Tool)
		}
		if !slices.Contains(conns, m.Conns) {
			conns = append(conns, m.Conns)
		}
		rounds = max(rounds, m.Round)
	}
	var out []Ratio
	for _, tool := range tools {
		peak := Ratio{Tool: tool}
		byConns := make([]Ratio, len(conns))
		for round := 1; round <= rounds; round++ {
			var bestBare, bestServe float64
			for i, c := range conns {
				k := key{tool, round, c}
				b, okb := rps[bare][k]
				s, oks := rps[serve][k]
				if !okb || !oks || b <= 0 {
					continue
				}
				byConns[i].Rounds = append(byConns[i].Rounds, s/b)
				bestBare, bestServe = max(bestBare, b), max(bestServe, s)
			}
			if bestBare > 0 {
				peak.Rounds = append(peak.Rounds, bestServe/bestBare)
			}
		}
		if len(peak.Rounds) == 0 {
			continue
		}
		peak.Median = median(peak.Rounds)
		out = append(out, peak)
		for i, r := range byConns {
			if len(r.Rounds) > 0 {
				out = append(out, Ratio{Tool: tool, Conns: conns[i], Median: median(r.Rounds), Rounds: r.Rounds})
			}
		}
	}
	return out
}

func run(ctx context.Context, o options, tmp string) error {
	bin, err := harness.Binary(ctx, o.questlog, tmp)
	if err != nil {
		return err
	}
	wrk := lookTool(o.wrk, "wrk")

	res := Results{
		Date: time.Now().UTC().Format(time.RFC3339), Sections: o.sections.names(), CPUModel: job.CPUModel(),
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Duration: o.duration.String(), Conns: o.conns, Users: o.users, GoalGetRatio: 0.6, GoalGetRatioWrk: 0.8, GoalP99Ms: 10,
	}

	load := func(target string, args ...string) (loadgen.Summary, error) {
		return runLoad(ctx, bin, append(args, target)...)
	}
	// measure runs load against path on p and adds p's CPU time per request.
	measure := func(p *harness.Process, name, path string, args ...string) (Measurement, loadgen.Summary, error) {
		cpu0 := procstat.CPU(p.Pid())
		s, err := load(p.URL()+path, args...)
		if err != nil {
			return Measurement{}, s, fmt.Errorf("%s: %w", name, err)
		}
		m := fromSummary(name, "questlog load", s)
		if cpu1 := procstat.CPU(p.Pid()); cpu0 > 0 && cpu1 > cpu0 && s.Requests > 0 {
			m.ServerCPUMicros = float64((cpu1-cpu0)/time.Microsecond) / float64(s.Requests)
		}
		return m, s, nil
	}
	res.LoadAverageBefore = job.LoadAverage()

	// The servers stay up (idle, each costs nothing) so that rounds can
	// alternate between them: on a shared machine, noise then hits all.
	bare, err := startBare(ctx)
	if err != nil {
		return err
	}
	defer bare.Stop()

	if o.sections.get || o.sections.players {
		serveArgs, serveAddr, err := serveArguments(ctx, bin, o, tmp)
		if err != nil {
			return err
		}
		res.ServeArgs = serveArgs
		srv, err := startServe(ctx, bin, nil, serveArgs, serveAddr, filepath.Join(tmp, "serve.log"))
		if err != nil {
			return err
		}
		defer srv.Stop()
		if o.sections.get {
			if err := getSection(ctx, o, &res, bare, srv, wrk, load, measure); err != nil {
				return err
			}
		}
		if o.sections.players {
			if err := playersSection(o, &res, bare, srv, load, measure); err != nil {
				return err
			}
		}
	}
	if o.sections.oneplayer {
		b := &onePlayerBench{o: o, bin: bin, tmp: tmp, wrk: wrk, ab: lookTool(o.ab, "ab")}
		op, ms, err := b.run(ctx, bare)
		if err != nil {
			return err
		}
		res.OnePlayer = op
		res.Measurements = append(res.Measurements, ms...)
	}
	res.LoadAverageAfter = job.LoadAverage()

	printResults(os.Stdout, &res)
	if o.jsonOut != "" {
		return harness.WriteJSON(o.jsonOut, res)
	}
	return nil
}

type (
	loadFunc    func(target string, args ...string) (loadgen.Summary, error)
	measureFunc func(p *harness.Process, name, path string, args ...string) (Measurement, loadgen.Summary, error)
)

// getSection drives GET / on the bare handler and on serve, alternating,
// with each tool at each connection count, for -rounds rounds.
func getSection(ctx context.Context, o options, res *Results, bare, srv *harness.Process, wrk string, load loadFunc, measure measureFunc) error {
	targets := []struct {
		name, url string
		p         *harness.Process
	}{
		{"bare handler GET /", bare.URL() + "/", bare},
		{"questlog serve GET /", srv.URL() + "/", srv},
	}
	if o.warmup > 0 {
		for _, t := range targets {
			if _, err := load(t.url, "-t", o.warmup.String(), "-c", strconv.Itoa(slices.Max(o.conns))); err != nil {
				return fmt.Errorf("warm up %s: %w", t.name, err)
			}
		}
	}
	tools := []string{"questlog load"}
	if wrk != "" {
		tools = append(tools, "wrk")
	}
	for round := 1; round <= o.rounds; round++ {
		for _, tool := range tools {
			for _, c := range o.conns {
				var pair [2]Measurement
				for i, t := range targets {
					var m Measurement
					var err error
					if tool == "wrk" {
						if m, err = runWrk(ctx, wrk, t.url, c, o.duration); err != nil {
							return fmt.Errorf("%s with wrk: %w", t.name, err)
						}
					} else if m, _, err = measure(t.p, t.name, "/", "-t", o.duration.String(), "-c", strconv.Itoa(c)); err != nil {
						return err
					}
					m.Target, m.Round, m.Conns = t.name, round, c
					pair[i] = m
				}
				if pair[0].RequestsPerSecond > 0 {
					pair[1].RatioToBare = pair[1].RequestsPerSecond / pair[0].RequestsPerSecond
				}
				res.Measurements = append(res.Measurements, pair[0], pair[1])
			}
		}
	}
	res.Ratios = getRatios(res.Measurements, targets[0].name, targets[1].name)
	for _, r := range res.Ratios {
		if r.Conns == 0 && r.Tool == "questlog load" {
			res.GetRatio = r.Median
		}
		if r.Conns == 0 && r.Tool == "wrk" {
			res.GetRatioWrk = r.Median
		}
	}
	return nil
}

// playersSection plays the players scenario against serve: its maximal
// rate, then half of it, then the bare handler at that half rate (the
// floor).
func playersSection(o options, res *Results, bare, srv *harness.Process, load loadFunc, measure measureFunc) error {
	users := strconv.Itoa(o.users)
	dur := o.duration.String()
	if o.warmup > 0 {
		if _, err := load(srv.URL(), "--scenario", "players", "--users", users, "-t", o.warmup.String()); err != nil {
			return fmt.Errorf("warm up players: %w", err)
		}
	}
	m, maxRun, err := measure(srv, "players scenario, maximal rate", "", "--scenario", "players", "--users", users, "-t", dur)
	if err != nil {
		return err
	}
	m.Note = scenarioNote(maxRun)
	res.Measurements = append(res.Measurements, m)
	half := maxRun.RequestsPerSecond / 2
	m, halfRun, err := measure(srv, fmt.Sprintf("players scenario, %.0f/s (half)", half), "", "--scenario", "players", "--users", users, "-t", dur,
		"--rate", strconv.FormatFloat(half, 'f', 0, 64))
	if err != nil {
		return err
	}
	m.Note = scenarioNote(halfRun)
	res.Measurements = append(res.Measurements, m)
	res.HalfRateP99 = halfRun.Latency.P99

	// The floor: the same open-model rate and workers against the bare
	// handler shows what the machine and the load tool alone add to p99.
	m, _, err = measure(bare, fmt.Sprintf("bare handler GET / at %.0f/s (floor)", half), "/", "-t", dur, "-c", users, "--rate", strconv.FormatFloat(half, 'f', 0, 64))
	if err != nil {
		return err
	}
	res.Measurements = append(res.Measurements, m)
	return nil
}

// lookTool resolves a tool flag: "off", "auto" (name when on PATH) or a path.
func lookTool(flagValue, name string) string {
	switch flagValue {
	case "off":
		return ""
	case "auto":
		p, _ := exec.LookPath(name)
		return p
	}
	return flagValue
}

// sections are the parts of the benchmark to run (-only).
type sections struct{ get, players, oneplayer bool }

var allSections = sections{get: true, players: true, oneplayer: true}

func (s sections) names() []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{{s.get, "get"}, {s.players, "players"}, {s.oneplayer, "oneplayer"}} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// parseSections reads -only: section names separated by commas.
func parseSections(v string) (sections, error) {
	var s sections
	for f := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(f) {
		case "get":
			s.get = true
		case "players":
			s.players = true
		case "oneplayer":
			s.oneplayer = true
		default:
			return s, fmt.Errorf("section %q: want get, players or oneplayer", f)
		}
	}
	return s, nil
}

// parseVariants reads -oneplayer-serve: serve arguments separated by ";",
// "default" (or nothing) for serve's defaults.
func parseVariants(v string) []string {
	var out []string
	for f := range strings.SplitSeq(v, ";") {
		f = strings.TrimSpace(f)
		if f == "default" {
			f = ""
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// scenarioNote gives the p99 of the actions that hash a password, which
// cost what serve's --password-cost says and dominate the tail when common.
func scenarioNote(s loadgen.Summary) string {
	var parts []string
	if s.Setup != nil {
		parts = append(parts, fmt.Sprintf("setup (unmeasured): %d players signed up and logged in in %.2f s",
			s.Setup.Players, s.Setup.DurationSeconds))
	}
	for _, a := range s.Actions {
		if a.Action == "signup" || a.Action == "login" {
			parts = append(parts, fmt.Sprintf("%s %d× p99 %.1f ms", a.Action, a.Requests, a.Latency.P99))
		}
	}
	// The most common actions' tails tell a slow action from a slow server.
	common := slices.Clone(s.Actions)
	slices.SortFunc(common, func(a, b loadgen.ActionSummary) int { return int(b.Requests - a.Requests) })
	for _, a := range common[:min(3, len(common))] {
		parts = append(parts, fmt.Sprintf("%s %d× p99 %.1f ms", a.Action, a.Requests, a.Latency.P99))
	}
	parts = append(parts, fmt.Sprintf("intended failures %d, unexpected 4xx %d", s.IntendedFailures, s.Unexpected4xx))
	return strings.Join(parts, "; ")
}

// parseConns reads -c: connection counts separated by commas.
func parseConns(v string) ([]int, error) {
	ns, err := harness.ParseCounts(v, "connection count")
	if err != nil {
		return nil, err
	}
	var cs []int
	for _, c := range ns {
		if !slices.Contains(cs, c) {
			cs = append(cs, c)
		}
	}
	return cs, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func fromSummary(target, tool string, s loadgen.Summary) Measurement {
	m := Measurement{
		Target: target, Tool: tool, RequestsPerSecond: s.RequestsPerSecond,
		P50Ms: s.Latency.P50, P99Ms: s.Latency.P99, Requests: s.Requests, Errors: s.Errors, Non2xx: s.Non2xx,
	}
	if s.Setup != nil {
		m.SetupSeconds = s.Setup.DurationSeconds
	}
	if s.ScheduleLag != nil {
		m.ScheduleLagP99Ms = s.ScheduleLag.P99
	}
	return m
}

func printResults(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\nIngest benchmark (%s), %s, %s, %d CPUs, %s, %s per measurement",
		strings.Join(r.Sections, ", "), r.Date, r.CPUModel, r.CPUs, r.GoVersion, r.Duration)
	if slices.Contains(r.Sections, "get") {
		fmt.Fprintf(w, ", GET / at -c %s", joinInts(r.Conns))
	}
	if slices.Contains(r.Sections, "players") {
		fmt.Fprintf(w, ", %d players", r.Users)
	}
	fmt.Fprintln(w)
	if len(r.ServeArgs) > 0 {
		fmt.Fprintf(w, "questlog %s\n", strings.Join(r.ServeArgs, " "))
	}
	fmt.Fprintf(w, "load average before %s, after %s\n\n", r.LoadAverageBefore, r.LoadAverageAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "round\ttarget\ttool\tc\trequests/s\tp50 ms\tp99 ms\tlag p99 ms\tserver CPU µs/req\terrors\tnon-2xx\tevents\tvs bare\tvs seed\t")
	for _, m := range r.Measurements {
		ratio, round, conns, lag, cpu, events, seed := "", "", "", "", "", "", ""
		if m.RatioToBare > 0 {
			ratio = fmt.Sprintf("%.2f", m.RatioToBare)
		}
		if m.RatioToSeed > 0 {
			seed = fmt.Sprintf("%.1f", m.RatioToSeed)
		}
		if m.Round > 0 {
			round = strconv.Itoa(m.Round)
		}
		if m.Conns > 0 {
			conns = strconv.Itoa(m.Conns)
		}
		if m.ScheduleLagP99Ms > 0 {
			lag = fmt.Sprintf("%.3f", m.ScheduleLagP99Ms)
		}
		if m.ServerCPUMicros > 0 {
			cpu = fmt.Sprintf("%.0f", m.ServerCPUMicros)
			if m.BrokerCPUMicros > 0 {
				cpu += fmt.Sprintf(" (broker %.0f)", m.BrokerCPUMicros)
			}
		}
		if m.Events > 0 || m.Answered > 0 {
			events = strconv.FormatInt(m.Events, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n", round, m.Target, m.Tool, conns, m.RequestsPerSecond,
			m.P50Ms, m.P99Ms, lag, cpu, m.Errors, m.Non2xx, events, ratio, seed)
	}
	_ = tw.Flush()
	for _, m := range r.Measurements {
		if m.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", m.Target, m.Note)
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\nGET /, serve's requests/s over the bare handler's (median of rounds; rounds):")
		for _, x := range r.Ratios {
			what := "maximal rates"
			if x.Conns > 0 {
				what = fmt.Sprintf("-c %d", x.Conns)
			}
			fmt.Fprintf(w, "  %-13s %-13s %.2f (%s)\n", x.Tool, what, x.Median, joinFloats(x.Rounds, "%.2f"))
		}
		fmt.Fprintf(w, "\ngoal GET / >= %.1f of bare (maximal rates, questlog load, median of rounds): %.2f, %s\n", r.GoalGetRatio, r.GetRatio, verdict(r.GetRatio >= r.GoalGetRatio))
		if r.GetRatioWrk > 0 {
			fmt.Fprintf(w, "goal GET / >= %.1f of bare with wrk (maximal rates, median of rounds): %.2f, %s\n", r.GoalGetRatioWrk, r.GetRatioWrk, verdict(r.GetRatioWrk >= r.GoalGetRatioWrk))
		}
	}
	if slices.Contains(r.Sections, "players") {
		fmt.Fprintf(w, "goal players p99 < %.0f ms at half the maximal rate: %.3f ms, %s\n", r.GoalP99Ms, r.HalfRateP99, verdict(r.HalfRateP99 < r.GoalP99Ms))
	}
	if r.OnePlayer != nil {
		printOnePlayer(w, r.OnePlayer, r.Measurements)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func joinFloats(xs []float64, format string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}

// printOnePlayer prints the oneplayer section's summary: what ran, the
// ratios to the seed, the ab ceiling beside them, whether every answered
// request's event reached its topic, and the goal.
func printOnePlayer(w io.Writer, op *OnePlayer, ms []Measurement) {
	fmt.Fprintf(w, "\nOne player, GET %s (issue 13 §1): wrk -t2 -c%d, ab -n %d -c %d (a connection per request), questlog load -c %d\n",
		op.Path, onePlayerConns, abRequests, abConns, onePlayerConns)
	for _, s := range op.Serves {
		fmt.Fprintf(w, "  serve: %s\n", s)
	}
	if op.Seed != "" {
		fmt.Fprintf(w, "  seed:  %s\n", op.Seed)
	} else {
		fmt.Fprintf(w, "  seed:  not run: %s\n", op.SeedSkipped)
	}
	if len(op.Ratios) > 0 {
		fmt.Fprintln(w, "requests/s over the seed's (median of rounds; rounds):")
		for _, x := range op.Ratios {
			fmt.Fprintf(w, "  %-13s %6.1f×  (%s)  %s\n", x.Tool, x.Median, joinFloats(x.Rounds, "%.1f"), x.Target)
		}
		fmt.Fprintln(w, "the seed's server CPU per request (gunicorn and its broker) over the target's (median of rounds; rounds):")
		for _, x := range op.Ratios {
			if x.CPUMedian > 0 && !strings.HasPrefix(x.Target, "bare handler") {
				fmt.Fprintf(w, "  %-13s %6.1f×  (%s)  %s\n", x.Tool, x.CPUMedian, joinFloats(x.CPURounds, "%.1f"), x.Target)
			}
		}
	}
	// The ceiling: what each tool gets out of a handler that does nothing.
	for _, tool := range []string{"ab", "wrk"} {
		var bare []float64
		for _, m := range ms {
			if m.Tool == tool && m.Round > 0 && strings.HasPrefix(m.Target, "bare handler GET "+op.Path) {
				bare = append(bare, m.RequestsPerSecond)
			}
		}
		if len(bare) > 0 {
			fmt.Fprintf(w, "%s's ceiling here (the bare handler): %.0f requests/s (median; rounds %s)\n", tool, median(bare), joinFloats(bare, "%.0f"))
		}
	}
	for _, d := range op.Delivery {
		fmt.Fprintf(w, "events: %s: %d answered 2xx, %d records appended meanwhile", d.Target, d.Answered, d.Events)
		if lost := d.Lost(); lost > 0 {
			fmt.Fprintf(w, ": %d events DROPPED", lost)
			if strings.HasPrefix(d.Target, "seed") {
				fmt.Fprint(w, " (the seed does not deliver every event: not a fair baseline)")
			}
		} else {
			fmt.Fprint(w, ", none lost")
		}
		fmt.Fprintf(w, "; topic %d records, %d read back with questlog tail", d.Topic, d.ReadBack)
		if d.ReadBackErr != "" {
			fmt.Fprintf(w, " (%s)", d.ReadBackErr)
		}
		fmt.Fprintln(w)
	}
	for _, x := range op.Ratios {
		if x.Tool != "wrk" && x.Tool != "ab" || strings.HasPrefix(x.Target, "bare handler") {
			continue
		}
		fmt.Fprintf(w, "goal one player >= %.0f× the seed (%s, median of rounds): %.2f×, %s: %s\n", op.Goal, x.Tool, x.Median, verdict(x.Median >= op.Goal), x.Target)
	}
	for _, x := range op.Ratios {
		if x.Tool == "ab" && strings.HasPrefix(x.Target, "bare handler") && x.Median < op.Goal {
			fmt.Fprintf(w, "  ab cannot show %.0f× here: a handler that does nothing gets %.1f× the seed's requests/s out of it\n", op.Goal, x.Median)
		}
	}
}

// runLoad runs `questlog load --format json` and reads its summary. An error
// rate over the budget is not a failure of the benchmark: it is reported.
func runLoad(ctx context.Context, bin string, args ...string) (loadgen.Summary, error) {
	var s loadgen.Summary
	cmd := exec.CommandContext(ctx, bin, append([]string{"load", "--format", "json", "-q"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return s, fmt.Errorf("questlog load %s: %w: %s", strings.Join(args, " "), err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return s, fmt.Errorf("questlog load %s: read summary: %w", strings.Join(args, " "), err)
	}
	setup := ""
	if s.Setup != nil {
		setup = fmt.Sprintf(" (after a setup of %d players in %.2f s)", s.Setup.Players, s.Setup.DurationSeconds)
	}
	fmt.Fprintf(os.Stderr, "  load %s: %.0f req/s, p99 %.3f ms, %d errors%s\n", strings.Join(args, " "), s.RequestsPerSecond, s.Latency.P99, s.Errors, setup)
	return s, nil
}

// runWrk runs wrk with two threads (one per core here), each header given
// as "Name: value", and reads its requests/s and latency distribution.
func runWrk(ctx context.Context, wrk, url string, conns int, d time.Duration, headers ...string) (Measurement, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"-t", "2", "-c", strconv.Itoa(conns), "-d", strconv.Itoa(secs) + "s", "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.CommandContext(ctx, wrk, append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Measurement{}, fmt.Errorf("%w: %s", err, out)
	}
	m, err := parseWrk(string(out))
	fmt.Fprintf(os.Stderr, "  wrk %s: %.0f req/s, p99 %.3f ms\n", url, m.RequestsPerSecond, m.P99Ms)
	return m, err
}

func parseWrk(out string) (Measurement, error) {
	m := Measurement{Tool: "wrk"}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			m.RequestsPerSecond, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			m.P50Ms, _ = wrkMs(f[1])
		case len(f) == 2 && f[0] == "99%":
			m.P99Ms, _ = wrkMs(f[1])
		case len(f) >= 2 && f[1] == "requests" && len(f) > 2 && f[2] == "in":
			m.Requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 5 && f[0] == "Non-2xx":
			m.Non2xx, _ = strconv.ParseInt(f[4], 10, 64)
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i], ","), 10, 64)
				m.Errors += n
			}
		}
	}
	if m.RequestsPerSecond == 0 {
		return m, fmt.Errorf("wrk: no Requests/sec in its output:\n%s", out)
	}
	return m, nil
}

// wrkMs reads a wrk duration such as 812.00us, 1.54ms or 2.01s.
func wrkMs(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return math.Round(f*u.ms*1000) / 1000, err // to the microsecond
		}
	}
	return 0, fmt.Errorf("wrk duration %q", s)
}

func startBare(ctx context.Context) (*harness.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-bare", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	p, err := harness.Start(cmd, "", 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bare handler: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("bare handler: no address: %w", err)
	}
	p.Addr = strings.TrimSpace(strings.TrimPrefix(line, "listening"))
	return p, nil
}

// serveArguments are questlog serve's flags: free ports, a fresh data
// directory, --password-cost when asked for, and no login limits.
func serveArguments(ctx context.Context, bin string, o options, tmp string) (args []string, httpAddr string, err error) {
	help, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("questlog serve is not available yet (%v): %s", err, help)
	}
	httpAddr, brokerAddr, err := harness.ServeAddrs()
	if err != nil {
		return nil, "", err
	}
	args = []string{"serve", "--http", httpAddr, "--broker-listen", brokerAddr, "--data-dir", filepath.Join(tmp, "data")}
	if o.passwordCost > 0 {
		if !bytes.Contains(help, []byte("--password-cost")) {
			return nil, "", fmt.Errorf("-password-cost: questlog serve has no --password-cost flag")
		}
		args = append(args, "--password-cost", strconv.Itoa(o.passwordCost))
	}
	if bytes.Contains(help, []byte("--login-failures-per-address")) {
		args = append(args, "--login-failures-per-user", "0", "--login-failures-per-address", "0")
	}
	args = append(args, strings.Fields(o.serveArgs)...)
	return args, httpAddr, nil
}

func startServe(ctx context.Context, bin string, env, args []string, addr, logPath string) (*harness.Process, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	return harness.StartLogged(ctx, cmd, addr, logPath, 15*time.Second, harness.WaitReady)
}
