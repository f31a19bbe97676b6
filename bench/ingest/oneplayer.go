package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/questlog/questlog/bench/internal/harness"
	"github.com/questlog/questlog/bench/internal/procstat"
	"github.com/questlog/questlog/internal/loadgen"
)

// The oneplayer section (issue 13 §1): one player's rounds of GET
// /buy_sword, measured the way the seed's load test measured the seed.
const (
	onePlayerPath = "/buy_sword"
	onePlayerUser = "u1"
	onePlayerGold = "2000000000" // 40M swords: the answers keep one length
	// wrk -t2 -c50 and questlog load -c 50; ab -n 3000 -c 10.
	onePlayerConns = 50
	abRequests     = 3000
	abConns        = 10
	seedWorkers    = 2
	goalOverSeed   = 10
	eventTopic     = "events"
)

// OnePlayer is the oneplayer section's summary.
type OnePlayer struct {
	Path string `json:"path"`
	// Serves are the command lines of the serves measured, one per
	// -oneplayer-serve variant.
	Serves []string `json:"serves"`
	// Seed is the seed's command line, or SeedSkipped says why it did not run.
	Seed        string      `json:"seed,omitempty"`
	SeedSkipped string      `json:"seed_skipped,omitempty"`
	Goal        float64     `json:"goal_ratio_to_seed"`
	Ratios      []SeedRatio `json:"ratios_to_seed,omitempty"`
	Delivery    []Delivery  `json:"delivery"`
}

// SeedRatio is a target's requests/s over the seed's with one tool, in
// each round, and their median; and the seed's server CPU per request over
// the target's (how many times more CPU the seed spends on a request),
// which the other work on a shared machine moves far less.
type SeedRatio struct {
	Target    string    `json:"target"`
	Tool      string    `json:"tool"`
	Median    float64   `json:"median"`
	Rounds    []float64 `json:"rounds"`
	CPUMedian float64   `json:"seed_cpu_over_target_median,omitempty"`
	CPURounds []float64 `json:"seed_cpu_over_target_rounds,omitempty"`
}

// Delivery is what a target's topic holds against what it answered.
type Delivery struct {
	Target string `json:"target"`
	// Answered are the measured requests answered 2xx, Events the records
	// the topic gained during those measurements.
	Answered int64 `json:"answered_2xx"`
	Events   int64 `json:"events"`
	// Topic is the topic's records at the end (its end offsets: the
	// signup's and warm-up's events included), ReadBack how many of them
	// `questlog tail -o beginning -e` read back.
	Topic       int64  `json:"topic_records"`
	ReadBack    int64  `json:"read_back"`
	ReadBackErr string `json:"read_back_error,omitempty"`
}

// Lost is how many answered requests have no event on the topic.
func (d Delivery) Lost() int64 { return max(0, d.Answered-d.Events) }

// onePlayerTarget is one server of the section and how to measure it.
type onePlayerTarget struct {
	name    string
	url     string
	headers []string // for wrk and ab: "Cookie: session=…"
	cookies []string // for questlog load -C: "session=…"
	cpu     func() time.Duration
	// brokerCPU is the seed's broker's CPU (nil for the others).
	brokerCPU func() time.Duration
	// topic reads the end offsets of the target's topic at brokerAddr
	// (nil for the bare handler, which logs nothing).
	topic      *kadm.Client
	brokerAddr string
	seed, bare bool
}

type onePlayerBench struct {
	o                 options
	bin, tmp, wrk, ab string
}

