//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startUnderUlimit runs questlog with args behind bash's `ulimit <limit>`
// (exec keeps the pid: p.cmd.Process is questlog itself).
func startUnderUlimit(t *testing.T, limit string, args ...string) *process {
	t.Helper()
	script := "ulimit " + limit + ` && exec "$0" "$@"`
	return startCmd(t, exec.Command("bash", append([]string{"-c", script, binary}, args...)...))
}

// openFileLimits reads a process's soft and hard RLIMIT_NOFILE.
func openFileLimits(t *testing.T, pid int) (soft, hard uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest) // soft, hard, "files"
			if len(f) < 2 {
				t.Fatalf("limits line %q", line)
			}
			soft, err1 := strconv.ParseUint(f[0], 10, 64)
			hard, err2 := strconv.ParseUint(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("limits line %q", line)
			}
			return soft, hard
		}
	}
	t.Fatalf("no open files line in:\n%s", b)
	return 0, 0
}

// Every connection to the broker or the API costs a file descriptor, and
// some systems start processes with a soft limit of 1024 or even 256. The Go
// runtime raises the soft limit to the hard one in every Go program at start
// (package syscall's init, go.dev/issue/46279; Go 1.26 stops one below it),
// so questlog does not: this test holds the runtime to it.
func TestBrokerCommandsRunWithSoftFileLimitRaisedToHard(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max <= 200 {
		t.Skipf("hard open-file limit %d: too low to tell a raised soft limit", lim.Max)
	}
	for _, args := range [][]string{
		{"serve", "--http", "127.0.0.1:0", "--password-cost", "4"},
		{"broker"},
	} {
		t.Run(args[0], func(t *testing.T) {
			p := startUnderUlimit(t, "-S -n 100", append(args, "--data-dir", t.TempDir(), "--broker-listen", "127.0.0.1:0")...)
			soft, hard := openFileLimits(t, p.cmd.Process.Pid)
			t.Logf("open files: soft %d, hard %d", soft, hard)
			if soft+1 < hard {
				t.Errorf("questlog %s started with a soft limit of 100 runs with %d open files of a hard %d: not raised", args[0], soft, hard)
			}
			p.stop(syscall.SIGINT)
		})
	}
}

// Issue 11: one EMFILE stopped the embedded broker's listener for good. Here
// serve runs with 120 open files at most, and 200 connections to the broker
// port exhaust them. While they are held /readyz says the broker is out of
// reach; once they are closed, without a restart, GET / records its event
// again, tail reads the topic over TCP and /readyz says ready.
func TestServeRecoversFromExhaustedFileDescriptors(t *testing.T) {
	p := startUnderUlimit(t, "-n 120", serveArgs(t.TempDir())...)
	// probe keeps one connection to the API, made while descriptors are
	// free, to ask /readyz while they are not.
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer probe.CloseIdleConnections()
	if code, body := get(t, probe, p.api+"/"); code != 200 {
		t.Fatalf("GET / = %d %s", code, body)
	}
	if code, body := get(t, probe, p.api+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d %s", code, body)
	}

	// 200 connections: the broker accepts until its descriptors run out;
	// the rest wait in the listen backlog, and every accept(2) fails with
	// EMFILE until descriptors are freed.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := 0
	for range 200 {
		c, err := net.DialTimeout("tcp", p.broker, 2*time.Second)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
	}
	t.Logf("%d connections to the broker open, %d refused", len(conns), refused)
	waitUntil(t, 30*time.Second, 50*time.Millisecond, "/readyz to say the broker is unreachable while descriptors are exhausted", func() (bool, string) {
		code, body, err := tryGet(probe, p.api+"/readyz")
		return code == 503 && strings.HasPrefix(body, "embedded broker at "+p.broker+" unavailable"), fmt.Sprintf("%d %q %v", code, body, err)
	})

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// A new client of the API, as a new player would be.
	fresh := &http.Client{Timeout: 5 * time.Second}
	defer fresh.CloseIdleConnections()
	waitUntil(t, 30*time.Second, 50*time.Millisecond, "GET / to answer 200 once the connections are closed", func() (bool, string) {
		code, body, err := tryGet(fresh, p.api+"/")
		return code == 200, fmt.Sprintf("%d %q %v", code, body, err)
	})
	waitUntil(t, 30*time.Second, 50*time.Millisecond, "/readyz to say ready once the connections are closed", func() (bool, string) {
		code, body, err := tryGet(fresh, p.api+"/readyz")
		return code == 200 && body == "ready\n", fmt.Sprintf("%d %q %v", code, body, err)
	})
	out := run(t, "tail", "-o", "beginning", "-e", "--broker-listen", p.broker, "--type", "default")
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("tail read %d default events, want 2 (one GET / before, one after):\n%s", n, out)
	}
	p.stop(syscall.SIGINT)
}

// tryGet is get for polling: an error is a result, not a failure.
func tryGet(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
