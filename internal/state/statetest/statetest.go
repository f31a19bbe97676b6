// Package statetest is the conformance suite every state.Store passes, and
// the benchmarks that compare them. Run it from a store's own tests with a
// real store (a real SQLite file, a real redis-server).
//
// It knows only the state.Store interface: nothing of any implementation,
// nor of the game's rules.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/state"
)

// Run runs the suite. open returns a new, empty store for each subtest; Run
// closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) state.Store) {
	fresh := func(t *testing.T) state.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	t.Run("Ping", func(t *testing.T) {
		if err := fresh(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		test func(*testing.T, state.Store)
	}{
		{"Accounts", testAccounts},
		{"BadInput", testBadInput},
		{"Apply", testApply},
		{"ApplyConflictChangesNothing", testApplyConflict},
		{"ApplyUnknownPlayer", testApplyUnknown},
		{"PlayersAreSeparate", testPlayersAreSeparate},
		{"Sessions", testSessions},
		{"SessionExpires", testSessionExpires},
		{"LockExcludes", testLockExcludes},
		{"LockHonoursContext", testLockContext},
		{"ConcurrentPurchasesUnderLock", testConcurrentPurchases},
		{"ConcurrentApplyNeverNegative", testConcurrentApplyNeverNegative},
		{"Intents", testIntents},
		{"IntentConflictStaysPending", testIntentConflictStaysPending},
		{"SignupIntent", testSignupIntent},
		{"ChangeSessions", testChangeSessions},
		{"IntentGroups", testIntentGroups},
		{"Advance", testAdvance},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, fresh(t)) })
	}
}

// newAccount creates an account with gold and returns it as stored.
func newAccount(t testing.TB, s state.Store, user string, gold int64) state.Account {
	t.Helper()
	a := state.Account{
		User:         user,
		PasswordHash: []byte("$2a$10$not-a-real-bcrypt-hash-of-" + user),
		Gold:         gold,
		CreatedAt:    time.Date(2026, 11, 29, 6, 0, 0, 123456789, time.UTC),
	}
	if err := s.CreateAccount(context.Background(), a); err != nil {
		t.Fatalf("CreateAccount(%q): %v", user, err)
	}
	return a
}

// NewPlayers creates n accounts with gold each, named p0, p1, … p<n-1>, and
// returns their names in that order: the players of a store's own
// concurrent tests.
func NewPlayers(tb testing.TB, s state.Store, n int, gold int64) []string {
	tb.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("p%d", i)
		newAccount(tb, s, users[i], gold)
	}
	return users
}

func player(t testing.TB, s state.Store, user string) state.Player {
	t.Helper()
	p, err := s.Player(context.Background(), user)
	if err != nil {
		t.Fatalf("Player(%q): %v", user, err)
	}
	return p
}

func apply(t testing.TB, s state.Store, user string, c state.Change) {
	t.Helper()
	if err := s.Apply(context.Background(), user, c); err != nil {
		t.Fatalf("Apply(%q, %+v): %v", user, c, err)
	}
}

func stack(typ, quality string, n int64) state.Stack {
	return state.Stack{Item: state.Item{Type: typ, Quality: quality}, Quantity: n}
}

func ptr(s string) *string { return &s }

// samePlayer compares two players field by field, reporting every difference.
func samePlayer(t testing.TB, got, want state.Player) {
	t.Helper()
	if got.User != want.User || got.Gold != want.Gold || got.Guild != want.Guild ||
		string(got.PasswordHash) != string(want.PasswordHash) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("account = %+v, want %+v", got.Account, want.Account)
	}
	if got.Inventory == nil || got.Cart == nil {
		t.Errorf("Inventory or Cart is nil (inventory %v, cart %v); want empty slices", got.Inventory == nil, got.Cart == nil)
	}
	if !reflect.DeepEqual(nonNil(got.Inventory), nonNil(want.Inventory)) {
		t.Errorf("inventory = %v, want %v", got.Inventory, want.Inventory)
	}
	if !reflect.DeepEqual(nonNil(got.Cart), nonNil(want.Cart)) {
		t.Errorf("cart = %v, want %v", got.Cart, want.Cart)
	}
}

func nonNil(s []state.Stack) []state.Stack {
	if s == nil {
		return []state.Stack{}
	}
	return s
}

func testAccounts(t *testing.T, s state.Store) {
	ctx := t.Context()
	a := newAccount(t, s, "ada", 1000)
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a})

	dup := a
	dup.Gold = 5
	if err := s.CreateAccount(ctx, dup); !errors.Is(err, state.ErrExists) {
		t.Errorf("CreateAccount(existing) = %v, want ErrExists", err)
	}
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a}) // unchanged by the duplicate

	if _, err := s.Player(ctx, "nobody"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Player(unknown) = %v, want ErrNotFound", err)
	}
	// Names are opaque to the store: case, spaces, separators and non-ASCII
	// are kept as they are and never collide.
	for _, name := range []string{"Ada", "ada ", "a:da", "a{da}", "åda", "ada\x00x"} {
		b := newAccount(t, s, name, 7)
		samePlayer(t, player(t, s, name), state.Player{Account: b})
	}
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a})
}

