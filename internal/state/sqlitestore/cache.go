package sqlitestore

import (
	"errors"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/questlog/questlog/internal/state"
)

// players is a write-through cache of the players this process read or
// changed. The file belongs to one process (see Open) and every change goes
// through the committer, which updates the cache after each commit, so a
// cached player is what the file holds.
//
// A read of the file that overlaps a commit to the same player could see
// the state before or after it, so its result is cached only when no
// commit to that player's bucket began or ended while it ran: each bucket
// has a generation, bumped when a commit to one of its players begins and
// when it ends, and a count of commits in flight.
type players struct {
	mu     sync.Mutex
	seed   maphash.Seed
	byUser map[string]*state.Player
	gen    [cacheBuckets]uint64
	busy   [cacheBuckets]int32
	limit  int // players kept at most
}

const cacheBuckets = 1024

// maxCachedPlayers bounds the cache; past it, an arbitrary player leaves.
const maxCachedPlayers = 100_000

func newPlayers(limit int) *players {
	return &players{seed: maphash.MakeSeed(), byUser: map[string]*state.Player{}, limit: limit}
}

func (c *players) bucket(user string) int {
	return int(maphash.String(c.seed, user) % cacheBuckets)
}

// get returns a copy of the cached player, or false and a ticket to hand
// to put with what the file says.
func (c *players) get(user string) (p state.Player, ok bool, ticket uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.byUser[user]; ok {
		return clonePlayer(cp), true, 0
	}
	return state.Player{}, false, c.gen[c.bucket(user)]
}

// put caches p, read from the file after get gave ticket, unless a commit
// to its bucket began or ended since, or is in flight. (A read that began
// during a commit is refused too: that commit's end bumps the generation.)
func (c *players) put(user string, p state.Player, ticket uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bucket(user)
	if c.gen[b] != ticket || c.busy[b] != 0 {
		return
	}
	if len(c.byUser) >= c.limit {
		for u := range c.byUser {
			delete(c.byUser, u)
			break
		}
	}
	cp := clonePlayer(&p)
	c.byUser[user] = &cp
}

// begin marks a commit to user as in flight.
func (c *players) begin(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bucket(user)
	c.gen[b]++
	c.busy[b]++
}

// end marks the commit to user as over. When it applied chs in order (err
// is nil; deltas are each change's stacks as state.SumDeltas returns them),
// the cached player follows; when it failed in a way that leaves the
// outcome unsure (not a refusal: a failed commit may still have reached
// the file), the player leaves the cache.
func (c *players) end(user string, err error, chs []state.Change, deltas [][2][]state.Stack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bucket(user)
	c.gen[b]++
	c.busy[b]--
	p, ok := c.byUser[user]
	if !ok {
		return
	}
	if err != nil {
		if !errors.Is(err, state.ErrConflict) && !errors.Is(err, state.ErrNotFound) {
			delete(c.byUser, user)
		}
		return
	}
	for i, ch := range chs {
		p.Gold += ch.GoldDelta
		if ch.Guild != nil {
			p.Guild = *ch.Guild
		}
		if ch.ClearCart {
			p.Cart = p.Cart[:0]
		}
		p.Inventory = addStacks(p.Inventory, deltas[i][0])
		p.Cart = addStacks(p.Cart, deltas[i][1])
	}
}

// addStacks adds quantity deltas to sorted stacks as the file does: a stack
// that reaches zero goes, a new item takes its place in the order.
func addStacks(stacks, deltas []state.Stack) []state.Stack {
	for _, d := range deltas {
		i, found := slices.BinarySearchFunc(stacks, d, state.CompareStacks)
		switch {
		case !found:
			stacks = slices.Insert(stacks, i, d)
		case stacks[i].Quantity+d.Quantity == 0:
			stacks = slices.Delete(stacks, i, i+1)
		default:
			stacks[i].Quantity += d.Quantity
		}
	}
	return stacks
}

func clonePlayer(p *state.Player) state.Player {
	cp := *p
	cp.PasswordHash = slices.Clone(p.PasswordHash)
	cp.Inventory = append(make([]state.Stack, 0, len(p.Inventory)), p.Inventory...)
	cp.Cart = append(make([]state.Stack, 0, len(p.Cart)), p.Cart...)
	return cp
}
