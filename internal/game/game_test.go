package game_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/game/gametest"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitetest"
)

// journal keeps recorded events in memory and fails on demand: the game's
// seam to the event log, so a test can take the log away (down: nothing is
// written or read) or lose its answers (lose: written, but Record fails, as
// when a connection breaks after the broker took the request).
type journal struct {
	mu     sync.Mutex
	events []event.Event
	down   atomic.Bool
	lose   atomic.Bool
}

var (
	errDown = errors.New("log is down")
	errLost = errors.New("the log's answer was lost")
)

func (j *journal) Record(_ context.Context, ev *event.Event) (game.Position, error) {
	if j.down.Load() {
		return game.Position{}, errDown
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, *ev)
	if j.lose.Load() {
		return game.Position{}, errLost
	}
	return game.Position{Offset: int64(len(j.events) - 1)}, nil
}

func (j *journal) RecordGroup(_ context.Context, _ string, evs []*event.Event) (game.Position, error) {
	if j.down.Load() {
		return game.Position{}, errDown
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	first := len(j.events)
	for _, ev := range evs {
		j.events = append(j.events, *ev)
	}
	if j.lose.Load() {
		return game.Position{}, errLost
	}
	return game.Position{Offset: int64(first)}, nil
}

func (j *journal) Next(string) game.Position {
	j.mu.Lock()
	defer j.mu.Unlock()
	return game.Position{Offset: int64(len(j.events) - 1)}
}

func (j *journal) Contains(_ context.Context, at game.Position, id string) (bool, error) {
	if j.down.Load() {
		return false, errDown
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, ev := range j.events[at.Offset+1:] {
		if ev.ID == id && ev.Status == event.StatusOK {
			return true, nil
		}
	}
	return false, nil
}

func (j *journal) all() []event.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]event.Event(nil), j.events...)
}

func (j *journal) last(t *testing.T) event.Event {
	t.Helper()
	evs := j.all()
	if len(evs) == 0 {
		t.Fatal("no event recorded")
	}
	return evs[len(evs)-1]
}

// records is the journal as the topic would hold it.
func (j *journal) records() [][]byte {
	var out [][]byte
	for _, ev := range j.all() {
		out = append(out, ev.AppendJSON(nil))
	}
	return out
}

// clock is a time that tests move forward.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	svc   *game.Service
	store state.Store
	log   *journal
	clock *clock
	cfg   game.Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, sqlitetest.Open(t), game.Config{})
}

