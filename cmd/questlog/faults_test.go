package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/questlog/questlog/internal/game/gametest"
	"github.com/questlog/questlog/internal/state/sqlitestore"
)

// The process is killed (SIGKILL, at the fault hook) after the log
// acknowledged a purchase's event and before the store applied it. The
// restarted server applies it from the log before it serves anyone, and
// the state is the fold of the ok events.
func TestKillBetweenAckAndApplyKeepsTheChange(t *testing.T) {
	dir := t.TempDir()
	args := serveArgs(dir)
	c := playerClient()

	p := start(t, args...)
	if code, body := get(t, c, p.api+"/signup?username=ada&password=pw"); code != 201 {
		t.Fatalf("signup: %d %s", code, body)
	}
	p.stop(syscall.SIGINT)

	// The purchase: its event is acknowledged, then the process dies.
	p = startEnv(t, []string{faultEnv + "=acked"}, args...)
	if resp, err := c.Get(p.api + "/buy?item=shield&quality=epic"); err == nil {
		resp.Body.Close()
		t.Fatalf("the server answered %d although it was to die at the fault hook", resp.StatusCode)
	}
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("serve with %s=acked did not die of SIGKILL: %v", faultEnv, err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	ada, err := st.Player(context.Background(), "ada")
	st.Close()
	if err != nil || ada.Gold != 1000 || ada.Pending == "" {
		t.Fatalf("after the kill, ada = %+v, %v; want 1000 gold and the purchase pending", ada, err)
	}

	// The restart settles it: the log holds the event, so the shield is
	// ada's before any request is answered.
	p = start(t, args...)
	if code, body := get(t, c, p.api+"/inventory"); code != 200 || body != "ada: 680 gold, no guild\n1 epic shield\n" {
		t.Fatalf("inventory after the restart: %d %q", code, body)
	}
	records := tailRecords(t, p.broker)
	p.stop(syscall.SIGINT)

	st, err = sqlitestore.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gametest.Check(t, st, records, "ada")
	if n := strings.Count(string(joinLines(records)), `"event_type":"buy_item"`); n != 1 {
		t.Errorf("%d buy_item events, want 1", n)
	}
}

// tailRecords reads the whole topic with questlog tail.
func tailRecords(t *testing.T, broker string) [][]byte {
	t.Helper()
	out := run(t, "tail", "-o", "beginning", "-e", "--broker-listen", broker)
	var records [][]byte
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" {
			records = append(records, []byte(line))
		}
	}
	return records
}

func joinLines(records [][]byte) []byte {
	var b []byte
	for _, r := range records {
		b = append(append(b, r...), '\n')
	}
	return b
}
