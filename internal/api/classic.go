package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state"
)

// The classic GET routes (the seed course's) answer in plain text, for curl and ab, with the same
// status codes as the JSON API. They take their input as query parameters
// and authenticate with the session cookie that /signup and /login set;
// with seed sessions on, also as the course's server did (classicRequest).

// classicRequest is request(r) for a classic route. With seed sessions on
// (`--seed-sessions`) it is a seed request: a signup or login opens the
// player's seed session for r's Host, and without a token the request acts
// as the player its ?username= names if that player has one (game's
// seed.go). A token, when sent, is the only one checked, and so is a
// session cookie, even an empty one.
func (s *Server) classicRequest(r *http.Request) game.Request {
	req := request(r)
	if s.seedSessions {
		req.Seed = true
		if _, err := r.Cookie(sessionCookie); err != nil && req.Token == "" {
			req.SeedUser = r.URL.Query().Get("username")
		}
	}
	return req
}

func (s *Server) classicDefault(w http.ResponseWriter, r *http.Request) {
	if err := s.game.Visit(r.Context(), s.classicRequest(r)); err != nil {
		s.failText(w, err)
		return
	}
	writeText(w, http.StatusOK, "This is the default response!\n")
}

func (s *Server) classicSignup(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sess, err := s.game.Signup(r.Context(), s.classicRequest(r), q.Get("username"), q.Get("password"))
	if err != nil {
		s.failText(w, err)
		return
	}
	setSessionCookie(w, r, sess)
	writeText(w, http.StatusCreated, fmt.Sprintf("Signed up as %s. You have %d gold.\n", sess.User, sess.Gold))
}

func (s *Server) classicLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sess, err := s.login(w, r, s.classicRequest(r), q.Get("username"), q.Get("password"))
	if err != nil {
		s.failText(w, err)
		return
	}
	setSessionCookie(w, r, sess)
	writeText(w, http.StatusOK, fmt.Sprintf("Logged in as %s. You have %d gold.\n", sess.User, sess.Gold))
}

func (s *Server) classicLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.game.Logout(r.Context(), s.classicRequest(r)); err != nil {
		s.failText(w, err)
		return
	}
	clearSessionCookie(w, r)
	writeText(w, http.StatusOK, "Logged out.\n")
}

func (s *Server) classicBuySword(w http.ResponseWriter, r *http.Request) {
	rc, err := s.game.Buy(r.Context(), s.classicRequest(r), game.Order{Item: "sword", Quantity: 1})
	if err != nil {
		s.failText(w, err)
		return
	}
	writeText(w, http.StatusOK, fmt.Sprintf("Sword Purchased! You have %d gold.\n", rc.Gold))
}

func (s *Server) classicBuy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := game.Order{Item: q.Get("item"), Quality: q.Get("quality"), Quantity: 1}
	if v := q.Get("quantity"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.failText(w, s.game.Reject(r.Context(), s.classicRequest(r), event.TypeBuyItem, game.ErrInvalidQuantity))
			return
		}
		o.Quantity = n
	}
	rc, err := s.game.Buy(r.Context(), s.classicRequest(r), o)
	if err != nil {
		s.failText(w, err)
		return
	}
	if o.Quality == "" {
		o.Quality = s.game.Catalog().DefaultQuality()
	}
	writeText(w, http.StatusOK, fmt.Sprintf("Purchased %d %s %s for %d gold. You have %d gold.\n",
		o.Quantity, o.Quality, o.Item, rc.TotalPrice, rc.Gold))
}

func (s *Server) classicJoinGuild(w http.ResponseWriter, r *http.Request) {
	p, err := s.game.JoinGuild(r.Context(), s.classicRequest(r), r.URL.Query().Get("guild"))
	if err != nil {
		s.failText(w, err)
		return
	}
	writeText(w, http.StatusOK, fmt.Sprintf("Joined guild %s.\n", p.Guild))
}

func (s *Server) classicLeaveGuild(w http.ResponseWriter, r *http.Request) {
	if _, err := s.game.LeaveGuild(r.Context(), s.classicRequest(r)); err != nil {
		s.failText(w, err)
		return
	}
	writeText(w, http.StatusOK, "Left guild.\n")
}

func (s *Server) classicInventory(w http.ResponseWriter, r *http.Request) {
	p, err := s.game.Inventory(r.Context(), s.classicRequest(r))
	if err != nil {
		s.failText(w, err)
		return
	}
	writeText(w, http.StatusOK, inventoryText(p))
}

// inventoryText is the plain-text inventory: a header line, then one line
// per stack.
func inventoryText(p state.Player) string {
	var b strings.Builder
	guild := "no guild"
	if p.Guild != "" {
		guild = "guild " + p.Guild
	}
	fmt.Fprintf(&b, "%s: %d gold, %s\n", p.User, p.Gold, guild)
	if len(p.Inventory) == 0 {
		b.WriteString("no items\n")
	}
	for _, st := range p.Inventory {
		fmt.Fprintf(&b, "%d %s %s\n", st.Quantity, st.Quality, st.Type)
	}
	return b.String()
}

// failText answers a refused classic request in plain text.
func (s *Server) failText(w http.ResponseWriter, err error) {
	code, reason, message := s.refusal(w, err)
	writeText(w, code, "Error: "+message+" ("+reason+")\n")
}
