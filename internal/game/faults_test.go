package game_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state"
	"github.com/questlog/questlog/internal/state/sqlitetest"
)

// The faults of issue 11, each ending with the fold check: for every player
// the state equals the fold of its ok events.

// flakyStore is a real store that fails on demand: down fails every call
// as an unreachable store does; failCommits fails that many Commits.
type flakyStore struct {
	state.Store
	down        atomic.Bool
	failCommits atomic.Int32
	commits     atomic.Int32
	// lostPrepares makes that many Prepares store the intent and then
	// fail, as when the store's answer is lost.
	lostPrepares atomic.Int32
}

var (
	errStoreDown = errors.New("store is down")
	errCrash     = errors.New("crashed between the ack and the apply")
)

// newFlakyFixture is a fixture on a flakyStore with a 200ms request
// timeout, and ada signed up.
func newFlakyFixture(t *testing.T) (*fixture, *flakyStore, game.Request) {
	t.Helper()
	fs := &flakyStore{Store: sqlitetest.Open(t)}
	f := newFixtureWith(t, fs, game.Config{RequestTimeout: 200 * time.Millisecond})
	return f, fs, f.signup(t, "ada")
}

func (s *flakyStore) Lock(ctx context.Context, user string) (func(), error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.Lock(ctx, user)
}

func (s *flakyStore) Player(ctx context.Context, user string) (state.Player, error) {
	if s.down.Load() {
		return state.Player{}, errStoreDown
	}
	return s.Store.Player(ctx, user)
}

func (s *flakyStore) Session(ctx context.Context, hash string) (state.Session, error) {
	if s.down.Load() {
		return state.Session{}, errStoreDown
	}
	return s.Store.Session(ctx, hash)
}

func (s *flakyStore) Prepare(ctx context.Context, user string, in state.Intent) error {
	if s.down.Load() {
		return errStoreDown
	}
	err := s.Store.Prepare(ctx, user, in)
	if err == nil && s.lostPrepares.Add(-1) >= 0 {
		return errStoreDown
	}
	return err
}

func (s *flakyStore) Advance(ctx context.Context, user string, done, next state.Intent) error {
	s.commits.Add(1)
	if s.down.Load() {
		return errStoreDown
	}
	if s.failCommits.Add(-1) >= 0 {
		return errStoreDown
	}
	return s.Store.Advance(ctx, user, done, next)
}

func (s *flakyStore) Commit(ctx context.Context, user string, in state.Intent) error {
	s.commits.Add(1)
	if s.down.Load() {
		return errStoreDown
	}
	if s.failCommits.Add(-1) >= 0 {
		return errStoreDown
	}
	return s.Store.Commit(ctx, user, in)
}

