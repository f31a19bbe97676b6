// Package state stores what the game must remember between requests:
// accounts, gold, inventories, carts, guild membership and sessions.
//
// One Store interface has two implementations, embedded SQLite (the default,
// one file in the data directory) and Redis (shared by many API servers). One
// conformance suite (package statetest) runs against both. The store knows
// nothing of the game's rules, HTTP or Kafka: it keeps what it is told, and
// applies each Change atomically.
package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors callers act on.
var (
	// ErrNotFound means the account or session does not exist (an expired
	// session does not exist).
	ErrNotFound = errors.New("state: not found")
	// ErrExists means an account with that name already exists.
	ErrExists = errors.New("state: already exists")
	// ErrConflict means a Change would break an invariant the store keeps
	// (negative gold or quantity); nothing was changed.
	ErrConflict = errors.New("state: change conflicts with stored state")
)

// Item names one thing a player can hold: a type in a quality.
type Item struct {
	Type    string
	Quality string
}

// Stack is a quantity of one item.
type Stack struct {
	Item
	Quantity int64
}

// Account is a player's durable record.
type Account struct {
	User         string
	PasswordHash []byte // bcrypt; the password itself is never stored
	Gold         int64
	Guild        string // empty when in no guild
	CreatedAt    time.Time
}

// Player is an account with its inventory and cart, read together.
type Player struct {
	Account
	Inventory []Stack // sorted by type, then quality (byte order); no zero quantities; never nil
	Cart      []Stack // sorted by type, then quality (byte order); no zero quantities; never nil
	// Pending is the event ID of the player's pending intent, "" when none:
	// the state may still lack that change.
	Pending string
}

// Session is a login. Only a hash of the token is stored, so a copy of the
// store does not let anyone log in.
type Session struct {
	TokenHash string
	User      string
	ExpiresAt time.Time
}

// Change is one atomic change to a player's state: all of it is applied or
// none of it is.
//
// Stacks naming the same item are summed before anything is checked, so the
// order of the stacks never matters; deltas that sum to zero are ignored. A
// stack with an empty type or quality is an error.
type Change struct {
	// Create makes the account first (a signup): ErrExists when the name
	// is taken. Its User must be the player the change is for.
	Create    *Account `json:",omitempty"`
	GoldDelta int64    `json:",omitempty"`
	Inventory []Stack  `json:",omitempty"` // quantity deltas, positive or negative
	Cart      []Stack  `json:",omitempty"` // quantity deltas, positive or negative
	ClearCart bool     `json:",omitempty"` // applied before Cart deltas
	Guild     *string  `json:",omitempty"` // new guild; "" leaves the current one; nil keeps it
	// Session opens a session for the player (a login): its User must be
	// the player; ErrExists when a live session of another player has its
	// token hash. A live session of the same player with that hash is
	// renewed: it takes the new ExpiresAt (a seed session, whose token is
	// derived from the player and the Host, is opened again by each login;
	// random tokens never meet).
	Session *Session `json:",omitempty"`
	// EndSession closes the session with this token hash (a logout); a
	// missing one is not an error.
	EndSession string `json:",omitempty"`
}

// Intent is the changes the game decided for a player and is recording in
// the event log, as one group of events that the log takes whole or not at
// all: the store keeps it from before the events are published until the
// changes are applied (Commit, once the log holds the events) or dropped
// (Drop, once the log is known not to hold them). It is what lets a server
// that crashed, or lost its store, or did not hear the log's answer, find
// out later which changes the log holds and apply exactly those.
//
// A player has at most one pending intent.
type Intent struct {
	// EventID names the intent: an event of the group, which the log holds
	// exactly when it holds the others.
	EventID string
	// Partition is where the events are published, and After the highest
	// offset known on it before publishing (-1 when none was known): the
	// events, if the log holds them, are past After.
	Partition int32
	After     int64
	Created   time.Time // when it was prepared, by the preparing server's clock
	// Changes are applied in their events' order, all or none.
	Changes []Change
}

