package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state"
)

// reasonTooLarge is the failed event's reason for an oversized body (413).
const reasonTooLarge = "body_too_large"

var errTooLarge = &game.Rejection{Reason: reasonTooLarge, Message: "the request body is too large"}

// sessionCookie is the cookie that carries the session token.
const sessionCookie = "session"

// request describes r for the game: its session token and its http object.
func request(r *http.Request) game.Request {
	req := game.Request{HTTP: event.FromRequest(r)}
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		req.Token = strings.TrimSpace(auth[7:])
	} else if c, err := r.Cookie(sessionCookie); err == nil {
		req.Token = c.Value
	}
	return req
}

// credentials is the body of signup and login.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// orderBody is the body of buy, sell and cart/items.
type orderBody struct {
	Item     string `json:"item"`
	Quality  string `json:"quality"`
	Quantity *int64 `json:"quantity"`
}

type guildBody struct {
	Guild string `json:"guild"`
}

// decode reads a JSON body into v, whose fields are keys. An empty body
// leaves v as it is. The body must be one JSON object whose keys are among
// keys, each at most once and spelled exactly: encoding/json alone would
// take "Item" for "item", let a repeated key win silently, and skip
// unknown keys, so that a client's typo or a proxy's rewrite would pass for
// something else. The rejection says what was wrong, for the failed event
// and the answer.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, keys []string) *game.Rejection {
	bp := s.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			s.bufs.Put(bp)
		}
	}()
	body := bytes.NewBuffer((*bp)[:0])
	_, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxBody))
	*bp = body.Bytes()[:0]
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case err != nil:
		return &game.Rejection{Reason: game.ErrBadRequest.Reason, Message: "the body could not be read"}
	case len(bytes.TrimSpace(body.Bytes())) == 0:
		return nil
	}
	if rej := checkKeys(body.Bytes(), keys); rej != nil {
		return rej
	}
	var typeErr *json.UnmarshalTypeError
	switch err := json.Unmarshal(body.Bytes(), v); {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "quantity":
		return game.ErrInvalidQuantity
	case errors.As(err, &typeErr):
		return badRequest("field %q has the wrong type", typeErr.Field)
	default:
		return badRequest("malformed JSON: %v", err)
	}
}

// checkKeys checks that body is one JSON object whose keys are among keys,
// none repeated.
func checkKeys(body []byte, keys []string) *game.Rejection {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil {
		return badRequest("malformed JSON: %v", err)
	} else if tok != json.Delim('{') {
		return badRequest("the body must be a JSON object")
	}
	var seen uint64 // bit i: keys[i] was seen (keysOf allows 64 keys)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badRequest("malformed JSON: %v", err)
		}
		key, _ := tok.(string) // an object's key is always a string
		i := slices.Index(keys, key)
		switch {
		case i < 0 && slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, key) }):
			return badRequest("unknown field %q: field names are lower case", clipKey(key))
		case i < 0:
			return badRequest("unknown field %q (expected %s)", clipKey(key), strings.Join(keys, ", "))
		case seen&(1<<i) != 0:
			return badRequest("field %q appears twice", key)
		}
		seen |= 1 << i
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return badRequest("malformed JSON: %v", err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return badRequest("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the body must be one JSON object")
	}
	return nil
}

// clipKey bounds a client's key quoted back in a message.
func clipKey(k string) string {
	if len(k) > 40 {
		return k[:40] + "..."
	}
	return k
}

func badRequest(format string, args ...any) *game.Rejection {
	return &game.Rejection{Reason: game.ErrBadRequest.Reason, Message: fmt.Sprintf(format, args...)}
}

