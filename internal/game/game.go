// Package game holds questlog's rules: accounts and sessions, the shop, the
// cart, inventories and guilds. Every action returns its outcome and leaves
// exactly one event in the Journal, ok or failed.
//
// Its guarantee: no state change without its event, no ok event without its
// state change. An action locks the player, decides, records the event, and
// only once the journal has acknowledged it applies the change; when the
// journal fails, nothing changes and ErrLogUnavailable is returned.
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
	"sync"
	"time"
	"unicode/utf8"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/state"
	"golang.org/x/crypto/bcrypt"
)

// Journal durably records events. Record returns only once the event is
// stored (for Kafka: acknowledged by the broker), or with an error when it is
// not. Record must not keep ev after it returns: the Service reuses it.
type Journal interface {
	Record(ctx context.Context, ev *event.Event) error
}

// Request is who asks and from where: what every event of a request carries.
type Request struct {
	Token string // the session token, empty when none was sent
	HTTP  event.HTTP
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

// Config configures a Service. Zero values take the defaults below.
type Config struct {
	Catalog      *Catalog         // default DefaultCatalog()
	StartingGold int64            // default 1000
	SessionTTL   time.Duration    // default 24h
	PasswordCost int              // bcrypt cost, default bcrypt.DefaultCost (10)
	Now          func() time.Time // default time.Now
	Logger       *slog.Logger     // default slog.Default()
}

// Service plays the game against a store, recording every action's event.
type Service struct {
	store   state.Store
	journal Journal
	cat     *Catalog
	gold    int64
	ttl     time.Duration
	cost    int
	now     func() time.Time
	log     *slog.Logger
	ids     event.IDs
	dummy   []byte    // a hash to compare against for unknown users
	actions sync.Pool // of *action: a request's event is ~500 bytes
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
	if cfg.PasswordCost < bcrypt.MinCost || cfg.PasswordCost > bcrypt.MaxCost {
		return fmt.Errorf("game: password cost %d out of range %d..%d", cfg.PasswordCost, bcrypt.MinCost, bcrypt.MaxCost)
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
	dummy, err := bcrypt.GenerateFromPassword([]byte("questlog-timing-equalizer"), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("game: %w", err)
	}
	s := &Service{
		store: store, journal: journal, cat: cfg.Catalog, gold: cfg.StartingGold,
		ttl: cfg.SessionTTL, cost: cfg.PasswordCost, now: cfg.Now, log: cfg.Logger, dummy: dummy,
	}
	s.actions.New = func() any { return new(action) }
	return s, nil
}

// Catalog is the shop's price list.
func (s *Service) Catalog() *Catalog { return s.cat }

// action is one request in flight: its event, and whether the event is
// already in the journal.
type action struct {
	ev       event.Event
	recorded bool
}

// begin starts an action with its event. Actions are pooled: every begin is
// paired with a deferred end, and nothing keeps an action or its event after
// end (a Journal does not retain the event).
func (s *Service) begin(typ string, req Request) *action {
	now := s.now()
	a := s.actions.Get().(*action)
	a.ev = event.Event{
		ID:     s.ids.New(now),
		Type:   typ,
		Time:   now,
		Status: event.StatusOK,
		HTTP:   req.HTTP,
	}
	return a
}

// end returns a to the pool, dropping what it referenced.
func (s *Service) end(a *action) {
	*a = action{}
	s.actions.Put(a)
}

// commit records the ok event and then applies the change. When recording
// fails, nothing is applied.
func (s *Service) commit(ctx context.Context, a *action, apply func() error) error {
	if err := s.journal.Record(ctx, &a.ev); err != nil {
		return fmt.Errorf("%w: %w", ErrLogUnavailable, err)
	}
	a.recorded = true
	if err := apply(); err != nil {
		// The event is in the log and the change is not in the store: the
		// store failed right after answering this request's reads. Nothing
		// can take the event back, so say it loudly.
		s.log.ErrorContext(ctx, "state change lost after its event was recorded",
			"event_id", a.ev.ID, "event_type", a.ev.Type, "user", a.ev.User, "err", err)
		return fmt.Errorf("apply %s for %s: %w", a.ev.Type, a.ev.User, err)
	}
	return nil
}

// finish records the failed event of a refused request, so that every
// request leaves exactly one event, and returns the error to report.
func (s *Service) finish(ctx context.Context, a *action, err error) error {
	if err == nil || a.recorded || errors.Is(err, ErrLogUnavailable) {
		return err
	}
	var rej *Rejection
	if errors.As(err, &rej) {
		a.ev.Fail(rej.Reason)
	} else {
		a.ev.Fail("internal_error")
	}
	if rerr := s.journal.Record(ctx, &a.ev); rerr != nil {
		return fmt.Errorf("%w: %w", ErrLogUnavailable, rerr)
	}
	return err
}

// authenticate resolves the request's session to a username and sets the
// event's user.
func (s *Service) authenticate(ctx context.Context, a *action, req Request) (string, error) {
	if req.Token == "" {
		return "", ErrUnauthenticated
	}
	sess, err := s.store.Session(ctx, hashToken(req.Token))
	if errors.Is(err, state.ErrNotFound) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", fmt.Errorf("look up session: %w", err)
	}
	a.ev.User = sess.User
	return sess.User, nil
}

// lockPlayer takes the player's lock and reads the player.
func (s *Service) lockPlayer(ctx context.Context, user string) (state.Player, func(), error) {
	unlock, err := s.store.Lock(ctx, user)
	if err != nil {
		return state.Player{}, nil, fmt.Errorf("lock %s: %w", user, err)
	}
	p, err := s.store.Player(ctx, user)
	if err != nil {
		unlock()
		if errors.Is(err, state.ErrNotFound) {
			// The session outlived its account: treat it as no session.
			return state.Player{}, nil, ErrUnauthenticated
		}
		return state.Player{}, nil, fmt.Errorf("read player %s: %w", user, err)
	}
	return p, unlock, nil
}

// Signup creates an account with the starting gold and logs it in.
func (s *Service) Signup(ctx context.Context, req Request, username, password string) (Session, error) {
	a := s.begin(event.TypeSignup, req)
	defer s.end(a)
	sess, err := s.signup(ctx, a, username, password)
	return sess, s.finish(ctx, a, err)
}

func (s *Service) signup(ctx context.Context, a *action, username, password string) (Session, error) {
	if err := validName("username", username); err != nil {
		return Session{}, ErrInvalidUsername
	}
	a.ev.User = username
	if !validPassword(password) {
		return Session{}, ErrInvalidPassword
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return Session{}, fmt.Errorf("hash password: %w", err)
	}
	unlock, err := s.store.Lock(ctx, username)
	if err != nil {
		return Session{}, fmt.Errorf("lock %s: %w", username, err)
	}
	defer unlock()
	switch _, err := s.store.Player(ctx, username); {
	case err == nil:
		return Session{}, ErrAlreadyExists
	case !errors.Is(err, state.ErrNotFound):
		return Session{}, fmt.Errorf("read player %s: %w", username, err)
	}
	a.ev.GoldAfter = event.Some(s.gold)
	err = s.commit(ctx, a, func() error {
		return s.store.CreateAccount(ctx, state.Account{
			User: username, PasswordHash: hash, Gold: s.gold, CreatedAt: a.ev.Time,
		})
	})
	if err != nil {
		return Session{}, err
	}
	return s.newSession(ctx, username, s.gold)
}

// Login checks a password and opens a session.
func (s *Service) Login(ctx context.Context, req Request, username, password string) (Session, error) {
	a := s.begin(event.TypeLogin, req)
	defer s.end(a)
	sess, err := s.login(ctx, a, username, password)
	return sess, s.finish(ctx, a, err)
}

func (s *Service) login(ctx context.Context, a *action, username, password string) (Session, error) {
	if err := validName("username", username); err != nil {
		return Session{}, ErrInvalidUsername
	}
	a.ev.User = username
	if !validPassword(password) {
		return Session{}, ErrInvalidPassword
	}
	p, err := s.store.Player(ctx, username)
	if errors.Is(err, state.ErrNotFound) {
		// Spend the time a real check takes, so timing does not tell
		// which usernames exist.
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return Session{}, ErrUnknownUser
	}
	if err != nil {
		return Session{}, fmt.Errorf("read player %s: %w", username, err)
	}
	if bcrypt.CompareHashAndPassword(p.PasswordHash, []byte(password)) != nil {
		return Session{}, ErrBadPassword
	}
	a.ev.GoldAfter = event.Some(p.Gold)
	if err := s.commit(ctx, a, func() error { return nil }); err != nil {
		return Session{}, err
	}
	return s.newSession(ctx, username, p.Gold)
}

func (s *Service) newSession(ctx context.Context, user string, gold int64) (Session, error) {
	var raw [16]byte // 128 bits
	if _, err := rand.Read(raw[:]); err != nil {
		return Session{}, fmt.Errorf("new session token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	expires := s.now().Add(s.ttl).UTC().Truncate(time.Second)
	if err := s.store.CreateSession(ctx, state.Session{TokenHash: hashToken(token), User: user, ExpiresAt: expires}); err != nil {
		return Session{}, fmt.Errorf("store session for %s: %w", user, err)
	}
	return Session{User: user, Token: token, ExpiresAt: expires, Gold: gold}, nil
}

// Logout ends the request's session.
func (s *Service) Logout(ctx context.Context, req Request) error {
	a := s.begin(event.TypeLogout, req)
	defer s.end(a)
	err := s.logout(ctx, a, req)
	return s.finish(ctx, a, err)
}

func (s *Service) logout(ctx context.Context, a *action, req Request) error {
	if _, err := s.authenticate(ctx, a, req); err != nil {
		return err
	}
	return s.commit(ctx, a, func() error { return s.store.DeleteSession(ctx, hashToken(req.Token)) })
}

// Visit records a request that is not a game action (the seed's "/"). A
// valid session attributes it to its player; no session is needed.
func (s *Service) Visit(ctx context.Context, req Request) error {
	a := s.begin(event.TypeDefault, req)
	defer s.end(a)
	if req.Token != "" {
		if _, err := s.authenticate(ctx, a, req); err != nil && !errors.Is(err, ErrUnauthenticated) {
			return s.finish(ctx, a, err)
		}
	}
	return s.finish(ctx, a, s.commit(ctx, a, func() error { return nil }))
}

// Reject records a request refused before it reached the game (unreadable
// body, missing fields) as a failed event of the given type.
func (s *Service) Reject(ctx context.Context, req Request, eventType string, rej *Rejection) error {
	a := s.begin(eventType, req)
	defer s.end(a)
	if req.Token != "" {
		if _, err := s.authenticate(ctx, a, req); err != nil && !errors.Is(err, ErrUnauthenticated) {
			return s.finish(ctx, a, err)
		}
	}
	return s.finish(ctx, a, rej)
}

// Items lists the catalog.
func (s *Service) Items(ctx context.Context, req Request) ([]CatalogEntry, error) {
	a := s.begin(event.TypeViewCatalog, req)
	defer s.end(a)
	if req.Token != "" {
		if _, err := s.authenticate(ctx, a, req); err != nil && !errors.Is(err, ErrUnauthenticated) {
			return nil, s.finish(ctx, a, err)
		}
	}
	if err := s.finish(ctx, a, s.commit(ctx, a, func() error { return nil })); err != nil {
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
	a := s.begin(typ, req)
	defer s.end(a)
	p, err := s.readView(ctx, a, req)
	return p, s.finish(ctx, a, err)
}

func (s *Service) readView(ctx context.Context, a *action, req Request) (state.Player, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return state.Player{}, err
	}
	p, err := s.store.Player(ctx, user)
	if errors.Is(err, state.ErrNotFound) {
		return state.Player{}, ErrUnauthenticated
	}
	if err != nil {
		return state.Player{}, fmt.Errorf("read player %s: %w", user, err)
	}
	a.ev.GoldAfter = event.Some(p.Gold)
	if a.ev.Type == event.TypeViewCart {
		a.ev.CartSize = event.Some(units(p.Cart))
		a.ev.ItemCount = event.Some(int64(len(p.Cart)))
	} else {
		a.ev.ItemCount = event.Some(units(p.Inventory))
	}
	return p, s.commit(ctx, a, func() error { return nil })
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
	a := s.begin(event.TypeBuyItem, req)
	defer s.end(a)
	r, err := s.trade(ctx, a, req, o, true)
	return r, s.finish(ctx, a, err)
}

// Sell returns items to the shop for half their price.
func (s *Service) Sell(ctx context.Context, req Request, o Order) (Receipt, error) {
	a := s.begin(event.TypeSellItem, req)
	defer s.end(a)
	r, err := s.trade(ctx, a, req, o, false)
	return r, s.finish(ctx, a, err)
}

// trade is a purchase (items in, gold out) or a sale (items out, gold in):
// the same steps with opposite signs, a different price and a different
// thing to run short of.
func (s *Service) trade(ctx context.Context, a *action, req Request, o Order, buying bool) (Receipt, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return Receipt{}, err
	}
	item, price, err := s.resolve(a, o, false)
	if err != nil {
		return Receipt{}, err
	}
	if !buying {
		price, _ = s.cat.SellPrice(item.Type, item.Quality)
	}
	total := price * o.Quantity
	a.ev.UnitPrice, a.ev.TotalPrice = event.Some(price), event.Some(total)
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return Receipt{}, err
	}
	defer unlock()
	a.ev.GoldAfter = event.Some(p.Gold)
	gold, items := -total, o.Quantity // what the player gains
	switch {
	case buying && p.Gold < total:
		return Receipt{}, ErrInsufficientGold
	case !buying && quantityOf(p.Inventory, item) < o.Quantity:
		return Receipt{}, ErrInsufficientItem
	case !buying:
		gold, items = total, -o.Quantity
	}
	a.ev.GoldAfter = event.Some(p.Gold + gold)
	change := state.Change{GoldDelta: gold, Inventory: []state.Stack{{Item: item, Quantity: items}}}
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, change) }); err != nil {
		return Receipt{}, err
	}
	p.Gold += gold
	p.Inventory = addStack(p.Inventory, item, items)
	return Receipt{Player: p, TotalPrice: total}, nil
}