func testBadInput(t *testing.T, s state.Store) {
	ctx := t.Context()
	newAccount(t, s, "ada", 100)
	apply(t, s, "ada", state.Change{Inventory: []state.Stack{stack("sword", "common", 1)}})
	before := player(t, s, "ada")

	accounts := []struct {
		name string
		a    state.Account
	}{
		{"empty user", state.Account{User: "", Gold: 1}},
		{"negative gold", state.Account{User: "bob", Gold: -1}},
	}
	for _, tc := range accounts {
		t.Run("CreateAccount/"+tc.name, func(t *testing.T) {
			err := s.CreateAccount(ctx, tc.a)
			if err == nil || errors.Is(err, state.ErrExists) {
				t.Fatalf("CreateAccount(%+v) = %v, want a validation error", tc.a, err)
			}
			if tc.a.User != "" {
				if _, err := s.Player(ctx, tc.a.User); !errors.Is(err, state.ErrNotFound) {
					t.Errorf("after a refused CreateAccount, Player = %v, want ErrNotFound", err)
				}
			}
		})
	}
	changes := []struct {
		name string
		c    state.Change
	}{
		{"empty item type", state.Change{GoldDelta: -10, Inventory: []state.Stack{stack("", "common", 1)}}},
		{"empty quality", state.Change{GoldDelta: -10, Cart: []state.Stack{stack("sword", "", 1)}}},
	}
	for _, tc := range changes {
		t.Run("Apply/"+tc.name, func(t *testing.T) {
			if err := s.Apply(ctx, "ada", tc.c); err == nil {
				t.Fatalf("Apply(%+v) = nil, want an error", tc.c)
			}
			samePlayer(t, player(t, s, "ada"), before)
		})
	}
	sessions := []struct {
		name string
		s    state.Session
	}{
		{"empty token hash", state.Session{User: "ada", ExpiresAt: time.Now().Add(time.Hour)}},
		{"empty user", state.Session{TokenHash: "h1", ExpiresAt: time.Now().Add(time.Hour)}},
		{"already expired", state.Session{TokenHash: "h2", User: "ada", ExpiresAt: time.Now().Add(-time.Second)}},
	}
	for _, tc := range sessions {
		t.Run("CreateSession/"+tc.name, func(t *testing.T) {
			if err := s.CreateSession(ctx, tc.s); err == nil {
				t.Fatalf("CreateSession(%+v) = nil, want an error", tc.s)
			}
			if tc.s.TokenHash != "" {
				if _, err := s.Session(ctx, tc.s.TokenHash); !errors.Is(err, state.ErrNotFound) {
					t.Errorf("after a refused CreateSession, Session = %v, want ErrNotFound", err)
				}
			}
		})
	}
}

