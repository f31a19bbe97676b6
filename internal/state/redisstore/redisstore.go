// Package redisstore keeps the game's state in Redis, so that many API
// server processes can share it (github.com/redis/go-redis/v9).
//
// Each change is one Lua script, so it is atomic and checked before anything
// is written; sessions expire with Redis's own key expiry; a player's lock is
// a key taken with SET NX PX and a random token, kept alive while held and
// released only by its holder, so it holds across processes and frees itself
// if a holder dies.
//
// It needs one Redis server (6.2 or later), not Redis Cluster. Keys, all
// under a prefix (default "questlog:"); the braces around a player's name
// would keep that player's keys in one Cluster slot:
//
//	account:{USER}   hash: password_hash, gold, guild, created_at (unix ns)
//	inventory:{USER} hash: ITEM -> quantity
//	cart:{USER}      hash: ITEM -> quantity
//	lock:{USER}      string: holder's random token, expires
//	intent:{USER}    hash: event_id, partition, after, created (unix ns), change (JSON)
//	intents          set: the USERs with an intent
//	session:HASH     string: "EXPIRES_UNIX_NS:USER", expires
//
// where ITEM is len(type) ":" type quality, unambiguous whatever the names.
//
// The package knows nothing of the game's rules, HTTP or Kafka.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/questlog/questlog/internal/state"
)

// Option configures a Store.
type Option func(*options)

type options struct {
	prefix  string
	lockTTL time.Duration
}

// WithPrefix puts every key under prefix, so several stores (or other
// programs) can share one database. Default "questlog:".
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithLockTTL sets how long a player's lock outlives a holder that died
// without releasing it. A live holder renews it every third of that. Default
// 10s.
func WithLockTTL(d time.Duration) Option { return func(o *options) { o.lockTTL = d } }

// Store is a state.Store in Redis. It is safe for concurrent use, and any
// number of processes may use the same database and prefix at once.
type Store struct {
	rdb    *redis.Client
	addr   string // for errors; the URL may hold a password
	prefix string
	ttl    time.Duration

	closed    chan struct{} // stops lock renewals
	closeOnce sync.Once
}

var _ state.Store = (*Store)(nil)

// Open connects to the Redis at url (redis://[:password@]host:port/db, or
// rediss:// for TLS) and checks that it answers.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{prefix: "questlog:", lockTTL: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.lockTTL < 30*time.Millisecond {
		return nil, fmt.Errorf("open redis state: lock TTL %s is too short (at least 30ms)", o.lockTTL)
	}
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("open redis state: parse URL: %w", err)
	}
	ro.ContextTimeoutEnabled = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	s := &Store{
		rdb:    redis.NewClient(ro),
		addr:   fmt.Sprintf("%s/%d", ro.Addr, ro.DB),
		prefix: o.prefix,
		ttl:    o.lockTTL,
		closed: make(chan struct{}),
	}
	if err := s.Ping(ctx); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("open redis state: %w", err)
	}
	return s, nil
}

// Close closes the connections. It does not release held locks: they expire.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("close redis state %s: %w", s.addr, err)
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis %s: %w", s.addr, err)
	}
	return nil
}

func (s *Store) key(kind, user string) string { return s.prefix + kind + ":{" + user + "}" }

func (s *Store) sessionKey(tokenHash string) string { return s.prefix + "session:" + tokenHash }

// itemField encodes an item as a hash field, and parseItemField decodes it.
func itemField(it state.Item) string {
	return strconv.Itoa(len(it.Type)) + ":" + it.Type + it.Quality
}

func parseItemField(f string) (state.Item, error) {
	n, rest, ok := strings.Cut(f, ":")
	l, err := strconv.Atoi(n)
	if !ok || err != nil || l < 0 || l > len(rest) {
		return state.Item{}, fmt.Errorf("bad item field %q", f)
	}
	return state.Item{Type: rest[:l], Quality: rest[l:]}, nil
}

var createAccountScript = redis.NewScript(`
-- KEYS: account, inventory, cart; ARGV: password_hash, gold, guild, created_at
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[1], 'gold', ARGV[2], 'guild', ARGV[3], 'created_at', ARGV[4])
redis.call('DEL', KEYS[2], KEYS[3])
return 1`)