// CartAdd puts items in the cart; nothing is paid until checkout.
func (s *Service) CartAdd(ctx context.Context, req Request, o Order) (state.Player, error) {
	a := s.begin(event.TypeCartAdd, req)
	defer s.end(a)
	p, err := s.cartAdd(ctx, a, req, o)
	return p, s.finish(ctx, a, err)
}

func (s *Service) cartAdd(ctx context.Context, a *action, req Request, o Order) (state.Player, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return state.Player{}, err
	}
	item, price, err := s.resolve(a, o, false)
	if err != nil {
		return state.Player{}, err
	}
	a.ev.UnitPrice = event.Some(price)
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return state.Player{}, err
	}
	defer unlock()
	have := quantityOf(p.Cart, item)
	if have+o.Quantity > maxQuantity || (have == 0 && len(p.Cart) >= maxCartLines) {
		a.ev.CartSize = event.Some(units(p.Cart))
		return state.Player{}, ErrCartFull
	}
	p.Cart = addStack(p.Cart, item, o.Quantity)
	a.ev.CartSize = event.Some(units(p.Cart))
	change := state.Change{Cart: []state.Stack{{Item: item, Quantity: o.Quantity}}}
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, change) }); err != nil {
		return state.Player{}, err
	}
	return p, nil
}

