package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/report/browsertest"
	"github.com/questlog/questlog/internal/report/dashboardtest"
)

// player is a player of the API: its name, and the paths it GETs once
// signed up, logged out and logged in again.
type player struct {
	name  string
	paths []string
}

// play has each player sign up, log out, log in and GET its paths on the
// API at api, each with its own cookies; an answer of 500 or more fails t.
func play(t *testing.T, api string, players []player) {
	t.Helper()
	for _, pl := range players {
		c := playerClient()
		paths := append([]string{
			fmt.Sprintf("/signup?username=%s&password=pw", pl.name), "/logout",
			fmt.Sprintf("/login?username=%s&password=pw", pl.name),
		}, pl.paths...)
		for _, path := range paths {
			if code, body := get(t, c, api+path); code >= 500 {
				t.Fatalf("%s GET %s = %d %s", pl.name, path, code, body)
			}
		}
	}
}

// The whole of `up` as a user sees it: players play over HTTP, the extract
// follows the topic into the lake, and /dashboard in headless Chromium draws
// every chart with their data and logs no error.
func TestUpDashboardInChromiumEndToEnd(t *testing.T) {
	b := browsertest.Start(t) // skips without chromium, unless CI requires it
	dir := t.TempDir()
	p := start(t, "up", "--data-dir", dir, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0",
		"--password-cost", "4", "--max-age", "500ms", "--refresh", "1s")

	players := []player{
		{"ada", []string{"/buy_sword", "/buy?item=shield&quality=epic", "/join_guild?guild=knights", "/buy?item=armor&quality=legendary"}},
		{"bob", []string{"/buy?item=potion&quantity=5", "/join_guild?guild=knights", "/inventory"}},
		{"cyd", []string{"/join_guild?guild=mages", "/buy?item=ring&quality=rare", "/leave_guild", "/buy?item=spoon"}},
	}
	play(t, p.api, players)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	page, err := b.Open(ctx, p.api+"/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	// The extract rolls files every 500ms and the dashboard rebuilds every
	// second: wait until every chart has data, then verify it all.
	if err := page.WaitFor(ctx, `[...document.querySelectorAll("section.chart")].length >= 7 &&
		[...document.querySelectorAll("section.chart")].every(s => Number(s.dataset.points) > 0)`); err != nil {
		t.Fatalf("charts never all had data: %v (page errors %q)", err, page.Errors())
	}
	state, err := dashboardtest.Verify(ctx, page)
	shot := filepath.Join(browsertest.ArtifactDir(t), "up-dashboard.png")
	if serr := page.Screenshot(ctx, shot); serr != nil {
		t.Errorf("screenshot: %v", serr)
	} else {
		t.Logf("screenshot: %s", shot)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Charts) < 7 {
		t.Fatalf("%d charts", len(state.Charts))
	}
	p.stop(syscall.SIGINT)
}
