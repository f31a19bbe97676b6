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
	GoldDelta int64
	Inventory []Stack // quantity deltas, positive or negative
	Cart      []Stack // quantity deltas, positive or negative
	ClearCart bool    // applied before Cart deltas
	Guild     *string // new guild; "" leaves the current one; nil keeps it
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
	// Apply applies c to the player atomically. It returns ErrNotFound for
	// an unknown player and ErrConflict, changing nothing, when gold or a
	// quantity would become negative.
	Apply(ctx context.Context, user string, c Change) error

	// CreateSession stores a session until its ExpiresAt. It returns
	// ErrNotFound when the user has no account, ErrExists when a live
	// session has the same token hash, and an error when ExpiresAt is not in
	// the future or a field is empty.
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
