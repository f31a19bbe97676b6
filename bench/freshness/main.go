// Command freshness measures how long an acknowledged event takes to become
// visible in `questlog up`: to `questlog query`, and on /dashboard.
//
// It builds questlog from ./cmd/questlog (unless -questlog BIN), then for
// each configuration (-up-args, plus each of -compare's in turn):
//
//   - starts `questlog up` on free 127.0.0.1 ports with its own temporary
//     --data-dir, --password-cost 4 (bcrypt would otherwise dominate the
//     signups), no limits on failed logins, and a --catalog that adds the
//     stamp items (below) to the built-in one; waits for /readyz;
//   - runs the background load (-load, on by default): `questlog load
//     --scenario players --users 50 --rate 500` for the whole run, so that
//     the lake follows a realistic stream; stamps start -warmup later;
//   - stamps: every -interval for -duration, one stamp player buys one
//     stamp item over POST /v1/buy and the time its 2xx answer arrived is
//     the ack. The stamp player is a user signed up for it (fresh-<p>), its
//     item stamp<p> is one that only it buys, at 1 gold, so the gold its
//     answer reports (the event's gold_after) names the event in the lake;
//     when its gold runs out the next stamp player takes over;
//   - polls the lake as `questlog query` reads it, in this process, every
//     -poll: query.Open on the lake directory, as `questlog query` does,
//     and SELECT item_type, gold_after FROM buy_item WHERE item_type LIKE
//     'stamp%'. A view whose event type had no files when the views were
//     built stays empty until they are rebuilt (Refresh, which every
//     `questlog query` run does as it opens the lake), so the poller
//     rebuilds them before each statement until they were built with
//     buy_item files; from then on DuckDB lists the view's files anew for
//     each statement. A stamp is visible to query from the start of the
//     first statement that returns it (a `questlog query` started then
//     would return it too);
//   - times whole `questlog query` runs every -query-runs (open the lake,
//     build every view from the files' schemas, the statement, close): how
//     long a user waits for that answer, which grows with the lake's file
//     count whatever the freshness;
//   - polls GET /dashboard/report every -poll. The page cannot name single
//     events, but its "Purchases by item type and quality" table counts the
//     items bought of each type in each quality, every type listed: the
//     row stamp<p> is the number of player p's stamps the dashboard has
//     read. One player's events share a partition (the topic is keyed by
//     user) and the extract publishes a partition's files in offset order,
//     so the page holds player p's k-th stamp exactly when that row reaches
//     k (k is the player's starting gold minus the stamp's gold_after): the
//     stamp is on the dashboard when the first answer with the row at k or
//     more arrives;
//   - after the last stamp, waits until both have seen every stamp, or
//     -wait, counts the Parquet files in the lake, and stops load and up.
//
// Latency = first seen − ack, per stamp; a stamp not seen within -wait
// counts as infinitely late. The resolution is the poll period (each poll
// is sent -poll after the last one was, or at once when that took longer):
// the table gives its mean and the longest gap between two observations,
// and how long one poll took (the statement; a dashboard request, which
// rebuilds the charts when they are older than --refresh).
// The dashboard's page in a browser asks every --refresh: alone, each ask
// finds the charts at least --refresh old and has them rebuilt, as this
// poller's asks do, so it sees what the poller sees; among other viewers
// it may be given charts rebuilt up to --refresh before its ask.
// Everything shares the machine's cores, the in-process DuckDB polls too
// (its CPU is printed as "bench CPU").
//
// Run it from the repository root:
//
//	go run ./bench/freshness                                  # today's defaults, 60 s
//	go run ./bench/freshness -compare ';--max-age 2s --refresh 1s;--max-age 1s --refresh 1s' -json out.json
//
// The goal (issue 14, BENCHMARKS.md "Freshness (issue 14)"): p99 ≤ 5 s, to
// query and to the dashboard.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/questlog/questlog/bench/internal/procstat"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/loadgen"
	"github.com/questlog/questlog/internal/query"
)