func testApply(t *testing.T, s state.Store) {
	tests := []struct {
		name    string
		setup   []state.Change // applied first, each must succeed
		change  state.Change
		gold    int64
		guild   string
		inv     []state.Stack
		cart    []state.Stack
		initial string // guild at creation
	}{
		{name: "empty change", change: state.Change{}, gold: 1000},
		{name: "spend gold", change: state.Change{GoldDelta: -300}, gold: 700},
		{name: "earn gold", change: state.Change{GoldDelta: 25}, gold: 1025},
		{name: "spend every coin", change: state.Change{GoldDelta: -1000}, gold: 0},
		{
			name:   "buy",
			change: state.Change{GoldDelta: -50, Inventory: []state.Stack{stack("sword", "common", 1)}},
			gold:   950, inv: []state.Stack{stack("sword", "common", 1)},
		},
		{
			name:   "stacks grow",
			setup:  []state.Change{{Inventory: []state.Stack{stack("potion", "common", 3)}}},
			change: state.Change{Inventory: []state.Stack{stack("potion", "common", 4)}},
			gold:   1000, inv: []state.Stack{stack("potion", "common", 7)},
		},
		{
			name:   "stacks of one item in one change are summed",
			change: state.Change{Inventory: []state.Stack{stack("potion", "common", 2), stack("potion", "common", 3)}},
			gold:   1000, inv: []state.Stack{stack("potion", "common", 5)},
		},
		{
			name:   "take and give back the same item nets out",
			change: state.Change{Inventory: []state.Stack{stack("potion", "common", -1), stack("potion", "common", 1)}},
			gold:   1000,
		},
		{
			name:   "sell part of a stack",
			setup:  []state.Change{{Inventory: []state.Stack{stack("potion", "common", 5)}}},
			change: state.Change{GoldDelta: 5, Inventory: []state.Stack{stack("potion", "common", -2)}},
			gold:   1005, inv: []state.Stack{stack("potion", "common", 3)},
		},
		{
			name: "a stack sold to zero disappears",
			setup: []state.Change{{Inventory: []state.Stack{
				stack("potion", "common", 2), stack("sword", "rare", 1)}}},
			change: state.Change{GoldDelta: 5, Inventory: []state.Stack{stack("potion", "common", -2)}},
			gold:   1005, inv: []state.Stack{stack("sword", "rare", 1)},
		},
		{
			name:   "zero deltas change nothing",
			setup:  []state.Change{{Inventory: []state.Stack{stack("potion", "common", 2)}}},
			change: state.Change{Inventory: []state.Stack{stack("potion", "common", 0), stack("bow", "rare", 0)}},
			gold:   1000, inv: []state.Stack{stack("potion", "common", 2)},
		},
		{
			name: "inventory and cart are sorted by type then quality",
			change: state.Change{
				Inventory: []state.Stack{
					stack("sword", "rare", 1), stack("potion", "common", 2), stack("sword", "epic", 3),
					stack("bow", "legendary", 4), stack("sword", "common", 5), stack("armor", "uncommon", 6),
				},
				Cart: []state.Stack{stack("staff", "rare", 1), stack("ring", "epic", 1), stack("ring", "common", 2)},
			},
			gold: 1000,
			inv: []state.Stack{
				stack("armor", "uncommon", 6), stack("bow", "legendary", 4), stack("potion", "common", 2),
				stack("sword", "common", 5), stack("sword", "epic", 3), stack("sword", "rare", 1),
			},
			cart: []state.Stack{stack("ring", "common", 2), stack("ring", "epic", 1), stack("staff", "rare", 1)},
		},
		{
			name:   "add to cart",
			change: state.Change{Cart: []state.Stack{stack("shield", "epic", 2)}},
			gold:   1000, cart: []state.Stack{stack("shield", "epic", 2)},
		},
		{
			name:   "remove from cart",
			setup:  []state.Change{{Cart: []state.Stack{stack("shield", "epic", 2), stack("bow", "common", 1)}}},
			change: state.Change{Cart: []state.Stack{stack("shield", "epic", -2)}},
			gold:   1000, cart: []state.Stack{stack("bow", "common", 1)},
		},
		{
			name:   "clear cart",
			setup:  []state.Change{{Cart: []state.Stack{stack("shield", "epic", 2), stack("bow", "common", 1)}}},
			change: state.Change{ClearCart: true},
			gold:   1000,
		},
		{
			name:   "clear cart comes before the cart deltas",
			setup:  []state.Change{{Cart: []state.Stack{stack("shield", "epic", 2)}}},
			change: state.Change{ClearCart: true, Cart: []state.Stack{stack("shield", "epic", 1), stack("bow", "common", 1)}},
			gold:   1000, cart: []state.Stack{stack("bow", "common", 1), stack("shield", "epic", 1)},
		},
		{
			name: "checkout moves the cart to the inventory",
			setup: []state.Change{{
				Inventory: []state.Stack{stack("sword", "common", 1)},
				Cart:      []state.Stack{stack("sword", "common", 2), stack("shield", "common", 1)},
			}},
			change: state.Change{
				GoldDelta: -140, ClearCart: true,
				Inventory: []state.Stack{stack("sword", "common", 2), stack("shield", "common", 1)},
			},
			gold: 860, inv: []state.Stack{stack("shield", "common", 1), stack("sword", "common", 3)},
		},
		{name: "join a guild", change: state.Change{Guild: ptr("knights")}, gold: 1000, guild: "knights"},
		{name: "switch guild", initial: "knights", change: state.Change{Guild: ptr("mages")}, gold: 1000, guild: "mages"},
		{name: "leave the guild", initial: "knights", change: state.Change{Guild: ptr("")}, gold: 1000},
		{name: "nil guild keeps it", initial: "knights", change: state.Change{GoldDelta: -1}, gold: 999, guild: "knights"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("player%d", i)
			a := newAccount(t, s, user, 1000)
			if tc.initial != "" {
				apply(t, s, user, state.Change{Guild: &tc.initial})
				a.Guild = tc.initial
			}
			for _, c := range tc.setup {
				apply(t, s, user, c)
			}
			apply(t, s, user, tc.change)
			a.Gold, a.Guild = tc.gold, tc.guild
			samePlayer(t, player(t, s, user), state.Player{Account: a, Inventory: tc.inv, Cart: tc.cart})
		})
	}
}

func testApplyConflict(t *testing.T, s state.Store) {
	tests := []struct {
		name   string
		change state.Change
	}{
		{"gold below zero", state.Change{
			GoldDelta: -101, Guild: ptr("mages"),
			Inventory: []state.Stack{stack("bow", "rare", 1)},
			Cart:      []state.Stack{stack("ring", "epic", 1)},
		}},
		{"gold below zero with a cleared cart", state.Change{GoldDelta: -1000, ClearCart: true}},
		{"inventory below zero", state.Change{
			GoldDelta: 50, Guild: ptr(""),
			Inventory: []state.Stack{stack("bow", "rare", 1), stack("sword", "common", -3)},
		}},
		{"item not held", state.Change{GoldDelta: 5, Inventory: []state.Stack{stack("potion", "common", -1)}}},
		{"same item not held in another quality", state.Change{Inventory: []state.Stack{stack("sword", "epic", -1)}}},
		{"summed stacks below zero", state.Change{Inventory: []state.Stack{
			stack("sword", "common", -1), stack("sword", "common", -1), stack("sword", "common", -1)}}},
		{"last stack below zero", state.Change{
			GoldDelta: -10, ClearCart: true,
			Inventory: []state.Stack{stack("armor", "common", 1), stack("sword", "common", -1), stack("zzz", "common", -1)},
		}},
		{"cart below zero", state.Change{Cart: []state.Stack{stack("shield", "common", -2)}}},
		{"cleared cart then removing from it", state.Change{
			GoldDelta: -1, ClearCart: true, Cart: []state.Stack{stack("shield", "common", -1)}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("player%d", i)
			newAccount(t, s, user, 100)
			apply(t, s, user, state.Change{
				Guild:     ptr("knights"),
				Inventory: []state.Stack{stack("sword", "common", 2)},
				Cart:      []state.Stack{stack("shield", "common", 1)},
			})
			before := player(t, s, user)
			if err := s.Apply(t.Context(), user, tc.change); !errors.Is(err, state.ErrConflict) {
				t.Fatalf("Apply(%+v) = %v, want ErrConflict", tc.change, err)
			}
			samePlayer(t, player(t, s, user), before)
		})
	}
}

