package game

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/questlog/questlog/internal/state"
)

// Seed sessions are how the course questlog grew from names a player: no
// cookie, the username in the query string, and the server trusting it for
// two hours after that player signed up or logged in from the same Host.
// With Config.SeedSessions on, a signup or login by a seed-compatible route
// (Request.Seed) opens the player's seed session for the request's Host
// instead of a random one, and a seed request without a token acts as the
// player it names when that session lives.
//
// A seed session is an ordinary session in the store, opened and ended by
// the player's intents like any other, so every server that shares the
// store honours it. Its token is derived from the username and the Host
// with a key only the store holds, the player's password hash: a server
// finds the session a (username, Host) names, while a client cannot
// compute its token (the one the signup or login set as its cookie). A
// login opens it again, which renews it (state.Change.Session). (A copy of
// the store does let one compute a live seed session's token, as it does
// not a random one's.)
//
// Anyone who can reach the server and knows a username and the Host that
// player used acts as that player: the flag's name and `up`'s warning say
// so.

// namesPlayer says whether req names a player: by a token, or by a seed
// request's username.
func (req Request) namesPlayer() bool { return req.Token != "" || req.Seed }

// seedSession says whether a signup or login of req opens the player's
// seed session.
func (s *Service) seedSession(req Request) bool {
	return s.seedTTL > 0 && req.Seed && req.HTTP.Host != ""
}

// openSession makes the session a signup or login opens: the player's seed
// session for the request's Host when it opens one, a random one
// otherwise.
func (s *Service) openSession(req Request, user string, passwordHash []byte, gold int64) (Session, state.Session, error) {
	if !s.seedSession(req) {
		return s.newSession(user, gold)
	}
	sess, stored := s.session(user, seedToken(passwordHash, user, req.HTTP.Host), s.seedTTL, gold)
	return sess, stored, nil
}

// seedSessionHash is the token hash of the seed session that a seed
// request without a token names: its username's, for its Host.
// ErrUnauthenticated when there can be none.
func (s *Service) seedSessionHash(a *action, req Request) (string, error) {
	if !s.seedSession(req) || validName("username", req.SeedUser) != nil {
		return "", ErrUnauthenticated
	}
	p, err := s.store.Player(a.ctx, req.SeedUser)
	if errors.Is(err, state.ErrNotFound) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", s.storeFailure(a, "read player "+req.SeedUser, err)
	}
	return hashToken(seedToken(p.PasswordHash, req.SeedUser, req.HTTP.Host)), nil
}

// seedToken is the token of user's seed session for host: 128 bits of an
// HMAC keyed with the player's password hash, in hex like a random token.
func seedToken(passwordHash []byte, user, host string) string {
	m := hmac.New(sha256.New, passwordHash)
	m.Write([]byte("questlog seed session\x00" + user + "\x00" + host))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// SeedSessionTTL is how long a seed session lasts, 0 when seed sessions
// are off.
func (s *Service) SeedSessionTTL() time.Duration { return s.seedTTL }