// run starts a serve per variant and the seed, signs the player up on each
// serve, and measures every target with each tool, alternating, for
// -rounds rounds. Everything it starts is stopped when it returns.
func (b *onePlayerBench) run(ctx context.Context, bare *harness.Process) (*OnePlayer, []Measurement, error) {
	op := &OnePlayer{Path: onePlayerPath, Goal: goalOverSeed}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	var targets []*onePlayerTarget
	for i, v := range b.o.variants {
		t, cmdline, err := b.startServe(ctx, i, v, &stops)
		if err != nil {
			return nil, nil, err
		}
		op.Serves = append(op.Serves, cmdline)
		targets = append(targets, t)
	}
	if b.o.seed == "off" {
		op.SeedSkipped = "-seed off"
	} else if gunicorn, why := findSeed(ctx); why != "" {
		op.SeedSkipped = why
		fmt.Fprintln(os.Stderr, "oneplayer: no seed:", why)
	} else {
		t, cmdline, err := b.startSeed(ctx, gunicorn, &stops)
		if err != nil {
			return nil, nil, err
		}
		op.Seed = cmdline
		targets = append(targets, t)
	}
	bareTarget := &onePlayerTarget{
		name: "bare handler GET /buy_sword (the tool's ceiling)", url: bare.URL() + onePlayerPath, bare: true,
		cpu: func() time.Duration { return procstat.CPU(bare.Pid()) },
	}
	targets = append(targets, bareTarget)

	if b.o.warmup > 0 {
		for _, t := range targets {
			args := []string{"-t", b.o.warmup.String(), "-c", strconv.Itoa(onePlayerConns)}
			for _, c := range t.cookies {
				args = append(args, "-C", c)
			}
			if _, err := runLoad(ctx, b.bin, append(args, t.url)...); err != nil {
				return nil, nil, fmt.Errorf("warm up %s: %w", t.name, err)
			}
		}
	}
	var tools []string
	if b.wrk != "" {
		tools = append(tools, "wrk")
	}
	if b.ab != "" {
		tools = append(tools, "ab")
	}
	tools = append(tools, "questlog load")

	var ms []Measurement
	for round := 1; round <= b.o.rounds; round++ {
		for _, tool := range tools {
			row := make([]Measurement, len(targets))
			// Each round starts with the next target, so that no target is
			// always measured first (on a busy machine the first one of a
			// round tended to be the slower).
			for k := range targets {
				i := (k + round - 1) % len(targets)
				t := targets[i]
				m, err := b.measure(ctx, t, tool)
				if err != nil {
					return nil, nil, err
				}
				m.Round = round
				row[i] = m
			}
			bareRPS := row[len(row)-1].RequestsPerSecond
			var seedRPS float64
			for i, t := range targets {
				if t.seed {
					seedRPS = row[i].RequestsPerSecond
				}
			}
			for i, t := range targets {
				if !t.bare && bareRPS > 0 {
					row[i].RatioToBare = row[i].RequestsPerSecond / bareRPS
				}
				if !t.seed && seedRPS > 0 {
					row[i].RatioToSeed = row[i].RequestsPerSecond / seedRPS
				}
			}
			ms = append(ms, row...)
		}
	}
	op.Ratios = seedRatios(ms, tools, targets)

	for _, t := range targets {
		if t.topic == nil {
			continue
		}
		d := Delivery{Target: t.name}
		for _, m := range ms {
			if m.Target == t.name {
				d.Answered += m.Answered
				d.Events += m.Events
			}
		}
		var err error
		if d.Topic, err = endOffsets(ctx, t.topic); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", t.name, err)
		}
		if d.ReadBack, err = readBack(ctx, b.bin, t.brokerAddr); err != nil {
			d.ReadBackErr = err.Error()
		}
		op.Delivery = append(op.Delivery, d)
	}
	return op, ms, nil
}