// newFixtureWith is a service on st with cfg (password cost 4 and a test
// clock unless cfg says otherwise).
func newFixtureWith(t *testing.T, st state.Store, cfg game.Config) *fixture {
	t.Helper()
	f := &fixture{store: st, log: &journal{}, clock: newClock()}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = 4
	}
	if cfg.Now == nil {
		cfg.Now = f.clock.now
	}
	f.cfg = cfg
	svc, err := game.NewService(st, f.log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

// checkFold fails the test unless every player's state is the fold of the
// ok events the journal holds.
func (f *fixture) checkFold(t *testing.T, users ...string) {
	t.Helper()
	if err := f.svc.Idle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := gametest.Check(t, f.store, f.log.records(), users...); n == 0 {
		t.Errorf("the fold compared no player")
	}
}

func (f *fixture) signup(t *testing.T, user string) game.Request {
	t.Helper()
	sess, err := f.svc.Signup(context.Background(), game.Request{}, user, "pw-"+user)
	if err != nil {
		t.Fatalf("signup %s: %v", user, err)
	}
	return game.Request{Token: sess.Token}
}

func (f *fixture) player(t *testing.T, user string) state.Player {
	t.Helper()
	if err := f.svc.Idle(t.Context()); err != nil {
		t.Fatal(err)
	}
	p, err := f.store.Player(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultCatalogPrices(t *testing.T) {
	c := game.DefaultCatalog()
	tests := []struct {
		item, quality string
		want          int64
		err           error
	}{
		{"sword", "common", 50, nil},
		{"shield", "epic", 320, nil},
		{"potion", "legendary", 80, nil},
		{"armor", "rare", 480, nil},
		{"ring", "uncommon", 160, nil},
		{"spoon", "common", 0, game.ErrUnknownItem},
		{"sword", "shiny", 0, game.ErrUnknownQuality},
	}
	for _, tt := range tests {
		t.Run(tt.item+"/"+tt.quality, func(t *testing.T) {
			got, err := c.Price(tt.item, tt.quality)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Price = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if n := len(c.Entries()); n != 8*5 {
		t.Errorf("%d catalog entries, want 40", n)
	}
	if sp, _ := c.SellPrice("sword", "common"); sp != 25 {
		t.Errorf("sell price of a sword = %d, want 25", sp)
	}
}

func TestLoadCatalog(t *testing.T) {
	tests := []struct {
		file    string
		wantErr bool
	}{
		{"testdata/catalog.json", false},
		{"testdata/catalog-duplicate.json", true},
		{"testdata/catalog-unknown-field.json", true},
		{"testdata/catalog-zero-price.json", true},
		{"testdata/missing.json", true},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			c, err := game.LoadCatalog(tt.file)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if p, err := c.Price("wand", "mythic"); err != nil || p != 700 {
					t.Errorf("wand/mythic = %d, %v; want 700", p, err)
				}
			}
		})
	}
}

func TestEveryActionRecordsOneEvent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	anon := game.Request{}
	buy := func(r game.Request, o game.Order) func() error {
		return func() error { _, err := f.svc.Buy(ctx, r, o); return err }
	}
	sell := func(o game.Order) func() error {
		return func() error { _, err := f.svc.Sell(ctx, ada, o); return err }
	}
	// priced checks an event's total price and the gold left after it.
	priced := func(total, gold int64) func(t *testing.T, ev event.Event) {
		return func(t *testing.T, ev event.Event) {
			if ev.TotalPrice.V != total || ev.GoldAfter.V != gold {
				t.Errorf("event = %+v", ev)
			}
		}
	}
	steps := []struct {
		name    string
		do      func() error
		typ     string
		status  string
		reason  string
		checkEv func(t *testing.T, ev event.Event)
	}{
		{"buy", buy(ada, game.Order{Item: "shield", Quality: "epic", Quantity: 1}),
			event.TypeBuyItem, "ok", "", func(t *testing.T, ev event.Event) {
				if ev.User != "ada" || ev.ItemType != "shield" || ev.Quality != "epic" || ev.TotalPrice.V != 320 || ev.GoldAfter.V != 680 {
					t.Errorf("event = %+v", ev)
				}
			}},
		{"buy too much", buy(ada, game.Order{Item: "armor", Quality: "legendary", Quantity: 1}),
			event.TypeBuyItem, "failed", "insufficient_gold", priced(1920, 680)},
		{"buy anonymous", buy(anon, game.Order{Item: "sword", Quantity: 1}),
			event.TypeBuyItem, "failed", "unauthenticated", func(t *testing.T, ev event.Event) {
				if ev.User != "" {
					t.Errorf("anonymous event has user %q", ev.User)
				}
			}},
		{"buy unknown", buy(ada, game.Order{Item: "spoon", Quantity: 1}),
			event.TypeBuyItem, "failed", "unknown_item", nil},
		{"buy zero", buy(ada, game.Order{Item: "sword", Quantity: 0}),
			event.TypeBuyItem, "failed", "invalid_quantity", nil},
		{"buy huge", buy(ada, game.Order{Item: "sword", Quantity: 1 << 40}),
			event.TypeBuyItem, "failed", "invalid_quantity", nil},
		{"sell", sell(game.Order{Item: "shield", Quality: "epic", Quantity: 1}),
			event.TypeSellItem, "ok", "", priced(160, 840)},
		{"sell what is gone", sell(game.Order{Item: "shield", Quality: "epic", Quantity: 1}),
			event.TypeSellItem, "failed", "insufficient_items", nil},
		{"cart add", func() error { _, err := f.svc.CartAdd(ctx, ada, game.Order{Item: "potion", Quantity: 3}); return err },
			event.TypeCartAdd, "ok", "", func(t *testing.T, ev event.Event) {
				if ev.CartSize.V != 3 {
					t.Errorf("cart_size = %d", ev.CartSize.V)
				}
			}},
		{"cart remove missing", func() error { _, err := f.svc.CartRemove(ctx, ada, game.Order{Item: "bow"}); return err },
			event.TypeCartRemove, "failed", "not_in_cart", nil},
		{"checkout", func() error { _, err := f.svc.Checkout(ctx, ada); return err },
			event.TypeCheckout, "ok", "", priced(15, 825)},
		{"checkout empty", func() error { _, err := f.svc.Checkout(ctx, ada); return err },
			event.TypeCheckout, "failed", "empty_cart", nil},
		{"join", func() error { _, err := f.svc.JoinGuild(ctx, ada, "knights"); return err },
			event.TypeJoinGuild, "ok", "", nil},
		{"join second", func() error { _, err := f.svc.JoinGuild(ctx, ada, "mages"); return err },
			event.TypeJoinGuild, "failed", "already_in_guild", nil},
		{"leave", func() error { _, err := f.svc.LeaveGuild(ctx, ada); return err },
			event.TypeLeaveGuild, "ok", "", func(t *testing.T, ev event.Event) {
				if ev.Guild != "knights" {
					t.Errorf("guild = %q", ev.Guild)
				}
			}},
		{"leave again", func() error { _, err := f.svc.LeaveGuild(ctx, ada); return err },
			event.TypeLeaveGuild, "failed", "not_in_guild", nil},
		{"signup taken", func() error { _, err := f.svc.Signup(ctx, anon, "ada", "x"); return err },
			event.TypeSignup, "failed", "already_exists", nil},
		{"signup bad name", func() error { _, err := f.svc.Signup(ctx, anon, "ada lovelace", "x"); return err },
			event.TypeSignup, "failed", "invalid_username", nil},
		{"login wrong password", func() error { _, err := f.svc.Login(ctx, anon, "ada", "nope"); return err },
			event.TypeLogin, "failed", "bad_password", nil},
		{"logout", func() error { return f.svc.Logout(ctx, ada) },
			event.TypeLogout, "ok", "", nil},
		{"inventory after logout", func() error { _, err := f.svc.Inventory(ctx, ada); return err },
			event.TypeViewInventory, "failed", "unauthenticated", nil},
	}
	for _, st := range steps {
		before := len(f.log.all())
		err := st.do()
		evs := f.log.all()
		if len(evs) != before+1 {
			t.Fatalf("%s: %d events recorded, want exactly 1", st.name, len(evs)-before)
		}
		ev := evs[len(evs)-1]
		if ev.Type != st.typ || ev.Status != st.status || ev.Error != st.reason {
			t.Errorf("%s: event %s/%s/%s, want %s/%s/%s", st.name, ev.Type, ev.Status, ev.Error, st.typ, st.status, st.reason)
		}
		var rej *game.Rejection
		if st.status == "ok" && err != nil || st.status == "failed" && (!errors.As(err, &rej) || rej.Reason != st.reason) {
			t.Errorf("%s: err = %v", st.name, err)
		}
		if st.checkEv != nil {
			t.Run(st.name, func(t *testing.T) { st.checkEv(t, ev) })
		}
	}
	p := f.player(t, "ada")
	if p.Gold != 825 || len(p.Inventory) != 1 || p.Inventory[0].Quantity != 3 || len(p.Cart) != 0 || p.Guild != "" {
		t.Errorf("final player = %+v", p)
	}
}

// When the log refuses an event, the action changes nothing and says so.
func TestNoChangeWithoutEvent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	if _, err := f.svc.CartAdd(ctx, ada, game.Order{Item: "sword", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	before := f.player(t, "ada")
	nEvents := len(f.log.all())
	f.log.down.Store(true)
	actions := map[string]func() error{
		"buy":      func() error { _, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1}); return err },
		"sell":     func() error { _, err := f.svc.Sell(ctx, ada, game.Order{Item: "sword", Quantity: 1}); return err },
		"cart add": func() error { _, err := f.svc.CartAdd(ctx, ada, game.Order{Item: "bow", Quantity: 1}); return err },
		"checkout": func() error { _, err := f.svc.Checkout(ctx, ada); return err },
		"join":     func() error { _, err := f.svc.JoinGuild(ctx, ada, "knights"); return err },
		"signup":   func() error { _, err := f.svc.Signup(ctx, game.Request{}, "bob", "pw"); return err },
		"logout":   func() error { return f.svc.Logout(ctx, ada) },
	}
	for name, do := range actions {
		if err := do(); !errors.Is(err, game.ErrLogUnavailable) {
			t.Errorf("%s: err = %v, want ErrLogUnavailable", name, err)
		}
	}
	f.log.down.Store(false)
	// The log's answers were refusals, but the game cannot know they were
	// not lost answers: the player is busy until the log can no longer
	// take the events, and then the pending changes are dropped.
	if _, err := f.svc.Inventory(ctx, ada); !errors.Is(err, game.ErrPlayerBusy) {
		t.Errorf("inventory right after the log came back = %v, want ErrPlayerBusy", err)
	}
	f.clock.advance(time.Minute)
	after := f.player(t, "ada")
	if after.Gold != before.Gold || len(after.Inventory) != len(before.Inventory) || len(after.Cart) != len(before.Cart) || after.Guild != before.Guild {
		t.Errorf("state changed without events: before %+v after %+v", before, after)
	}
	if _, err := f.store.Player(ctx, "bob"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("bob exists without a signup event: %v", err)
	}
	if _, err := f.svc.Inventory(ctx, ada); err != nil {
		t.Errorf("session lost by a refused logout: %v", err)
	}
	if n := len(f.log.all()); n != nEvents+2 {
		t.Errorf("%d events recorded while the log was down", n-nEvents-2)
	}
	f.checkFold(t, "bob")
	if left, err := f.svc.Settle(ctx); err != nil || left != 0 {
		t.Errorf("Settle = %d left, %v; want bob's signup dropped", left, err)
	}
	if _, err := f.store.Pending(ctx, "bob"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("bob's signup still pending after Settle: %v", err)
	}
}

// Two requests of one player racing to spend the same gold: only as many as
// the gold pays for succeed, and the gold never goes negative.
func TestConcurrentPurchasesCannotOverspend(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	const racers = 16 // epic armor costs 960 of the 1000 gold: one may win
	var wg sync.WaitGroup
	var wins, poor atomic.Int32
	start := make(chan struct{})
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := f.svc.Buy(ctx, ada, game.Order{Item: "armor", Quality: "epic", Quantity: 1})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, game.ErrInsufficientGold):
				poor.Add(1)
			default:
				t.Errorf("buy: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || poor.Load() != racers-1 {
		t.Fatalf("%d purchases succeeded and %d were refused; want 1 and %d", wins.Load(), poor.Load(), racers-1)
	}
	if p := f.player(t, "ada"); p.Gold != 40 || len(p.Inventory) != 1 {
		t.Fatalf("player = %+v, want 40 gold and one armor", p)
	}
	var ok int
	for _, ev := range f.log.all() {
		if ev.Type == event.TypeBuyItem && ev.Status == event.StatusOK {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d ok buy events, want 1", ok)
	}
}

func TestSessionsExpire(t *testing.T) {
	ctx := context.Background()
	st := sqlitetest.Open(t)
	now := time.Now()
	clock := func() time.Time { return now }
	svc, err := game.NewService(st, &journal{}, game.Config{PasswordCost: 4, SessionTTL: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := svc.Signup(ctx, game.Request{}, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Token) != 32 {
		t.Errorf("token %q is not 128 bits in hex", sess.Token)
	}
	if !sess.ExpiresAt.After(now.Add(59*time.Minute)) || sess.ExpiresAt.After(now.Add(time.Hour)) {
		t.Errorf("expires at %v, want an hour after %v", sess.ExpiresAt, now)
	}
	stored, err := st.Player(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if string(stored.PasswordHash) == "pw" || len(stored.PasswordHash) < 59 {
		t.Errorf("password stored as %q, want a bcrypt hash", stored.PasswordHash)
	}
	// The store decides expiry against the real clock: a one-second session
	// must stop working within a few seconds.
	short, err := game.NewService(st, &journal{}, game.Config{PasswordCost: 4, SessionTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	old, err := short.Login(ctx, game.Request{}, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := svc.Inventory(ctx, game.Request{Token: old.Token})
		if errors.Is(err, game.ErrUnauthenticated) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("a one-second session still works after 5s (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := svc.Inventory(ctx, game.Request{Token: sess.Token}); err != nil {
		t.Errorf("live session: %v", err)
	}
}

// A checkout the gold does not cover buys nothing: gold, inventory and cart
// stay as they were.
func TestCheckoutIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	for _, o := range []game.Order{
		{Item: "potion", Quantity: 8},                    // 40
		{Item: "armor", Quality: "epic", Quantity: 1},    // 960
		{Item: "helmet", Quality: "common", Quantity: 1}, // 30
	} {
		if _, err := f.svc.CartAdd(ctx, ada, o); err != nil {
			t.Fatal(err)
		}
	}
	before := f.player(t, "ada")
	if _, err := f.svc.Checkout(ctx, ada); !errors.Is(err, game.ErrInsufficientGold) {
		t.Fatalf("checkout of 1030 gold with 1000: %v", err)
	}
	after := f.player(t, "ada")
	if after.Gold != 1000 || len(after.Inventory) != 0 || len(after.Cart) != len(before.Cart) {
		t.Fatalf("a refused checkout changed the player: %+v", after)
	}
	ev := f.log.last(t)
	if ev.Type != event.TypeCheckout || ev.Error != "insufficient_gold" || ev.TotalPrice.V != 1030 || ev.CartSize.V != 10 {
		t.Errorf("event = %+v", ev)
	}
	if _, err := f.svc.CartRemove(ctx, ada, game.Order{Item: "helmet"}); err != nil {
		t.Fatal(err)
	}
	rc, err := f.svc.Checkout(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Gold != 0 || len(rc.Inventory) != 2 || len(rc.Cart) != 0 || rc.TotalPrice != 1000 {
		t.Errorf("receipt = %+v", rc)
	}
}