func testApplyUnknown(t *testing.T, s state.Store) {
	ctx := t.Context()
	changes := []state.Change{
		{},
		{GoldDelta: 10},
		{Inventory: []state.Stack{stack("sword", "common", 1)}},
		{Cart: []state.Stack{stack("sword", "common", 1)}, ClearCart: true},
		{Guild: ptr("knights")},
	}
	for _, c := range changes {
		if err := s.Apply(ctx, "ghost", c); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("Apply(unknown, %+v) = %v, want ErrNotFound", c, err)
		}
	}
	if _, err := s.Player(ctx, "ghost"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after Apply to an unknown player, Player = %v, want ErrNotFound", err)
	}
	// Nothing was left behind for a later account of that name.
	a := newAccount(t, s, "ghost", 10)
	samePlayer(t, player(t, s, "ghost"), state.Player{Account: a})
}

func testPlayersAreSeparate(t *testing.T, s state.Store) {
	a := newAccount(t, s, "ada", 100)
	b := newAccount(t, s, "bob", 200)
	apply(t, s, "ada", state.Change{GoldDelta: -40, Guild: ptr("knights"),
		Inventory: []state.Stack{stack("shield", "common", 1)}, Cart: []state.Stack{stack("bow", "rare", 1)}})
	apply(t, s, "bob", state.Change{ClearCart: true})
	samePlayer(t, player(t, s, "bob"), state.Player{Account: b})
	a.Gold, a.Guild = 60, "knights"
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a,
		Inventory: []state.Stack{stack("shield", "common", 1)}, Cart: []state.Stack{stack("bow", "rare", 1)}})
}

func testSessions(t *testing.T, s state.Store) {
	ctx := t.Context()
	newAccount(t, s, "ada", 100)
	newAccount(t, s, "bob", 100)
	exp := time.Now().Add(time.Hour).Round(time.Millisecond)
	ada := state.Session{TokenHash: "hash-ada", User: "ada", ExpiresAt: exp}
	bob := state.Session{TokenHash: "hash-bob", User: "bob", ExpiresAt: exp.Add(time.Minute)}
	for _, sess := range []state.Session{ada, bob} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession(%+v): %v", sess, err)
		}
	}
	for _, want := range []state.Session{ada, bob} {
		got, err := s.Session(ctx, want.TokenHash)
		if err != nil {
			t.Fatalf("Session(%q): %v", want.TokenHash, err)
		}
		if got.TokenHash != want.TokenHash || got.User != want.User || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("Session(%q) = %+v, want %+v", want.TokenHash, got, want)
		}
	}

	if _, err := s.Session(ctx, "no-such-hash"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Session(unknown) = %v, want ErrNotFound", err)
	}
	taken := state.Session{TokenHash: "hash-ada", User: "bob", ExpiresAt: exp}
	if err := s.CreateSession(ctx, taken); !errors.Is(err, state.ErrExists) {
		t.Errorf("CreateSession(same token hash) = %v, want ErrExists", err)
	}
	if got, err := s.Session(ctx, "hash-ada"); err != nil || got.User != "ada" {
		t.Errorf("after a refused CreateSession, Session = %+v, %v; want ada's", got, err)
	}
	renewed := state.Session{TokenHash: "hash-ada", User: "ada", ExpiresAt: exp.Add(time.Hour)}
	if err := s.CreateSession(ctx, renewed); err != nil {
		t.Errorf("CreateSession(the same player's token hash) = %v, want it renewed", err)
	}
	if got, err := s.Session(ctx, "hash-ada"); err != nil || !got.ExpiresAt.Equal(renewed.ExpiresAt) {
		t.Errorf("after a renewal, Session = %+v, %v; want it to expire at %v", got, err, renewed.ExpiresAt)
	}
	orphan := state.Session{TokenHash: "hash-ghost", User: "ghost", ExpiresAt: exp}
	if err := s.CreateSession(ctx, orphan); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("CreateSession(unknown user) = %v, want ErrNotFound", err)
	}

	if err := s.DeleteSession(ctx, "hash-ada"); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.Session(ctx, "hash-ada"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Session(deleted) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, "hash-ada"); err != nil {
		t.Errorf("DeleteSession(already deleted) = %v, want nil", err)
	}
	if _, err := s.Session(ctx, "hash-bob"); err != nil {
		t.Errorf("Session(bob) after deleting ada's = %v, want bob's", err)
	}
}

