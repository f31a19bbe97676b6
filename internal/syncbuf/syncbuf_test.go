package syncbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/questlog/questlog/internal/syncbuf"
)

// Writers and a reader at once lose no line and tear none (run with -race).
func TestConcurrentWritesAndReads(t *testing.T) {
	var b syncbuf.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = b.String()
		}
	})
	wg.Wait()
	if got, want := b.String(), strings.Repeat("line\n", 800); got != want {
		t.Errorf("%d bytes written, want %d", len(got), len(want))
	}
}
