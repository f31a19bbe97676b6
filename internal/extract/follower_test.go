package extract_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/lake"
)

// The follower as a part: Start returns once it holds the lake, Stop
// commits what it holds; a second follower on the same lake fails to
// start; a follower whose broker vanishes reports it on Failed.
func TestFollowerIsAPart(t *testing.T) {
	addr := startBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	ctx := context.Background()
	e := newExtractor(t, addr, dir, extract.Follow(), extract.MaxAge(time.Hour))
	f, err := e.Follower()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	second, err := newExtractor(t, addr, dir, extract.Follow()).Follower()
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx); !errors.Is(err, lake.ErrLakeBusy) {
		t.Fatalf("a second follower's Start = %v, want ErrLakeBusy", err)
	}

	want := produce(t, addr, 300, 7)
	deadline := time.Now().Add(30 * time.Second)
	for d, _ := e.Progress(); d < 300 && time.Now().Before(deadline); d, _ = e.Progress() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	sameCounts(t, "after Stop", checkLake(t, dir).Rows, want.PerType)
	select {
	case err := <-f.Failed():
		t.Errorf("a follower stopped by Stop reported %v on Failed", err)
	default:
	}

	if _, err := newExtractor(t, addr, dir).Follower(); err == nil {
		t.Error("Follower of an extractor without Follow: no error")
	}
}

func TestFollowerReportsARunThatEnds(t *testing.T) {
	addr := startBroker(t)
	dir := filepath.Join(t.TempDir(), "lake")
	crash := errors.New("the disk went away")
	f, err := newExtractor(t, addr, dir, extract.Follow(), extract.MaxAge(50*time.Millisecond),
		extract.WithHook(func(extract.Point, int32, lake.Part) error { return crash })).Follower()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	produce(t, addr, 50, 8) // the first roll's commit fails
	select {
	case err := <-f.Failed():
		if !errors.Is(err, crash) {
			t.Fatalf("Failed = %v, want the commit's error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a follower whose commit failed did not report it")
	}
	if err := f.Stop(context.Background()); !errors.Is(err, crash) {
		t.Errorf("Stop after the failure = %v, want the commit's error", err)
	}
}
