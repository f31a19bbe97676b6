// Package game holds questlog's rules: accounts and sessions, the shop, the
// cart, inventories and guilds. Every action returns its outcome and leaves
// exactly one event in the Journal, ok or failed.
//
// Its guarantee: an ok event exists exactly when its change is in the state.
// An action locks the player, decides, stores the change as the player's
// pending intent, records the event, and applies the intent once the journal
// acknowledged it; the store applies an intent at most once. When the
// journal refuses, nothing is applied; when its answer is lost (the event
// may be in the log after all), the intent stays pending, and the player's
// next action, or the background settling, looks for the event in the log
// and applies the change exactly when it is there (see settle). A failing
// store does not lose an acknowledged change: it is retried, holding the
// player's lock, until the store takes it.
//
// The package stands on internal/state and internal/event alone and knows
// nothing of HTTP or Kafka: the caller says who asks (Request) and provides
// the Journal.
package game

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/state"
	"golang.org/x/crypto/bcrypt"
)

// Position is where an event is, or will be, in the log.
type Position struct {
	Partition int32
	Offset    int64
}

// Journal durably records events: the game's only view of the event log.
type Journal interface {
	// Record returns once the log acknowledged ev, with its position, or
	// with an error when it did not. An error does not prove that ev was
	// not written (a request in flight when a connection broke may have
	// been): the game finds out later with Contains. Record honours ctx's
	// deadline but not its cancellation, and must not keep ev after it
	// returns: the Service reuses it.
	Record(ctx context.Context, ev *event.Event) (Position, error)
	// RecordGroup records events of user as one group: the log holds all
	// of them, in order from the position returned, or none (the same
	// doubt as Record's when it fails).
	RecordGroup(ctx context.Context, user string, evs []*event.Event) (Position, error)
	// Next says where the next event of user will be recorded: its
	// partition, and the highest offset known there (-1 when none), so
	// that an event recorded from now on lies past it.
	Next(user string) Position
	// Contains reports whether the ok event with that ID is in the log,
	// in at.Partition past at.Offset. The failed event of an action
	// refused after its intent was stored has the same ID, and does not
	// count.
	Contains(ctx context.Context, at Position, eventID string) (bool, error)
}

// Request is who asks and from where: what every event of a request carries.
type Request struct {
	Token string // the session token, empty when none was sent
	HTTP  event.HTTP
	// Seed says that the request came by a seed-compatible GET route of a
	// server with seed sessions on (Config.SeedSessions): a signup or
	// login then opens the player's seed session for HTTP.Host, and a
	// request without a Token acts as SeedUser, the player its query
	// names, while that session lives (seed.go).
	Seed     bool
	SeedUser string
}

// Order names items to buy, sell or put in the cart.
type Order struct {
	Item     string
	Quality  string // empty means the catalog's default quality
	Quantity int64
}

// Session is a logged-in player's credentials.
type Session struct {
	User      string
	Token     string
	ExpiresAt time.Time
	Gold      int64
}

// Receipt is a player's state after a purchase, sale or checkout.
type Receipt struct {
	state.Player
	TotalPrice int64
}

// Limits on what a request may ask for.
const (
	maxQuantity  = 1000
	maxCartLines = 50
	maxName      = 32
	maxPassword  = 72 // bcrypt reads no further
)

// FaultAcked is the fault point (Config.Fault) between the log's ack of a
// change's event and the store's applying it.
const FaultAcked = "acked"

// Config configures a Service. Zero values take the defaults below.
type Config struct {
	Catalog      *Catalog         // default DefaultCatalog()
	StartingGold int64            // default 1000
	SessionTTL   time.Duration    // default 24h
	PasswordCost int              // bcrypt cost, default bcrypt.DefaultCost (10)
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
	// RequestTimeout bounds the part of an action before its event is
	// recorded: waiting for the player's lock and for the store. Past it
	// the action is refused (ErrPlayerBusy, ErrStoreUnavailable), and the
	// journal gets no more than what is left of it. Default 5s; the API
	// sets it to the event log's delivery timeout, so that every request
	// is answered within about that.
	RequestTimeout time.Duration
	// SettleAfter is how long after an intent was prepared its event may
	// still reach the log: a pending intent whose event the log does not
	// hold is dropped only once it is older. Default RequestTimeout + 2s
	// (the journal fails a record by then; 2s for a request the broker had
	// already read when the connection broke).
	SettleAfter time.Duration
	// SettleEvery is how often the background settling (Start) looks for
	// pending intents that no action is settling. Default 1s.
	SettleEvery time.Duration
	// SeedSessions turns on the seed course's way of naming a player
	// (seed.go): default off. SeedSessionTTL is how long a seed session
	// lasts after the signup or login that opened it; default 2h.
	SeedSessions   bool
	SeedSessionTTL time.Duration
	// Fault, when set, is called at the named points of a round of
	// actions (FaultAcked); tests make the process die there. When it
	// returns an error, the round stops right there, as if the process had
	// died: nothing more is done, and its actions get that error.
	Fault func(point string) error
}