// CartRemove takes items out of the cart; a zero quantity removes the line.
func (s *Service) CartRemove(ctx context.Context, req Request, o Order) (state.Player, error) {
	a := s.begin(event.TypeCartRemove, req)
	defer s.end(a)
	p, err := s.cartRemove(ctx, a, req, o)
	return p, s.finish(ctx, a, err)
}

func (s *Service) cartRemove(ctx context.Context, a *action, req Request, o Order) (state.Player, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return state.Player{}, err
	}
	item, _, err := s.resolve(a, o, true)
	if err != nil {
		return state.Player{}, err
	}
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return state.Player{}, err
	}
	defer unlock()
	have := quantityOf(p.Cart, item)
	qty := o.Quantity
	if qty == 0 {
		qty = have
	}
	if have == 0 || qty > have {
		a.ev.CartSize = event.Some(units(p.Cart))
		return state.Player{}, ErrNotInCart
	}
	a.ev.Quantity = event.Some(qty)
	p.Cart = addStack(p.Cart, item, -qty)
	a.ev.CartSize = event.Some(units(p.Cart))
	change := state.Change{Cart: []state.Stack{{Item: item, Quantity: -qty}}}
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, change) }); err != nil {
		return state.Player{}, err
	}
	return p, nil
}

// Checkout buys everything in the cart at once, or nothing.
func (s *Service) Checkout(ctx context.Context, req Request) (Receipt, error) {
	a := s.begin(event.TypeCheckout, req)
	defer s.end(a)
	r, err := s.checkout(ctx, a, req)
	return r, s.finish(ctx, a, err)
}