// keysOf lists the JSON keys of a body type's fields.
func keysOf(v any) []string {
	t := reflect.TypeOf(v)
	if t.NumField() > 64 {
		panic("api: a body type with more than 64 fields") // checkKeys's bit set
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

// The keys of each body.
var (
	credentialKeys = keysOf(credentials{})
	orderKeys      = keysOf(orderBody{})
	guildKeys      = keysOf(guildBody{})
)

func (o orderBody) order() game.Order {
	q := int64(1)
	if o.Quantity != nil {
		q = *o.Quantity
	}
	return game.Order{Item: o.Item, Quality: o.Quality, Quantity: q}
}

// fail answers a refused request as JSON.
func (s *Server) fail(w http.ResponseWriter, err error) {
	code, reason, message := s.refusal(w, err)
	writeJSON(w, code, errorBody{Error: reason, Message: message})
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// reject records a request the API could not read as a failed event, then
// answers it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, eventType string, rej *game.Rejection) {
	s.fail(w, s.game.Reject(r.Context(), request(r), eventType, rej))
}

type sessionBody struct {
	User      string    `json:"user"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Gold      int64     `json:"gold"`
}

type stackBody struct {
	ItemType string `json:"item_type"`
	Quality  string `json:"quality"`
	Quantity int64  `json:"quantity"`
}

type inventoryBody struct {
	User       string      `json:"user"`
	Gold       int64       `json:"gold"`
	Guild      string      `json:"guild"`
	Items      []stackBody `json:"items"`
	TotalPrice *int64      `json:"total_price,omitempty"`
}

type cartBody struct {
	User       string      `json:"user"`
	Items      []stackBody `json:"items"`
	CartSize   int64       `json:"cart_size"`
	TotalPrice int64       `json:"total_price"`
}

func stacks(in []state.Stack) []stackBody {
	out := make([]stackBody, 0, len(in))
	for _, st := range in {
		out = append(out, stackBody{ItemType: st.Type, Quality: st.Quality, Quantity: st.Quantity})
	}
	return out
}

func inventoryOf(p state.Player) inventoryBody {
	return inventoryBody{User: p.User, Gold: p.Gold, Guild: p.Guild, Items: stacks(p.Inventory)}
}

func receiptOf(rc game.Receipt) inventoryBody {
	b := inventoryOf(rc.Player)
	b.TotalPrice = &rc.TotalPrice
	return b
}

func (s *Server) cartOf(p state.Player) cartBody {
	b := cartBody{User: p.User, Items: stacks(p.Cart)}
	for _, st := range p.Cart {
		b.CartSize += st.Quantity
		if price, err := s.game.Catalog().Price(st.Type, st.Quality); err == nil {
			b.TotalPrice += price * st.Quantity
		}
	}
	return b
}

// setSessionCookie sets the session cookie: SameSite=Strict, because the
// seed's GET routes change state and a link on another site must not carry
// the cookie to them; HttpOnly; Secure when the client came over https.
func setSessionCookie(w http.ResponseWriter, r *http.Request, sess game.Session) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
}

// overTLS says whether the client reached us over https: directly, or
// through a proxy that says so in X-Forwarded-Proto or Forwarded (the
// client-side hop, the first). Trusting a client that lies here is
// harmless: a Secure cookie is only one that its browser keeps off plain
// http.
func overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if v := r.Header["X-Forwarded-Proto"]; len(v) > 0 {
		first, _, _ := strings.Cut(v[0], ",")
		if strings.EqualFold(strings.TrimSpace(first), "https") {
			return true
		}
	}
	if v := r.Header["Forwarded"]; len(v) > 0 {
		hop, _, _ := strings.Cut(v[0], ",")
		for pair := range strings.SplitSeq(hop, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if strings.EqualFold(name, "proto") && strings.EqualFold(strings.Trim(value, `"`), "https") {
				return true
			}
		}
	}
	return false
}

func (s *Server) v1Signup(w http.ResponseWriter, r *http.Request) { s.v1Credentials(w, r, true) }
func (s *Server) v1Login(w http.ResponseWriter, r *http.Request)  { s.v1Credentials(w, r, false) }

func (s *Server) v1Credentials(w http.ResponseWriter, r *http.Request, signup bool) {
	typ := event.TypeLogin
	if signup {
		typ = event.TypeSignup
	}
	var c credentials
	if rej := s.decode(w, r, &c, credentialKeys); rej != nil {
		s.reject(w, r, typ, rej)
		return
	}
	var sess game.Session
	var err error
	if signup {
		sess, err = s.game.Signup(r.Context(), request(r), c.Username, c.Password)
	} else {
		sess, err = s.login(w, r, request(r), c.Username, c.Password)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	setSessionCookie(w, r, sess)
	code := http.StatusOK
	if signup {
		code = http.StatusCreated
	}
	writeJSON(w, code, sessionBody{User: sess.User, Token: sess.Token, ExpiresAt: sess.ExpiresAt, Gold: sess.Gold})
}

// login logs a player in within the login limits. A refused login is a
// failed login event with error rate_limited, its password unchecked, and
// the answer's Retry-After says when to try again.
func (s *Server) login(w http.ResponseWriter, r *http.Request, req game.Request, username, password string) (game.Session, error) {
	at, wait, ok := s.logins.begin(username, clientAddress(r.RemoteAddr))
	if !ok {
		err := s.game.Reject(r.Context(), req, event.TypeLogin, game.ErrRateLimited)
		if errors.Is(err, game.ErrRateLimited) {
			w.Header()["Retry-After"] = []string{strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)}
		}
		return game.Session{}, err
	}
	sess, err := s.game.Login(r.Context(), req, username, password)
	at.end(errors.Is(err, game.ErrBadPassword) || errors.Is(err, game.ErrUnknownUser), err == nil)
	return sess, err
}