func testSessionExpires(t *testing.T, s state.Store) {
	ctx := t.Context()
	newAccount(t, s, "ada", 100)
	short := state.Session{TokenHash: "short", User: "ada", ExpiresAt: time.Now().Add(30 * time.Millisecond)}
	if err := s.CreateSession(ctx, short); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	time.Sleep(time.Until(short.ExpiresAt) + 5*time.Millisecond) // until it has expired, whatever the machine's speed
	if got, err := s.Session(ctx, "short"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Session(expired) = %+v, %v; want ErrNotFound", got, err)
	}
	// The token hash of an expired session can be used again.
	again := state.Session{TokenHash: "short", User: "ada", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, again); err != nil {
		t.Fatalf("CreateSession(hash of an expired session): %v", err)
	}
	if _, err := s.Session(ctx, "short"); err != nil {
		t.Fatalf("Session(renewed): %v", err)
	}
}

// lockTimeout is how long a Lock that must fail waits before giving up. A
// broken lock fails the test whatever this is, since the Lock would succeed.
const lockTimeout = 50 * time.Millisecond

func tryLock(s state.Store, user string) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	return s.Lock(ctx, user)
}

func testLockExcludes(t *testing.T, s state.Store) {
	unlock, err := s.Lock(t.Context(), "ada")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if u2, err := tryLock(s, "ada"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u2()
		}
		t.Fatalf("second Lock while held = %v, want context.DeadlineExceeded", err)
	}
	// Another player's lock is independent, and locking needs no account.
	other, err := tryLock(s, "bob")
	if err != nil {
		t.Fatalf("Lock(other player) while ada's is held: %v", err)
	}
	other()

	// A waiter gets the lock once it is released, and not before.
	var released atomic.Bool // the store's lock may synchronize outside Go's memory model
	acquired := make(chan error, 1)
	go func() {
		u, err := s.Lock(context.Background(), "ada")
		if err == nil {
			if !released.Load() {
				err = errors.New("waiter got the lock before it was released")
			}
			u()
		}
		acquired <- err
	}()
	released.Store(true)
	unlock()
	if err := <-acquired; err != nil {
		t.Fatalf("waiter: %v", err)
	}

	unlock() // a second unlock is harmless and must not release someone else's lock
	u3, err := tryLock(s, "ada")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock()
	if u4, err := tryLock(s, "ada"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u4()
		}
		t.Fatalf("a stale unlock released a newer holder's lock: Lock = %v", err)
	}
	u3()
}

func testLockContext(t *testing.T, s state.Store) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if u, err := s.Lock(canceled, "ada"); !errors.Is(err, context.Canceled) {
		if err == nil {
			u()
		}
		t.Fatalf("Lock(canceled ctx) = %v, want context.Canceled", err)
	}

	unlock, err := s.Lock(t.Context(), "ada")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		u, err := s.Lock(ctx, "ada")
		if err == nil {
			u()
		}
		waiting <- err
	}()
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock canceled while waiting = %v, want context.Canceled", err)
	}
	unlock()
	// The abandoned wait left nothing behind.
	u, err := tryLock(s, "ada")
	if err != nil {
		t.Fatalf("Lock after a canceled wait: %v", err)
	}
	u()
}

// testConcurrentPurchases is the game's pattern: lock, read, decide, apply,
// unlock. The lock means none is refused by Apply.
func testConcurrentPurchases(t *testing.T, s state.Store) {
	raceSwordPurchases(t, s, func(ctx context.Context) (bool, error) {
		return buyUnderLock(ctx, s, "ada", racePrice)
	})
}

func buyUnderLock(ctx context.Context, s state.Store, user string, price int64) (bool, error) {
	unlock, err := s.Lock(ctx, user)
	if err != nil {
		return false, err
	}
	defer unlock()
	p, err := s.Player(ctx, user)
	if err != nil {
		return false, err
	}
	if p.Gold < price {
		return false, nil
	}
	err = s.Apply(ctx, user, state.Change{GoldDelta: -price, Inventory: []state.Stack{stack("sword", "common", 1)}})
	return err == nil, err
}

// testConcurrentApplyNeverNegative races Applies without the lock: each is
// atomic on its own, so gold never goes below zero and every refusal is a
// conflict. Gold only falls, so a refusal means it was already below the
// price.
func testConcurrentApplyNeverNegative(t *testing.T, s state.Store) {
	raceSwordPurchases(t, s, func(ctx context.Context) (bool, error) {
		err := s.Apply(ctx, "ada", state.Change{GoldDelta: -racePrice, Inventory: []state.Stack{stack("sword", "common", 1)}})
		if errors.Is(err, state.ErrConflict) {
			return false, nil
		}
		return err == nil, err
	})
}