// An event the log took although its answer was lost: the action says
// "not acknowledged", changes nothing yet, and the player's next action
// finds the event in the log and applies the change first.
func TestLostAnswerIsSettledFromTheLog(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	f.log.lose.Store(true)
	if _, err := f.svc.Buy(ctx, ada, game.Order{Item: "shield", Quantity: 2}); !errors.Is(err, game.ErrLogUnavailable) {
		t.Fatalf("buy with the answer lost = %v, want ErrLogUnavailable", err)
	}
	f.log.lose.Store(false)
	if p := f.player(t, "ada"); p.Gold != 1000 || p.Pending == "" {
		t.Fatalf("after the lost answer: gold %d, pending %q; want 1000 and a pending change", p.Gold, p.Pending)
	}
	p, err := f.svc.Inventory(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if p.Gold != 920 || len(p.Inventory) != 1 || p.Inventory[0].Quantity != 2 {
		t.Errorf("inventory after settling = %+v, want the two shields the log says were bought", p)
	}
	if ev := f.log.last(t); ev.Type != event.TypeViewInventory || ev.GoldAfter.V != 920 {
		t.Errorf("the view's event = %+v, want gold_after 920", ev)
	}
	f.checkFold(t)
}

// A crash between the log's ack and the store's apply: the next start
// settles the change from the log.
func TestAcknowledgedChangeSurvivesACrash(t *testing.T) {
	ctx := context.Background()
	st := sqlitetest.Open(t)
	f := newFixtureWith(t, st, game.Config{})
	ada := f.signup(t, "ada")

	crashing := newFixtureWith(t, st, game.Config{Fault: func(point string) error {
		if point == game.FaultAcked {
			return errCrash // the round stops here, as with the process
		}
		return nil
	}})
	crashing.log = f.log
	crashing.svc = mustService(t, st, crashing.log, crashing.cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = crashing.svc.Buy(ctx, ada, game.Order{Item: "armor", Quantity: 1})
	}()
	<-done
	if p := f.player(t, "ada"); p.Gold != 1000 || p.Pending == "" {
		t.Fatalf("after the crash: gold %d, pending %q; want 1000 and the pending change", p.Gold, p.Pending)
	}
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.svc.Stop(ctx)
	if p := f.player(t, "ada"); p.Gold != 880 || p.Pending != "" {
		t.Errorf("after Start: gold %d, pending %q; want 880 (the armor the log says was bought)", p.Gold, p.Pending)
	}
	f.checkFold(t)
}

func mustService(t *testing.T, st state.Store, j game.Journal, cfg game.Config) *game.Service {
	t.Helper()
	svc, err := game.NewService(st, j, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// A client that left before its event was recorded: one failed event with
// its own reason, and nothing changed.
func TestClientGoneBeforeItsEventLeavesAFailedEvent(t *testing.T) {
	f := newFixture(t)
	ada := f.signup(t, "ada")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := len(f.log.all())
	_, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1})
	if !errors.Is(err, game.ErrClientGone) {
		t.Fatalf("buy of a gone client = %v, want ErrClientGone", err)
	}
	evs := f.log.all()
	if len(evs) != before+1 {
		t.Fatalf("%d events, want exactly 1", len(evs)-before)
	}
	if ev := evs[len(evs)-1]; ev.Status != event.StatusFailed || ev.Error != "client_closed" || ev.User != "ada" {
		t.Errorf("event = %s/%s for %q, want failed/client_closed for ada", ev.Status, ev.Error, ev.User)
	}
	if p := f.player(t, "ada"); p.Gold != 1000 || len(p.Inventory) != 0 || p.Pending != "" {
		t.Errorf("a gone client's buy changed the player: %+v", p)
	}
	f.checkFold(t)
}

// A client that leaves once the event is recorded cannot cancel the change.
func TestClientGoneAfterItsEventCannotCancelTheChange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var buying atomic.Bool
	f := newFixtureWith(t, sqlitetest.Open(t), game.Config{Fault: func(point string) error {
		if point == game.FaultAcked && buying.Load() {
			cancel() // the client hangs up right after the ack
		}
		return nil
	}})
	ada := f.signup(t, "ada")
	buying.Store(true)
	if _, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1}); err != nil {
		t.Fatalf("buy whose client left after the ack = %v, want success", err)
	}
	if p := f.player(t, "ada"); p.Gold != 950 || len(p.Inventory) != 1 || p.Pending != "" {
		t.Errorf("player = %+v, want the sword bought", p)
	}
	f.checkFold(t)
}