// CreateAccount stores a new account; a zero CreatedAt becomes now.
func (s *Store) CreateAccount(ctx context.Context, a state.Account) error {
	switch {
	case a.User == "":
		return errors.New("create account: empty user name")
	case a.Gold < 0:
		return fmt.Errorf("create account %q: negative gold %d", a.User, a.Gold)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	keys := []string{s.key("account", a.User), s.key("inventory", a.User), s.key("cart", a.User)}
	created, err := createAccountScript.Run(ctx, s.rdb, keys,
		a.PasswordHash, a.Gold, a.Guild, a.CreatedAt.UnixNano()).Int()
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.User, err)
	}
	if created == 0 {
		return fmt.Errorf("create account %q: %w", a.User, state.ErrExists)
	}
	return nil
}

var playerScript = redis.NewScript(`
-- KEYS: account, inventory, cart, intent
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
	redis.call('HGET', KEYS[4], 'event_id')}`)

// Player reads the account with its inventory and cart in one script, so
// in one atomic snapshot and one round trip.
func (s *Store) Player(ctx context.Context, user string) (state.Player, error) {
	keys := []string{s.key("account", user), s.key("inventory", user), s.key("cart", user), s.key("intent", user)}
	res, err := playerScript.Run(ctx, s.rdb, keys).Slice()
	if err != nil {
		return state.Player{}, fmt.Errorf("read player %q: %w", user, err)
	}
	var h [3]map[string]string
	for i := range h {
		if i >= len(res) {
			return state.Player{}, fmt.Errorf("read player %q: short script answer %v", user, res)
		}
		if h[i], err = pairs(res[i]); err != nil {
			return state.Player{}, fmt.Errorf("read player %q: %w", user, err)
		}
	}
	a := h[0]
	if len(a) == 0 {
		return state.Player{}, fmt.Errorf("read player %q: %w", user, state.ErrNotFound)
	}
	gold, err := strconv.ParseInt(a["gold"], 10, 64)
	if err != nil {
		return state.Player{}, fmt.Errorf("read player %q: gold: %w", user, err)
	}
	created, err := strconv.ParseInt(a["created_at"], 10, 64)
	if err != nil {
		return state.Player{}, fmt.Errorf("read player %q: created_at: %w", user, err)
	}
	p := state.Player{Account: state.Account{
		User:         user,
		PasswordHash: []byte(a["password_hash"]),
		Gold:         gold,
		Guild:        a["guild"],
		CreatedAt:    time.Unix(0, created).UTC(),
	}}
	if p.Inventory, err = stacks(h[1]); err != nil {
		return state.Player{}, fmt.Errorf("read player %q: inventory: %w", user, err)
	}
	if p.Cart, err = stacks(h[2]); err != nil {
		return state.Player{}, fmt.Errorf("read player %q: cart: %w", user, err)
	}
	if len(res) > 3 {
		p.Pending, _ = res[3].(string) // false (nil) when there is none
	}
	return p, nil
}

// pairs turns a script's HGETALL answer, a flat list of fields and values,
// into a map.
func pairs(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected HGETALL answer %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok1 := list[i].(string)
		x, ok2 := list[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("unexpected HGETALL answer %v", list)
		}
		m[k] = x
	}
	return m, nil
}

func stacks(h map[string]string) ([]state.Stack, error) {
	out := make([]state.Stack, 0, len(h))
	for f, q := range h {
		it, err := parseItemField(f)
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("item %s/%s: quantity: %w", it.Type, it.Quality, err)
		}
		out = append(out, state.Stack{Item: it, Quantity: n})
	}
	slices.SortFunc(out, state.CompareStacks)
	return out, nil
}

