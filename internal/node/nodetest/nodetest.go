// Package nodetest starts a questlog node in-process for a test or a
// benchmark, and stops it when the test ends.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/node"
)

// Start makes and starts a node of cfg, failing the test when it cannot,
// and stops it at the end of the test (a test may stop it sooner: a second
// Stop does nothing).
func Start(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(context.Background()); err != nil {
			t.Errorf("stop the node: %v", err)
		}
	})
	return n
}