// goalSeconds is issue 14's p99.
const goalSeconds = 5

type options struct {
	duration     time.Duration
	interval     time.Duration
	warmup       time.Duration
	wait         time.Duration
	poll         time.Duration
	queryRuns    time.Duration
	load         bool
	users        int
	rate         float64
	questlog     string
	upArgs       string
	compare      []string
	rounds       int
	passwordCost int
	jsonOut      string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to send stamps, per configuration")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "one stamp every interval")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "background load before the first stamp")
	flag.DurationVar(&o.wait, "wait", 30*time.Second, "after the last stamp, how long to wait for unseen stamps")
	flag.DurationVar(&o.poll, "poll", 100*time.Millisecond, "poll query and the dashboard this often (the resolution)")
	flag.DurationVar(&o.queryRuns, "query-runs", 5*time.Second, "time a whole questlog query run (open, views, statement) this often (0: never)")
	flag.BoolVar(&o.load, "load", true, "run the players scenario in the background")
	flag.IntVar(&o.users, "users", 50, "background load: players")
	flag.Float64Var(&o.rate, "rate", 500, "background load: requests per second")
	flag.StringVar(&o.questlog, "questlog", "", "a questlog binary to use instead of building ./cmd/questlog")
	flag.StringVar(&o.upArgs, "up-args", "", `extra arguments for every questlog up, e.g. "--max-age 2s --refresh 1s"`)
	flag.Func("compare", `configurations to run in turn, separated by ";", each extra up arguments after -up-args (empty: the defaults), e.g. ";--max-age 2s --refresh 1s"`, func(v string) error {
		o.compare = parseCompare(v)
		return nil
	})
	flag.IntVar(&o.rounds, "rounds", 1, "run the configurations this many times, taking turns")
	flag.IntVar(&o.passwordCost, "password-cost", 4, "up's --password-cost (0: up's default, 10)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results to this JSON file")
	flag.Parse()
	if len(o.compare) == 0 {
		o.compare = []string{""}
	}
	if o.duration < time.Second || o.interval <= 0 || o.poll <= 0 || o.wait < 0 || o.rounds < 1 || o.users < 1 || o.rate <= 0 {
		fmt.Fprintln(os.Stderr, "freshness: want -duration >= 1s, -interval, -poll, -rate > 0, -wait >= 0, -rounds, -users >= 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "freshness:", err)
		os.Exit(1)
	}
}

// parseCompare splits -compare at ";": each part is one configuration's
// extra up arguments, an empty part (or "defaults") none.
func parseCompare(v string) []string {
	var out []string
	for part := range strings.SplitSeq(v, ";") {
		part = strings.Join(strings.Fields(part), " ")
		if part == "defaults" {
			part = ""
		}
		out = append(out, part)
	}
	return out
}

// Run is one configuration's figures.
type Run struct {
	Label  string   `json:"label"`
	Round  int      `json:"round"`
	UpArgs []string `json:"up_args"`
	// Stamps were acknowledged (2xx); Failed got another answer or none.
	Stamps int `json:"stamps"`
	Failed int `json:"failed"`
	// UnackedInLake are stamps the lake holds whose answer was not a 2xx
	// (lost or refused after the event was in the log).
	UnackedInLake int     `json:"unacked_in_lake"`
	AckP50Ms      float64 `json:"ack_p50_ms"`
	AckP99Ms      float64 `json:"ack_p99_ms"`
	// Query and Dashboard are first seen − ack over the stamps.
	Query     Latencies `json:"query"`
	Dashboard Latencies `json:"dashboard"`
	QueryPoll Polls     `json:"query_poll"`
	DashPoll  Polls     `json:"dashboard_poll"`
	// QueryRuns are the whole `questlog query` runs timed: their took is
	// how long one takes to answer with the lake as it was.
	QueryRuns Polls `json:"query_runs"`
	// Files are the lake's event files (and quarantine's) when the last
	// stamp was seen, RunSeconds after up was ready.
	Files           int     `json:"files"`
	QuarantineFiles int     `json:"quarantine_files"`
	LakeBytes       int64   `json:"lake_bytes"`
	RunSeconds      float64 `json:"run_seconds"`
	// UpCPU and BenchCPU are cores used (CPU seconds per second) by up and
	// by this process (the pollers) while stamps were sent.
	UpCPU    float64 `json:"up_cpu_cores"`
	BenchCPU float64 `json:"bench_cpu_cores"`
	// Load is the background load's rate and errors, when it ran.
	LoadRequestsPerSecond float64 `json:"load_requests_per_second,omitempty"`
	LoadErrors            int64   `json:"load_errors,omitempty"`
	GoalMet               bool    `json:"goal_met"`
	// LoadAverage is the machine's at the end of the run.
	LoadAverage string `json:"load_average"`
}

// Polls describe an observer's polling: its resolution.
type Polls struct {
	Polls  int     `json:"polls"`
	Errors int     `json:"errors"`
	LastEr string  `json:"last_error,omitempty"`
	MeanMs float64 `json:"mean_period_ms"`
	MaxGap float64 `json:"max_gap_ms"`
	// TookP50Ms and TookMaxMs are how long one poll took.
	TookP50Ms float64 `json:"took_p50_ms"`
	TookMaxMs float64 `json:"took_max_ms"`
}

// Results is what -json writes.
type Results struct {
	Date              string  `json:"date"`
	CPUModel          string  `json:"cpu_model"`
	CPUs              int     `json:"cpus"`
	GoVersion         string  `json:"go_version"`
	Duration          string  `json:"duration"`
	Interval          string  `json:"interval"`
	Poll              string  `json:"poll"`
	Wait              string  `json:"wait"`
	Load              string  `json:"load"`
	GoalP99Seconds    float64 `json:"goal_p99_s"`
	Runs              []Run   `json:"runs"`
	LoadAverageBefore string  `json:"load_average_before"`
	LoadAverageAfter  string  `json:"load_average_after"`
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "questlog-bench-freshness-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := o.questlog
	if bin == "" {
		bin = filepath.Join(tmp, "questlog")
		fmt.Fprintln(os.Stderr, "building ./cmd/questlog ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/questlog")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build questlog (run from the repository root): %w", err)
		}
	}
	load := "off"
	if o.load {
		load = fmt.Sprintf("players scenario, %d players at %g requests/s", o.users, o.rate)
	}
	res := Results{
		Date: time.Now().UTC().Format(time.RFC3339), CPUModel: cpuModel(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		Duration: o.duration.String(), Interval: o.interval.String(), Poll: o.poll.String(), Wait: o.wait.String(),
		Load: load, GoalP99Seconds: goalSeconds, LoadAverageBefore: loadAverage(),
	}
	for round := 1; round <= o.rounds; round++ {
		for i, extra := range o.compare {
			label := strings.Join(append(strings.Fields(o.upArgs), strings.Fields(extra)...), " ")
			if label == "" {
				label = "defaults"
			}
			fmt.Fprintf(os.Stderr, "round %d: %s\n", round, label)
			r, err := runConfig(ctx, o, bin, filepath.Join(tmp, fmt.Sprintf("run-%d-%d", round, i)), extra)
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			r.Label, r.Round, r.LoadAverage = label, round, loadAverage()
			res.Runs = append(res.Runs, r)
			fmt.Fprintf(os.Stderr, "  %d stamps; p99 (s): query %s, dashboard %s; %d files; load average %s\n",
				r.Stamps, r.Query.P99.format(o.wait), r.Dashboard.P99.format(o.wait), r.Files, r.LoadAverage)
		}
	}
	res.LoadAverageAfter = loadAverage()

	printResults(os.Stdout, &res, o.wait)
	if o.jsonOut != "" {
		raw, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonOut, append(raw, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonOut, err)
		}
	}
	return nil
}