// The purchase race: ada's gold pays for raceStart/racePrice swords, and
// more attempts than that run in parallel.
const (
	raceStart    = 1000
	racePrice    = 70
	raceWorkers  = 8
	raceAttempts = 4 // raceWorkers*raceAttempts > raceStart/racePrice
)

// raceSwordPurchases gives ada raceStart gold and runs buy, a purchase of
// one sword at racePrice, raceAttempts times in each of raceWorkers
// goroutines. Exactly as many must succeed as the gold pays for, with no
// error, and ada ends with the gold they left and one sword for each.
func raceSwordPurchases(t *testing.T, s state.Store, buy func(context.Context) (bought bool, err error)) {
	newAccount(t, s, "ada", raceStart)
	var (
		mu        sync.Mutex
		successes int64
		errs      []error
		wg        sync.WaitGroup
	)
	for range raceWorkers {
		wg.Go(func() {
			for range raceAttempts {
				bought, err := buy(t.Context())
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				if bought {
					successes++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	p := player(t, s, "ada")
	if p.Gold != raceStart-racePrice*successes || p.Gold < 0 {
		t.Errorf("gold = %d after %d purchases at %d from %d, want %d", p.Gold, successes, racePrice, raceStart, raceStart-racePrice*successes)
	}
	if successes != raceStart/racePrice {
		t.Errorf("%d purchases succeeded, want %d (all the gold pays for)", successes, raceStart/racePrice)
	}
	if want := []state.Stack{stack("sword", "common", successes)}; !reflect.DeepEqual(p.Inventory, want) {
		t.Errorf("inventory = %v, want %v", p.Inventory, want)
	}
}

// intent returns an intent for event id with changes cs.
func intent(id string, cs ...state.Change) state.Intent {
	return state.Intent{EventID: id, Partition: 2, After: 41, Created: time.Date(2026, 12, 1, 9, 0, 0, 123456000, time.UTC), Changes: cs}
}

func testIntents(t *testing.T, s state.Store) {
	ctx := t.Context()
	a := newAccount(t, s, "ada", 1000)
	buy := state.Change{GoldDelta: -50, Inventory: []state.Stack{stack("sword", "common", 1)}, Guild: ptr("knights")}
	in := intent("e1", buy)

	if _, err := s.Pending(ctx, "ada"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Pending before Prepare = %v, want ErrNotFound", err)
	}
	if err := s.Prepare(ctx, "ada", in); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	got, err := s.Pending(ctx, "ada")
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("Pending = %+v, want %+v", got, in)
	}
	if p := player(t, s, "ada"); p.Pending != "e1" || p.Gold != 1000 {
		t.Errorf("Player while pending: gold %d, Pending %q; want 1000 (nothing applied yet), e1", p.Gold, p.Pending)
	}
	if users, err := s.PendingUsers(ctx); err != nil || !reflect.DeepEqual(users, []string{"ada"}) {
		t.Errorf("PendingUsers = %v, %v; want [ada]", users, err)
	}
	if err := s.Prepare(ctx, "ada", intent("e2", state.Change{GoldDelta: -1})); !errors.Is(err, state.ErrExists) {
		t.Errorf("second Prepare = %v, want ErrExists", err)
	}
	if err := s.Commit(ctx, "ada", intent("e-other", buy)); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Commit(another event) = %v, want ErrNotFound", err)
	}
	if p := player(t, s, "ada"); p.Gold != 1000 {
		t.Errorf("a refused Commit changed gold to %d", p.Gold)
	}

	if err := s.Commit(ctx, "ada", in); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	a.Gold, a.Guild = 950, "knights"
	want := state.Player{Account: a, Inventory: []state.Stack{stack("sword", "common", 1)}}
	samePlayer(t, player(t, s, "ada"), want)
	if p := player(t, s, "ada"); p.Pending != "" {
		t.Errorf("Pending after Commit = %q, want none", p.Pending)
	}
	if err := s.Commit(ctx, "ada", in); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("second Commit = %v, want ErrNotFound (committing twice applies once)", err)
	}
	samePlayer(t, player(t, s, "ada"), want)
	if _, err := s.Pending(ctx, "ada"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Pending after Commit = %v, want ErrNotFound", err)
	}
	if users, err := s.PendingUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("PendingUsers after Commit = %v, %v; want none", users, err)
	}

	// Drop removes without applying; dropping another event's intent or
	// nothing is harmless.
	if err := s.Prepare(ctx, "ada", intent("e3", state.Change{GoldDelta: -900})); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := s.Drop(ctx, "ada", "e-other"); err != nil {
		t.Fatalf("Drop(another event): %v", err)
	}
	if p := player(t, s, "ada"); p.Pending != "e3" {
		t.Fatalf("Drop of another event removed the intent (Pending %q)", p.Pending)
	}
	if err := s.Drop(ctx, "ada", "e3"); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	samePlayer(t, player(t, s, "ada"), want)
	if err := s.Commit(ctx, "ada", intent("e3", state.Change{GoldDelta: -900})); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Commit after Drop = %v, want ErrNotFound", err)
	}
	if err := s.Drop(ctx, "ada", "e3"); err != nil {
		t.Errorf("Drop of nothing = %v, want nil", err)
	}
	samePlayer(t, player(t, s, "ada"), want)
}

