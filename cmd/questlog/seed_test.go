package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/testproc"
)

// needTool is the path of the first of names installed. Without any, the
// test is skipped, or fails where QUESTLOG_REQUIRE_TOOLS is set (CI), as
// testproc.LookPath does.
func needTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return testproc.LookPath(t, names[0], "apt-get install curl apache2-utils kcat; CI installs it")
}

// runTool runs a tool as a shell would and returns its standard output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

var abNon2xx = regexp.MustCompile(`(?m)^Non-2xx responses:\s+(\d+)`)

// The seed course's commands, verbatim (but for the port), against `up`:
// with --seed-sessions they act as user1, whose events are those of any
// player; without it, every request after the signup and the login is a
// 401 with one failed event.
func TestSeedSessionsReplayTheCourseWithCurlAbKcat(t *testing.T) {
	curl, ab, kcat := needTool(t, "curl"), needTool(t, "ab"), needTool(t, "kcat", "kafkacat")
	const unauthenticated = "Error: log in first: no valid session (unauthenticated)\n"
	for _, seed := range []bool{true, false} {
		name := "without the flag"
		if seed {
			name = "with --seed-sessions"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"up", "--data-dir", dir, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
				"--password-cost", "4", "--max-age", "500ms"}
			if seed {
				args = append(args, "--seed-sessions")
			}
			p := start(t, args...)
			if warned := strings.Contains(p.out.String(), "\nwarning    --seed-sessions: "); warned != seed {
				t.Errorf("up printed the warning: %v, want %v:\n%s", warned, seed, p.out)
			}
			server := "localhost:" + p.api[strings.LastIndexByte(p.api, ':')+1:] // the course's localhost:5000

			// As the course's README types them (curl and ab send Host:
			// localhost:<port>).
			want := map[bool][]string{
				true: {"Signed up as user1. You have 1000 gold.\n", "Sword Purchased! You have 950 gold.\n",
					"Error: a guild name is 1 to 32 letters, digits, '_', '-' or '.' (invalid_guild)\n", "Logged in as user1. You have 950 gold.\n"},
				false: {"Signed up as user1. You have 1000 gold.\n", unauthenticated, unauthenticated, "Logged in as user1. You have 1000 gold.\n"},
			}[seed]
			for i, path := range []string{"/signup?username=user1&password=pw1", "/buy_sword?username=user1",
				"/join_guild?username=user1", "/login?username=user1&password=pw1"} {
				if got := runTool(t, curl, server+path); got != want[i] {
					t.Errorf("curl '%s%s' = %q, want %q", server, path, got, want[i])
				}
			}
			// 950 gold buys 19 swords: the other 81 purchases are 402.
			out := runTool(t, ab, "-n", "100", "http://"+server+"/buy_sword?username=user1")
			refused := 0
			if m := abNon2xx.FindStringSubmatch(out); m != nil {
				refused, _ = strconv.Atoi(m[1])
			}
			if wantRefused := map[bool]int{true: 81, false: 100}[seed]; !strings.Contains(out, "Complete requests:      100") || refused != wantRefused {
				t.Errorf("ab: %d non-2xx answers, want %d:\n%s", refused, wantRefused, out)
			}
			// Another Host is not user1's.
			if got := runTool(t, curl, "127.0.0.1"+strings.TrimPrefix(server, "localhost")+"/buy_sword?username=user1"); got != unauthenticated {
				t.Errorf("curl from another Host = %q", got)
			}

			events := runTool(t, kcat, "-C", "-b", p.broker, "-t", "events", "-o", "beginning", "-e")
			got := tally(t, events, server)
			wantTally := map[bool]map[string]int{
				true: {"signup ok user1": 1, "buy_item ok user1": 20, "join_guild failed invalid_guild user1": 1,
					"login ok user1": 1, "buy_item failed insufficient_gold user1": 81, "buy_item failed unauthenticated": 1},
				false: {"signup ok user1": 1, "buy_item failed unauthenticated": 102, "join_guild failed unauthenticated": 1,
					"login ok user1": 1},
			}[seed]
			if fmt.Sprint(got) != fmt.Sprint(wantTally) {
				t.Errorf("kcat read events\n%v\nwant\n%v", got, wantTally)
			}
			if seed {
				// The lake does not care how the player was named.
				waitQuery(t, 60*time.Second, []string{"query", "--data-dir", dir, "--format", "csv"},
					`SELECT count(*) FROM buy_item WHERE "user" = 'user1' AND status = 'ok'`, "20")
			}
			p.stop(syscall.SIGINT)
		})
	}
}

// tally counts events by type, status, error and user, checking that each
// is a JSON object that came with the Host server.
func tally(t *testing.T, records, server string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(records), "\n") {
		var ev struct {
			Type                string `json:"event_type"`
			Status, Error, User string
			HTTP                struct{ Host string }
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("kcat printed a record that is not an event: %v: %s", err, line)
		}
		if ev.HTTP.Host != server && !strings.HasPrefix(ev.HTTP.Host, "127.0.0.1:") {
			t.Errorf("event from host %q: %s", ev.HTTP.Host, line)
		}
		out[strings.Join(strings.Fields(ev.Type+" "+ev.Status+" "+ev.Error+" "+ev.User), " ")]++
	}
	return out
}