func (s *Service) checkout(ctx context.Context, a *action, req Request) (Receipt, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return Receipt{}, err
	}
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return Receipt{}, err
	}
	defer unlock()
	a.ev.GoldAfter = event.Some(p.Gold)
	a.ev.CartSize = event.Some(units(p.Cart))
	a.ev.ItemCount = event.Some(int64(len(p.Cart)))
	if len(p.Cart) == 0 {
		return Receipt{}, ErrEmptyCart
	}
	var total int64
	for _, line := range p.Cart {
		price, err := s.cat.Price(line.Type, line.Quality)
		if err != nil {
			// The catalog changed since the item was carted.
			return Receipt{}, err
		}
		total += price * line.Quantity
	}
	a.ev.TotalPrice = event.Some(total)
	if p.Gold < total {
		return Receipt{}, ErrInsufficientGold
	}
	a.ev.GoldAfter = event.Some(p.Gold - total)
	change := state.Change{GoldDelta: -total, Inventory: p.Cart, ClearCart: true}
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, change) }); err != nil {
		return Receipt{}, err
	}
	p.Gold -= total
	for _, line := range p.Cart {
		p.Inventory = addStack(p.Inventory, line.Item, line.Quantity)
	}
	p.Cart = nil
	return Receipt{Player: p, TotalPrice: total}, nil
}