// runConfig starts up with the extra arguments in dir, stamps, observes,
// and stops everything it started before it returns.
func runConfig(ctx context.Context, o options, bin, dir, extra string) (Run, error) {
	var r Run
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	// Enough stamp players for every stamp at the default 1000 starting gold.
	stampsWanted := int(o.duration/o.interval) + 1
	players := stampsWanted/1000 + 2
	cat, err := stampCatalog(players)
	if err != nil {
		return r, err
	}
	catPath := filepath.Join(dir, "catalog.json")
	if err := os.WriteFile(catPath, cat, 0o644); err != nil {
		return r, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	brokerAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	data := filepath.Join(dir, "data")
	args := []string{"up", "--http", httpAddr, "--broker-listen", brokerAddr, "--data-dir", data, "--catalog", catPath,
		"--login-failures-per-user", "0", "--login-failures-per-address", "0"}
	if o.passwordCost > 0 {
		args = append(args, "--password-cost", strconv.Itoa(o.passwordCost))
	}
	args = append(args, strings.Fields(o.upArgs)...)
	args = append(args, strings.Fields(extra)...)
	r.UpArgs = args[1:]

	up, err := startUp(ctx, bin, args, httpAddr, filepath.Join(dir, "up.log"))
	if err != nil {
		return r, err
	}
	defer up.stop()
	ready := time.Now()
	base := "http://" + httpAddr
	lakeDir := filepath.Join(data, "lake")

	// Observers, from the start: their cost is part of the steady state.
	db, err := query.Open(ctx, lakeDir)
	if err != nil {
		return r, fmt.Errorf("open the lake for queries: %w", err)
	}
	defer db.Close()
	tr := newTracker()
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	var wg sync.WaitGroup
	var qPolls, dPolls, qRuns pollLog
	wg.Go(func() { pollQuery(obsCtx, db, tr, o.poll, &qPolls) })
	wg.Go(func() { pollDashboard(obsCtx, base, tr, o.poll, &dPolls) })
	if o.queryRuns > 0 {
		wg.Go(func() { timeQueryRuns(obsCtx, lakeDir, o.queryRuns, &qRuns) })
	}
	defer func() { stopObs(); wg.Wait() }()

	var ld *loadRun
	if o.load {
		total := o.warmup + o.duration + o.wait + 10*time.Second
		ld, err = startLoad(ctx, bin, base, o.users, o.rate, total)
		if err != nil {
			return r, err
		}
		defer ld.stop()
	}
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return r, ctx.Err()
	case <-up.done:
		return r, fmt.Errorf("questlog up exited:\n%s", up.logTail())
	}

	cpuUp0, cpuSelf0, t0 := procstat.CPU(up.cmd.Process.Pid), procstat.CPU(os.Getpid()), time.Now()
	st := &stamper{base: base, tr: tr, players: players, client: &http.Client{Timeout: 10 * time.Second}}
	if err := st.stamp(ctx, o.duration, o.interval); err != nil {
		return r, err
	}
	cpuUp1, cpuSelf1, t1 := procstat.CPU(up.cmd.Process.Pid), procstat.CPU(os.Getpid()), time.Now()
	if secs := t1.Sub(t0).Seconds(); cpuUp0 > 0 && secs > 0 {
		r.UpCPU = (cpuUp1 - cpuUp0).Seconds() / secs
		r.BenchCPU = (cpuSelf1 - cpuSelf0).Seconds() / secs
	}

	// Wait for the stragglers.
	deadline := time.Now().Add(o.wait)
	for !tr.allSeen() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-up.done:
			return r, fmt.Errorf("questlog up exited:\n%s", up.logTail())
		case <-time.After(o.poll):
		}
	}
	r.RunSeconds = time.Since(ready).Seconds()
	stopObs()
	wg.Wait()
	r.Files, r.QuarantineFiles, r.LakeBytes = countFiles(lakeDir)
	if ld != nil {
		if s, err := ld.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "  background load:", err)
		} else {
			r.LoadRequestsPerSecond, r.LoadErrors = s.RequestsPerSecond, s.Errors
		}
	}

	q, d := tr.latencies()
	r.Query, r.Dashboard = summarize(q), summarize(d)
	r.Stamps, r.Failed, r.UnackedInLake = len(tr.stamps), tr.failed, tr.unackedInLake()
	var acks []float64
	for _, s := range tr.stamps {
		acks = append(acks, float64(s.acked.Sub(s.sent).Microseconds())/1000)
	}
	if len(acks) > 0 {
		r.AckP50Ms, r.AckP99Ms = percentile(acks, 50), percentile(acks, 99)
	}
	r.QueryPoll, r.DashPoll, r.QueryRuns = qPolls.summary(), dPolls.summary(), qRuns.summary()
	r.GoalMet = r.Stamps > 0 && float64(r.Query.P99) <= goalSeconds && float64(r.Dashboard.P99) <= goalSeconds
	return r, nil
}

