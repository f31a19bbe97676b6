package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PlayersConfig configures the players scenario.
type PlayersConfig struct {
	// BaseURL is the API's root, such as http://127.0.0.1:5000.
	BaseURL string
	// Players is how many players play at once (--users).
	Players int
	// Mix is what they do; the zero Mix means DefaultMix.
	Mix Mix
	// RunID prefixes every username so reruns against the same server do
	// not collide; empty means a random one.
	RunID string
	// Seed makes the players' choices reproducible; 0 means random.
	Seed uint64
}

// Players is a prepared players scenario: the catalog has been read and
// every player has its own cookie jar.
type Players struct {
	runID   string
	players []*player
	clients []Client
}

// RunID is the prefix of this run's usernames.
func (p *Players) RunID() string { return p.runID }

// Clients are the players, one engine client each.
func (p *Players) Clients() []Client { return p.clients }

type itemKey struct{ item, quality string }

// scenario is what the players share, read-only once built.
type scenario struct {
	rt      http.RoundTripper
	base    *url.URL
	urls    map[string]string // route -> absolute URL
	mix     Mix
	actions weights
	// actionIndex maps the position of a name in actions to its action.
	actionIndex []int
	items       weights
	quals       weights
	price       map[itemKey]int64
	minPrice    int64 // of the mix's items and qualities
	dearest     itemKey
	password    string
}

// NewPlayers reads the server's catalog (GET /v1/items, not counted in the
// run), checks the mix against it and returns the players, ready to play.
func NewPlayers(ctx context.Context, rt http.RoundTripper, cfg PlayersConfig) (*Players, error) {
	if cfg.Players < 1 {
		return nil, fmt.Errorf("players scenario: --users %d: need at least one player", cfg.Players)
	}
	if cfg.Mix.Actions == nil && cfg.Mix.Items == nil {
		cfg.Mix = DefaultMix()
	}
	if err := cfg.Mix.Validate(); err != nil {
		return nil, fmt.Errorf("players scenario: %w", err)
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("players scenario: url %q: want http://host[:port]", cfg.BaseURL)
	}
	if cfg.RunID == "" {
		cfg.RunID = strings.ToLower(rand.Text()[:8])
	}
	if err := validRunID(cfg.RunID); err != nil {
		return nil, fmt.Errorf("players scenario: %w", err)
	}
	if cfg.Seed == 0 {
		cfg.Seed = mrand.Uint64()
	}
	sc := &scenario{
		rt:       rt,
		base:     base,
		urls:     make(map[string]string),
		mix:      cfg.Mix,
		actions:  newWeights(cfg.Mix.Actions),
		items:    newWeights(cfg.Mix.Items),
		quals:    newWeights(cfg.Mix.Qualities),
		password: "pw-" + cfg.RunID,
	}
	for _, name := range sc.actions.names {
		sc.actionIndex = append(sc.actionIndex, slices.Index(actionNames[:], name))
	}
	for _, r := range []string{"signup", "login", "logout", "items", "inventory", "buy", "sell", "cart",
		"cart/items", "cart/checkout", "guild/join", "guild/leave"} {
		sc.urls[r] = base.String() + "/v1/" + r
	}
	if err := sc.readCatalog(ctx); err != nil {
		return nil, err
	}
	p := &Players{runID: cfg.RunID, players: make([]*player, cfg.Players), clients: make([]Client, cfg.Players)}
	for i := range p.clients {
		pl := &player{
			sc:    sc,
			index: i,
			rng:   mrand.New(mrand.NewPCG(cfg.Seed, uint64(i))),
			runID: cfg.RunID,
		}
		pl.reset()
		p.players[i] = pl
		p.clients[i] = pl
	}
	return p, nil
}

// SetupResult is what Players.Setup did before the measured run.
type SetupResult struct {
	// Players signed up and logged in.
	Players int
	// Requests is how many signups and logins were sent, a signup whose
	// name was taken and retried under another included.
	Requests int64
	// Elapsed is from the first signup to the last login's answer.
	Elapsed time.Duration
}