// Service plays the game against a store, recording every action's event.
type Service struct {
	store       state.Store
	journal     Journal
	cat         *Catalog
	gold        int64
	ttl         time.Duration
	cost        int
	now         func() time.Time
	log         *slog.Logger
	timeout     time.Duration
	settleAfter time.Duration
	settleEvery time.Duration
	seedTTL     time.Duration // 0: seed sessions are off
	fault       func(string) error
	ids         event.IDs
	dummy       []byte    // a hash to compare against for unknown users
	actions     sync.Pool // of *action: a request's event is ~500 bytes

	storeWarn throttle // at most one warning a few seconds about the store
	logWarn   throttle // and about the event log
	deadlines deadlines
	lines     lines // the players' queues of actions (pipeline.go)

	// Background work: the settling loop and commits handed over by
	// requests whose store was failing.
	stop    chan struct{}
	stopped sync.Once
	running sync.WaitGroup
}

// withDefaults fills in the zero fields that have a default.
func (cfg Config) withDefaults() Config {
	if cfg.Catalog == nil {
		cfg.Catalog = DefaultCatalog()
	}
	if cfg.StartingGold == 0 {
		cfg.StartingGold = 1000
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 24 * time.Hour
	}
	if cfg.PasswordCost == 0 {
		cfg.PasswordCost = bcrypt.DefaultCost
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.SettleAfter == 0 {
		cfg.SettleAfter = cfg.RequestTimeout + 2*time.Second
	}
	if cfg.SettleEvery == 0 {
		cfg.SettleEvery = time.Second
	}
	if cfg.SeedSessionTTL == 0 {
		cfg.SeedSessionTTL = 2 * time.Hour
	}
	return cfg
}

// Validate says what is wrong with cfg (its zero fields taking their
// defaults), before anything is started with it.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	if cfg.StartingGold < 0 || cfg.StartingGold > maxPrice {
		return fmt.Errorf("game: starting gold %d out of range 0..%d", cfg.StartingGold, int64(maxPrice))
	}
	if cfg.SessionTTL < time.Second {
		return fmt.Errorf("game: session TTL %s is too short", cfg.SessionTTL)
	}
	if cfg.SeedSessionTTL < time.Second {
		return fmt.Errorf("game: seed session TTL %s is too short", cfg.SeedSessionTTL)
	}
	if cfg.PasswordCost < bcrypt.MinCost || cfg.PasswordCost > bcrypt.MaxCost {
		return fmt.Errorf("game: password cost %d out of range %d..%d", cfg.PasswordCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if cfg.RequestTimeout < 10*time.Millisecond {
		return fmt.Errorf("game: request timeout %s is too short", cfg.RequestTimeout)
	}
	if cfg.SettleAfter < cfg.RequestTimeout {
		return fmt.Errorf("game: settle-after %s is shorter than the request timeout %s: an event could reach the log after its intent was dropped", cfg.SettleAfter, cfg.RequestTimeout)
	}
	return nil
}

// NewService validates cfg and returns a Service.
func NewService(store state.Store, journal Journal, cfg Config) (*Service, error) {
	if store == nil || journal == nil {
		return nil, errors.New("game: a store and a journal are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Fault == nil {
		cfg.Fault = func(string) error { return nil }
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("questlog-timing-equalizer"), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("game: %w", err)
	}
	s := &Service{
		store: store, journal: journal, cat: cfg.Catalog, gold: cfg.StartingGold,
		ttl: cfg.SessionTTL, cost: cfg.PasswordCost, now: cfg.Now, log: cfg.Logger, dummy: dummy,
		timeout: cfg.RequestTimeout, settleAfter: cfg.SettleAfter, settleEvery: cfg.SettleEvery,
		fault: cfg.Fault, stop: make(chan struct{}),
	}
	if cfg.SeedSessions {
		s.seedTTL = cfg.SeedSessionTTL
	}
	s.lines.byUser = map[string]*line{}
	s.actions.New = func() any { return new(action) }
	return s, nil
}

// Catalog is the shop's price list.
func (s *Service) Catalog() *Catalog { return s.cat }

// Start settles the intents that an earlier run left pending, as far as the
// log and the store allow (what it cannot settle now, the background
// settling will), and keeps settling in the background until Stop.
func (s *Service) Start(ctx context.Context) error {
	if left, err := s.Settle(ctx); err != nil {
		s.log.WarnContext(ctx, "pending changes not settled yet; their players wait", "pending", left, "err", err)
	}
	s.running.Go(s.settleLoop)
	return nil
}

// Stop ends the background settling and the commits handed to the
// background, and waits for them or for ctx. What is still pending stays in
// the store for the next Start.
func (s *Service) Stop(ctx context.Context) error {
	s.stopped.Do(func() { close(s.stop) })
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop game service: %w", ctx.Err())
	}
}

func (s *Service) settleLoop() {
	t := time.NewTicker(s.settleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if left, err := s.Settle(ctx); err != nil {
			s.log.Debug("pending changes not settled yet", "pending", left, "err", err)
		}
		cancel()
	}
}

// Settle settles every pending intent whose player is not busy: it applies
// those whose event is in the log, and drops those whose event is not and
// can no longer be. It returns how many it left pending, with the first
// reason.
func (s *Service) Settle(ctx context.Context) (left int, err error) {
	users, err := s.store.PendingUsers(ctx)
	if err != nil {
		return 0, fmt.Errorf("list pending changes: %w", err)
	}
	var errs []error
	for _, user := range users {
		if err := s.settleUser(ctx, user); err != nil {
			left++
			if len(errs) == 0 {
				errs = append(errs, fmt.Errorf("%s: %w", user, err))
			}
		}
	}
	return left, errors.Join(errs...)
}

// settleUser settles user's pending intent under the player's lock, unless
// someone holds it: an action in flight settles it itself.
func (s *Service) settleUser(ctx context.Context, user string) error {
	lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	unlock, err := s.store.Lock(lctx, user)
	cancel()
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer unlock()
	in, err := s.store.Pending(ctx, user)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.settle(ctx, user, in)
}

// settle finds out what became of user's pending intent, holding the
// player's lock: when the log holds its event, the change is applied; when
// the log does not and no longer can (SettleAfter), the intent is dropped;
// otherwise the player stays busy.
func (s *Service) settle(ctx context.Context, user string, in state.Intent) error {
	found, err := s.journal.Contains(ctx, Position{in.Partition, in.After}, in.EventID)
	if err != nil {
		return fmt.Errorf("%w: look for event %s: %w", ErrLogUnavailable, in.EventID, err)
	}
	switch {
	case found:
		err = s.store.Commit(ctx, user, in)
		if errors.Is(err, state.ErrNotFound) {
			err = nil // settled meanwhile
		}
		if err == nil {
			s.log.InfoContext(ctx, "applied a change whose event the log holds", "user", user, "event_id", in.EventID)
		}
	case s.now().Sub(in.Created) < s.settleAfter:
		return ErrPlayerBusy
	default:
		err = s.store.Drop(ctx, user, in.EventID)
		if err == nil {
			s.log.InfoContext(ctx, "dropped a change whose event the log does not hold", "user", user, "event_id", in.EventID)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: settle event %s: %w", ErrStoreUnavailable, in.EventID, err)
	}
	return nil
}

// action is one request in flight: its event, its deadline, the player's
// lock when held, and whether the event is already in the journal.
type action struct {
	ev       event.Event
	recorded bool
	session  string // the token hash of the session authenticate found
	// parent is the caller's context, done when the client left. ctx ends
	// at the request's deadline, whatever the client does: every step
	// runs under it, and the client's leaving is checked where it
	// matters, before the event is recorded (clientGone).
	parent   context.Context
	ctx      context.Context
	deadline time.Time
}

// begin starts an action with its event. Actions are pooled: every begin is
// paired with a deferred end, and nothing keeps an action or its event after
// end (a Journal does not retain the event).
func (s *Service) begin(ctx context.Context, typ string, req Request) *action {
	now := s.now()
	a := s.actions.Get().(*action)
	a.ev = event.Event{
		ID:     s.ids.New(now),
		Type:   typ,
		Time:   now,
		Status: event.StatusOK,
		HTTP:   req.HTTP,
	}
	a.parent = ctx
	a.deadline = time.Now().Add(s.timeout)
	a.ctx = s.deadlines.until(a.deadline)
	return a
}

// end returns the action to the pool.
func (s *Service) end(a *action) {
	*a = action{}
	s.actions.Put(a)
}

// clientGone says whether the client left.
func (a *action) clientGone() bool { return a.parent.Err() != nil }

// storeFailure turns a store call that failed into the refusal to report:
// the client left, the player stayed busy past the deadline, or the store
// is unavailable.
func (s *Service) storeFailure(a *action, what string, err error) error {
	switch {
	case a.clientGone():
		return fmt.Errorf("%w: %s: %w", ErrClientGone, what, err)
	case errors.Is(err, context.DeadlineExceeded) && strings.HasPrefix(what, "lock "):
		return fmt.Errorf("%w: %s: %w", ErrPlayerBusy, what, err)
	}
	if s.storeWarn.allow(time.Now()) {
		s.log.Warn("state store unavailable: refusing changes", "op", what, "err", err)
	}
	return fmt.Errorf("%w: %s: %w", ErrStoreUnavailable, what, err)
}

// record records the event of an action that changes nothing and waits
// for no player (a visit, the catalog, a refusal before the game).
func (s *Service) record(a *action) error {
	if a.clientGone() {
		return fmt.Errorf("%w: before its event was recorded", ErrClientGone)
	}
	if _, err := s.journal.Record(a.ctx, &a.ev); err != nil {
		return s.logFailure(err)
	}
	a.recorded = true
	return nil
}

// keepCommitting commits an acknowledged intent whose store kept failing,
// holding the player's lock until it is applied or the service stops (the
// intent then stays pending for the next Start).
func (s *Service) keepCommitting(user string, in state.Intent, unlock func()) {
	defer unlock()
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
		select {
		case <-s.stop:
			return
		case <-time.After(pause):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.store.Commit(ctx, user, in)
		cancel()
		switch {
		case err == nil || errors.Is(err, state.ErrNotFound):
			s.log.Info("applied an acknowledged change after the store came back", "user", user, "event_id", in.EventID)
			return
		case !retryable(err):
			s.log.Error("an acknowledged change cannot be applied: it stays pending", "user", user, "event_id", in.EventID, "err", err)
			return
		}
		s.log.Debug("an acknowledged change still waits for the store", "user", user, "event_id", in.EventID, "err", err)
	}
}

// retryable says whether a failed store call may succeed if tried again:
// anything but the store's refusals.
func retryable(err error) bool {
	return err != nil && !errors.Is(err, state.ErrNotFound) && !errors.Is(err, state.ErrConflict) && !errors.Is(err, state.ErrExists)
}

// finish records the failed event of a refused request, so that every
// request leaves exactly one event, and returns the error to report.
func (s *Service) finish(a *action, err error) error {
	if err == nil || a.recorded || errors.Is(err, ErrLogUnavailable) {
		return err
	}
	var rej *Rejection
	if errors.As(err, &rej) {
		a.ev.Fail(rej.Reason)
	} else {
		a.ev.Fail("internal_error")
	}
	// The failed event is recorded whatever the client does, within the
	// request's deadline or a moment more when that has passed.
	ctx := a.ctx
	if soon := time.Now().Add(250 * time.Millisecond); a.deadline.Before(soon) {
		ctx = s.deadlines.until(soon)
	}
	if _, rerr := s.journal.Record(ctx, &a.ev); rerr != nil {
		return s.logFailure(rerr)
	}
	return err
}

// logFailure reports an event the journal did not acknowledge: as
// ErrLogUnavailable to the caller, and now and then in the log.
func (s *Service) logFailure(err error) error {
	if s.logWarn.allow(time.Now()) {
		s.log.Warn("event log unavailable: refusing changes", "err", err)
	}
	return fmt.Errorf("%w: %w", ErrLogUnavailable, err)
}

// authenticate resolves the request's session to a username and sets the
// event's user.
func (s *Service) authenticate(a *action, req Request) (string, error) {
	var hash string
	switch {
	case req.Token != "":
		hash = hashToken(req.Token)
	case req.Seed:
		var err error
		if hash, err = s.seedSessionHash(a, req); err != nil {
			return "", err
		}
	default:
		return "", ErrUnauthenticated
	}
	sess, err := s.store.Session(a.ctx, hash)
	if errors.Is(err, state.ErrNotFound) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", s.storeFailure(a, "look up session", err)
	}
	a.ev.User = sess.User
	a.session = hash
	return sess.User, nil
}

// playOn carries out decide on user's player, whose account must exist,
// and returns the player as decide left it.
func (s *Service) playOn(a *action, user string, decide decision) (state.Player, error) {
	var seen state.Player
	err := s.play(a, user, func(p *running) (*state.Change, error) {
		if !p.exists {
			// The session outlived its account: treat it as no session.
			return nil, ErrUnauthenticated
		}
		c, err := decide(p)
		if err == nil {
			seen = clonePlayer(p.Player)
		}
		return c, err
	})
	return seen, err
}

// act carries out do as one action of type typ for req: begun, finished
// with do's error (so that a refused request leaves its failed event) and
// ended.
func act[T any](s *Service, ctx context.Context, typ string, req Request, do func(*action) (T, error)) (T, error) {
	a := s.begin(ctx, typ, req)
	defer s.end(a)
	r, err := do(a)
	return r, s.finish(a, err)
}

// actAs is act for a player's action, which needs a session: do gets the
// username the request's session resolves to.
func actAs[T any](s *Service, ctx context.Context, typ string, req Request, do func(a *action, user string) (T, error)) (T, error) {
	return act(s, ctx, typ, req, func(a *action) (T, error) {
		user, err := s.authenticate(a, req)
		if err != nil {
			var zero T
			return zero, err
		}
		return do(a, user)
	})
}

// Signup creates an account with the starting gold and logs it in.
func (s *Service) Signup(ctx context.Context, req Request, username, password string) (Session, error) {
	return act(s, ctx, event.TypeSignup, req, func(a *action) (Session, error) {
		return s.signup(a, req, username, password)
	})
}

func (s *Service) signup(a *action, req Request, username, password string) (Session, error) {
	if err := checkCredentials(a, username, password); err != nil {
		return Session{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return Session{}, fmt.Errorf("hash password: %w", err)
	}
	sess, stored, err := s.openSession(req, username, hash, s.gold)
	if err != nil {
		return Session{}, err
	}
	err = s.play(a, username, func(p *running) (*state.Change, error) {
		if p.exists {
			return nil, ErrAlreadyExists
		}
		acct := state.Account{User: username, PasswordHash: hash, Gold: s.gold, CreatedAt: a.ev.Time}
		p.exists = true
		p.Player = state.Player{Account: acct, Inventory: []state.Stack{}, Cart: []state.Stack{}}
		a.ev.GoldAfter = event.Some(s.gold)
		return &state.Change{Create: &acct, Session: &stored}, nil
	})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

// checkCredentials refuses a malformed username or password; a well-formed
// username names the event's user even when the password is refused.
func checkCredentials(a *action, username, password string) error {
	if err := validName("username", username); err != nil {
		return ErrInvalidUsername
	}
	a.ev.User = username
	if !validPassword(password) {
		return ErrInvalidPassword
	}
	return nil
}

// Login checks a password and opens a session.
func (s *Service) Login(ctx context.Context, req Request, username, password string) (Session, error) {
	return act(s, ctx, event.TypeLogin, req, func(a *action) (Session, error) {
		return s.login(a, req, username, password)
	})
}

func (s *Service) login(a *action, req Request, username, password string) (Session, error) {
	if err := checkCredentials(a, username, password); err != nil {
		return Session{}, err
	}
	p, err := s.store.Player(a.ctx, username)
	if errors.Is(err, state.ErrNotFound) {
		// Spend the time a real check takes, so timing does not tell
		// which usernames exist.
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return Session{}, ErrUnknownUser
	}
	if err != nil {
		return Session{}, s.storeFailure(a, "read player "+username, err)
	}
	if bcrypt.CompareHashAndPassword(p.PasswordHash, []byte(password)) != nil {
		return Session{}, ErrBadPassword
	}
	var sess Session
	err = s.play(a, username, func(p *running) (*state.Change, error) {
		if !p.exists {
			return nil, ErrUnknownUser
		}
		var stored state.Session
		var err error
		if sess, stored, err = s.openSession(req, username, p.PasswordHash, p.Gold); err != nil {
			return nil, err
		}
		a.ev.GoldAfter = event.Some(p.Gold)
		return &state.Change{Session: &stored}, nil
	})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

// newSession makes a session's token: the player's credentials, and what
// the store keeps of them.
func (s *Service) newSession(user string, gold int64) (Session, state.Session, error) {
	var raw [16]byte // 128 bits
	if _, err := rand.Read(raw[:]); err != nil {
		return Session{}, state.Session{}, fmt.Errorf("new session token: %w", err)
	}
	sess, stored := s.session(user, hex.EncodeToString(raw[:]), s.ttl, gold)
	return sess, stored, nil
}

// session is a session with token that lasts ttl from now: the player's
// credentials, and what the store keeps of them.
func (s *Service) session(user, token string, ttl time.Duration, gold int64) (Session, state.Session) {
	expires := s.now().Add(ttl).UTC().Truncate(time.Second)
	return Session{User: user, Token: token, ExpiresAt: expires, Gold: gold},
		state.Session{TokenHash: hashToken(token), User: user, ExpiresAt: expires}
}

// Logout ends the request's session.
func (s *Service) Logout(ctx context.Context, req Request) error {
	a := s.begin(ctx, event.TypeLogout, req)
	defer s.end(a)
	err := s.logout(a, req)
	return s.finish(a, err)
}

func (s *Service) logout(a *action, req Request) error {
	user, err := s.authenticate(a, req)
	if err != nil {
		return err
	}
	ended := a.session // the cookie's session, or the seed session
	_, err = s.playOn(a, user, func(*running) (*state.Change, error) {
		return &state.Change{EndSession: ended}, nil
	})
	return err
}

// Visit records a request that is not a game action (the seed's "/"). A
// valid session attributes it to its player; no session is needed.
func (s *Service) Visit(ctx context.Context, req Request) error {
	a := s.begin(ctx, event.TypeDefault, req)
	defer s.end(a)
	return s.finish(a, s.anonymousRead(a, req))
}

// anonymousRead records a read that needs no session, attributing it to the
// session's player when there is one.
func (s *Service) anonymousRead(a *action, req Request) error {
	if req.namesPlayer() {
		if _, err := s.authenticate(a, req); err != nil && !errors.Is(err, ErrUnauthenticated) {
			return err
		}
	}
	return s.record(a)
}

// Reject records a request refused before it reached the game (unreadable
// body, missing fields) as a failed event of the given type.
func (s *Service) Reject(ctx context.Context, req Request, eventType string, rej *Rejection) error {
	a := s.begin(ctx, eventType, req)
	defer s.end(a)
	if req.namesPlayer() {
		if _, err := s.authenticate(a, req); err != nil && !errors.Is(err, ErrUnauthenticated) {
			return s.finish(a, err)
		}
	}
	return s.finish(a, rej)
}

// Items lists the catalog.
func (s *Service) Items(ctx context.Context, req Request) ([]CatalogEntry, error) {
	a := s.begin(ctx, event.TypeViewCatalog, req)
	defer s.end(a)
	if err := s.finish(a, s.anonymousRead(a, req)); err != nil {
		return nil, err
	}
	return s.cat.Entries(), nil
}

// Inventory reads the player's gold, guild and items.
func (s *Service) Inventory(ctx context.Context, req Request) (state.Player, error) {
	return s.view(ctx, req, event.TypeViewInventory)
}

// Cart reads the player's cart (with the rest of the player).
func (s *Service) Cart(ctx context.Context, req Request) (state.Player, error) {
	return s.view(ctx, req, event.TypeViewCart)
}

func (s *Service) view(ctx context.Context, req Request, typ string) (state.Player, error) {
	return actAs(s, ctx, typ, req, func(a *action, user string) (state.Player, error) {
		return s.readView(a, user)
	})
}

func (s *Service) readView(a *action, user string) (state.Player, error) {
	return s.playOn(a, user, func(p *running) (*state.Change, error) {
		a.ev.GoldAfter = event.Some(p.Gold)
		if a.ev.Type == event.TypeViewCart {
			a.ev.CartSize = event.Some(units(p.Cart))
			a.ev.ItemCount = event.Some(int64(len(p.Cart)))
		} else {
			a.ev.ItemCount = event.Some(units(p.Inventory))
		}
		return nil, nil
	})
}

// resolve validates an order against the catalog and fills the event's item
// fields. It returns the item and the unit price.
func (s *Service) resolve(a *action, o Order, allowZero bool) (state.Item, int64, error) {
	if o.Quality == "" {
		o.Quality = s.cat.DefaultQuality()
	}
	if printable(o.Item) {
		a.ev.ItemType = o.Item
	}
	if printable(o.Quality) {
		a.ev.Quality = o.Quality
	}
	if o.Item == "" {
		return state.Item{}, 0, ErrInvalidItem
	}
	if o.Quantity < 0 || o.Quantity > maxQuantity || (o.Quantity == 0 && !allowZero) {
		return state.Item{}, 0, ErrInvalidQuantity
	}
	if o.Quantity > 0 {
		a.ev.Quantity = event.Some(o.Quantity)
	}
	if o.Item == "" {
		return state.Item{}, 0, ErrInvalidItem
	}
	price, err := s.cat.Price(o.Item, o.Quality)
	if err != nil {
		return state.Item{}, 0, err
	}
	return state.Item{Type: o.Item, Quality: o.Quality}, price, nil
}

// Buy spends gold on items.
func (s *Service) Buy(ctx context.Context, req Request, o Order) (Receipt, error) {
	return actAs(s, ctx, event.TypeBuyItem, req, func(a *action, user string) (Receipt, error) {
		return s.trade(a, user, o, true)
	})
}

// Sell returns items to the shop for half their price.
func (s *Service) Sell(ctx context.Context, req Request, o Order) (Receipt, error) {
	return actAs(s, ctx, event.TypeSellItem, req, func(a *action, user string) (Receipt, error) {
		return s.trade(a, user, o, false)
	})
}

// trade is a purchase (items in, gold out) or a sale (items out, gold in):
// the same steps with opposite signs, a different price and a different
// thing to run short of.
func (s *Service) trade(a *action, user string, o Order, buying bool) (Receipt, error) {
	item, price, err := s.resolve(a, o, false)
	if err != nil {
		return Receipt{}, err
	}
	if !buying {
		price, _ = s.cat.SellPrice(item.Type, item.Quality)
	}
	total := price * o.Quantity
	a.ev.UnitPrice, a.ev.TotalPrice = event.Some(price), event.Some(total)
	p, err := s.playOn(a, user, func(p *running) (*state.Change, error) {
		a.ev.GoldAfter = event.Some(p.Gold)
		gold, items := -total, o.Quantity // what the player gains
		switch {
		case buying && p.Gold < total:
			return nil, ErrInsufficientGold
		case !buying && quantityOf(p.Inventory, item) < o.Quantity:
			return nil, ErrInsufficientItem
		case !buying:
			gold, items = total, -o.Quantity
		}
		p.Gold += gold
		p.Inventory = addStack(p.Inventory, item, items)
		a.ev.GoldAfter = event.Some(p.Gold)
		return &state.Change{GoldDelta: gold, Inventory: []state.Stack{{Item: item, Quantity: items}}}, nil
	})
	return Receipt{Player: p, TotalPrice: total}, err
}

// CartAdd puts items in the cart; nothing is paid until checkout.
func (s *Service) CartAdd(ctx context.Context, req Request, o Order) (state.Player, error) {
	return actAs(s, ctx, event.TypeCartAdd, req, func(a *action, user string) (state.Player, error) {
		return s.cartAdd(a, user, o)
	})
}

func (s *Service) cartAdd(a *action, user string, o Order) (state.Player, error) {
	item, price, err := s.resolve(a, o, false)
	if err != nil {
		return state.Player{}, err
	}
	a.ev.UnitPrice = event.Some(price)
	return s.playOn(a, user, func(p *running) (*state.Change, error) {
		have := quantityOf(p.Cart, item)
		if have+o.Quantity > maxQuantity || (have == 0 && len(p.Cart) >= maxCartLines) {
			a.ev.CartSize = event.Some(units(p.Cart))
			return nil, ErrCartFull
		}
		p.Cart = addStack(p.Cart, item, o.Quantity)
		a.ev.CartSize = event.Some(units(p.Cart))
		return &state.Change{Cart: []state.Stack{{Item: item, Quantity: o.Quantity}}}, nil
	})
}

// CartRemove takes items out of the cart; a zero quantity removes the line.
func (s *Service) CartRemove(ctx context.Context, req Request, o Order) (state.Player, error) {
	return actAs(s, ctx, event.TypeCartRemove, req, func(a *action, user string) (state.Player, error) {
		return s.cartRemove(a, user, o)
	})
}

func (s *Service) cartRemove(a *action, user string, o Order) (state.Player, error) {
	item, _, err := s.resolve(a, o, true)
	if err != nil {
		return state.Player{}, err
	}
	return s.playOn(a, user, func(p *running) (*state.Change, error) {
		have := quantityOf(p.Cart, item)
		qty := o.Quantity
		if qty == 0 {
			qty = have
		}
		if have == 0 || qty > have {
			a.ev.CartSize = event.Some(units(p.Cart))
			return nil, ErrNotInCart
		}
		a.ev.Quantity = event.Some(qty)
		p.Cart = addStack(p.Cart, item, -qty)
		a.ev.CartSize = event.Some(units(p.Cart))
		return &state.Change{Cart: []state.Stack{{Item: item, Quantity: -qty}}}, nil
	})
}

// Checkout buys everything in the cart at once, or nothing.
func (s *Service) Checkout(ctx context.Context, req Request) (Receipt, error) {
	return actAs(s, ctx, event.TypeCheckout, req, func(a *action, user string) (Receipt, error) {
		return s.checkout(a, user)
	})
}

func (s *Service) checkout(a *action, user string) (Receipt, error) {
	var total int64
	p, err := s.playOn(a, user, func(p *running) (*state.Change, error) {
		a.ev.GoldAfter = event.Some(p.Gold)
		a.ev.CartSize = event.Some(units(p.Cart))
		a.ev.ItemCount = event.Some(int64(len(p.Cart)))
		if len(p.Cart) == 0 {
			return nil, ErrEmptyCart
		}
		total = 0
		for _, line := range p.Cart {
			price, err := s.cat.Price(line.Type, line.Quality)
			if err != nil {
				// The catalog changed since the item was carted.
				return nil, err
			}
			total += price * line.Quantity
		}
		a.ev.TotalPrice = event.Some(total)
		if p.Gold < total {
			return nil, ErrInsufficientGold
		}
		lines := slices.Clone(p.Cart)
		p.Gold -= total
		for _, line := range lines {
			p.Inventory = addStack(p.Inventory, line.Item, line.Quantity)
		}
		p.Cart = []state.Stack{}
		a.ev.GoldAfter = event.Some(p.Gold)
		return &state.Change{GoldDelta: -total, Inventory: lines, ClearCart: true}, nil
	})
	return Receipt{Player: p, TotalPrice: total}, err
}

// JoinGuild makes the player a member of a guild; one guild at a time.
func (s *Service) JoinGuild(ctx context.Context, req Request, guild string) (state.Player, error) {
	return actAs(s, ctx, event.TypeJoinGuild, req, func(a *action, user string) (state.Player, error) {
		return s.joinGuild(a, user, guild)
	})
}

func (s *Service) joinGuild(a *action, user, guild string) (state.Player, error) {
	if validName("guild", guild) != nil {
		return state.Player{}, ErrInvalidGuild
	}
	a.ev.Guild = guild
	return s.playOn(a, user, func(p *running) (*state.Change, error) {
		if p.Guild != "" {
			return nil, ErrAlreadyInGuild
		}
		p.Guild = guild
		return &state.Change{Guild: &guild}, nil
	})
}

// LeaveGuild takes the player out of their guild.
func (s *Service) LeaveGuild(ctx context.Context, req Request) (state.Player, error) {
	return actAs(s, ctx, event.TypeLeaveGuild, req, func(a *action, user string) (state.Player, error) {
		return s.leaveGuild(a, user)
	})
}

func (s *Service) leaveGuild(a *action, user string) (state.Player, error) {
	return s.playOn(a, user, func(p *running) (*state.Change, error) {
		if p.Guild == "" {
			return nil, ErrNotInGuild
		}
		a.ev.Guild = p.Guild
		p.Guild = ""
		none := ""
		return &state.Change{Guild: &none}, nil
	})
}

// deadlines hands out contexts that end at a given time, shared by the
// actions whose deadlines fall in the same deadlineSlot: an action costs no
// context and timer of its own. A context ends at most deadlineSlot after
// the time asked for, never before.
type deadlines struct{ cur atomic.Pointer[slot] }

type slot struct {
	ctx  context.Context
	stop context.CancelFunc // never called: the deadline's timer releases it
	end  time.Time
}

const deadlineSlot = 10 * time.Millisecond

func (d *deadlines) until(t time.Time) context.Context {
	end := t.Truncate(deadlineSlot).Add(deadlineSlot)
	if c := d.cur.Load(); c != nil && c.end.Equal(end) {
		return c.ctx
	}
	// Racing actions may each make one; the last stored wins, and the
	// others serve the actions they were made for.
	c := &slot{end: end}
	c.ctx, c.stop = context.WithDeadline(context.Background(), end)
	d.cur.Store(c)
	return c.ctx
}

// throttle lets one thing through every few seconds: a warning repeated by
// every request of an outage is said once.
type throttle struct{ last atomic.Int64 }

const throttleEvery = 5 * time.Second

func (t *throttle) allow(now time.Time) bool {
	last := t.last.Load()
	return now.UnixNano()-last >= int64(throttleEvery) && t.last.CompareAndSwap(last, now.UnixNano())
}

// clonePlayer copies a player whose slices the round goes on changing.
func clonePlayer(p state.Player) state.Player {
	p.Inventory = slices.Clone(p.Inventory)
	p.Cart = slices.Clone(p.Cart)
	if p.Inventory == nil {
		p.Inventory = []state.Stack{}
	}
	if p.Cart == nil {
		p.Cart = []state.Stack{}
	}
	return p
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// validName accepts 1 to 32 ASCII letters, digits, '_', '-' and '.'.
func validName(kind, s string) error {
	if s == "" || len(s) > maxName {
		return fmt.Errorf("%s %q must be 1 to %d characters", kind, truncate(s), maxName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%s %q may hold only letters, digits, '_', '-' and '.'", kind, truncate(s))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > maxName {
		return s[:maxName] + "..."
	}
	return s
}

func validPassword(p string) bool {
	if p == "" || len(p) > maxPassword || !utf8.ValidString(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == 0 {
			return false
		}
	}
	return true
}

// printable says whether a client-supplied name may go into an event as it
// is: short, valid UTF-8, no control characters.
func printable(s string) bool {
	if s == "" || len(s) > 64 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func quantityOf(stacks []state.Stack, item state.Item) int64 {
	for _, st := range stacks {
		if st.Item == item {
			return st.Quantity
		}
	}
	return 0
}

func units(stacks []state.Stack) int64 {
	var n int64
	for _, st := range stacks {
		n += st.Quantity
	}
	return n
}

// addStack returns stacks with delta more of item, keeping the store's
// order (type, then quality) and dropping emptied stacks.
func addStack(stacks []state.Stack, item state.Item, delta int64) []state.Stack {
	out := make([]state.Stack, 0, len(stacks)+1)
	added := false
	for _, st := range stacks {
		if !added && (st.Type > item.Type || st.Type == item.Type && st.Quality >= item.Quality) {
			added = true
			if st.Item == item {
				st.Quantity += delta
				if st.Quantity > 0 {
					out = append(out, st)
				}
				continue
			}
			if delta > 0 {
				out = append(out, state.Stack{Item: item, Quantity: delta})
			}
		}
		out = append(out, st)
	}
	if !added && delta > 0 {
		out = append(out, state.Stack{Item: item, Quantity: delta})
	}
	return out
}
