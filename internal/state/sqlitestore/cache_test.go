package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/questlog/questlog/internal/state"
)

// TestCacheFollowsTheFile: players change under many writers while readers
// read them; afterwards the cached players, the file and a model of every
// applied change agree, and every read along the way was a consistent
// player (sorted stacks, no zero quantities, no negative gold).
func TestCacheFollowsTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	users := []string{"ann", "bob", "cid", "dee", "eve", "fay"}
	type model struct {
		gold      int64
		guild     string
		inventory map[state.Item]int64
		cart      map[state.Item]int64
		mu        sync.Mutex
	}
	models := map[string]*model{}
	for _, u := range users {
		if err := s.CreateAccount(ctx, state.Account{User: u, PasswordHash: []byte("h"), Gold: 500}); err != nil {
			t.Fatal(err)
		}
		models[u] = &model{gold: 500, inventory: map[state.Item]int64{}, cart: map[state.Item]int64{}}
	}
	items := []state.Item{{Type: "sword", Quality: "common"}, {Type: "sword", Quality: "epic"}, {Type: "potion", Quality: "common"}, {Type: "axe", Quality: "rare"}}

	check := func(p state.Player) error {
		for _, stacks := range [][]state.Stack{p.Inventory, p.Cart} {
			if !slices.IsSortedFunc(stacks, state.CompareStacks) {
				return fmt.Errorf("stacks not sorted: %v", stacks)
			}
			for _, st := range stacks {
				if st.Quantity <= 0 {
					return fmt.Errorf("stack %v", st)
				}
			}
		}
		if p.Gold < 0 {
			return fmt.Errorf("gold %d", p.Gold)
		}
		return nil
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	stop := make(chan struct{})
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 150 {
				u := users[r.IntN(len(users))]
				unlock, err := s.Lock(ctx, u)
				if err != nil {
					errs <- err
					return
				}
				p, err := s.Player(ctx, u)
				if err != nil {
					unlock()
					errs <- err
					return
				}
				it := items[r.IntN(len(items))]
				var c state.Change
				switch r.IntN(5) {
				case 0: // buy
					c = state.Change{GoldDelta: -10, Inventory: []state.Stack{{Item: it, Quantity: 2}}}
				case 1: // sell what is there
					if len(p.Inventory) > 0 {
						st := p.Inventory[r.IntN(len(p.Inventory))]
						c = state.Change{GoldDelta: 4, Inventory: []state.Stack{{Item: st.Item, Quantity: -st.Quantity}}}
					}
				case 2: // cart
					c = state.Change{Cart: []state.Stack{{Item: it, Quantity: 1}, {Item: items[0], Quantity: 1}}}
				case 3: // checkout
					c = state.Change{GoldDelta: -1, Inventory: slices.Clone(p.Cart), ClearCart: true}
				case 4: // guild
					g := []string{"", "red", "blue"}[r.IntN(3)]
					c = state.Change{Guild: &g}
				}
				// Sometimes a change the file refuses: the cache must not take it.
				if r.IntN(10) == 0 {
					c.GoldDelta = -1_000_000
				}
				err = s.Apply(ctx, u, c)
				if err == nil {
					m := models[u]
					m.mu.Lock()
					m.gold += c.GoldDelta
					if c.Guild != nil {
						m.guild = *c.Guild
					}
					if c.ClearCart {
						clear(m.cart)
					}
					for _, st := range c.Inventory {
						m.inventory[st.Item] += st.Quantity
					}
					for _, st := range c.Cart {
						m.cart[st.Item] += st.Quantity
					}
					m.mu.Unlock()
				}
				unlock()
			}
		}()
	}
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p, err := s.Player(ctx, users[i%len(users)])
				if err == nil {
					err = check(p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait() // the writers
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for _, u := range users {
		cached, err := s.Player(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		file, err := s.readPlayer(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cached, file) {
			t.Errorf("%s: cached %+v, file %+v", u, cached, file)
		}
		m := models[u]
		want := state.Player{Account: file.Account, Inventory: stacksOf(m.inventory), Cart: stacksOf(m.cart)}
		want.Gold, want.Guild = m.gold, m.guild
		if !reflect.DeepEqual(file, want) {
			t.Errorf("%s: file %+v, model %+v", u, file, want)
		}
	}
}

func stacksOf(m map[state.Item]int64) []state.Stack {
	out := []state.Stack{}
	for it, q := range m {
		if q != 0 {
			out = append(out, state.Stack{Item: it, Quantity: q})
		}
	}
	slices.SortFunc(out, state.CompareStacks)
	return out
}

func TestAddStacks(t *testing.T) {
	st := func(typ string, q int64) state.Stack {
		return state.Stack{Item: state.Item{Type: typ, Quality: "common"}, Quantity: q}
	}
	tests := []struct {
		name           string
		stacks, deltas []state.Stack
		want           []state.Stack
	}{
		{"new item in order", []state.Stack{st("axe", 1), st("sword", 1)}, []state.Stack{st("potion", 2)}, []state.Stack{st("axe", 1), st("potion", 2), st("sword", 1)}},
		{"add to a stack", []state.Stack{st("axe", 1)}, []state.Stack{st("axe", 3)}, []state.Stack{st("axe", 4)}},
		{"a stack reaching zero goes", []state.Stack{st("axe", 1), st("bow", 2)}, []state.Stack{st("axe", -1)}, []state.Stack{st("bow", 2)}},
		{"into an empty list", []state.Stack{}, []state.Stack{st("bow", 1), st("cap", 1)}, []state.Stack{st("bow", 1), st("cap", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := addStacks(tt.stacks, tt.deltas); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("addStacks = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCacheRefusesReadsThatOverlapACommit: a player read from the file is
// cached only when no commit to its bucket began, ended or was in flight
// while the read ran; the protocol that keeps a stale read out.
func TestCacheRefusesReadsThatOverlapACommit(t *testing.T) {
	read := state.Player{Account: state.Account{User: "ann", Gold: 10}, Inventory: []state.Stack{}, Cart: []state.Stack{}}
	gold := func(c *players) int64 {
		p, ok, _ := c.get("ann")
		if !ok {
			return -1 // not cached
		}
		return p.Gold
	}
	tests := []struct {
		name string
		run  func(c *players) // a read (get ... put) interleaved with a commit
		want int64            // gold cached afterwards, -1 for none
	}{
		{"no commit", func(c *players) {
			_, _, tk := c.get("ann")
			c.put("ann", read, tk)
		}, 10},
		{"commit begins during the read", func(c *players) {
			_, _, tk := c.get("ann")
			c.begin("ann")
			c.put("ann", read, tk)
		}, -1},
		{"commit begins and ends during the read", func(c *players) {
			_, _, tk := c.get("ann")
			c.begin("ann")
			c.end("ann", nil, []state.Change{{GoldDelta: 5}}, make([][2][]state.Stack, 1))
			c.put("ann", read, tk)
		}, -1},
		{"read begins during a commit that ends before it", func(c *players) {
			c.begin("ann")
			_, _, tk := c.get("ann")
			c.end("ann", nil, []state.Change{{GoldDelta: 5}}, make([][2][]state.Stack, 1))
			c.put("ann", read, tk)
		}, -1},
		{"read after the commit", func(c *players) {
			c.begin("ann")
			c.end("ann", nil, []state.Change{{GoldDelta: 5}}, make([][2][]state.Stack, 1))
			_, _, tk := c.get("ann")
			c.put("ann", read, tk)
		}, 10},
		{"a cached player follows a commit", func(c *players) {
			_, _, tk := c.get("ann")
			c.put("ann", read, tk)
			c.begin("ann")
			c.end("ann", nil, []state.Change{{GoldDelta: 5}}, make([][2][]state.Stack, 1))
		}, 15},
		{"a refused change leaves it as it was", func(c *players) {
			_, _, tk := c.get("ann")
			c.put("ann", read, tk)
			c.begin("ann")
			c.end("ann", state.ErrConflict, []state.Change{{GoldDelta: -50}}, make([][2][]state.Stack, 1))
		}, 10},
		{"a failed commit drops it", func(c *players) {
			_, _, tk := c.get("ann")
			c.put("ann", read, tk)
			c.begin("ann")
			c.end("ann", errors.New("disk I/O error"), []state.Change{{GoldDelta: 5}}, make([][2][]state.Stack, 1))
		}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newPlayers(10)
			tt.run(c)
			if got := gold(c); got != tt.want {
				t.Errorf("cached gold %d, want %d", got, tt.want)
			}
		})
	}
}