// stamper sends the stamps: stamp player p (user fresh-<p>) buys one
// stamp<p> per stamp, until its gold runs out and p+1 takes over.
type stamper struct {
	base    string
	tr      *tracker
	players int
	client  *http.Client

	player int
	token  string
	gold   int64
}

func (s *stamper) stamp(ctx context.Context, duration, interval time.Duration) error {
	s.player = -1
	if err := s.next(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		if s.gold < 1 {
			if err := s.next(ctx); err != nil {
				return err
			}
		}
		if err := s.buy(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// next signs the next stamp player up.
func (s *stamper) next(ctx context.Context) error {
	s.player++
	if s.player >= s.players {
		return fmt.Errorf("stamp players ran out of gold (%d players; lower -duration or raise --starting-gold)", s.players)
	}
	body := fmt.Sprintf(`{"username":%q,"password":"stamp-password"}`, "fresh-"+strconv.Itoa(s.player))
	var ans struct {
		Token string `json:"token"`
		Gold  int64  `json:"gold"`
	}
	if _, err := s.post(ctx, "/v1/signup", "", body, &ans); err != nil {
		return fmt.Errorf("sign up stamp player %d: %w", s.player, err)
	}
	if ans.Token == "" || ans.Gold < 1 {
		return fmt.Errorf("sign up stamp player %d: no token or no gold (%d) in the answer", s.player, ans.Gold)
	}
	s.token, s.gold = ans.Token, ans.Gold
	s.tr.addPlayer(s.player, ans.Gold)
	return nil
}

// buy sends one stamp. A refused or lost stamp is counted and skipped; an
// unknown outcome leaves the gold as it was, and the next answer tells.
func (s *stamper) buy(ctx context.Context) error {
	var ans struct {
		Gold int64 `json:"gold"`
	}
	sent := time.Now()
	acked, err := s.post(ctx, "/v1/buy", s.token, fmt.Sprintf(`{"item":%q,"quantity":1}`, stampItem(s.player)), &ans)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.tr.fail()
		fmt.Fprintln(os.Stderr, "  stamp:", err)
		return nil
	}
	s.gold = ans.Gold
	s.tr.acked(stamp{stampKey: stampKey{s.player, ans.Gold}, sent: sent, acked: acked})
	return nil
}

// post sends a JSON body and decodes a 2xx answer into out; acked is when
// the answer's status line arrived.
func (s *stamper) post(ctx context.Context, path, token, body string, out any) (acked time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, strings.NewReader(body))
	if err != nil {
		return acked, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return acked, err
	}
	acked = time.Now()
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return acked, err
	}
	if resp.StatusCode/100 != 2 {
		return acked, fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(raw))
	}
	return acked, json.Unmarshal(raw, out)
}

