package statetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/state"
)

// benchGold is enough gold that no benchmark runs out.
const benchGold = 1 << 50

// BenchApply measures Apply of a purchase (gold down, one stack up): one
// player at a time ("serial"), and one player per goroutine in parallel
// ("parallel", like many players of a load test).
func BenchApply(b *testing.B, s state.Store) {
	ctx := context.Background()
	buy := state.Change{GoldDelta: -5, Inventory: []state.Stack{stack("potion", "common", 1)}}
	serialAndParallel(b, newUsers(s, "bench-apply"), func(user string) error {
		return s.Apply(ctx, user, buy)
	})
}

// BenchPlayer measures Player on a player with eight inventory stacks and
// two in the cart, serial and parallel as BenchApply.
func BenchPlayer(b *testing.B, s state.Store) {
	ctx := context.Background()
	fill := state.Change{
		Inventory: []state.Stack{
			stack("armor", "common", 1), stack("bow", "rare", 2), stack("helmet", "epic", 3), stack("potion", "common", 40),
			stack("ring", "legendary", 1), stack("shield", "uncommon", 2), stack("staff", "rare", 1), stack("sword", "common", 3),
		},
		Cart: []state.Stack{stack("bow", "common", 1), stack("sword", "epic", 2)},
	}
	users := newUsers(s, "bench-player")
	filled := func(b *testing.B) string {
		user := users(b)
		if user == "" {
			return ""
		}
		if err := s.Apply(ctx, user, fill); err != nil {
			b.Errorf("fill benchmark player: %v", err)
			return ""
		}
		return user
	}
	serialAndParallel(b, filled, func(user string) error {
		_, err := s.Player(ctx, user)
		return err
	})
}

// serialAndParallel measures op on one player at a time ("serial"), and on
// one player per goroutine in parallel ("parallel"); users gives the
// players, as newUsers does.
func serialAndParallel(b *testing.B, users func(*testing.B) string, op func(user string) error) {
	b.Run("serial", func(b *testing.B) {
		user := users(b)
		if user == "" {
			return
		}
		for b.Loop() {
			if err := op(user); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			user := users(b)
			if user == "" {
				return
			}
			for pb.Next() {
				if err := op(user); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchPurchase measures the game's whole hot path for one purchase: Lock,
// Player, Apply, unlock, with one player per goroutine.
func BenchPurchase(b *testing.B, s state.Store) {
	ctx := context.Background()
	users := newUsers(s, "bench-purchase")
	b.RunParallel(func(pb *testing.PB) {
		user := users(b)
		if user == "" {
			return
		}
		for pb.Next() {
			if ok, err := buyUnderLock(ctx, s, user, 5); err != nil || !ok {
				b.Errorf("purchase: bought %v, %v", ok, err)
				return
			}
		}
	})
}

// newUsers returns a function that creates a fresh account on each call,
// for the goroutines of b.RunParallel. It is made once per benchmark, outside
// the functions the testing package runs several times, so names never repeat.
// It reports a failure with b.Error, as b.Fatal is not allowed there, and
// then returns "".
func newUsers(s state.Store, prefix string) func(b *testing.B) string {
	var n atomic.Int64
	return func(b *testing.B) string {
		user := fmt.Sprintf("%s-%d", prefix, n.Add(1))
		if err := s.CreateAccount(context.Background(), state.Account{User: user, Gold: benchGold}); err != nil {
			b.Errorf("create benchmark account: %v", err)
			return ""
		}
		return user
	}
}

// BenchSession measures Session, which every authenticated request calls.
func BenchSession(b *testing.B, s state.Store) {
	ctx := context.Background()
	users := newUsers(s, "bench-session")
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		user := users(b)
		if user == "" {
			return
		}
		hash := fmt.Sprintf("token-hash-%d", n.Add(1))
		if err := s.CreateSession(ctx, state.Session{TokenHash: hash, User: user, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if _, err := s.Session(ctx, hash); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
