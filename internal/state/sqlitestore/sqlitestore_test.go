package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitestore"
	"github.com/questlog/questlog/internal/state/sqlitetest"
	"github.com/questlog/questlog/internal/state/statetest"
)

func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		return open(t, filepath.Join(t.TempDir(), "state.db"))
	})
}

// checkPlayer fails the test unless user has that gold, guild and inventory.
func checkPlayer(t *testing.T, s state.Store, user string, gold int64, guild string, inv []state.Stack) {
	t.Helper()
	p, err := s.Player(context.Background(), user)
	if err != nil {
		t.Fatalf("Player(%q): %v", user, err)
	}
	if p.Gold != gold || p.Guild != guild || fmt.Sprint(p.Inventory) != fmt.Sprint(inv) {
		t.Fatalf("Player(%q) = gold %d, guild %q, inventory %v; want %d, %q, %v", user, p.Gold, p.Guild, p.Inventory, gold, guild, inv)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "state.db")
	knights := "knights"
	sword := []state.Stack{{Item: state.Item{Type: "sword", Quality: "epic"}, Quantity: 2}}
	exp := time.Now().Add(time.Hour).Round(0)

	// Phase 1: write, then close.
	s := open(t, path)
	if err := s.CreateAccount(ctx, state.Account{User: "ada", PasswordHash: []byte("h"), Gold: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "ada", state.Change{GoldDelta: -800, Guild: &knights, Inventory: sword}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, state.Session{TokenHash: "th", User: "ada", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Phase 2: reopen (the schema is already there) and read it all back.
	s = open(t, path)
	defer s.Close()
	checkPlayer(t, s, "ada", 200, "knights", sword)
	sess, err := s.Session(ctx, "th")
	if err != nil || sess.User != "ada" || !sess.ExpiresAt.Equal(exp) {
		t.Fatalf("Session after reopen = %+v, %v; want ada's until %s", sess, err, exp)
	}
	if err := s.Apply(ctx, "ada", state.Change{GoldDelta: -201}); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Apply after reopen = %v, want ErrConflict", err)
	}
}

// openRefused fails t unless Open of path fails with an error that says
// want.
func openRefused(t *testing.T, path, want string) {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) succeeded, want an error saying %q", path, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Open(%s) = %q, want it to say %q", path, err, want)
	}
}

func TestOneStorePerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first := open(t, path)
	openRefused(t, path, "in use")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path).Close() // free again once closed
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open(t, path).Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	openRefused(t, path, "newer")
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", "state.db?mode=ro", "file:state.db", filepath.Join(notADir, "state.db")} {
		if s, err := sqlitestore.Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func BenchmarkApply(b *testing.B)    { statetest.BenchApply(b, sqlitetest.Open(b)) }
func BenchmarkPlayer(b *testing.B)   { statetest.BenchPlayer(b, sqlitetest.Open(b)) }
func BenchmarkPurchase(b *testing.B) { statetest.BenchPurchase(b, sqlitetest.Open(b)) }
func BenchmarkSession(b *testing.B)  { statetest.BenchSession(b, sqlitetest.Open(b)) }