// maxNameRetries bounds the signups of one player whose names are taken.
const maxNameRetries = 5

// Setup signs every player up and logs it in, at most concurrency players at
// a time and as fast as the server answers, like k6's setup stage: call it
// before Run, whose measured window then holds only the play. Its requests
// are recorded nowhere but in the SetupResult. Players that Run later
// replaces (a player left with nothing) still sign up inside Run, as part
// of the mix. A player whose name is taken takes another; any other
// failure (no answer, a 5xx, a 4xx) stops the setup with an error naming
// the player and the answer.
func (p *Players) Setup(ctx context.Context, concurrency int) (SetupResult, error) {
	if concurrency < 1 {
		return SetupResult{}, fmt.Errorf("players scenario setup: concurrency %d: need at least one", concurrency)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan *player)
	var (
		requests atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range min(concurrency, len(p.players)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pl := range todo {
				n, err := pl.enter(ctx)
				requests.Add(n)
				if err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, pl := range p.players {
		select {
		case todo <- pl:
		case <-ctx.Done():
			break feed
		}
	}
	close(todo)
	wg.Wait()
	res := SetupResult{Players: len(p.players), Requests: requests.Load(), Elapsed: time.Since(start)}
	if err := context.Cause(ctx); err != nil {
		return res, fmt.Errorf("players scenario setup: %w", err)
	}
	return res, nil
}

// enter signs the player up and logs it in, and reports how many requests
// that took.
func (p *player) enter(ctx context.Context) (int64, error) {
	var n int64
	for p.stage != stagePlaying {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var s Sample
		step := "signup"
		if p.stage == stageSignup {
			if n >= maxNameRetries {
				return n, fmt.Errorf("player %d: signup: %d names taken in a row", p.index, n)
			}
			s = p.signup(ctx)
		} else {
			step = "login"
			s = p.login(ctx)
		}
		n++
		switch {
		case s.ok():
		case step == "signup" && s.Status == http.StatusConflict:
			// signup took another name; try it
		case s.Err != nil:
			return n, fmt.Errorf("player %d (%s): %s: %w", p.index, p.username, step, s.Err)
		case step == "login" && s.Status == http.StatusTooManyRequests:
			return n, fmt.Errorf("player %d (%s): login: HTTP 429: %.200s: the server limits failed logins per client address, "+
				"and this scenario's wrong_password action sends them from here: run the server with --login-failures-per-address 0 "+
				"for load tests, or wait for the Retry-After", p.index, p.username, bytes.TrimSpace(p.resp.Bytes()))
		default:
			return n, fmt.Errorf("player %d (%s): %s: HTTP %d: %.200s", p.index, p.username, step, s.Status, p.resp.Bytes())
		}
	}
	return n, nil
}

// validRunID keeps usernames (run id, player, generation) within the API's
// rule: 1 to 32 letters, digits, '_', '-' or '.'.
func validRunID(id string) error {
	if len(id) > 16 {
		return fmt.Errorf("run id %q: at most 16 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("run id %q: only letters, digits, '_', '-' and '.'", id)
		}
	}
	return nil
}

// readCatalog learns the prices, so players only buy what they can pay
// for, and checks that the mix names only what the server sells.
func (sc *scenario) readCatalog(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sc.urls["items"], nil)
	if err != nil {
		return fmt.Errorf("players scenario: read catalog: %w", err)
	}
	resp, err := sc.rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("players scenario: read catalog: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("players scenario: read catalog: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("players scenario: read catalog: GET %s: %s", sc.urls["items"], resp.Status)
	}
	var cat struct {
		Items []struct {
			ItemType string `json:"item_type"`
			Quality  string `json:"quality"`
			Price    int64  `json:"price"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		return fmt.Errorf("players scenario: read catalog: %w", err)
	}
	sc.price = make(map[itemKey]int64, len(cat.Items))
	for _, e := range cat.Items {
		sc.price[itemKey{e.ItemType, e.Quality}] = e.Price
	}
	sc.minPrice = math.MaxInt64
	for _, it := range sc.items.names {
		for _, q := range sc.quals.names {
			k := itemKey{it, q}
			p, ok := sc.price[k]
			if !ok {
				return fmt.Errorf("players scenario: the mix names %s %s, which the server's catalog does not sell", q, it)
			}
			sc.minPrice = min(sc.minPrice, p)
			if p > sc.price[sc.dearest] {
				sc.dearest = k
			}
		}
	}
	return nil
}

// player is one simulated player. Its model of its own gold, items, cart
// and guild is kept in step with the server's answers, so that its actions
// succeed unless they are meant to fail.
type player struct {
	sc    *scenario
	index int
	rng   *mrand.Rand
	runID string

	client   *http.Client // with this player's cookie jar
	gen      int          // how many players this one has replaced
	username string
	stage    int
	gold     int64
	items    map[itemKey]int64
	cart     map[itemKey]int64
	guild    string

	body []byte       // the request body being built
	resp bytes.Buffer // the last answer's body
	keys []itemKey    // scratch for random picks
}

const (
	stageSignup = iota
	stageLogin
	stagePlaying
)

// reset makes the player a new one: a fresh name, jar and empty model.
func (p *player) reset() {
	jar, _ := cookiejar.New(nil) // cannot fail without options
	p.client = &http.Client{
		Transport:     p.sc.rt,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.username = p.runID + "-" + strconv.Itoa(p.index) + "-" + strconv.Itoa(p.gen)
	p.gen++
	p.stage = stageSignup
	p.gold = 0
	p.items = make(map[itemKey]int64)
	p.cart = make(map[itemKey]int64)
	p.guild = ""
}

// Do plays the player's next request: signing up, logging in, then one
// action drawn from the mix. A player who can afford nothing and owns
// nothing logs out and is replaced by a new one.
func (p *player) Do(ctx context.Context) Sample {
	switch p.stage {
	case stageSignup:
		return p.signup(ctx)
	case stageLogin:
		return p.login(ctx)
	}
	if p.gold < p.sc.minPrice && len(p.items) == 0 && len(p.cart) == 0 {
		s := p.send(ctx, actLogout, http.MethodPost, p.sc.urls["logout"], false, false)
		p.reset()
		return s
	}
	return p.act(ctx, p.sc.actionIndex[p.sc.actions.drawIndex(p.rng)])
}

func (p *player) signup(ctx context.Context) Sample {
	p.body = p.credentials(p.body[:0], p.username, p.sc.password)
	s := p.send(ctx, actSignup, http.MethodPost, p.sc.urls["signup"], true, false)
	switch {
	case s.ok():
		p.stage = stageLogin
		p.sync()
	case s.Status == http.StatusConflict:
		p.reset() // the name is taken: take another
	}
	return s
}

func (p *player) login(ctx context.Context) Sample {
	p.body = p.credentials(p.body[:0], p.username, p.sc.password)
	s := p.send(ctx, actLogin, http.MethodPost, p.sc.urls["login"], true, false)
	if s.Err == nil && s.Status == http.StatusTooManyRequests {
		// The server limits failed logins per address, and this
		// scenario's wrong passwords all come from here: a player whose
		// login it refuses plays on with the session its signup opened,
		// rather than asking again and again until the limit's window
		// closes. The refusal shows as an unexpected 4xx of login.
		p.stage = stagePlaying
		return s
	}
	if !s.ok() {
		return s
	}
	p.stage = stagePlaying
	v := p.sync()
	// The session travels in the cookie jar; should the server answer with
	// the token only, put it in the jar as the session cookie.
	if v.Token != "" && !p.hasSessionCookie() {
		p.client.Jar.SetCookies(p.sc.base, []*http.Cookie{{Name: "session", Value: v.Token, Path: "/"}})
	}
	return s
}

func (p *player) hasSessionCookie() bool {
	for _, c := range p.client.Jar.Cookies(p.sc.base) {
		if c.Name == "session" {
			return true
		}
	}
	return false
}

// act performs action a, or the nearest action that makes sense for the
// player's state when a does not (selling with nothing to sell buys).
func (p *player) act(ctx context.Context, a int) Sample {
	sc := p.sc
	switch a {
	case actItems:
		return p.send(ctx, a, http.MethodGet, sc.urls["items"], false, false)
	case actInventory:
		s := p.send(ctx, a, http.MethodGet, sc.urls["inventory"], false, false)
		if s.ok() {
			p.sync()
		}
		return s
	case actCart:
		s := p.send(ctx, a, http.MethodGet, sc.urls["cart"], false, false)
		if s.ok() {
			p.sync()
		}
		return s

	case actBuy:
		k, qty, ok := p.affordable(p.gold - p.cartTotal())
		if !ok {
			return p.act(ctx, p.fallback())
		}
		return p.placeOrder(ctx, a, sc.urls["buy"], k, qty, func() {
			p.gold -= sc.price[k] * qty
			p.items[k] += qty
		})

	case actSell:
		k, ok := p.randomKey(p.items)
		if !ok {
			return p.act(ctx, actBuy)
		}
		qty := 1 + p.rng.Int64N(p.items[k])
		return p.placeOrder(ctx, a, sc.urls["sell"], k, qty, func() {
			p.gold += sc.price[k] / 2 * qty
			p.take(p.items, k, qty)
		})

	case actCartAdd:
		k, qty, ok := p.affordable(p.gold - p.cartTotal())
		if !ok || len(p.cart) >= 40 {
			if len(p.cart) > 0 {
				return p.act(ctx, actCheckout)
			}
			return p.act(ctx, p.fallback())
		}
		return p.placeOrder(ctx, a, sc.urls["cart/items"], k, qty, func() { p.cart[k] += qty })

	case actCartRemove:
		k, ok := p.randomKey(p.cart)
		if !ok {
			return p.act(ctx, actCartAdd)
		}
		u := sc.urls["cart/items"] + "/" + url.PathEscape(k.item) + "?quality=" + url.QueryEscape(k.quality) +
			"&quantity=" + strconv.FormatInt(p.cart[k], 10)
		s := p.send(ctx, a, http.MethodDelete, u, false, false)
		if s.ok() {
			delete(p.cart, k)
			p.sync()
		}
		return s

	case actCheckout:
		if len(p.cart) == 0 {
			return p.act(ctx, actCartAdd)
		}
		s := p.send(ctx, a, http.MethodPost, sc.urls["cart/checkout"], false, false)
		if s.ok() {
			p.gold -= p.cartTotal()
			for k, q := range p.cart {
				p.items[k] += q
			}
			clear(p.cart)
			p.sync()
		}
		return s

	case actJoinGuild:
		if p.guild != "" {
			return p.act(ctx, actLeaveGuild)
		}
		g := sc.mix.Guilds[p.rng.IntN(len(sc.mix.Guilds))]
		p.body = p.guildBody(p.body[:0], g)
		s := p.send(ctx, a, http.MethodPost, sc.urls["guild/join"], true, false)
		if s.ok() {
			p.guild = g
		}
		return s

	case actLeaveGuild:
		if p.guild == "" {
			return p.act(ctx, actJoinGuild)
		}
		s := p.send(ctx, a, http.MethodPost, sc.urls["guild/leave"], false, false)
		if s.ok() {
			p.guild = ""
		}
		return s

	// Deliberately failed actions: a 4xx answer is what they are for.
	case actBuyWithoutGold:
		k := sc.dearest
		qty := p.gold/sc.price[k] + 1
		if qty > 1000 {
			return p.act(ctx, actBuy) // too rich to fail at this
		}
		p.body = p.order(p.body[:0], k, qty)
		return p.send(ctx, a, http.MethodPost, sc.urls["buy"], true, true)

	case actSellUnowned:
		for range 8 {
			k := itemKey{sc.items.draw(p.rng), sc.quals.draw(p.rng)}
			if p.items[k] == 0 {
				p.body = p.order(p.body[:0], k, 1)
				return p.send(ctx, a, http.MethodPost, sc.urls["sell"], true, true)
			}
		}
		return p.act(ctx, actSell)

	case actUnknownItem:
		p.body = p.order(p.body[:0], itemKey{"dragon", sc.quals.names[0]}, 1)
		return p.send(ctx, a, http.MethodPost, sc.urls["buy"], true, true)

	case actNoSession:
		return p.sendBare(ctx, a, http.MethodGet, sc.urls["inventory"], false)

	case actWrongPassword:
		p.body = p.credentials(p.body[:0], p.username, "not-"+sc.password)
		return p.sendBare(ctx, a, http.MethodPost, sc.urls["login"], true)

	case actGuildConflict:
		if p.guild == "" {
			return p.send(ctx, a, http.MethodPost, sc.urls["guild/leave"], false, true)
		}
		p.body = p.guildBody(p.body[:0], sc.mix.Guilds[p.rng.IntN(len(sc.mix.Guilds))])
		return p.send(ctx, a, http.MethodPost, sc.urls["guild/join"], true, true)
	}
	return p.act(ctx, actInventory)
}

// fallback is what a player who cannot afford the action does instead.
func (p *player) fallback() int {
	switch {
	case len(p.items) > 0:
		return actSell
	case len(p.cart) > 0:
		return actCartRemove
	default:
		return actInventory
	}
}

// affordable draws an item and quality from the mix and a quantity the
// budget pays for; when the draw is too dear it tries the cheapest quality
// of the drawn item, and reports false when even that is.
func (p *player) affordable(budget int64) (itemKey, int64, bool) {
	sc := p.sc
	k := itemKey{sc.items.draw(p.rng), sc.quals.draw(p.rng)}
	if sc.price[k] > budget {
		for _, q := range sc.quals.names {
			if c := (itemKey{k.item, q}); sc.price[c] <= budget && (sc.price[k] > budget || sc.price[c] < sc.price[k]) {
				k = c
			}
		}
	}
	price := sc.price[k]
	if price > budget {
		return k, 0, false
	}
	qty := min(1+p.rng.Int64N(int64(sc.mix.MaxQuantity)), budget/price)
	return k, qty, true
}

func (p *player) cartTotal() int64 {
	var t int64
	for k, q := range p.cart {
		t += p.sc.price[k] * q
	}
	return t
}

func (p *player) take(m map[itemKey]int64, k itemKey, qty int64) {
	if m[k] -= qty; m[k] <= 0 {
		delete(m, k)
	}
}

// randomKey picks one of m's keys at random.
func (p *player) randomKey(m map[itemKey]int64) (itemKey, bool) {
	if len(m) == 0 {
		return itemKey{}, false
	}
	p.keys = p.keys[:0]
	for k := range m {
		p.keys = append(p.keys, k)
	}
	// Map order is random but not uniform; sort for a seed to replay a run.
	slices.SortFunc(p.keys, func(a, b itemKey) int {
		return cmp.Or(cmp.Compare(a.item, b.item), cmp.Compare(a.quality, b.quality))
	})
	return p.keys[p.rng.IntN(len(p.keys))], true
}

func (p *player) credentials(b []byte, user, password string) []byte {
	b = append(b, `{"username":`...)
	b = strconv.AppendQuote(b, user)
	b = append(b, `,"password":`...)
	b = strconv.AppendQuote(b, password)
	return append(b, '}')
}

// placeOrder posts an order of qty of k to u and, once the server has
// accepted it, applies it to what the player believes it holds and syncs.
func (p *player) placeOrder(ctx context.Context, a int, u string, k itemKey, qty int64, apply func()) Sample {
	p.body = p.order(p.body[:0], k, qty)
	s := p.send(ctx, a, http.MethodPost, u, true, false)
	if s.ok() {
		apply()
		p.sync()
	}
	return s
}

func (p *player) order(b []byte, k itemKey, qty int64) []byte {
	b = append(b, `{"item":`...)
	b = strconv.AppendQuote(b, k.item)
	b = append(b, `,"quality":`...)
	b = strconv.AppendQuote(b, k.quality)
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, qty, 10)
	return append(b, '}')
}

func (p *player) guildBody(b []byte, g string) []byte {
	b = append(b, `{"guild":`...)
	b = strconv.AppendQuote(b, g)
	return append(b, '}')
}

// send makes one request with the player's cookie jar, with p.body as its
// JSON body when withBody, and keeps the answer's body in p.resp.
func (p *player) send(ctx context.Context, a int, method, u string, withBody, expectFail bool) Sample {
	return p.do(ctx, p.client, a, method, u, withBody, expectFail)
}

// sendBare makes a request without the player's cookies, for the actions
// that must fail for want of a session, and that must not touch the jar.
func (p *player) sendBare(ctx context.Context, a int, method, u string, withBody bool) Sample {
	return p.do(ctx, &http.Client{Transport: p.sc.rt, CheckRedirect: p.client.CheckRedirect}, a, method, u, withBody, true)
}

func (p *player) do(ctx context.Context, c *http.Client, a int, method, u string, withBody, expectFail bool) Sample {
	var body io.Reader
	if withBody {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return Sample{Action: a, Err: err, ExpectFailure: expectFail}
	}
	if withBody {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "questlog-load")
	p.resp.Reset()
	resp, err := c.Do(req)
	if err != nil {
		return Sample{Action: a, Err: err, ExpectFailure: expectFail}
	}
	n, err := p.resp.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return Sample{Action: a, Err: fmt.Errorf("read answer: %w", err), Bytes: n, ExpectFailure: expectFail}
	}
	return Sample{Action: a, Status: resp.StatusCode, Bytes: n, ExpectFailure: expectFail}
}

func (s Sample) ok() bool { return s.Err == nil && s.Status >= 200 && s.Status < 300 }

// answer is the part of an API answer a player keeps in step with: the
// login's token, the gold, guild and items of an inventory, the items of a
// cart (an answer with "cart_size").
type answer struct {
	User     string  `json:"user"`
	Token    string  `json:"token"`
	Gold     *int64  `json:"gold"`
	Guild    *string `json:"guild"`
	CartSize *int64  `json:"cart_size"`
	Items    *[]struct {
		ItemType string `json:"item_type"`
		Quality  string `json:"quality"`
		Quantity int64  `json:"quantity"`
	} `json:"items"`
}

// sync reads the last answer and brings the player's model in line with it.
func (p *player) sync() answer {
	var v answer
	if err := json.Unmarshal(p.resp.Bytes(), &v); err != nil {
		return answer{} // an answer that is not JSON leaves the model as it is
	}
	if v.CartSize != nil {
		if v.Items != nil {
			clear(p.cart)
			for _, it := range *v.Items {
				if it.Quantity > 0 {
					p.cart[itemKey{it.ItemType, it.Quality}] = it.Quantity
				}
			}
		}
		return v
	}
	if v.Gold != nil {
		p.gold = *v.Gold
	}
	if v.Items != nil && v.User != "" {
		clear(p.items)
		for _, it := range *v.Items {
			if it.Quantity > 0 {
				p.items[itemKey{it.ItemType, it.Quality}] = it.Quantity
			}
		}
		p.guild = ""
		if v.Guild != nil {
			p.guild = *v.Guild
		}
	}
	return v
}