// applyScript applies a sequence of changes, each on the state the ones
// before it left: it checks them all on a copy of what they touch, then
// writes, so that changes it refuses write nothing. With an intent's event
// ID it applies only if that intent is pending, and removes it.
var applyScript = redis.NewScript(freeForLua + `
-- KEYS: account, inventory, cart, intent, intents set
-- ARGV: 1 intent event ID or '', 2 user, 3 number of changes, then for each
-- change: create (0/1), password hash, gold, guild, created_at, new
-- session's key or '', its value, its expiry (unix ms), ended session's
-- key or '', gold delta, set guild (0/1), guild, clear cart (0/1), number
-- of inventory deltas, number of cart deltas, then (field, delta) pairs:
-- the inventory's, then the cart's; then, to store a next intent (Advance),
-- its event_id, partition, after, created and changes.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[4], 'event_id') ~= ARGV[1] then return {3, ''} end
local exists = redis.call('EXISTS', KEYS[1]) == 1
local fresh = false -- the account is created here: it holds nothing yet
local created, gold, delta = nil, nil, 0
local guild, setGuild = nil, false
local inv, cart = {}, nil
local sessions, ended, planned = {}, {}, {}
local function held(f)
	if inv[f] == nil then
		inv[f] = 0
		if not fresh then inv[f] = tonumber(redis.call('HGET', KEYS[2], f) or '0') end
	end
	return inv[f]
end
local function loadCart()
	if cart ~= nil then return end
	cart = {}
	if fresh then return end
	local all = redis.call('HGETALL', KEYS[3])
	for j = 1, #all, 2 do cart[all[j]] = tonumber(all[j + 1]) end
end
local i = 4
for c = 1, tonumber(ARGV[3]) do
	if ARGV[i] == '1' then
		if exists then return {4, 'account'} end
		exists, fresh = true, true
		created = {ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]}
		gold = tonumber(ARGV[i + 2])
	elseif not exists then
		return {1, ''}
	end
	if gold == nil then gold = tonumber(redis.call('HGET', KEYS[1], 'gold')) end
	local d = tonumber(ARGV[i + 9])
	gold, delta = gold + d, delta + d
	if gold < 0 then return {2, 'gold'} end
	if ARGV[i + 10] == '1' then guild, setGuild = ARGV[i + 11], true end
	if ARGV[i + 12] == '1' then loadCart(); cart = {} end
	local nInv, nCart = tonumber(ARGV[i + 13]), tonumber(ARGV[i + 14])
	local j = i + 15
	for k = 1, nInv do
		local q = held(ARGV[j]) + tonumber(ARGV[j + 1])
		if q < 0 then return {2, 'inventory'} end
		inv[ARGV[j]] = q
		j = j + 2
	end
	if nCart > 0 then loadCart() end
	for k = 1, nCart do
		local q = (cart[ARGV[j]] or 0) + tonumber(ARGV[j + 1])
		if q < 0 then return {2, 'cart'} end
		cart[ARGV[j]] = q
		j = j + 2
	end
	local sk = ARGV[i + 5]
	if sk ~= '' then
		-- Every change here is the one player's: a session of theirs with
		-- this hash is renewed, another player's refuses the change.
		if not planned[sk] and not freeFor(redis.call('GET', sk), ARGV[2]) then return {4, 'session'} end
		planned[sk] = true
		sessions[#sessions + 1] = {sk, ARGV[i + 6], ARGV[i + 7]}
	end
	if ARGV[i + 8] ~= '' then ended[#ended + 1] = ARGV[i + 8] end
	i = j
end
if created then
	redis.call('DEL', KEYS[2], KEYS[3])
	redis.call('HSET', KEYS[1], 'password_hash', created[1], 'gold', created[2], 'guild', created[3], 'created_at', created[4])
end
if created then
	if gold ~= tonumber(created[2]) then redis.call('HINCRBY', KEYS[1], 'gold', delta) end
elseif delta ~= 0 then
	redis.call('HINCRBY', KEYS[1], 'gold', delta)
end
if setGuild then redis.call('HSET', KEYS[1], 'guild', guild) end
for f, q in pairs(inv) do
	if q == 0 then redis.call('HDEL', KEYS[2], f) else redis.call('HSET', KEYS[2], f, q) end
end
if cart ~= nil then
	redis.call('DEL', KEYS[3])
	for f, q in pairs(cart) do
		if q > 0 then redis.call('HSET', KEYS[3], f, q) end
	end
end
for _, sess in ipairs(sessions) do redis.call('SET', sess[1], sess[2], 'PXAT', sess[3]) end
for _, k in ipairs(ended) do redis.call('DEL', k) end
if ARGV[1] ~= '' then
	redis.call('DEL', KEYS[4])
	redis.call('SREM', KEYS[5], ARGV[2])
end
if ARGV[i] ~= nil then
	-- Advance: the next intent, once this one is applied.
	redis.call('HSET', KEYS[4], 'event_id', ARGV[i], 'partition', ARGV[i + 1], 'after', ARGV[i + 2], 'created', ARGV[i + 3], 'change', ARGV[i + 4])
	redis.call('SADD', KEYS[5], ARGV[2])
end
return {0, ''}`)

