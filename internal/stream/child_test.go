package stream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The broker's memory is measured in a child process: the test binary run
// again, with only TestBrokerChild selected and the environment telling it
// what to do. A fresh process holds nothing but the broker it starts, so
// its resident memory is the broker's.
const (
	childRoleEnv    = "QUESTLOG_STREAM_CHILD"         // "measure" or "trim-then-die"
	childDirEnv     = "QUESTLOG_STREAM_CHILD_DIR"     // the broker's directory
	childSegmentEnv = "QUESTLOG_STREAM_CHILD_SEGMENT" // BrokerConfig.SegmentBytes
	childTrimEnv    = "QUESTLOG_STREAM_CHILD_TRIM"    // trim-then-die: records to keep per partition
	childSettleEnv  = "QUESTLOG_STREAM_CHILD_SETTLE"  // measure: also RssAnon after these durations, comma-separated
	childResultMark = "CHILD-RESULT "
)

// childReport is what a child prints, as one JSON line after
// childResultMark.
type childReport struct {
	// Start is how long StartBroker took.
	Start time.Duration
	// After the broker started and a garbage collection: the resident
	// memory (VmRSS), its anonymous part (RssAnon: the heap, not the
	// binary's pages), and the peak resident memory so far (VmHWM).
	RSS, Anon, Peak int64
	// Anon again once the runtime returned every free page to the
	// system (debug.FreeOSMemory): where RSS settles when the scavenger
	// has caught up.
	AnonReturned int64
	// Settled is RssAnon sampled after the durations childSettleEnv
	// lists, counted from the collection, with nothing else happening:
	// what the runtime's background scavenger gave back meanwhile.
	Settled []int64
	// HeapInuse after the collection.
	HeapInuse int64
	// Usage as the started broker reports it.
	Usage Usage
}

// TestBrokerChild is not a test: it is the child process's body, and does
// nothing unless childRoleEnv is set.
func TestBrokerChild(t *testing.T) {
	role := os.Getenv(childRoleEnv)
	if role == "" {
		t.Skip("the child process of the memory tests; runs only when they start it")
	}
	if err := runChild(role); err != nil {
		fmt.Println(childResultMark + `{"error":` + strconv.Quote(err.Error()) + `}`)
		os.Exit(2)
	}
}

func runChild(role string) error {
	seg, _ := strconv.ParseInt(os.Getenv(childSegmentEnv), 10, 64)
	start := time.Now()
	b, err := StartBroker(BrokerConfig{Dir: os.Getenv(childDirEnv), Topic: "events", Partitions: 4, SegmentBytes: seg})
	if err != nil {
		return err
	}
	r := childReport{Start: time.Since(start)}
	switch role {
	case "measure":
		runtime.GC()
		st, err := procStatus()
		if err != nil {
			return err
		}
		r.RSS, r.Anon, r.Peak = st["VmRSS"], st["RssAnon"], st["VmHWM"]
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.HeapInuse = int64(ms.HeapInuse)
		if v := os.Getenv(childSettleEnv); v != "" {
			since := time.Now()
			for _, f := range strings.Split(v, ",") {
				d, err := time.ParseDuration(f)
				if err != nil {
					return err
				}
				time.Sleep(time.Until(since.Add(d)))
				st, err := procStatus()
				if err != nil {
					return err
				}
				r.Settled = append(r.Settled, st["RssAnon"])
			}
		}
		debug.FreeOSMemory()
		if st, err = procStatus(); err != nil {
			return err
		}
		r.AnonReturned = st["RssAnon"]
		if r.Usage, err = b.Usage(); err != nil {
			return err
		}
		b.Close()
	case "trim-then-die":
		keep, _ := strconv.ParseInt(os.Getenv(childTrimEnv), 10, 64)
		u, err := b.Usage()
		if err != nil {
			return err
		}
		before := map[int32]int64{}
		for _, p := range u.Partitions {
			before[p.Partition] = p.End - keep
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := Trim(ctx, []string{b.Addr()}, "events", before); err != nil {
			return err
		}
		if r.Usage, err = b.Usage(); err != nil {
			return err
		}
		// Report, then wait to be killed: the broker never closes.
		out, _ := json.Marshal(r)
		fmt.Println(childResultMark + string(out))
		select {}
	default:
		return fmt.Errorf("unknown child role %q", role)
	}
	out, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(childResultMark + string(out))
	return nil
}

// procStatus reads this process's memory figures from /proc/self/status,
// in bytes.
func procStatus() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	st := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			st[name] = kb << 10
		}
	}
	return st, nil
}

// inChild runs the test binary as a child in role on the broker directory
// dir and returns its report. A trim-then-die child is killed (SIGKILL) as
// soon as it reported, as a crash would end it.
//
// A race-detector binary measures the detector as much as the broker: a
// measuring child is then this package's tests built without it.
func inChild(t *testing.T, role, dir string, segment int64, env ...string) childReport {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status")
	}
	bin := os.Args[0]
	if role == "measure" && raceEnabled {
		bin = buildWithoutRace(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestBrokerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childRoleEnv+"="+role, childDirEnv+"="+dir,
		childSegmentEnv+"="+strconv.FormatInt(segment, 10))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		r     childReport
		found bool
		seen  strings.Builder
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), childResultMark)
		if !ok {
			seen.WriteString(sc.Text() + "\n")
			continue
		}
		var e struct{ Error string }
		if json.Unmarshal([]byte(line), &e); e.Error != "" {
			t.Fatalf("child %s: %s", role, e.Error)
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("child %s: %v in %q", role, err, line)
		}
		found = true
		break
	}
	if role == "trim-then-die" {
		_ = cmd.Process.Kill()
	}
	_, _ = bytes.NewBuffer(nil).ReadFrom(out)
	_ = cmd.Wait()
	if !found {
		t.Fatalf("child %s reported nothing:\n%s", role, seen.String())
	}
	return r
}

// buildWithoutRace compiles this package's tests without the race
// detector, once per test, and returns the binary.
func buildWithoutRace(t *testing.T) string {
	t.Helper()
	if noRaceBinary[t.Name()] != "" {
		return noRaceBinary[t.Name()]
	}
	bin := filepath.Join(t.TempDir(), "stream.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the tests without the race detector: %v\n%s", err, out)
	}
	noRaceBinary[t.Name()] = bin
	return bin
}

// noRaceBinary holds buildWithoutRace's binary by test name (tests using
// it do not run in parallel).
var noRaceBinary = map[string]string{}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
