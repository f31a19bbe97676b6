package game_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/game"
	"github.com/questlog/questlog/internal/state/sqlitetest"
)

// seedRequest is a request by a seed-compatible route: no token, the
// player named in the query, from host.
func seedRequest(user, host string) game.Request {
	return game.Request{Seed: true, SeedUser: user, HTTP: event.HTTP{Method: "GET", Host: host}}
}

// With seed sessions on, a player who signed up or logged in by a seed
// route from a Host is the player a token-less seed request from that Host
// names, until the session ends; any other Host, a token that is not
// valid, or a request that is not a seed route's gets nothing.
func TestSeedSessions(t *testing.T) {
	ctx := context.Background()
	f := newFixtureWith(t, sqlitetest.Open(t), game.Config{SeedSessions: true})
	const host = "localhost:5000"
	here := seedRequest("ada", host)

	signedUp, err := f.svc.Signup(ctx, here, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.now().Add(2 * time.Hour); signedUp.ExpiresAt.After(want) || signedUp.ExpiresAt.Before(want.Add(-time.Second)) {
		t.Errorf("the seed session expires at %v, want two hours from now (%v)", signedUp.ExpiresAt, want)
	}
	if _, err := f.svc.Buy(ctx, here, game.Order{Item: "sword", Quantity: 1}); err != nil {
		t.Fatalf("a seed request from the signup's Host: %v", err)
	}
	if ev := f.log.last(t); ev.User != "ada" || ev.Status != event.StatusOK || ev.HTTP.Host != host || ev.GoldAfter.V != 950 {
		t.Errorf("its event = %+v, want ada's ok purchase from %s", ev, host)
	}

	refused := []struct {
		name string
		req  game.Request
	}{
		{"another Host", seedRequest("ada", "127.0.0.1:5000")},
		{"no Host", seedRequest("ada", "")},
		{"another player", seedRequest("bob", host)},
		{"a bad username", seedRequest("ada lovelace", host)},
		{"a token that is no session", func() game.Request { r := here; r.Token = "00112233445566778899aabbccddeeff"; return r }()},
		{"not a seed route", game.Request{SeedUser: "ada", HTTP: here.HTTP}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Buy(ctx, tt.req, game.Order{Item: "sword", Quantity: 1})
			if !errors.Is(err, game.ErrUnauthenticated) {
				t.Fatalf("Buy = %v, want ErrUnauthenticated", err)
			}
			if ev := f.log.last(t); ev.User != "" || ev.Error != "unauthenticated" {
				t.Errorf("its event = %+v, want an anonymous unauthenticated one", ev)
			}
		})
	}

	// The signup's token is the seed session's: a later login from the
	// same Host opens it again, later, and a login from another Host opens
	// that Host's.
	f.clock.advance(time.Minute)
	again, err := f.svc.Login(ctx, here, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if again.Token != signedUp.Token || !again.ExpiresAt.After(signedUp.ExpiresAt) {
		t.Errorf("login from the same Host: token %q expiring %v; want the signup's (%q), renewed past %v",
			again.Token, again.ExpiresAt, signedUp.Token, signedUp.ExpiresAt)
	}
	there := seedRequest("ada", "laptop:5000")
	if _, err := f.svc.Login(ctx, there, "ada", "pw"); err != nil {
		t.Fatal(err)
	}
	for _, req := range []game.Request{here, there, {Token: signedUp.Token}} {
		if _, err := f.svc.Inventory(ctx, req); err != nil {
			t.Errorf("after the logins, Inventory(%+v) = %v", req, err)
		}
	}

	// A second service on the same store (another API server sharing
	// Redis) knows the same seed sessions.
	other := newFixtureWith(t, f.store, game.Config{SeedSessions: true})
	if _, err := other.svc.Inventory(ctx, here); err != nil {
		t.Errorf("another server: %v", err)
	}

	// A seed logout ends that Host's seed session (and the cookie that
	// carries its token), not the other Host's.
	if err := f.svc.Logout(ctx, here); err != nil {
		t.Fatal(err)
	}
	for _, req := range []game.Request{here, {Token: signedUp.Token}} {
		if _, err := f.svc.Inventory(ctx, req); !errors.Is(err, game.ErrUnauthenticated) {
			t.Errorf("after the logout, Inventory(%+v) = %v, want ErrUnauthenticated", req, err)
		}
	}
	if _, err := f.svc.Inventory(ctx, there); err != nil {
		t.Errorf("the other Host after the logout: %v", err)
	}
	f.checkFold(t, "ada")
}

// With seed sessions off (the default) a seed request is any request
// without a token, and a signup or login opens a random session.
func TestSeedSessionsOff(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	here := seedRequest("ada", "localhost:5000")
	first, err := f.svc.Signup(ctx, here, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.svc.Login(ctx, here, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if first.Token == second.Token {
		t.Errorf("two logins got the same token %q", first.Token)
	}
	if _, err := f.svc.Buy(ctx, here, game.Order{Item: "sword", Quantity: 1}); !errors.Is(err, game.ErrUnauthenticated) {
		t.Errorf("Buy = %v, want ErrUnauthenticated", err)
	}
	if ev := f.log.last(t); ev.User != "" || ev.Error != "unauthenticated" {
		t.Errorf("its event = %+v", ev)
	}
}

// A seed session lasts SeedSessionTTL, by the store's clock like any
// session.
func TestSeedSessionsExpire(t *testing.T) {
	ctx := context.Background()
	f := newFixtureWith(t, sqlitetest.Open(t), game.Config{SeedSessions: true, SeedSessionTTL: time.Second, Now: time.Now})
	here := seedRequest("ada", "localhost:5000")
	if _, err := f.svc.Signup(ctx, here, "ada", "pw"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := f.svc.Inventory(ctx, here)
		if errors.Is(err, game.ErrUnauthenticated) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("a one-second seed session still works after 5s (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := (game.Config{SeedSessions: true, SeedSessionTTL: time.Millisecond}).Validate(); err == nil {
		t.Error("a 1ms seed session TTL was accepted")
	}
}