// measure runs one tool against t, with t's server CPU and topic records
// before and after.
func (b *onePlayerBench) measure(ctx context.Context, t *onePlayerTarget, tool string) (Measurement, error) {
	var before int64
	if t.topic != nil {
		var err error
		if before, err = endOffsets(ctx, t.topic); err != nil {
			return Measurement{}, fmt.Errorf("%s: %w", t.name, err)
		}
	}
	brokerCPU := func() time.Duration {
		if t.brokerCPU == nil {
			return 0
		}
		return t.brokerCPU()
	}
	cpu0, broker0 := t.cpu(), brokerCPU()
	var m Measurement
	var err error
	switch tool {
	case "wrk":
		if m, err = runWrk(ctx, b.wrk, t.url, onePlayerConns, b.o.duration, t.headers...); err == nil {
			m.Conns, m.Answered = onePlayerConns, m.Requests-m.Non2xx
		}
	case "ab":
		if m, err = runAb(ctx, b.ab, t.url, abRequests, abConns, t.headers...); err == nil {
			m.Conns, m.Answered = abConns, m.Requests-m.Non2xx-m.Errors
		}
	default:
		args := []string{"-t", b.o.duration.String(), "-c", strconv.Itoa(onePlayerConns)}
		for _, c := range t.cookies {
			args = append(args, "-C", c)
		}
		var s loadgen.Summary
		if s, err = runLoad(ctx, b.bin, append(args, t.url)...); err == nil {
			m = fromSummary(t.name, tool, s)
			m.Conns, m.Answered = onePlayerConns, s.OK
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s with %s: %w", t.name, tool, err)
	}
	m.Target, m.Answered = t.name, max(0, m.Answered)
	if t.seed {
		// The seed answers before its event leaves: let the last ones go
		// before its CPU is read.
		time.Sleep(200 * time.Millisecond)
	}
	cpu1, broker1 := t.cpu(), brokerCPU()
	if m.Requests > 0 && cpu1 > cpu0 { // both 0 without /proc
		m.ServerCPUMicros = float64((cpu1-cpu0+broker1-broker0)/time.Microsecond) / float64(m.Requests)
		m.BrokerCPUMicros = float64((broker1-broker0)/time.Microsecond) / float64(m.Requests)
	}
	if t.topic != nil {
		after, err := settledEndOffsets(ctx, t.topic)
		if err != nil {
			return m, fmt.Errorf("%s: %w", t.name, err)
		}
		m.Events = after - before
	}
	return m, nil
}

// startServe starts the variant-th serve with the player's gold, signs the
// player up and returns the target with its cookie.
func (b *onePlayerBench) startServe(ctx context.Context, variant int, extra string, stops *[]func()) (*onePlayerTarget, string, error) {
	httpAddr, brokerAddr, err := harness.ServeAddrs()
	if err != nil {
		return nil, "", err
	}
	name := fmt.Sprintf("oneplayer-%d", variant)
	args := []string{"serve", "--http", httpAddr, "--broker-listen", brokerAddr, "--data-dir", filepath.Join(b.tmp, name),
		"--starting-gold", onePlayerGold}
	if b.o.passwordCost > 0 {
		args = append(args, "--password-cost", strconv.Itoa(b.o.passwordCost))
	}
	args = append(args, strings.Fields(b.o.serveArgs)...)
	env, more := splitEnv(extra)
	args = append(args, more...)
	p, err := startServe(ctx, b.bin, env, args, httpAddr, filepath.Join(b.tmp, name+".log"))
	if err != nil {
		return nil, "", err
	}
	*stops = append(*stops, p.Stop)
	cookie, err := signUp(ctx, p.URL(), onePlayerUser, "one-player-pw")
	if err != nil {
		return nil, "", err
	}
	topic, err := topicClient(brokerAddr, stops)
	if err != nil {
		return nil, "", err
	}
	target := "questlog serve GET /buy_sword, one player"
	if extra != "" {
		target += " (" + extra + ")"
	}
	return &onePlayerTarget{
		name: target, url: p.URL() + onePlayerPath,
		headers: []string{"Cookie: " + cookie}, cookies: []string{cookie},
		cpu:   func() time.Duration { return procstat.CPU(p.Pid()) },
		topic: topic, brokerAddr: brokerAddr,
	}, strings.Join(append(env, "questlog"), " ") + " " + strings.Join(args, " "), nil
}

// splitEnv splits a variant's words into the leading NAME=VALUE ones, the
// serve's environment as a shell reads it, and the arguments after them.
func splitEnv(variant string) (env, args []string) {
	words := strings.Fields(variant)
	for len(words) > 0 && !strings.HasPrefix(words[0], "-") && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	return env, words
}

// startSeed starts `questlog broker` and, producing to it, the seed's
// Flask app under gunicorn -w 2.
func (b *onePlayerBench) startSeed(ctx context.Context, gunicorn string, stops *[]func()) (*onePlayerTarget, string, error) {
	app, err := filepath.Abs(filepath.Join("bench", "ingest", "seed"))
	if err != nil {
		return nil, "", err
	}
	brokerAddr, err := harness.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	broker, err := harness.StartLogged(ctx, exec.CommandContext(ctx, b.bin, "broker", "--broker-listen", brokerAddr, "--topic", eventTopic,
		"--data-dir", filepath.Join(b.tmp, "seed-broker")), brokerAddr, filepath.Join(b.tmp, "seed-broker.log"), 15*time.Second, harness.WaitListening)
	if err != nil {
		return nil, "", err
	}
	*stops = append(*stops, broker.Stop)
	httpAddr, err := harness.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	args := []string{"-w", strconv.Itoa(seedWorkers), "-b", httpAddr, "--chdir", app, "app:app"}
	cmd := exec.CommandContext(ctx, gunicorn, args...)
	cmd.Env = append(os.Environ(), "SEED_BROKERS="+brokerAddr, "SEED_TOPIC="+eventTopic)
	p, err := harness.StartLogged(ctx, cmd, httpAddr, filepath.Join(b.tmp, "seed.log"), 15*time.Second, harness.WaitReady)
	if err != nil {
		return nil, "", err
	}
	*stops = append(*stops, p.Stop)
	topic, err := topicClient(brokerAddr, stops)
	if err != nil {
		return nil, "", err
	}
	return &onePlayerTarget{
		name: fmt.Sprintf("seed (Flask, gunicorn -w %d) GET /buy_sword?username=%s", seedWorkers, onePlayerUser),
		url:  p.URL() + onePlayerPath + "?username=" + onePlayerUser, seed: true,
		cpu:       func() time.Duration { return treeCPU(p.Pid()) },
		brokerCPU: func() time.Duration { return procstat.CPU(broker.Pid()) },
		topic:     topic, brokerAddr: brokerAddr,
	}, fmt.Sprintf("SEED_BROKERS=%s gunicorn %s (questlog broker on %s)", brokerAddr, strings.Join(args, " "), brokerAddr), nil
}

// findSeed finds gunicorn and checks that the Python it runs (its #! line)
// imports Flask and kafka-python, and that the app is where the bench
// expects it; it returns gunicorn's path, or why the seed cannot run.
func findSeed(ctx context.Context) (gunicorn, why string) {
	if _, err := os.Stat(filepath.Join("bench", "ingest", "seed", "app.py")); err != nil {
		return "", "bench/ingest/seed/app.py not found (run from the repository root)"
	}
	gunicorn, err := exec.LookPath("gunicorn")
	if err != nil {
		return "", "gunicorn is not on PATH (apt-get install -y gunicorn python3-flask python3-kafka)"
	}
	python := []string{"python3"}
	if f, err := os.Open(gunicorn); err == nil {
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		if rest, ok := strings.CutPrefix(line, "#!"); ok && len(strings.Fields(rest)) > 0 {
			python = strings.Fields(rest)
		}
	}
	check := exec.CommandContext(ctx, python[0], append(python[1:], "-c", "import flask, kafka, gunicorn")...)
	if out, err := check.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("gunicorn's Python (%s) cannot import flask and kafka (apt-get install -y python3-flask python3-kafka): %v: %s",
			strings.Join(python, " "), err, strings.TrimSpace(harness.Tail(out, 300)))
	}
	return gunicorn, ""
}