func (s *Server) v1Logout(w http.ResponseWriter, r *http.Request) {
	if err := s.game.Logout(r.Context(), request(r)); err != nil {
		s.fail(w, err)
		return
	}
	clearSessionCookie(w, r)
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged_out"})
}

func (s *Server) v1Items(w http.ResponseWriter, r *http.Request) {
	items, err := s.game.Items(r.Context(), request(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) v1Inventory(w http.ResponseWriter, r *http.Request) {
	p, err := s.game.Inventory(r.Context(), request(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inventoryOf(p))
}

func (s *Server) v1Buy(w http.ResponseWriter, r *http.Request) {
	s.v1Trade(w, r, event.TypeBuyItem, s.game.Buy)
}

func (s *Server) v1Sell(w http.ResponseWriter, r *http.Request) {
	s.v1Trade(w, r, event.TypeSellItem, s.game.Sell)
}

func (s *Server) v1Trade(w http.ResponseWriter, r *http.Request, typ string, trade func(ctx context.Context, req game.Request, o game.Order) (game.Receipt, error)) {
	var o orderBody
	if rej := s.decode(w, r, &o, orderKeys); rej != nil {
		s.reject(w, r, typ, rej)
		return
	}
	rc, err := trade(r.Context(), request(r), o.order())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, receiptOf(rc))
}

func (s *Server) v1Cart(w http.ResponseWriter, r *http.Request) {
	p, err := s.game.Cart(r.Context(), request(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cartOf(p))
}

func (s *Server) v1CartAdd(w http.ResponseWriter, r *http.Request) {
	var o orderBody
	if rej := s.decode(w, r, &o, orderKeys); rej != nil {
		s.reject(w, r, event.TypeCartAdd, rej)
		return
	}
	p, err := s.game.CartAdd(r.Context(), request(r), o.order())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cartOf(p))
}

// v1CartRemove takes ?quality= (default: the catalog's default) and
// ?quantity= (default: the whole line).
func (s *Server) v1CartRemove(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := game.Order{Item: r.PathValue("item"), Quality: q.Get("quality")}
	if v := q.Get("quantity"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.reject(w, r, event.TypeCartRemove, game.ErrInvalidQuantity)
			return
		}
		o.Quantity = n
	}
	p, err := s.game.CartRemove(r.Context(), request(r), o)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cartOf(p))
}

func (s *Server) v1Checkout(w http.ResponseWriter, r *http.Request) {
	rc, err := s.game.Checkout(r.Context(), request(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, receiptOf(rc))
}

func (s *Server) v1JoinGuild(w http.ResponseWriter, r *http.Request) {
	var g guildBody
	if rej := s.decode(w, r, &g, guildKeys); rej != nil {
		s.reject(w, r, event.TypeJoinGuild, rej)
		return
	}
	p, err := s.game.JoinGuild(r.Context(), request(r), g.Guild)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inventoryOf(p))
}

func (s *Server) v1LeaveGuild(w http.ResponseWriter, r *http.Request) {
	p, err := s.game.LeaveGuild(r.Context(), request(r))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inventoryOf(p))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeText(w http.ResponseWriter, code int, s string) {
	h := w.Header()
	h["Content-Type"] = contentTypeText
	h["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s)
}

// Header values every answer sets, shared instead of allocated per answer
// (Header.Set makes a new slice each time). Nothing modifies a header
// value in place; Header.Add appends to a full slice, which copies it.
var (
	contentTypeJSON = []string{"application/json"}
	contentTypeText = []string{"text/plain; charset=utf-8"}
	noStore         = []string{"no-store"}
)