// Store keeps the game's state.
//
// Lock serializes the changes to one player's state across every process that
// shares the store: a caller locks, reads, decides, records the event and
// applies the change, then unlocks, so that two requests cannot both spend the
// same gold. Reads do not need the lock. (An embedded SQLite store is served
// by one process, which holds its file exclusively; Redis is shared.)
//
// Every method is safe for concurrent use.
type Store interface {
	// Lock takes the player's lock, waiting until it is free or ctx ends
	// (then the error wraps ctx.Err()). The player need not exist. The
	// returned function releases it; calling it again does nothing.
	Lock(ctx context.Context, user string) (unlock func(), err error)

	// CreateAccount stores a new account with an empty inventory and cart.
	// It returns ErrExists when the name is taken, and an error for an empty
	// name or negative gold. A zero CreatedAt is stored as the current time.
	CreateAccount(ctx context.Context, a Account) error
	// Player reads an account with its inventory and cart, or ErrNotFound.
	Player(ctx context.Context, user string) (Player, error)
	// Apply applies c to the player atomically, without an intent (for
	// set-up and tests; the game commits intents). It returns ErrNotFound
	// for an unknown player (unless c creates it), ErrExists when c.Create
	// names a taken account, and ErrConflict, changing nothing, when gold
	// or a quantity would become negative.
	Apply(ctx context.Context, user string, c Change) error

	// Prepare stores in as the player's pending intent, before its events
	// are published. It returns ErrExists, storing nothing, when the player
	// already has one. The player need not exist (a signup's intent).
	Prepare(ctx context.Context, user string, in Intent) error
	// Pending returns the player's pending intent, or ErrNotFound.
	Pending(ctx context.Context, user string) (Intent, error)
	// Commit applies in.Changes, in order, and removes the pending intent,
	// atomically, if the player's pending intent is in.EventID; otherwise
	// (it was committed or dropped already) it returns ErrNotFound and
	// changes nothing, so committing twice applies once. Changes that
	// cannot all be applied (ErrConflict, ErrExists) apply none, and leave
	// the intent pending.
	Commit(ctx context.Context, user string, in Intent) error
	// Advance commits done and stores next as the player's pending intent,
	// atomically: Commit then Prepare in one write (a round of actions
	// applies the round before it and records its own intent at once). It
	// fails as Commit does, storing nothing.
	Advance(ctx context.Context, user string, done, next Intent) error
	// Drop removes the player's pending intent if it is eventID, applying
	// nothing; it is not an error when there is none.
	Drop(ctx context.Context, user, eventID string) error
	// PendingUsers lists the players with a pending intent.
	PendingUsers(ctx context.Context) ([]string, error)

	// CreateSession stores a session until its ExpiresAt. It returns
	// ErrNotFound when the user has no account, ErrExists when a live
	// session of another player has the same token hash (the same player's
	// is renewed, as by Change.Session), and an error when ExpiresAt is not
	// in the future or a field is empty.
	CreateSession(ctx context.Context, s Session) error
	// Session returns the live session with that token hash, or ErrNotFound.
	Session(ctx context.Context, tokenHash string) (Session, error)
	// DeleteSession removes a session; deleting a missing one is not an error.
	DeleteSession(ctx context.Context, tokenHash string) error

	// Ping checks that the store answers, for readiness.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// CompareStacks orders stacks by item type, then quality, in byte order: the
// order of Player.Inventory and Player.Cart.
func CompareStacks(a, b Stack) int {
	return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.Quality, b.Quality))
}

// SumDeltas validates a Change's stacks and sums those naming the same item,
// dropping the ones that sum to zero and sorting the rest, so that a change's
// outcome does not depend on the order of its stacks. Stores call it before
// applying a Change.
func SumDeltas(stacks []Stack) ([]Stack, error) {
	if len(stacks) == 0 {
		return nil, nil
	}
	out := make([]Stack, 0, len(stacks))
	for _, st := range stacks {
		if st.Type == "" || st.Quality == "" {
			return nil, fmt.Errorf("item %q in quality %q: empty item type or quality", st.Type, st.Quality)
		}
		if i := slices.IndexFunc(out, func(o Stack) bool { return o.Item == st.Item }); i >= 0 {
			out[i].Quantity += st.Quantity
		} else {
			out = append(out, st)
		}
	}
	out = slices.DeleteFunc(out, func(st Stack) bool { return st.Quantity == 0 })
	slices.SortFunc(out, CompareStacks)
	return out, nil
}

// Compact returns changes that have the same effect as cs applied in order,
// in as few changes as it can: a change is folded into the one before it
// unless it creates the account, clears the cart, or opens or closes a
// session the one before also does. (Folded, the deltas of a run are
// checked against zero once, at the end of the run, not after each change:
// a run the game decided in order never dips below it anyway.)
func Compact(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if n := len(out); n > 0 && c.Create == nil && !c.ClearCart &&
			(out[n-1].Session == nil || c.Session == nil) && (out[n-1].EndSession == "" || c.EndSession == "") {
			last := &out[n-1]
			last.GoldDelta += c.GoldDelta
			last.Inventory = append(last.Inventory, c.Inventory...)
			last.Cart = append(last.Cart, c.Cart...)
			if c.Guild != nil {
				last.Guild = c.Guild
			}
			if c.Session != nil {
				last.Session = c.Session
			}
			if c.EndSession != "" {
				last.EndSession = c.EndSession
			}
			continue
		}
		c.Inventory = slices.Clone(c.Inventory)
		c.Cart = slices.Clone(c.Cart)
		out = append(out, c)
	}
	return out
}