// pollLog records an observer's polls.
type pollLog struct {
	obs     []time.Time // the time each poll's observation is dated
	took    []float64   // ms, from sending the poll to its answer
	errors  int
	lastErr string
}

func (l *pollLog) add(start, at, end time.Time, err error) {
	l.obs = append(l.obs, at)
	l.took = append(l.took, float64(end.Sub(start).Microseconds())/1000)
	if err != nil {
		l.errors++
		l.lastErr = err.Error()
	}
}

// summary gives the mean period and the longest gap between observations
// (the resolution), and what one poll took.
func (l *pollLog) summary() Polls {
	p := Polls{Polls: len(l.obs), Errors: l.errors, LastEr: l.lastErr}
	if len(l.took) > 0 {
		p.TookP50Ms, p.TookMaxMs = percentile(l.took, 50), percentile(l.took, 100)
	}
	for i := 1; i < len(l.obs); i++ {
		p.MaxGap = max(p.MaxGap, float64(l.obs[i].Sub(l.obs[i-1]).Microseconds())/1000)
	}
	if n := len(l.obs); n > 1 {
		p.MeanMs = float64(l.obs[n-1].Sub(l.obs[0]).Microseconds()) / 1000 / float64(n-1)
	}
	return p
}

// every calls poll every period (at once when a poll took longer) until
// ctx ends, logging each; poll returns the time its observation is dated.
func every(ctx context.Context, period time.Duration, log *pollLog, poll func(ctx context.Context) (time.Time, error)) {
	for ctx.Err() == nil {
		start := time.Now()
		at, err := poll(ctx)
		if ctx.Err() != nil {
			return // cut short by the end: not a poll
		}
		log.add(start, at, time.Now(), err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(period))):
		}
	}
}