// Apply applies c atomically in one Lua script.
func (s *Store) Apply(ctx context.Context, user string, c state.Change) error {
	if err := s.apply(ctx, user, "", []state.Change{c}, nil); err != nil {
		return fmt.Errorf("apply change to %q: %w", user, err)
	}
	return nil
}

// Commit applies the pending intent's changes and removes it, in one Lua
// script (state.Store).
func (s *Store) Commit(ctx context.Context, user string, in state.Intent) error {
	if in.EventID == "" {
		return fmt.Errorf("commit intent of %q: empty event ID", user)
	}
	if err := s.apply(ctx, user, in.EventID, in.Changes, nil); err != nil {
		return fmt.Errorf("commit intent %s of %q: %w", in.EventID, user, err)
	}
	return nil
}

// Advance commits done and stores next, in one Lua script (state.Store).
func (s *Store) Advance(ctx context.Context, user string, done, next state.Intent) error {
	if done.EventID == "" || next.EventID == "" {
		return fmt.Errorf("commit and prepare intents of %q: empty event ID", user)
	}
	if err := s.apply(ctx, user, done.EventID, done.Changes, &next); err != nil {
		return fmt.Errorf("commit intent %s and prepare %s of %q: %w", done.EventID, next.EventID, user, err)
	}
	return nil
}

func (s *Store) apply(ctx context.Context, user, eventID string, cs []state.Change, next *state.Intent) error {
	if user == "" {
		return errors.New("empty user name")
	}
	if len(cs) == 0 {
		return errors.New("no change")
	}
	args := []any{eventID, user, len(cs)}
	for _, c := range cs {
		var err error
		if args, err = s.appendChange(args, user, c); err != nil {
			return err
		}
	}
	if next != nil {
		changes, err := json.Marshal(next.Changes)
		if err != nil {
			return fmt.Errorf("encode changes: %w", err)
		}
		args = append(args, next.EventID, next.Partition, next.After, next.Created.UnixNano(), changes)
	}
	keys := []string{s.key("account", user), s.key("inventory", user), s.key("cart", user),
		s.key("intent", user), s.prefix + "intents"}
	res, err := applyScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return err
	}
	code, _ := res[0].(int64)
	switch code {
	case 0:
		return nil
	case 1, 3:
		return state.ErrNotFound
	case 2:
		return fmt.Errorf("%v: %w", res[1], state.ErrConflict)
	case 4:
		return fmt.Errorf("%v: %w", res[1], state.ErrExists)
	}
	return fmt.Errorf("unexpected script result %v", res)
}

// appendChange appends one change's arguments of applyScript.
func (s *Store) appendChange(args []any, user string, c state.Change) ([]any, error) {
	inv, err := state.SumDeltas(c.Inventory)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	cart, err := state.SumDeltas(c.Cart)
	if err != nil {
		return nil, fmt.Errorf("cart: %w", err)
	}
	if a := c.Create; a != nil {
		switch {
		case a.User != user:
			return nil, fmt.Errorf("create account %q in a change to %q", a.User, user)
		case a.Gold < 0:
			return nil, fmt.Errorf("create account %q: negative gold %d", a.User, a.Gold)
		}
		created := a.CreatedAt
		if created.IsZero() {
			created = time.Now()
		}
		args = append(args, 1, a.PasswordHash, a.Gold, a.Guild, created.UnixNano())
	} else {
		args = append(args, 0, "", 0, "", 0)
	}
	if sess := c.Session; sess != nil {
		if err := validSession(*sess); err != nil {
			return nil, err
		}
		if sess.User != user {
			return nil, fmt.Errorf("session of %q in a change to %q", sess.User, user)
		}
		args = append(args, s.sessionKey(sess.TokenHash), sessionValue(*sess), sess.ExpiresAt.UnixMilli())
	} else {
		args = append(args, "", "", 0)
	}
	ended := ""
	if c.EndSession != "" {
		ended = s.sessionKey(c.EndSession)
	}
	setGuild, guild := 0, ""
	if c.Guild != nil {
		setGuild, guild = 1, *c.Guild
	}
	clearCart := 0
	if c.ClearCart {
		clearCart = 1
	}
	args = append(args, ended, c.GoldDelta, setGuild, guild, clearCart, len(inv), len(cart))
	for _, st := range append(inv, cart...) {
		args = append(args, itemField(st.Item), st.Quantity)
	}
	return args, nil
}