func testIntentConflictStaysPending(t *testing.T, s state.Store) {
	newAccount(t, s, "ada", 10)
	commitRefused(t, s, "ada", intent("e1", state.Change{GoldDelta: -50}), "an impossible change")
}

// commitRefused prepares in for user and checks that committing it, which
// what describes, fails with ErrConflict, leaves the player as it was and
// leaves in pending.
func commitRefused(t *testing.T, s state.Store, user string, in state.Intent, what string) {
	t.Helper()
	ctx := t.Context()
	before := player(t, s, user)
	if err := s.Prepare(ctx, user, in); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := s.Commit(ctx, user, in); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Commit of %s = %v, want ErrConflict", what, err)
	}
	samePlayer(t, player(t, s, user), before)
	if got, err := s.Pending(ctx, user); err != nil || got.EventID != in.EventID {
		t.Fatalf("after a refused Commit, Pending = %+v, %v; want %s still pending", got, err, in.EventID)
	}
}

// testSignupIntent is a signup's intent: the account does not exist until
// it is committed, with its first session.
func testSignupIntent(t *testing.T, s state.Store) {
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Round(time.Millisecond).UTC() // as a JSON round trip gives it back
	acct := state.Account{User: "bob", PasswordHash: []byte("$2a$04$hash"), Gold: 1000,
		CreatedAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	sess := state.Session{TokenHash: "th-bob", User: "bob", ExpiresAt: exp}
	in := intent("e1", state.Change{Create: &acct, Session: &sess})
	if err := s.Prepare(ctx, "bob", in); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := s.Player(ctx, "bob"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Player before the signup's Commit = %v, want ErrNotFound", err)
	}
	if got, err := s.Pending(ctx, "bob"); err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("Pending = %+v, %v; want %+v", got, err, in)
	}
	if err := s.Commit(ctx, "bob", in); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	samePlayer(t, player(t, s, "bob"), state.Player{Account: acct})
	if got, err := s.Session(ctx, "th-bob"); err != nil || got.User != "bob" {
		t.Fatalf("Session after the signup's Commit = %+v, %v", got, err)
	}

	// A second signup of the name is refused by Commit and stays pending.
	dup := acct
	dup.Gold = 5
	in2 := intent("e2", state.Change{Create: &dup})
	if err := s.Prepare(ctx, "bob", in2); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := s.Commit(ctx, "bob", in2); !errors.Is(err, state.ErrExists) {
		t.Fatalf("Commit creating a taken name = %v, want ErrExists", err)
	}
	samePlayer(t, player(t, s, "bob"), state.Player{Account: acct})
	if err := s.Drop(ctx, "bob", "e2"); err != nil {
		t.Fatal(err)
	}

	// A logout's change ends the session.
	out := intent("e3", state.Change{EndSession: "th-bob"})
	if err := s.Prepare(ctx, "bob", out); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := s.Commit(ctx, "bob", out); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if _, err := s.Session(ctx, "th-bob"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Session after the logout's Commit = %v, want ErrNotFound", err)
	}
}

// testChangeSessions: Apply opens, renews and closes sessions as part of a
// change, and a change naming another player's session is refused.
func testChangeSessions(t *testing.T, s state.Store) {
	ctx := t.Context()
	newAccount(t, s, "ada", 100)
	newAccount(t, s, "bob", 100)
	exp := time.Now().Add(time.Hour).Round(time.Millisecond)
	sess := state.Session{TokenHash: "th-ada", User: "ada", ExpiresAt: exp}
	apply(t, s, "ada", state.Change{Session: &sess})
	if got, err := s.Session(ctx, "th-ada"); err != nil || got.User != "ada" || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	// Opened again by the same player (a seed session's next login), in
	// one change and in two changes of one intent: renewed.
	later := sess
	later.ExpiresAt = exp.Add(time.Hour)
	apply(t, s, "ada", state.Change{Session: &later})
	latest := sess
	latest.ExpiresAt = exp.Add(2 * time.Hour)
	in := intent("e-renew", state.Change{Session: &later}, state.Change{Session: &latest})
	if err := s.Prepare(ctx, "ada", in); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "ada", in); err != nil {
		t.Fatalf("Commit opening the player's own session twice = %v", err)
	}
	if got, err := s.Session(ctx, "th-ada"); err != nil || got.User != "ada" || !got.ExpiresAt.Equal(latest.ExpiresAt) {
		t.Fatalf("Session after renewals = %+v, %v; want it to expire at %v", got, err, latest.ExpiresAt)
	}
	taken := state.Session{TokenHash: "th-ada", User: "bob", ExpiresAt: exp}
	if err := s.Apply(ctx, "bob", state.Change{GoldDelta: -1, Session: &taken}); !errors.Is(err, state.ErrExists) {
		t.Errorf("Apply with another player's live session = %v, want ErrExists", err)
	}
	if p := player(t, s, "bob"); p.Gold != 100 {
		t.Errorf("a refused Apply changed gold to %d", p.Gold)
	}
	if got, err := s.Session(ctx, "th-ada"); err != nil || got.User != "ada" {
		t.Errorf("after a refused Apply, Session = %+v, %v; want ada's", got, err)
	}
	other := state.Session{TokenHash: "th-x", User: "bob", ExpiresAt: exp}
	if err := s.Apply(ctx, "ada", state.Change{Session: &other}); err == nil {
		t.Errorf("Apply with another player's session = nil, want an error")
	}
	apply(t, s, "ada", state.Change{EndSession: "th-ada"})
	if _, err := s.Session(ctx, "th-ada"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Session after EndSession = %v, want ErrNotFound", err)
	}
}