const stampQuery = `SELECT item_type, gold_after FROM buy_item WHERE item_type LIKE 'stamp%' AND status = 'ok'`

// pollQuery runs stampQuery every period and dates what it sees at the
// statement's start, when DuckDB lists the view's files: a query started
// then would see the same. The views are rebuilt before each statement
// until one was built with buy_item files (before, the view is empty
// whatever is published); after that DuckDB lists the files anew for
// every statement.
func pollQuery(ctx context.Context, db *query.DB, tr *tracker, period time.Duration, log *pollLog) {
	viewBuilt := false
	every(ctx, period, log, func(ctx context.Context) (time.Time, error) {
		if !viewBuilt {
			files, err := db.EventFiles(ctx)
			if err != nil {
				return time.Now(), err
			}
			if err := db.Refresh(ctx); err != nil {
				return time.Now(), err
			}
			viewBuilt = slices.ContainsFunc(files, func(f string) bool { t, _ := lake.EventFolders(f); return t == "buy_item" })
		}
		at := time.Now()
		res, err := db.Query(ctx, stampQuery)
		if err != nil {
			return at, err
		}
		keys := make([]stampKey, 0, len(res.Rows))
		for _, row := range res.Rows {
			item, _ := row[0].(string)
			gold, ok := row[1].(int64)
			p, isStamp := stampPlayer(item)
			if !ok || !isStamp {
				return at, fmt.Errorf("unexpected row %v", row)
			}
			keys = append(keys, stampKey{p, gold})
		}
		tr.sawQuery(keys, at)
		return at, nil
	})
}

// timeQueryRuns does what one `questlog query` run does, every period:
// open the lake (building the views from the files' schemas), run
// stampQuery, close; the log's took is how long each took.
func timeQueryRuns(ctx context.Context, lakeDir string, period time.Duration, log *pollLog) {
	every(ctx, period, log, func(ctx context.Context) (time.Time, error) {
		at := time.Now()
		db, err := query.Open(ctx, lakeDir)
		if err != nil {
			return at, err
		}
		defer db.Close()
		_, err = db.Query(ctx, stampQuery)
		return at, err
	})
}

