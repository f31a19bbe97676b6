package testproc_test

import (
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/syncbuf"
	"github.com/questlog/questlog/internal/testproc"
)

// Run returns once the server answers; one that exits first, or never
// answers, is an error that holds its output.
func TestRun(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	tests := []struct {
		name    string
		script  string
		ready   func(addr string) error
		wantErr string // empty: Run succeeds
	}{
		{"answers", "echo up; exec sleep 60", func(string) error { return nil }, ""},
		{"exits first", "echo boom; exit 3", func(string) error { return errors.New("not yet") }, "exited: exit status 3:\nboom"},
		{"never answers", "echo slow; exec sleep 60", func(string) error { return errors.New("not yet") }, "did not answer PING within 200ms:\nslow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, err := testproc.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			p := &testproc.Proc{Name: "sh"}
			err = p.Run(exec.Command(sh, "-c", tt.script), addr, &syncbuf.Buffer{}, testproc.Wait{
				Timeout: 200 * time.Millisecond,
				First:   time.Millisecond,
				Most:    20 * time.Millisecond,
				What:    "PING",
				Ready:   func() error { return tt.ready(addr) },
			})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				p.Stop() // must return: SIGTERM ends sleep
				return
			}
			if err == nil || !strings.Contains(err.Error(), "sh on "+addr+" ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// OnFreePort tries again when a start fails, and fails the test after
// three tries.
func TestOnFreePortRetries(t *testing.T) {
	tries := 0
	testproc.OnFreePort(t, "server", func(port int) error {
		if port <= 0 {
			t.Errorf("port %d", port)
		}
		if tries++; tries < 3 {
			return errors.New("taken")
		}
		return nil
	})
	if tries != 3 {
		t.Errorf("%d tries, want 3", tries)
	}
}
