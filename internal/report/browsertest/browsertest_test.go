package browsertest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/report/browsertest"
)

func TestChromiumReportsWhatThePageLogged(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/clean", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<!DOCTYPE html><link rel="icon" href="data:,"><p id="x">hello</p><script>document.body.dataset.ready = "yes"; console.log("fine");</script>`))
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<!DOCTYPE html><link rel="icon" href="data:,"><img src="/missing.png"><script>console.error("boom", 42); setTimeout(function () { undefinedFunction(); }, 0);</script>`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("clean page", func(t *testing.T) {
		p, err := b.Open(ctx, srv.URL+"/clean")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor(ctx, `document.body.dataset.ready === "yes"`); err != nil {
			t.Fatal(err)
		}
		var text string
		if err := p.Eval(ctx, `document.getElementById("x").textContent`, &text); err != nil || text != "hello" {
			t.Errorf("text %q, %v", text, err)
		}
		shot := filepath.Join(browsertest.ArtifactDir(t), "clean.png")
		if err := p.Screenshot(ctx, shot); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", shot, err)
		}
		if errs := p.Errors(); len(errs) != 0 {
			t.Errorf("a clean page logged errors: %q", errs)
		}
	})
	t.Run("broken page", func(t *testing.T) {
		p, err := b.Open(ctx, srv.URL+"/broken")
		if err != nil {
			t.Fatal(err)
		}
		// The errors arrive as events; give the page a moment of its own
		// time (a timer in the page, not in the test) until all are in.
		want := []string{"boom 42", "undefinedFunction", "404"}
		logged := func() bool {
			all := strings.Join(p.Errors(), "\n")
			for _, w := range want {
				if !strings.Contains(all, w) {
					return false
				}
			}
			return true
		}
		for !logged() && ctx.Err() == nil {
			if err := p.Eval(ctx, `new Promise(r => setTimeout(r, 50))`, nil); err != nil {
				t.Fatal(err)
			}
		}
		if !logged() {
			t.Errorf("errors %q lack one of %q", p.Errors(), want)
		}
	})
}
