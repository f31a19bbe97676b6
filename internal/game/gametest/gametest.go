// Package gametest checks questlog's first promise from the outside: every
// player's state equals the fold of that player's ok events, in the order
// the log holds them. Tests of every layer (game, API, the real binary)
// end their fault scenarios with it.
//
// It reads events as the topic holds them (JSON) and the state through the
// state.Store interface; it knows nothing of how either was produced.
package gametest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/state"
)

// Event is what the fold reads of an event.
type Event struct {
	ID         string `json:"event_id"`
	Type       string `json:"event_type"`
	User       string `json:"user"`
	Status     string `json:"status"`
	ItemType   string `json:"item_type"`
	Quality    string `json:"quality"`
	Quantity   *int64 `json:"quantity"`
	TotalPrice *int64 `json:"total_price"`
	GoldAfter  *int64 `json:"gold_after"`
	Guild      string `json:"guild"`
}

// Player is a player's state as the fold of its ok events says it is.
type Player struct {
	Exists    bool
	Gold      int64
	Guild     string
	Inventory map[state.Item]int64
	Cart      map[state.Item]int64
}

// Decode reads events from their JSON records, in log order.
func Decode(records [][]byte) ([]Event, error) {
	evs := make([]Event, 0, len(records))
	for i, r := range records {
		var ev Event
		if err := json.Unmarshal(r, &ev); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// Fold replays the ok events of every player in order (an event ID seen
// twice counts once: a producer's retry may have written it twice) and
// returns each player's expected state. It fails on an ok event that could
// not have happened (gold or items below zero, a gold_after that disagrees
// with the fold), which would mean the log says something untrue.
func Fold(events []Event) (map[string]*Player, error) {
	players := map[string]*Player{}
	seen := map[string]bool{}
	for _, ev := range events {
		if ev.Status != "ok" || ev.User == "" || seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		p := players[ev.User]
		if p == nil {
			p = &Player{Inventory: map[state.Item]int64{}, Cart: map[state.Item]int64{}}
			players[ev.User] = p
		}
		if err := p.apply(ev); err != nil {
			return nil, fmt.Errorf("event %s (%s of %s): %w", ev.ID, ev.Type, ev.User, err)
		}
	}
	return players, nil
}

func (p *Player) apply(ev Event) error {
	if ev.Type == "signup" {
		if p.Exists {
			return fmt.Errorf("a second ok signup")
		}
		if ev.GoldAfter == nil {
			return fmt.Errorf("signup without gold_after")
		}
		p.Exists, p.Gold = true, *ev.GoldAfter
		return nil
	}
	if !p.Exists {
		return fmt.Errorf("an ok %s before the player's signup", ev.Type)
	}
	item := state.Item{Type: ev.ItemType, Quality: ev.Quality}
	qty := int64(0)
	if ev.Quantity != nil {
		qty = *ev.Quantity
	}
	total := int64(0)
	if ev.TotalPrice != nil {
		total = *ev.TotalPrice
	}
	switch ev.Type {
	case "buy_item":
		p.Gold -= total
		p.Inventory[item] += qty
	case "sell_item":
		p.Gold += total
		p.Inventory[item] -= qty
	case "cart_add":
		p.Cart[item] += qty
	case "cart_remove":
		p.Cart[item] -= qty
	case "checkout":
		p.Gold -= total
		for it, n := range p.Cart {
			p.Inventory[it] += n
		}
		clear(p.Cart)
	case "join_guild":
		p.Guild = ev.Guild
	case "leave_guild":
		p.Guild = ""
	}
	for it, n := range p.Inventory {
		if n < 0 {
			return fmt.Errorf("inventory of %v below zero (%d)", it, n)
		}
		if n == 0 {
			delete(p.Inventory, it)
		}
	}
	for it, n := range p.Cart {
		if n < 0 {
			return fmt.Errorf("cart line %v below zero (%d)", it, n)
		}
		if n == 0 {
			delete(p.Cart, it)
		}
	}
	if p.Gold < 0 {
		return fmt.Errorf("gold below zero (%d)", p.Gold)
	}
	if ev.GoldAfter != nil && *ev.GoldAfter != p.Gold {
		return fmt.Errorf("gold_after %d, but the fold says %d", *ev.GoldAfter, p.Gold)
	}
	return nil
}

// Mismatches compares every player the events name, and every player in
// users (say, those a test created), with the store, and describes each
// difference; none means the state is the fold of the ok events. A player
// with a pending intent counts as a difference: the fold must hold once
// everything is settled.
func Mismatches(ctx context.Context, st state.Store, events []Event, users ...string) ([]string, error) {
	want, err := Fold(events)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for u := range want {
		names[u] = true
	}
	for _, ev := range events {
		if ev.User != "" {
			names[ev.User] = true
		}
	}
	for _, u := range users {
		names[u] = true
	}
	var out []string
	for _, u := range slices.Sorted(maps.Keys(names)) {
		w := want[u]
		got, err := st.Player(ctx, u)
		switch {
		case err != nil && w != nil && w.Exists:
			out = append(out, fmt.Sprintf("%s: ok events say the player exists, the store says %v", u, err))
			continue
		case err != nil:
			continue // neither has the player
		case w == nil || !w.Exists:
			out = append(out, fmt.Sprintf("%s: in the store without an ok signup event", u))
			continue
		}
		if got.Pending != "" {
			out = append(out, fmt.Sprintf("%s: change %s still pending", u, got.Pending))
		}
		if got.Gold != w.Gold {
			out = append(out, fmt.Sprintf("%s: gold %d in the store, %d by the events", u, got.Gold, w.Gold))
		}
		if got.Guild != w.Guild {
			out = append(out, fmt.Sprintf("%s: guild %q in the store, %q by the events", u, got.Guild, w.Guild))
		}
		if g, e := stacks(got.Inventory), describe(w.Inventory); g != e {
			out = append(out, fmt.Sprintf("%s: inventory %s in the store, %s by the events", u, g, e))
		}
		if g, e := stacks(got.Cart), describe(w.Cart); g != e {
			out = append(out, fmt.Sprintf("%s: cart %s in the store, %s by the events", u, g, e))
		}
	}
	return out, nil
}

// Check fails t unless every player's state is the fold of its ok events.
// It returns how many players it compared.
func Check(t testing.TB, st state.Store, records [][]byte, users ...string) int {
	t.Helper()
	evs, err := Decode(records)
	if err != nil {
		t.Fatalf("decode events: %v", err)
	}
	bad, err := Mismatches(context.Background(), st, evs, users...)
	if err != nil {
		t.Fatalf("fold of the ok events: %v", err)
	}
	for _, m := range bad {
		t.Errorf("state is not the fold of the ok events: %s", m)
	}
	players, _ := Fold(evs)
	return len(players)
}

func stacks(ss []state.Stack) string {
	m := map[state.Item]int64{}
	for _, s := range ss {
		m[s.Item] = s.Quantity
	}
	return describe(m)
}

func describe(m map[state.Item]int64) string {
	parts := make([]string, 0, len(m))
	for it, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s/%s", n, it.Type, it.Quality))
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, ", ") + "]"
}

// Settled waits until no player has a pending change: the game applies an
// acknowledged round's changes shortly after it answers (with the player's
// next round, or when the player stays idle), so a test that reads the
// store directly waits for it first.
func Settled(tb testing.TB, st state.Store) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		users, err := st.PendingUsers(context.Background())
		if err == nil && len(users) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("changes still pending after 30s: %v (%v)", users, err)
		}
		time.Sleep(time.Millisecond)
	}
}