var prepareScript = redis.NewScript(`
-- KEYS: intent, intents set; ARGV: user, event_id, partition, after, created, change
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'event_id', ARGV[2], 'partition', ARGV[3], 'after', ARGV[4], 'created', ARGV[5], 'change', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`)

// Prepare stores the player's pending intent (state.Store).
func (s *Store) Prepare(ctx context.Context, user string, in state.Intent) error {
	switch {
	case user == "":
		return errors.New("prepare intent: empty user name")
	case in.EventID == "":
		return fmt.Errorf("prepare intent for %q: empty event ID", user)
	}
	change, err := json.Marshal(in.Changes)
	if err != nil {
		return fmt.Errorf("prepare intent %s for %q: encode change: %w", in.EventID, user, err)
	}
	ok, err := prepareScript.Run(ctx, s.rdb, []string{s.key("intent", user), s.prefix + "intents"},
		user, in.EventID, in.Partition, in.After, in.Created.UnixNano(), change).Int()
	if err != nil {
		return fmt.Errorf("prepare intent %s for %q: %w", in.EventID, user, err)
	}
	if ok == 0 {
		return fmt.Errorf("prepare intent %s for %q: %w", in.EventID, user, state.ErrExists)
	}
	return nil
}

// Pending returns the player's pending intent, or ErrNotFound.
func (s *Store) Pending(ctx context.Context, user string) (state.Intent, error) {
	h, err := s.rdb.HGetAll(ctx, s.key("intent", user)).Result()
	if err != nil {
		return state.Intent{}, fmt.Errorf("pending intent of %q: %w", user, err)
	}
	if len(h) == 0 {
		return state.Intent{}, fmt.Errorf("pending intent of %q: %w", user, state.ErrNotFound)
	}
	in := state.Intent{EventID: h["event_id"]}
	part, err1 := strconv.ParseInt(h["partition"], 10, 32)
	after, err2 := strconv.ParseInt(h["after"], 10, 64)
	created, err3 := strconv.ParseInt(h["created"], 10, 64)
	err4 := json.Unmarshal([]byte(h["change"]), &in.Changes)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return state.Intent{}, fmt.Errorf("pending intent of %q: %w", user, err)
	}
	in.Partition, in.After, in.Created = int32(part), after, time.Unix(0, created).UTC()
	return in, nil
}

var dropScript = redis.NewScript(`
-- KEYS: intent, intents set; ARGV: user, event_id
if redis.call('HGET', KEYS[1], 'event_id') == ARGV[2] then
	redis.call('DEL', KEYS[1])
	redis.call('SREM', KEYS[2], ARGV[1])
end
return 0`)

// Drop removes the pending intent without applying it (state.Store).
func (s *Store) Drop(ctx context.Context, user, eventID string) error {
	if err := dropScript.Run(ctx, s.rdb, []string{s.key("intent", user), s.prefix + "intents"}, user, eventID).Err(); err != nil {
		return fmt.Errorf("drop intent %s of %q: %w", eventID, user, err)
	}
	return nil
}

// PendingUsers lists the players with a pending intent.
func (s *Store) PendingUsers(ctx context.Context) ([]string, error) {
	users, err := s.rdb.SMembers(ctx, s.prefix+"intents").Result()
	if err != nil {
		return nil, fmt.Errorf("list pending intents: %w", err)
	}
	return users, nil
}

// freeForLua defines freeFor(value, user), which says whether a session
// key whose value is value (false: no key) may be set for user: there is
// no live session with that hash, or it is user's own, which is renewed.
const freeForLua = `
local function freeFor(v, user)
	if not v then return true end
	local at = string.find(v, ':', 1, true)
	return at ~= nil and string.sub(v, at + 1) == user
end
`

var createSessionScript = redis.NewScript(freeForLua + `
-- KEYS: session, account; ARGV: value, expiry (unix ms), user
if redis.call('EXISTS', KEYS[2]) == 0 then return 1 end
if not freeFor(redis.call('GET', KEYS[1]), ARGV[3]) then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 0`)