// pollDashboard asks for the dashboard's charts every period and dates
// what it sees at the answer: the charts are rebuilt while the request
// waits when they are older than --refresh, so the page showed nothing
// newer before.
func pollDashboard(ctx context.Context, base string, tr *tracker, period time.Duration, log *pollLog) {
	client := &http.Client{Timeout: time.Minute}
	quality := game.DefaultCatalog().DefaultQuality() // a buy without a quality gets it; the stamp catalog keeps it first
	every(ctx, period, log, func(ctx context.Context) (time.Time, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/dashboard/report", nil)
		if err != nil {
			return time.Now(), err
		}
		resp, err := client.Do(req)
		if err != nil {
			return time.Now(), err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		at := time.Now()
		if err != nil {
			return at, err
		}
		if resp.StatusCode != http.StatusOK {
			return at, fmt.Errorf("GET /dashboard/report: %s", resp.Status)
		}
		bought, err := purchases(string(raw), quality)
		if err != nil {
			return at, err
		}
		tr.sawDashboard(stampCounts(bought), at)
		return at, nil
	})
}

// process is a questlog up the benchmark started.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	once sync.Once
}

// stop interrupts the process (up stops its parts in order, the extract
// commits what it holds) and waits for it; a process that has not exited
// 30 s later is killed.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *process) logTail() string {
	raw, _ := os.ReadFile(p.log)
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return string(raw)
}