// The store fails after the ack: the change is retried, holding the
// player's lock, past the request (which succeeds: its event is in the
// log), until the store takes it; the player's next action waits for it.
func TestAcknowledgedChangeWaitsForTheStore(t *testing.T) {
	ctx := context.Background()
	f, fs, ada := newFlakyFixture(t)
	fs.failCommits.Store(1 << 20)
	start := time.Now()
	if _, err := f.svc.Buy(ctx, ada, game.Order{Item: "bow", Quantity: 1}); err != nil {
		t.Fatalf("buy whose store fails after the ack = %v, want success (the event is in the log)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the buy was answered after %v, with a 200ms request timeout", d)
	}
	if _, err := f.svc.Inventory(ctx, ada); !errors.Is(err, game.ErrPlayerBusy) {
		t.Errorf("the player's next action while the change waits = %v, want ErrPlayerBusy", err)
	}
	fs.failCommits.Store(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := f.svc.Inventory(ctx, ada)
		if err == nil {
			if p.Gold != 955 || len(p.Inventory) != 1 {
				t.Errorf("inventory once the store is back = %+v, want the bow", p)
			}
			break
		}
		if !errors.Is(err, game.ErrPlayerBusy) || time.Now().After(deadline) {
			t.Fatalf("inventory once the store is back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := fs.commits.Load(); n < 3 {
		t.Errorf("%d commits tried, want retries", n)
	}
	if err := f.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	f.checkFold(t)
}

// An unreachable store refuses changes with ErrStoreUnavailable (a failed
// event each, as the log is up), and the game recovers by itself.
func TestStoreDownIsRefusedAndRecovers(t *testing.T) {
	ctx := context.Background()
	f, fs, ada := newFlakyFixture(t)
	fs.down.Store(true)
	for _, do := range []func() error{
		func() error { _, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1}); return err },
		func() error { _, err := f.svc.Signup(ctx, game.Request{}, "bob", "pw"); return err },
		func() error { _, err := f.svc.Login(ctx, game.Request{}, "ada", "pw-ada"); return err },
		func() error { _, err := f.svc.Inventory(ctx, ada); return err },
	} {
		if err := do(); !errors.Is(err, game.ErrStoreUnavailable) {
			t.Errorf("with the store down: %v, want ErrStoreUnavailable", err)
		}
		if ev := f.log.last(t); ev.Status != event.StatusFailed || ev.Error != "store_unavailable" {
			t.Errorf("event = %s/%s, want failed/store_unavailable", ev.Status, ev.Error)
		}
	}
	fs.down.Store(false)
	if _, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1}); err != nil {
		t.Fatalf("buy once the store is back: %v", err)
	}
	f.checkFold(t, "bob")
}

// hangingJournal holds every record until its deadline, as a log that is
// down but not refusing.
type hangingJournal struct{ journal }

func (j *hangingJournal) Record(ctx context.Context, ev *event.Event) (game.Position, error) {
	if ev.Status == event.StatusOK {
		<-ctx.Done()
		return game.Position{}, ctx.Err()
	}
	return j.journal.Record(ctx, ev)
}

func (j *hangingJournal) RecordGroup(ctx context.Context, user string, evs []*event.Event) (game.Position, error) {
	<-ctx.Done()
	return game.Position{}, ctx.Err()
}

// With the log hanging, concurrent actions of one player are each answered
// within about the request timeout, not one timeout after another.
func TestBusyPlayerIsAnsweredWithinTheTimeout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ada := f.signup(t, "ada")
	const timeout = 300 * time.Millisecond
	hang := &hangingJournal{}
	svc := mustService(t, f.store, hang, game.Config{PasswordCost: 4, RequestTimeout: timeout})
	var wg sync.WaitGroup
	took := make([]time.Duration, 12)
	errs := make([]error, 12)
	for i := range took {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1})
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range took {
		if took[i] > 3*timeout {
			t.Errorf("buy %d answered after %v, with a %v request timeout", i, took[i], timeout)
		}
		if !errors.Is(errs[i], game.ErrLogUnavailable) && !errors.Is(errs[i], game.ErrPlayerBusy) {
			t.Errorf("buy %d = %v, want ErrLogUnavailable or ErrPlayerBusy", i, errs[i])
		}
	}
}

// The store takes an intent but its answer is lost: the action is refused
// (a failed event with the action's event ID), and the stored intent must
// be dropped, not applied because a record with its ID is in the log. (The
// Redis kill test found this: settle matched the failed event.)
func TestLostPrepareIsNotAppliedFromItsFailedEvent(t *testing.T) {
	ctx := context.Background()
	f, fs, ada := newFlakyFixture(t)
	fs.lostPrepares.Store(1)
	if _, err := f.svc.Buy(ctx, ada, game.Order{Item: "sword", Quantity: 1}); !errors.Is(err, game.ErrStoreUnavailable) {
		t.Fatalf("buy whose Prepare answer was lost = %v, want ErrStoreUnavailable", err)
	}
	if ev := f.log.last(t); ev.Status != event.StatusFailed || ev.Error != "store_unavailable" {
		t.Fatalf("event = %s/%s, want failed/store_unavailable", ev.Status, ev.Error)
	}
	f.clock.advance(time.Minute) // the intent can no longer be recorded
	p, err := f.svc.Inventory(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if p.Gold != 1000 || len(p.Inventory) != 0 {
		t.Errorf("a refused buy was applied: %+v", p)
	}
	f.checkFold(t)
}