// signUp signs a player up with GET /signup and returns its session cookie
// as "name=value".
func signUp(ctx context.Context, base, user, password string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		base+"/signup?username="+url.QueryEscape(user)+"&password="+url.QueryEscape(password), nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("sign %s up: %w", user, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("sign %s up: %s: %s", user, resp.Status, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("sign %s up: no session cookie in the answer", user)
}

// topicClient is an admin client of the broker at addr, closed with stops.
func topicClient(addr string, stops *[]func()) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	*stops = append(*stops, cl.Close)
	return kadm.NewClient(cl), nil
}

// endOffsets is how many records the event topic holds: the sum of its
// partitions' end offsets (every record takes one offset).
func endOffsets(ctx context.Context, adm *kadm.Client) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, eventTopic)
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", eventTopic, err)
	}
	var n int64
	var perr error
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			perr = o.Err
		}
		n += o.Offset
	})
	if perr != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", eventTopic, perr)
	}
	return n, nil
}

// settledEndOffsets waits until the topic stops growing (the seed's
// events are still on their way when its answers are in) and counts it.
func settledEndOffsets(ctx context.Context, adm *kadm.Client) (int64, error) {
	last, err := endOffsets(ctx, adm)
	if err != nil {
		return 0, err
	}
	still := 0
	for deadline := time.Now().Add(10 * time.Second); still < 3 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		n, err := endOffsets(ctx, adm)
		if err != nil {
			return 0, err
		}
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	return last, nil
}