// JoinGuild makes the player a member of a guild; one guild at a time.
func (s *Service) JoinGuild(ctx context.Context, req Request, guild string) (state.Player, error) {
	a := s.begin(event.TypeJoinGuild, req)
	defer s.end(a)
	p, err := s.joinGuild(ctx, a, req, guild)
	return p, s.finish(ctx, a, err)
}

func (s *Service) joinGuild(ctx context.Context, a *action, req Request, guild string) (state.Player, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return state.Player{}, err
	}
	if validName("guild", guild) != nil {
		return state.Player{}, ErrInvalidGuild
	}
	a.ev.Guild = guild
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return state.Player{}, err
	}
	defer unlock()
	if p.Guild != "" {
		return state.Player{}, ErrAlreadyInGuild
	}
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, state.Change{Guild: &guild}) }); err != nil {
		return state.Player{}, err
	}
	p.Guild = guild
	return p, nil
}

// LeaveGuild takes the player out of their guild.
func (s *Service) LeaveGuild(ctx context.Context, req Request) (state.Player, error) {
	a := s.begin(event.TypeLeaveGuild, req)
	defer s.end(a)
	p, err := s.leaveGuild(ctx, a, req)
	return p, s.finish(ctx, a, err)
}

func (s *Service) leaveGuild(ctx context.Context, a *action, req Request) (state.Player, error) {
	user, err := s.authenticate(ctx, a, req)
	if err != nil {
		return state.Player{}, err
	}
	p, unlock, err := s.lockPlayer(ctx, user)
	if err != nil {
		return state.Player{}, err
	}
	defer unlock()
	if p.Guild == "" {
		return state.Player{}, ErrNotInGuild
	}
	a.ev.Guild = p.Guild
	none := ""
	if err := s.commit(ctx, a, func() error { return s.store.Apply(ctx, user, state.Change{Guild: &none}) }); err != nil {
		return state.Player{}, err
	}
	p.Guild = ""
	return p, nil
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
