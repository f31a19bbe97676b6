package api

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
)

// A gameRoute is a path whose every request is one event of its type,
// whatever the method: the method it takes is served, any other is refused
// with 405, its Allow header and a failed event (not net/http's bare 405,
// which records nothing).
type gameRoute struct {
	method string // the one method it takes
	path   string // a ServeMux path pattern
	typ    string // the event type of its requests
	serve  http.HandlerFunc
	// readOnly GET routes serve HEAD like GET (net/http drops the body);
	// the classic state-changing GET routes refuse HEAD, which must never
	// change anything.
	readOnly bool
	classic  bool // plain-text answers
}

// allow is the route's Allow header.
func (rt *gameRoute) allow() string {
	if rt.method == http.MethodGet && rt.readOnly {
		return "GET, HEAD"
	}
	return rt.method
}

func (s *Server) gameRoutes() []*gameRoute {
	return []*gameRoute{
		// The JSON API.
		{method: "POST", path: "/v1/signup", typ: event.TypeSignup, serve: s.v1Signup},
		{method: "POST", path: "/v1/login", typ: event.TypeLogin, serve: s.v1Login},
		{method: "POST", path: "/v1/logout", typ: event.TypeLogout, serve: s.v1Logout},
		{method: "GET", path: "/v1/items", typ: event.TypeViewCatalog, serve: s.v1Items, readOnly: true},
		{method: "GET", path: "/v1/inventory", typ: event.TypeViewInventory, serve: s.v1Inventory, readOnly: true},
		{method: "POST", path: "/v1/buy", typ: event.TypeBuyItem, serve: s.v1Buy},
		{method: "POST", path: "/v1/sell", typ: event.TypeSellItem, serve: s.v1Sell},
		{method: "GET", path: "/v1/cart", typ: event.TypeViewCart, serve: s.v1Cart, readOnly: true},
		{method: "POST", path: "/v1/cart/items", typ: event.TypeCartAdd, serve: s.v1CartAdd},
		{method: "DELETE", path: "/v1/cart/items/{item}", typ: event.TypeCartRemove, serve: s.v1CartRemove},
		{method: "POST", path: "/v1/cart/checkout", typ: event.TypeCheckout, serve: s.v1Checkout},
		{method: "POST", path: "/v1/guild/join", typ: event.TypeJoinGuild, serve: s.v1JoinGuild},
		{method: "POST", path: "/v1/guild/leave", typ: event.TypeLeaveGuild, serve: s.v1LeaveGuild},
		// The classic GET routes (the seed course's), plain text.
		{method: "GET", path: "/{$}", typ: event.TypeDefault, serve: s.classicDefault, readOnly: true, classic: true},
		{method: "GET", path: "/signup", typ: event.TypeSignup, serve: s.classicSignup, classic: true},
		{method: "GET", path: "/login", typ: event.TypeLogin, serve: s.classicLogin, classic: true},
		{method: "GET", path: "/logout", typ: event.TypeLogout, serve: s.classicLogout, classic: true},
		{method: "GET", path: "/buy_sword", typ: event.TypeBuyItem, serve: s.classicBuySword, classic: true},
		{method: "GET", path: "/buy", typ: event.TypeBuyItem, serve: s.classicBuy, classic: true},
		{method: "GET", path: "/join_guild", typ: event.TypeJoinGuild, serve: s.classicJoinGuild, classic: true},
		{method: "GET", path: "/leave_guild", typ: event.TypeLeaveGuild, serve: s.classicLeaveGuild, classic: true},
		{method: "GET", path: "/inventory", typ: event.TypeViewInventory, serve: s.classicInventory, readOnly: true, classic: true},
	}
}

// handleGameRoutes registers the game's routes on mux: each route's method,
// and for every other method (HEAD included on the routes that change
// state) a handler that refuses it with an event. byPattern maps every
// pattern registered to its route.
func (s *Server) handleGameRoutes(mux *http.ServeMux) {
	s.byPattern = make(map[string]*gameRoute)
	for _, rt := range s.gameRoutes() {
		patterns := []string{rt.method + " " + rt.path, rt.path}
		mux.HandleFunc(patterns[0], rt.serve)
		refuse := s.methodNotAllowed(rt)
		if rt.method == http.MethodGet && !rt.readOnly {
			patterns = append(patterns, "HEAD "+rt.path)
			mux.HandleFunc(patterns[2], refuse)
		}
		// A pattern without a method is less specific than one with, so
		// this catches every method the route does not take.
		mux.HandleFunc(rt.path, refuse)
		for _, p := range patterns {
			s.byPattern[p] = rt
		}
	}
}

// methodNotAllowed refuses a method the route does not take: 405 with
// Allow, and a failed event of the route's type. Nothing else is read.
func (s *Server) methodNotAllowed(rt *gameRoute) http.HandlerFunc {
	allow := []string{rt.allow()}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Allow"] = allow
		s.refuse(w, r, rt, game.ErrMethodNotAllowed)
	}
}

// refuse records rej as a failed event of the route's type and answers it
// in the route's format.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rt *gameRoute, rej *game.Rejection) {
	req := request(r)
	if rt.classic {
		req = s.classicRequest(r)
	}
	err := s.game.Reject(r.Context(), req, rt.typ, rej)
	if rt.classic {
		s.failText(w, err)
		return
	}
	s.fail(w, err)
}

// canonicalPaths keeps net/http's ServeMux from redirecting a path that is
// not in canonical form ("//buy_sword", "/./buy", "/v1//buy",
// "/buy_sword/."): a redirect would be a game request with no event, and a
// client that follows it would act twice as easily as once. When the
// cleaned path is a game route, the request is refused with 400 and a
// failed event of that route's type; otherwise it is an unknown path (404,
// no event). Nothing changes state either way.
func (s *Server) canonicalPaths(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The mux canonicalizes every method but CONNECT, and matches on
		// the escaped path: so does this.
		if r.Method == http.MethodConnect {
			mux.ServeHTTP(w, r)
			return
		}
		escaped := r.URL.EscapedPath()
		clean := cleanPath(escaped)
		if clean == escaped {
			mux.ServeHTTP(w, r)
			return
		}
		rt := s.routeOf(mux, r, clean)
		if rt == nil {
			http.NotFound(w, r)
			return
		}
		s.refuse(w, r, rt, &game.Rejection{
			Reason:  game.ErrBadRequest.Reason,
			Message: "use the canonical path " + clean,
		})
	})
}

// routeOf is the game route that r's method would reach at the clean path,
// or nil when that path is no game route.
func (s *Server) routeOf(mux *http.ServeMux, r *http.Request, clean string) *gameRoute {
	p, err := url.PathUnescape(clean)
	if err != nil {
		return nil
	}
	u := *r.URL
	u.Path, u.RawPath = p, clean
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	_, pattern := mux.Handler(r2)
	return s.byPattern[pattern]
}

// cleanPath is net/http's: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}