// readBack reads the whole topic with `questlog tail -o beginning -e`, a
// consumer like any other, and counts its records (one line each).
func readBack(ctx context.Context, bin, brokerAddr string) (int64, error) {
	cmd := exec.CommandContext(ctx, bin, "tail", "-o", "beginning", "-e", "--broker-listen", brokerAddr, "--topic", eventTopic)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var n int64
	r := bufio.NewReaderSize(out, 1<<16)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			n++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
	}
	if err := cmd.Wait(); err != nil {
		return n, fmt.Errorf("questlog tail: %w: %s", err, harness.Tail([]byte(errOut.String()), 500))
	}
	return n, nil
}

// treeCPU is the CPU time of pid and of its running descendants
// (gunicorn's master and the workers it forked).
func treeCPU(pid int) time.Duration {
	total := procstat.CPU(pid)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		raw, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(raw)) {
			if child, err := strconv.Atoi(f); err == nil {
				total += treeCPU(child)
			}
		}
	}
	return total
}

// seedRatios are each target's requests/s over the seed's, and the seed's
// CPU per request over the target's, per tool and round, with their
// medians.
func seedRatios(ms []Measurement, tools []string, targets []*onePlayerTarget) []SeedRatio {
	var seed string
	for _, t := range targets {
		if t.seed {
			seed = t.name
		}
	}
	if seed == "" {
		return nil
	}
	type key struct {
		tool  string
		round int
	}
	seedRows := map[key]Measurement{}
	for _, m := range ms {
		if m.Target == seed {
			seedRows[key{m.Tool, m.Round}] = m
		}
	}
	var out []SeedRatio
	for _, t := range targets {
		if t.seed {
			continue
		}
		for _, tool := range tools {
			r := SeedRatio{Target: t.name, Tool: tool}
			for _, m := range ms {
				s, ok := seedRows[key{m.Tool, m.Round}]
				if m.Target != t.name || m.Tool != tool || !ok {
					continue
				}
				if s.RequestsPerSecond > 0 {
					r.Rounds = append(r.Rounds, m.RequestsPerSecond/s.RequestsPerSecond)
				}
				if s.ServerCPUMicros > 0 && m.ServerCPUMicros > 0 {
					r.CPURounds = append(r.CPURounds, s.ServerCPUMicros/m.ServerCPUMicros)
				}
			}
			if len(r.Rounds) > 0 {
				r.Median, r.CPUMedian = median(r.Rounds), median(r.CPURounds)
				out = append(out, r)
			}
		}
	}
	return out
}
