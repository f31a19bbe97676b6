//go:build unix

package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitestore"
)

// TestChangeSurvivesKill runs this test binary again as a child that writes,
// prints "applied" once Apply has returned, and is then killed with SIGKILL
// before it can close anything. The change must be in the file.
func TestChangeSurvivesKill(t *testing.T) {
	if path := os.Getenv("SQLITESTORE_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChangeSurvivesKill$")
	cmd.Env = append(os.Environ(), "SQLITESTORE_CRASH_CHILD="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "applied") {
		t.Fatalf("child did not apply its change:\n%s", out)
	}

	s := open(t, path)
	defer s.Close()
	checkPlayer(t, s, "ada", 950, "", []state.Stack{{Item: state.Item{Type: "sword", Quality: "common"}, Quantity: 1}})
}

func crashChild(path string) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := s.CreateAccount(ctx, state.Account{User: "ada", Gold: 1000}); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	c := state.Change{GoldDelta: -50, Inventory: []state.Stack{{Item: state.Item{Type: "sword", Quality: "common"}, Quantity: 1}}}
	if err := s.Apply(ctx, "ada", c); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("applied")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the kill lands before this matters
}
