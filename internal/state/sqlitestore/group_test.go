package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/statetest"
)

// Concurrent changes share transactions (group commit); a change that
// fails must be rolled back alone, and every change reported applied must
// be in the file after it is reopened.
func TestConcurrentChangesCommitAloneOrTogether(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	const (
		players = 40
		rounds  = 10
		price   = 300 // a player's fourth purchase of 1,000 gold fails
	)
	s := open(t, path)
	users := statetest.NewPlayers(t, s, players, 1000)
	bought := make([]int64, players)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range players {
		wg.Go(func() {
			user := users[i]
			for range rounds {
				err := s.Apply(ctx, user, state.Change{GoldDelta: -price, Inventory: []state.Stack{{Item: state.Item{Type: "armor", Quality: "rare"}, Quantity: 1}}})
				switch {
				case err == nil:
					bought[i]++
				case !errors.Is(err, state.ErrConflict):
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				// Selling an item the player does not have fails after its
				// gold was added in the shared transaction: the gold must be
				// rolled back, and the other changes of the group kept.
				if err := s.Apply(ctx, user, state.Change{GoldDelta: 150, Inventory: []state.Stack{{Item: state.Item{Type: "ring", Quality: "epic"}, Quantity: -1}}}); !errors.Is(err, state.ErrConflict) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("sell unowned ring of %s = %v, want ErrConflict", user, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	for i := range players {
		if bought[i] != 1000/price {
			t.Errorf("p%d bought %d times, want %d", i, bought[i], 1000/price)
		}
		checkPlayer(t, s, users[i], 1000-price*bought[i], "",
			[]state.Stack{{Item: state.Item{Type: "armor", Quality: "rare"}, Quantity: bought[i]}})
	}
	if err := s.Apply(ctx, "p0", state.Change{GoldDelta: 1}); err != nil {
		t.Fatal(err)
	}
}

// Apply after Close fails instead of waiting for a committer that is gone.
func TestApplyAfterClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	if err := s.CreateAccount(context.Background(), state.Account{User: "ada", PasswordHash: []byte("h"), Gold: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), "ada", state.Change{GoldDelta: 1}); err == nil {
		t.Fatal("Apply after Close succeeded")
	}
}