// CreateSession stores sess until its ExpiresAt. It returns ErrNotFound when
// the user has no account and ErrExists when a live session of another
// player has the same token hash; the same player's is renewed.
func (s *Store) CreateSession(ctx context.Context, sess state.Session) error {
	if err := validSession(sess); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	value := sessionValue(sess)
	// Redis expires it at the millisecond, never later than ExpiresAt.
	code, err := createSessionScript.Run(ctx, s.rdb,
		[]string{s.sessionKey(sess.TokenHash), s.key("account", sess.User)},
		value, sess.ExpiresAt.UnixMilli(), sess.User).Int()
	if err != nil {
		return fmt.Errorf("create session for %q: %w", sess.User, err)
	}
	switch code {
	case 1:
		return fmt.Errorf("create session for %q: %w", sess.User, state.ErrNotFound)
	case 2:
		return fmt.Errorf("create session for %q: token hash: %w", sess.User, state.ErrExists)
	}
	return nil
}

// validSession checks a new session's fields.
func validSession(sess state.Session) error {
	switch {
	case sess.TokenHash == "":
		return errors.New("empty token hash")
	case sess.User == "":
		return errors.New("empty user name")
	case !sess.ExpiresAt.After(time.Now()):
		return fmt.Errorf("session for %q expires in the past (%s)", sess.User, sess.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// sessionValue is a session key's value: "EXPIRES_UNIX_NS:USER".
func sessionValue(sess state.Session) string {
	return strconv.FormatInt(sess.ExpiresAt.UnixNano(), 10) + ":" + sess.User
}

// Session returns the live session with that token hash, or ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash string) (state.Session, error) {
	v, err := s.rdb.Get(ctx, s.sessionKey(tokenHash)).Result()
	if errors.Is(err, redis.Nil) {
		return state.Session{}, fmt.Errorf("read session: %w", state.ErrNotFound)
	}
	if err != nil {
		return state.Session{}, fmt.Errorf("read session: %w", err)
	}
	exp, user, ok := strings.Cut(v, ":")
	ns, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil {
		return state.Session{}, fmt.Errorf("read session: malformed value")
	}
	sess := state.Session{TokenHash: tokenHash, User: user, ExpiresAt: time.Unix(0, ns).UTC()}
	if !sess.ExpiresAt.After(time.Now()) { // this process's clock may run ahead of Redis's
		return state.Session{}, fmt.Errorf("read session: %w", state.ErrNotFound)
	}
	return sess, nil
}

// DeleteSession removes a session; deleting a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	if err := s.rdb.Del(ctx, s.sessionKey(tokenHash)).Err(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

var (
	unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
)

// Lock takes the player's lock, shared by every process using this database
// and prefix, retrying with a growing, jittered pause until it is free or
// ctx ends. The lock is renewed while held; if its holder dies, it expires
// after the lock TTL. It does not check that the player exists.
func (s *Store) Lock(ctx context.Context, user string) (func(), error) {
	key := s.key("lock", user)
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])

	pause := time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lock player %q: %w", user, err)
		}
		ok, err := s.rdb.SetNX(ctx, key, token, s.ttl).Result()
		if err != nil {
			// The SET may have landed even though the answer was lost:
			// release it, without making the caller wait for a Redis
			// that is failing.
			go s.release(key, token, s.ttl)
			return nil, fmt.Errorf("lock player %q: %w", user, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(pause/2 + mrand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock player %q: %w", user, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, 32*time.Millisecond)
	}

	released := make(chan struct{})
	go s.renew(key, token, released)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(released)
			// A prompt release lets the player's next action in at
			// once; a Redis too slow to answer it must not hold up the
			// caller (the lock expires by itself after the TTL).
			if !s.release(key, token, releaseWait) {
				go s.release(key, token, s.ttl)
			}
		})
	}, nil
}

// renew extends the lock every third of its TTL until released, the store is
// closed, or the lock turns out lost.
func (s *Store) renew(key, token string, released <-chan struct{}) {
	t := time.NewTicker(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-released:
			return
		case <-s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.ttl/3)
		kept, err := renewScript.Run(ctx, s.rdb, []string{key}, token, s.ttl.Milliseconds()).Int()
		cancel()
		if err == nil && kept == 0 {
			return // lost: expired while the holder stalled, or someone deleted it
		}
	}
}

// releaseWait bounds how long an unlock waits for Redis before it leaves
// the release to the background.
const releaseWait = 200 * time.Millisecond

// release deletes the lock if this token still holds it, trying for at
// most wait, and says whether Redis answered. On failure the lock expires
// by itself after the TTL.
func (s *Store) release(key, token string, wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return unlockScript.Run(ctx, s.rdb, []string{key}, token).Err() == nil
}