func startUp(ctx context.Context, bin string, args []string, addr, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// Not CommandContext: on Ctrl-C the deferred stop interrupts up, so
	// that it stops cleanly instead of being killed.
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start questlog up: %w", err)
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := waitReady(ctx, p, addr); err != nil {
		p.stop()
		return nil, fmt.Errorf("questlog %s: %w\n%s", strings.Join(args, " "), err, p.logTail())
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, p *process, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// loadRun is the background `questlog load`.
type loadRun struct {
	cmd       *exec.Cmd
	out, errs bytes.Buffer
	done      chan struct{}
	once      sync.Once
	summary   loadgen.Summary
	err       error
}

func startLoad(ctx context.Context, bin, base string, users int, rate float64, d time.Duration) (*loadRun, error) {
	l := &loadRun{done: make(chan struct{})}
	l.cmd = exec.Command(bin, "load", "--scenario", "players", "--users", strconv.Itoa(users),
		"--rate", strconv.FormatFloat(rate, 'f', -1, 64), "-t", d.String(), "-q", "--format", "json", base)
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.errs
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start questlog load: %w", err)
	}
	go func() { _ = l.cmd.Wait(); close(l.done) }()
	return l, nil
}

// stop interrupts the load if it still runs and reads its summary.
func (l *loadRun) stop() (loadgen.Summary, error) {
	l.once.Do(func() {
		_ = l.cmd.Process.Signal(os.Interrupt)
		select {
		case <-l.done:
		case <-time.After(15 * time.Second):
			_ = l.cmd.Process.Kill()
			<-l.done
		}
		if err := json.Unmarshal(l.out.Bytes(), &l.summary); err != nil {
			l.err = fmt.Errorf("no summary (%v): %s", err, strings.TrimSpace(l.errs.String()))
		}
	})
	return l.summary, l.err
}

// countFiles counts the lake's published event and quarantine files (a
// temporary file being written is not a .parquet yet) and their bytes.
func countFiles(lakeDir string) (events, quarantine int, size int64) {
	for _, sub := range []struct {
		dir string
		n   *int
	}{{"events", &events}, {"quarantine", &quarantine}} {
		_ = filepath.WalkDir(filepath.Join(lakeDir, sub.dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".parquet" {
				return nil
			}
			*sub.n++
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
			return nil
		})
	}
	return events, quarantine, size
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// loadAverage is /proc/loadavg's first three fields, or "" off Linux.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is /proc/cpuinfo's first model name, or "".
func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(raw)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func printResults(w io.Writer, r *Results, wait time.Duration) {
	fmt.Fprintf(w, "\nFreshness benchmark, %s, %s, %d CPUs, %s\n", r.Date, r.CPUModel, r.CPUs, r.GoVersion)
	fmt.Fprintf(w, "stamps every %s for %s per run; background: %s; polls every %s; wait %s\n",
		r.Interval, r.Duration, r.Load, r.Poll, wait)
	fmt.Fprintf(w, "questlog up --password-cost 4 --login-failures-per-user 0 --login-failures-per-address 0 --catalog <built-in + stamp items>, free ports, a temporary --data-dir, then each config's arguments\n")
	fmt.Fprintf(w, "load average before %s, after %s\n\n", r.LoadAverageBefore, r.LoadAverageAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "round\tconfig\tstamps\tquery p50/p90/p99/max s\tdashboard p50/p90/p99/max s\tunseen q/d\tfiles\tpoll q ms (took p50/max)\tpoll d ms (took p50/max)\tquery run ms p50/max\tup CPU\tbench CPU\tgoal\t")
	for _, x := range r.Runs {
		lat := func(l Latencies) string {
			return strings.Join([]string{l.P50.format(wait), l.P90.format(wait), l.P99.format(wait), l.Max.format(wait)}, " / ")
		}
		poll := func(p Polls) string {
			return fmt.Sprintf("%.0f, gap %.0f (%.0f/%.0f)", p.MeanMs, p.MaxGap, p.TookP50Ms, p.TookMaxMs)
		}
		stamps := strconv.Itoa(x.Stamps)
		if x.Failed > 0 {
			stamps += fmt.Sprintf(" (+%d failed, %d of them in the lake)", x.Failed, x.UnackedInLake)
		}
		runs := "–"
		if x.QueryRuns.Polls > 0 {
			runs = fmt.Sprintf("%.0f/%.0f", x.QueryRuns.TookP50Ms, x.QueryRuns.TookMaxMs)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t\n", x.Round, x.Label, stamps,
			lat(x.Query), lat(x.Dashboard), x.Query.Unseen, x.Dashboard.Unseen, x.Files,
			poll(x.QueryPoll), poll(x.DashPoll), runs, x.UpCPU, x.BenchCPU, verdict(x.GoalMet))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, x := range r.Runs {
		fmt.Fprintf(w, "round %d, %s (load average after: %s):\n", x.Round, x.Label, x.LoadAverage)
		fmt.Fprintf(w, "  acks p50 %.1f ms, p99 %.1f ms; lake %d event files + %d quarantine, %.1f MB after %.0f s",
			x.AckP50Ms, x.AckP99Ms, x.Files, x.QuarantineFiles, float64(x.LakeBytes)/1e6, x.RunSeconds)
		if x.LoadRequestsPerSecond > 0 {
			fmt.Fprintf(w, "; background load %.0f requests/s, %d errors", x.LoadRequestsPerSecond, x.LoadErrors)
		}
		fmt.Fprintln(w)
		for _, p := range []struct {
			name string
			p    Polls
		}{{"query", x.QueryPoll}, {"dashboard", x.DashPoll}, {"questlog query runs", x.QueryRuns}} {
			if p.p.Errors > 0 {
				fmt.Fprintf(w, "  %s polls: %d of %d failed, last: %s\n", p.name, p.p.Errors, p.p.Polls, p.p.LastEr)
			}
		}
	}
	var met []string
	for _, x := range r.Runs {
		met = append(met, fmt.Sprintf("%s: %s", x.Label, verdict(x.GoalMet)))
	}
	fmt.Fprintf(w, "\ngoal p99 <= %g s to query and to the dashboard: %s\n", r.GoalP99Seconds, strings.Join(slices.Compact(met), "; "))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