// testIntentGroups: an intent's changes are applied in order, each on the
// state the ones before it left, and all or none.
func testIntentGroups(t *testing.T, s state.Store) {
	ctx := t.Context()
	a := newAccount(t, s, "ada", 100)
	exp := time.Now().Add(time.Hour).Round(time.Millisecond).UTC()
	group := intent("e1",
		state.Change{Cart: []state.Stack{stack("sword", "common", 1)}},
		state.Change{Cart: []state.Stack{stack("shield", "common", 1)}},
		// A checkout of what the two before put in the cart: it needs them.
		state.Change{GoldDelta: -90, ClearCart: true,
			Inventory: []state.Stack{stack("sword", "common", 1), stack("shield", "common", 1)}},
		state.Change{Cart: []state.Stack{stack("potion", "common", 2)}},
		// Selling the sword the checkout bought: it needs the checkout.
		state.Change{GoldDelta: 25, Inventory: []state.Stack{stack("sword", "common", -1)}},
		state.Change{Session: &state.Session{TokenHash: "th-1", User: "ada", ExpiresAt: exp}},
		state.Change{Guild: ptr("knights")},
	)
	if err := s.Prepare(ctx, "ada", group); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if got, err := s.Pending(ctx, "ada"); err != nil || !reflect.DeepEqual(got, group) {
		t.Fatalf("Pending = %+v, %v; want the group", got, err)
	}
	if err := s.Commit(ctx, "ada", group); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	a.Gold, a.Guild = 35, "knights"
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a,
		Inventory: []state.Stack{stack("shield", "common", 1)},
		Cart:      []state.Stack{stack("potion", "common", 2)}})
	if _, err := s.Session(ctx, "th-1"); err != nil {
		t.Errorf("the group's session: %v", err)
	}

	// A group whose last change cannot be applied applies none of them.
	bad := intent("e2",
		state.Change{GoldDelta: -30, Inventory: []state.Stack{stack("bow", "common", 1)}},
		state.Change{GoldDelta: -10}, // gold 35 - 30 - 10 < 0
	)
	commitRefused(t, s, "ada", bad, "a group that overspends")
}

// testAdvance: Advance commits one intent and stores the next at once,
// or, when the first cannot be committed, neither.
func testAdvance(t *testing.T, s state.Store) {
	ctx := t.Context()
	a := newAccount(t, s, "ada", 100)
	first := intent("e1", state.Change{GoldDelta: -40, Inventory: []state.Stack{stack("bow", "common", 1)}})
	second := intent("e2", state.Change{GoldDelta: -50, Inventory: []state.Stack{stack("sword", "common", 1)}})
	if err := s.Prepare(ctx, "ada", first); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance(ctx, "ada", first, second); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	a.Gold = 60
	want := state.Player{Account: a, Inventory: []state.Stack{stack("bow", "common", 1)}}
	got := player(t, s, "ada")
	samePlayer(t, got, want)
	if got.Pending != "e2" {
		t.Errorf("Pending after Advance = %q, want e2", got.Pending)
	}
	if in, err := s.Pending(ctx, "ada"); err != nil || !reflect.DeepEqual(in, second) {
		t.Errorf("Pending = %+v, %v; want the second intent", in, err)
	}
	// Advancing from an intent that is not pending stores nothing.
	third := intent("e3", state.Change{GoldDelta: -1})
	if err := s.Advance(ctx, "ada", first, third); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Advance from a committed intent = %v, want ErrNotFound", err)
	}
	if in, err := s.Pending(ctx, "ada"); err != nil || in.EventID != "e2" {
		t.Errorf("after a refused Advance, Pending = %+v, %v; want e2", in, err)
	}
	// A pending intent whose changes conflict stays, and the next is not stored.
	if err := s.Advance(ctx, "ada", second, third); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	broke := intent("e4", state.Change{GoldDelta: -1000})
	if err := s.Advance(ctx, "ada", third, broke); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	if err := s.Advance(ctx, "ada", broke, intent("e5", state.Change{GoldDelta: -1})); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("Advance from an impossible intent = %v, want ErrConflict", err)
	}
	if in, err := s.Pending(ctx, "ada"); err != nil || in.EventID != "e4" {
		t.Errorf("after a refused Advance, Pending = %+v, %v; want e4", in, err)
	}
	a.Gold = 9
	samePlayer(t, player(t, s, "ada"), state.Player{Account: a,
		Inventory: []state.Stack{stack("bow", "common", 1), stack("sword", "common", 1)}})
}
