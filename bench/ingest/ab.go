package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// runAb runs ApacheBench: n requests, c at a time, a new connection for
// each (ab without -k, as the seed's load test ran it). -r keeps ab going
// past a failed receive, which it then counts, instead of aborting the run.
func runAb(ctx context.Context, ab, url string, n, c int, headers ...string) (Measurement, error) {
	args := []string{"-r", "-n", strconv.Itoa(n), "-c", strconv.Itoa(c)}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.CommandContext(ctx, ab, append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Measurement{}, fmt.Errorf("%w: %s", err, tail(out, 2000))
	}
	m, err := parseAb(string(out))
	fmt.Fprintf(os.Stderr, "  ab -n %d -c %d %s: %.0f req/s, p99 %.0f ms\n", n, c, url, m.RequestsPerSecond, m.P99Ms)
	return m, err
}

// parseAb reads ab's summary: its requests/s, the complete requests, the
// failed ones (without those failed for "Length" only: ab counts as failed
// every answer whose length differs from the first one's, which is no
// error), the non-2xx answers, write errors, and p50 and p99 from its
// table of percentiles (whole milliseconds: ab rounds them).
func parseAb(out string) (Measurement, error) {
	m := Measurement{Tool: "ab"}
	var failed, length int64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests per second:") && len(f) >= 4:
			m.RequestsPerSecond, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "Complete requests:") && len(f) == 3:
			m.Requests, _ = strconv.ParseInt(f[2], 10, 64)
		case strings.HasPrefix(line, "Failed requests:") && len(f) == 3:
			failed, _ = strconv.ParseInt(f[2], 10, 64)
		case strings.HasPrefix(line, "(Connect:"):
			// (Connect: 0, Receive: 0, Length: 131, Exceptions: 0)
			for i := 0; i+1 < len(f); i += 2 {
				if strings.Trim(f[i], "(:") == "Length" {
					length, _ = strconv.ParseInt(strings.Trim(f[i+1], ",)"), 10, 64)
				}
			}
		case strings.HasPrefix(line, "Non-2xx responses:") && len(f) == 3:
			m.Non2xx, _ = strconv.ParseInt(f[2], 10, 64)
		case strings.HasPrefix(line, "Write errors:") && len(f) == 3:
			n, _ := strconv.ParseInt(f[2], 10, 64)
			m.Errors += n
		case len(f) >= 2 && f[0] == "50%":
			m.P50Ms, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 2 && f[0] == "99%":
			m.P99Ms, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	m.Errors += failed - length
	if length > 0 {
		m.Note = fmt.Sprintf("ab: %d answers of another length than the first (not counted as errors)", length)
	}
	if m.RequestsPerSecond == 0 {
		return m, fmt.Errorf("ab: no \"Requests per second\" in its output:\n%s", out)
	}
	return m, nil
}
