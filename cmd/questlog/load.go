package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/questlog/questlog/internal/loadgen"
)

// exitOverErrorBudget is load's exit status when the error rate passes
// --max-errors.
const exitOverErrorBudget = 2

type loadOptions struct {
	requests    int64
	concurrency int
	method      string
	headers     []string
	cookies     []string
	postFile    string
	contentType string
	duration    time.Duration
	timeout     time.Duration
	rate        float64
	scenario    string
	users       int
	setup       bool
	mixFile     string
	seed        uint64
	runID       string
	format      string
	maxErrors   float64
	quiet       bool
	keepAlive   bool
}

func newLoadCmd(g *globalOptions) *cobra.Command {
	_ = g // load talks HTTP only; it never touches the broker or the lake
	o := &loadOptions{}
	cmd := &cobra.Command{
		Use:   "load [flags] URL",
		Short: "Drive load against the API, like ab, or as many simulated players",
		Long: `Drive load against the questlog API and report ApacheBench's figures:
requests per second, time per request, status codes, failed requests and
latency percentiles (50 66 75 80 90 95 98 99 100), kept in an HDR histogram.

Single mode (the default) sends one request over and over, like ab:
  questlog load -n 10000 -c 20 http://127.0.0.1:5000/
  questlog load -n 1000 -c 4 -C session=TOKEN 'http://127.0.0.1:5000/buy?item=bow'
  questlog load -n 1000 -p order.json -T application/json -H 'Authorization: Bearer TOKEN' \
      http://127.0.0.1:5000/v1/buy

Scenario mode plays many players against the JSON API at URL's root. Each has
its own cookie jar; it signs up, logs in, then buys and sells items of various
types and qualities, fills and checks out a cart, joins and leaves guilds and
reads its inventory, in a weighted random mix that --mix FILE replaces (see
internal/loadgen/testdata/mix.json). Some actions fail on purpose (buying more
than the player's gold pays for, selling what it does not own, an unknown item,
no session, a wrong password, joining a second guild). A player left with no
gold and nothing to sell logs out and a new one signs up. Usernames start with
a run id, so reruns against the same server never collide.
  questlog load --scenario players --users 500 --duration 30s http://127.0.0.1:5000

Setup: by default every player signs up and logs in before the measured
window opens (all --users at once, as fast as the server answers), like k6's
setup stage; it is reported on a line of its own ("Setup:", and "setup" in
--format json) and counted nowhere else, so --duration and --rate measure
the play alone. Players who replace a broke one still sign up and log in
inside the window: that is part of the mix. --setup=false puts the initial
signups and logins inside the measured window too, as players arriving all
at once (a password-hashing burst the requests due meanwhile queue behind).

Timing: without --rate the run is closed, each worker (-c, or each player)
sending its next request when the last is answered. With --rate R it is open:
request i is due at start + i/R whatever happened before, and a free worker
takes it. When every worker was busy at that time, its latency counts from
when it was due, so a server that stalls shows the stall in the latencies
instead of quietly lowering the rate (no coordinated omission); "Schedule lag"
says how late requests went out. Add workers (-c, --users) if the lag grows
or the rate is not reached.

Errors: a request is an error when it got no HTTP answer (refused, reset,
timeout) or a 5xx answer. 4xx answers are not errors: they are counted as
"Non-2xx" and, in the scenario, split into intended failures (the deliberately
failed actions, answered 4xx as they should be) and unexpected 4xx.
--max-errors F makes load exit with status 2 when errors/requests > F.

The summary goes to stdout (--format json for machines); a progress line goes
to stderr when it is a terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLoad(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.Int64VarP(&o.requests, "requests", "n", 0, "number of requests to send (default 1 in single mode without --duration; 0 = until --duration)")
	f.IntVarP(&o.concurrency, "concurrency", "c", 1, "concurrent workers, each with its own keep-alive connection (single mode)")
	f.StringVarP(&o.method, "method", "X", "", "HTTP method (default GET, or POST with -p)")
	f.StringArrayVarP(&o.headers, "header", "H", nil, `extra header "Name: value" (repeatable)`)
	f.StringArrayVarP(&o.cookies, "cookie", "C", nil, `cookie "name=value" (repeatable)`)
	f.StringVarP(&o.postFile, "post-file", "p", "", "file holding the request body")
	f.StringVarP(&o.contentType, "content-type", "T", "text/plain", "Content-Type of the -p body")
	f.DurationVarP(&o.duration, "duration", "t", 0, "stop sending after this long, e.g. 30s (scenario default 30s)")
	f.DurationVarP(&o.timeout, "timeout", "s", 30*time.Second, "give up on an answer after this long (a transport error)")
	f.Float64Var(&o.rate, "rate", 0, "hold this many requests per second, open model (0 = as fast as the workers go)")
	f.StringVar(&o.scenario, "scenario", "", `play a scenario instead of one request: "players"`)
	f.IntVar(&o.users, "users", 10, "simulated players playing at once (scenario)")
	f.BoolVar(&o.setup, "setup", true, "sign every player up and log it in before the measured window, unmeasured (scenario; false: inside the window)")
	f.StringVar(&o.mixFile, "mix", "", "JSON file with the scenario's mix (default: the built-in mix)")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the players' random choices (0 = random)")
	f.StringVar(&o.runID, "run-id", "", "prefix of the scenario's usernames (default: random)")
	f.StringVar(&o.format, "format", "text", "summary format: text (ab's layout) or json")
	f.Float64Var(&o.maxErrors, "max-errors", 1, "exit with status 2 when the error rate (transport errors and 5xx over requests) is above this fraction, e.g. 0.01; 1 never fails")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress line")
	f.BoolVarP(&o.keepAlive, "keepalive", "k", true, "reuse connections (always on; -k is accepted as ab spells it)")
	return cmd
}

func (o *loadOptions) validate(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	switch {
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format %q: want text or json", o.format)
	case o.requests < 0:
		return fmt.Errorf("-n %d: must not be negative", o.requests)
	case o.duration < 0:
		return fmt.Errorf("--duration %s: must not be negative", o.duration)
	case o.rate < 0:
		return fmt.Errorf("--rate %g: must not be negative", o.rate)
	case o.maxErrors < 0 || o.maxErrors > 1:
		return fmt.Errorf("--max-errors %g: want a fraction from 0 to 1", o.maxErrors)
	case o.timeout < 0:
		return fmt.Errorf("--timeout %s: must not be negative", o.timeout)
	case !o.keepAlive:
		return fmt.Errorf("-k=false: load always reuses connections")
	}
	if o.scenario == "" {
		for _, name := range []string{"users", "setup", "mix", "seed", "run-id"} {
			if changed(name) {
				return fmt.Errorf("--%s applies to --scenario only", name)
			}
		}
		if o.concurrency < 1 {
			return fmt.Errorf("-c %d: need at least one worker", o.concurrency)
		}
		if o.requests > 0 && o.requests < int64(o.concurrency) {
			return fmt.Errorf("-n %d is less than -c %d", o.requests, o.concurrency)
		}
		return nil
	}
	if o.scenario != "players" {
		return fmt.Errorf(`--scenario %q: the only scenario is "players"`, o.scenario)
	}
	for _, name := range []string{"concurrency", "method", "header", "cookie", "post-file", "content-type"} {
		if changed(name) {
			f := cmd.Flags().Lookup(name)
			return fmt.Errorf("-%s/--%s applies to single mode, not --scenario (players set their own requests; use --users)", f.Shorthand, name)
		}
	}
	if o.users < 1 {
		return fmt.Errorf("--users %d: need at least one player", o.users)
	}
	return nil
}

func runLoad(cmd *cobra.Command, o *loadOptions, target string) error {
	if err := o.validate(cmd); err != nil {
		return err
	}
	ctx := cmd.Context()
	workers := o.concurrency
	if o.scenario != "" {
		workers = o.users
	}
	transport := loadgen.NewTransport(workers, o.timeout)
	defer transport.CloseIdleConnections()

	cfg := loadgen.Config{Requests: o.requests, Duration: o.duration, Rate: o.rate}
	stderr := cmd.ErrOrStderr()
	f, isFile := stderr.(*os.File)
	showProgress := isFile && !o.quiet && term.IsTerminal(int(f.Fd()))
	var (
		clients []loadgen.Client
		meta    loadgen.Meta
	)
	if o.scenario == "" {
		req, err := o.request(target)
		if err != nil {
			return err
		}
		if cfg.Requests == 0 && cfg.Duration == 0 {
			cfg.Requests = 1 // as ab
		}
		clients, err = loadgen.NewSingleClients(ctx, transport, req, workers)
		if err != nil {
			return err
		}
		meta = loadgen.Meta{Mode: "single", Method: req.Method, URL: req.URL}
	} else {
		mix, mixName := loadgen.DefaultMix(), "built-in"
		if o.mixFile != "" {
			var err error
			if mix, err = loadgen.LoadMix(o.mixFile); err != nil {
				return err
			}
			mixName = o.mixFile
		}
		if cfg.Requests == 0 && cfg.Duration == 0 {
			cfg.Duration = 30 * time.Second
		}
		players, err := loadgen.NewPlayers(ctx, transport, loadgen.PlayersConfig{
			BaseURL: target, Players: o.users, Mix: mix, RunID: o.runID, Seed: o.seed,
		})
		if err != nil {
			return err
		}
		clients = players.Clients()
		cfg.Actions = loadgen.ScenarioActions()
		meta = loadgen.Meta{Mode: "scenario", Scenario: o.scenario, Mix: mixName, RunID: players.RunID(), URL: target}
		if o.setup {
			if showProgress {
				fmt.Fprintf(stderr, "Setup: signing up and logging in %d players...\n", o.users)
			}
			setup, err := players.Setup(ctx, o.users)
			if err != nil {
				return err
			}
			meta.Setup = &setup
		}
	}

	var bar *progressLine
	if showProgress {
		bar = newProgressLine(stderr, cfg)
		cfg.Progress = bar.update
	}
	res, err := loadgen.Run(ctx, cfg, clients)
	if bar != nil {
		bar.finish() // before the summary, which may share the terminal
	}
	if err != nil {
		return err
	}
	sum := loadgen.Summarize(res, meta)
	out := cmd.OutOrStdout()
	if o.format == "json" {
		err = sum.WriteJSON(out)
	} else {
		err = sum.WriteText(out)
	}
	if err != nil {
		return err
	}
	if sum.ErrorRate > o.maxErrors {
		return exitError{code: exitOverErrorBudget, msg: fmt.Sprintf(
			"error rate %.4f is above --max-errors %g (%d of %d requests got a transport error or a 5xx)",
			sum.ErrorRate, o.maxErrors, sum.Errors, sum.Requests)}
	}
	return nil
}

// request builds single mode's request from the flags.
func (o *loadOptions) request(target string) (loadgen.Request, error) {
	r := loadgen.Request{Method: o.method, URL: target, Header: http.Header{}, Cookies: o.cookies}
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return r, fmt.Errorf(`-H %q: want "Name: value"`, h)
		}
		r.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if o.postFile != "" {
		body, err := os.ReadFile(o.postFile)
		if err != nil {
			return r, fmt.Errorf("-p: %w", err)
		}
		r.Body = body
		if r.Header.Get("Content-Type") == "" {
			r.Header.Set("Content-Type", o.contentType)
		}
		if r.Method == "" {
			r.Method = http.MethodPost
		}
	}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	r.Method = strings.ToUpper(r.Method)
	return r, r.Validate()
}

// progressLine shows how far a run is on a terminal: a bar over the
// requests (-n) or over the time (--duration), with the rate and errors.
type progressLine struct {
	bar    *progressbar.ProgressBar
	byTime bool
	last   loadgen.Progress
}

func newProgressLine(w io.Writer, cfg loadgen.Config) *progressLine {
	p := &progressLine{byTime: cfg.Duration > 0}
	max := cfg.Requests
	if p.byTime {
		max = int64(cfg.Duration / time.Second)
	}
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
	)
	return p
}

func (p *progressLine) update(pr loadgen.Progress) {
	rate := 0.0
	if dt := (pr.Elapsed - p.last.Elapsed).Seconds(); dt > 0 {
		rate = float64(pr.Requests-p.last.Requests) / dt
	}
	p.last = pr
	p.bar.Describe(fmt.Sprintf("%d requests, %.0f/s, %d errors", pr.Requests, rate, pr.Errors))
	if p.byTime {
		_ = p.bar.Set64(min(int64(pr.Elapsed/time.Second), int64(pr.TotalDuration/time.Second)))
	} else {
		_ = p.bar.Set64(min(pr.Requests, pr.TotalRequests))
	}
}

func (p *progressLine) finish() { _ = p.bar.Finish() }
