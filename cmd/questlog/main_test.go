package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/golden"
	"github.com/questlog/questlog/internal/syncbuf"
)

// binary is questlog built once for the tests that run it as a user would.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "questlog-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "questlog")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build questlog:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running questlog command.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	api    string          // http://host:port, once printed
	broker string          // host:port, once printed
	out    *syncbuf.Buffer // stdout so far, written by the goroutine that reads it
}

var (
	apiLine    = regexp.MustCompile(`^api\s+(http://\S+)`)
	brokerLine = regexp.MustCompile(`^broker\s+(\S+)`)
)

// start runs questlog with args and waits until it printed "ready".
func start(t *testing.T, args ...string) *process {
	t.Helper()
	return startCmd(t, exec.Command(binary, args...))
}

// startEnv is start with more environment variables.
func startEnv(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	return startCmd(t, cmd)
}

// startCmd runs cmd, questlog or a wrapper that execs it, and waits until
// it printed "ready". cmd.Env holds environment variables to add.
func startCmd(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	cmd.Env = append(append(os.Environ(), "QUESTLOG_LOG_LEVEL=warn"), cmd.Env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer // exec copies into it while we may read it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, cmd: cmd, out: &syncbuf.Buffer{}}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.out, line)
			if m := apiLine.FindStringSubmatch(line); m != nil {
				p.api = m[1]
			}
			if m := brokerLine.FindStringSubmatch(line); m != nil {
				p.broker = m[1]
			}
			if strings.HasPrefix(line, "ready") && !signalled {
				signalled = true
				ready <- nil
			}
		}
		if !signalled {
			ready <- fmt.Errorf("exited before ready: %s", stderr.String())
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("not ready after 60s; stdout:\n%s\nstderr:\n%s", p.out, stderr.String())
	}
	return p
}

func (p *process) stop(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	err := p.cmd.Wait()
	if sig == syscall.SIGINT && err != nil {
		p.t.Fatalf("questlog did not stop cleanly on Ctrl-C: %v", err)
	}
}

// serveArgs run serve on dir, on free ports, with cheap password hashes.
func serveArgs(dir string) []string {
	return []string{"serve", "--data-dir", dir, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0", "--password-cost", "4"}
}

// playerClient is an HTTP client that keeps one player's session cookie.
func playerClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("questlog %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitUntil polls cond every interval until it holds, failing the test
// with cond's last state after timeout.
func waitUntil(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", timeout, what, state)
		}
		time.Sleep(interval)
	}
}

// waitQuery runs `questlog <query...> sql` until the last line it prints
// is want, as an extract brings the topic into the lake.
func waitQuery(t *testing.T, timeout time.Duration, query []string, sql, want string) {
	t.Helper()
	args := append(slices.Clip(query), sql)
	waitUntil(t, timeout, 500*time.Millisecond, fmt.Sprintf("questlog %s to print %s", strings.Join(args, " "), want), func() (bool, string) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return err == nil && lines[len(lines)-1] == want, fmt.Sprintf("%v\n%s", err, out)
	})
}

// The state and the events survive a clean stop and a kill -9: an
// acknowledged event is in the broker's log files before the ack.
func TestServeKeepsEverythingAcrossRestartsAndKills(t *testing.T) {
	dir := t.TempDir()
	args := serveArgs(dir)
	c := playerClient()

	// Phase 1: play, then Ctrl-C.
	p := start(t, args...)
	for _, step := range []struct {
		path string
		code int
	}{
		{"/signup?username=ada&password=pw", 201},
		{"/buy_sword", 200},
	} {
		if code, body := get(t, c, p.api+step.path); code != step.code {
			t.Fatalf("GET %s = %d %s", step.path, code, body)
		}
	}
	p.stop(syscall.SIGINT)

	// Phase 2: restart, the session and the gold are still there; play
	// more, then kill -9 right after the answers.
	p = start(t, args...)
	if code, body := get(t, c, p.api+"/buy?item=shield&quality=epic"); code != 200 || !strings.Contains(body, "You have 630 gold") {
		t.Fatalf("after restart: %d %s", code, body)
	}
	if code, body := get(t, c, p.api+"/join_guild?guild=knights"); code != 200 {
		t.Fatalf("join: %d %s", code, body)
	}
	p.stop(syscall.SIGKILL)

	// Phase 3: everything acknowledged before the kill is there.
	p = start(t, args...)
	if code, body := get(t, c, p.api+"/inventory"); code != 200 || body != "ada: 630 gold, guild knights\n1 epic shield\n1 common sword\n" {
		t.Fatalf("inventory after kill: %d %q", code, body)
	}
	out := run(t, "tail", "-o", "beginning", "-e", "--broker-listen", p.broker, "--user", "ada")
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tail line not JSON: %v: %s", err, line)
		}
		types = append(types, e["event_type"].(string))
	}
	want := []string{"signup", "buy_item", "buy_item", "join_guild", "view_inventory"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("events after restarts = %v, want %v", types, want)
	}
	buys := run(t, "tail", "-o", "beginning", "-e", "--broker-listen", p.broker, "--type", "buy_item")
	if n := strings.Count(buys, "\n"); n != 2 {
		t.Fatalf("tail --type buy_item printed %d lines:\n%s", n, buys)
	}
	p.stop(syscall.SIGINT)
}

// The --help texts are part of the interface: golden files keep them
// deliberate.
func TestHelpGolden(t *testing.T) {
	for _, cmd := range []string{"", "up", "serve", "broker", "tail", "extract", "lake", "lake compact", "query", "report", "load"} {
		name := strings.ReplaceAll(cmd, " ", "-")
		if name == "" {
			name = "root"
		}
		t.Run(name, func(t *testing.T) {
			args := append(strings.Fields(cmd), "--help")
			got := run(t, args...)
			want := golden.Want(t, filepath.Join("testdata", "help-"+name+".txt"), []byte(got))
			if got != string(want) {
				t.Errorf("questlog %s --help changed:\n%s\nwant:\n%s", cmd, got, want)
			}
		})
	}
}

// A mistyped --lake is an error, not a lake of empty views.
func TestQueryRefusesMissingLake(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-lake")
	out, err := exec.Command(binary, "query", "--lake", missing, "SELECT count(*) FROM events").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no lake at") {
		t.Fatalf("query on a missing lake: err %v, output %s", err, out)
	}
}

// Bad flags for serve (and up) are refused before anything is created.
func TestServeRefusesBadFlagsAndCreatesNothing(t *testing.T) {
	tests := []struct {
		flag, want string
	}{
		{"--produce-timeout=500ms", "--produce-timeout 500ms: must be at least 1s"},
		{"--produce-linger=-1ms", "--produce-linger -1ms: must be between 0 and 100ms"},
		{"--produce-linger=1s", "--produce-linger 1s: must be between 0 and 100ms"},
		{"--password-cost=99", "password cost 99 out of range"},
		{"--session-ttl=1ms", "session TTL 1ms is too short"},
		{"--seed-session-ttl=1ms", "seed session TTL 1ms is too short"},
		{"--starting-gold=-5", "starting gold -5 out of range"},
		{"--login-failures-per-user=-1", "--login-failures-per-user -1: must be 0 (no limit) or more"},
		{"--login-failures-per-address=-3", "--login-failures-per-address -3: must be 0 (no limit) or more"},
	}
	for _, cmd := range []string{"serve", "up"} {
		for _, tt := range tests {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := runCLI(t, cmd, tt.flag, "--data-dir", dir, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %s: %v, want an error saying %q", cmd, tt.flag, err, tt.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s %s: the data dir exists (%v)", cmd, tt.flag, err)
			}
		}
	}
}
