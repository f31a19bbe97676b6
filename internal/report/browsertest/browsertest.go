// Package browsertest starts a headless Chromium for tests and drives its pages with chromedp (load a URL, evaluate JavaScript, wait for a condition, take a screenshot, collect every error a page logged), knowing nothing of questlog's pages.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Binaries are the names Chromium is looked for under, in order, after the
// QUESTLOG_CHROMIUM environment variable.
var Binaries = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the Chromium binary to use and whether there is one.
func Find() (string, bool) {
	if p := os.Getenv("QUESTLOG_CHROMIUM"); p != "" {
		if path, err := exec.LookPath(p); err == nil {
			return path, true
		}
		return "", false
	}
	for _, name := range Binaries {
		if path, err := exec.LookPath(name); err == nil {
			return path, true
		}
	}
	return "", false
}

// ArtifactDir is where a test keeps files worth looking at after it ran
// (screenshots): $QUESTLOG_ARTIFACTS/<test name> when set, else t.TempDir().
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("QUESTLOG_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// Flags are the command-line flags Chromium starts with, besides
// --user-data-dir and how chromedp talks to it. Without the network ones, a
// machine with no way out refuses its connections.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
	"--disable-extensions", "--mute-audio", "--hide-scrollbars", "--window-size=1280,1600",
}

// Browser is a running headless Chromium.
type Browser struct {
	ctx         context.Context // the browser's chromedp context
	cancel      context.CancelFunc
	cancelAlloc context.CancelFunc
}

// Start runs a headless Chromium for the test, and stops it when the test
// ends. Without a Chromium binary the test is skipped, saying so — unless
// QUESTLOG_REQUIRE_TOOLS is set (as CI sets it), when it fails.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, ok := Find()
	if !ok {
		if os.Getenv("QUESTLOG_REQUIRE_TOOLS") != "" {
			t.Fatal("no chromium binary found, and QUESTLOG_REQUIRE_TOOLS is set (apt-get install -y chromium, or set QUESTLOG_CHROMIUM)")
		}
		t.Skip("browser test skipped: no chromium binary found (apt-get install -y chromium, or set QUESTLOG_CHROMIUM)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Launch(ctx, path, t.TempDir())
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Logf("stop chromium: %v", err)
		}
	})
	return b
}

// Launch starts Chromium at path with its profile in userDataDir, waiting
// for it no longer than ctx allows. Close stops it.
func Launch(ctx context.Context, path, userDataDir string) (*Browser, error) {
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(userDataDir)}
	for _, f := range Flags {
		if name, value, ok := strings.Cut(strings.TrimPrefix(f, "--"), "="); ok {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	// The browser lives as long as these contexts, not as long as ctx.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(allocCtx)
	if err := start(ctx, bctx, cancel); err != nil {
		cancelAlloc()
		return nil, fmt.Errorf("run %s: %w", path, err)
	}
	return &Browser{ctx: bctx, cancel: cancel, cancelAlloc: cancelAlloc}, nil
}

// start runs the first action of a chromedp context, which starts its
// browser or opens its tab for as long as the context lives, waiting no
// longer than ctx allows.
func start(ctx, cctx context.Context, cancel context.CancelFunc) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(cctx) }()
	select {
	case err := <-done:
		if err != nil {
			cancel()
		}
		return err
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}

// Close asks Chromium to quit, kills it if it does not within a few
// seconds, and waits for it to be gone.
func (b *Browser) Close() error {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	err := chromedp.Cancel(ctx)
	b.cancel()
	b.cancelAlloc()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil // it was killed instead
	}
	return err
}

// Page is one browser tab.
type Page struct {
	ctx    context.Context // the tab's chromedp context
	cancel context.CancelFunc

	mu     sync.Mutex
	errors []string
}

// Open loads url in a new tab and waits for its load event. Errors the page
// logs are collected (see Errors).
func (b *Browser) Open(ctx context.Context, url string) (*Page, error) {
	p := &Page{}
	p.ctx, p.cancel = chromedp.NewContext(b.ctx, chromedp.WithListener(p.event))
	if err := start(ctx, p.ctx, p.cancel); err != nil {
		return nil, fmt.Errorf("open a tab: %w", err)
	}
	if _, err := run(ctx, p, chromedp.Navigate(url)); err != nil {
		p.cancel()
		return nil, fmt.Errorf("load %s: %w", url, err)
	}
	return p, nil
}

// run runs an action in p's tab for as long as ctx allows.
func run[T any](ctx context.Context, p *Page, a chromedp.Action[T]) (T, error) {
	rctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	v, err := chromedp.Run(rctx, a)
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return v, err
}

// event records what the page reports. It runs on the goroutine that reads
// the tab's messages, before the answers that follow the event.
func (p *Page) event(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			var v any
			if a.Description != "" {
				parts = append(parts, a.Description)
			} else if json.Unmarshal(a.Value, &v) == nil {
				parts = append(parts, fmt.Sprint(v))
			}
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		var desc string
		if d.Exception != nil {
			desc = d.Exception.Description
		}
		msg = fmt.Sprintf("exception: %s %s (%s:%d)", d.Text, desc, d.URL, d.LineNumber+1)
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors = append(p.errors, msg)
}

// Errors returns every error the page logged so far.
func (p *Page) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its JSON value into out, which may be nil.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	raw, err := run(ctx, p, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	var thrown *chromedp.ExceptionError
	if errors.As(err, &thrown) && thrown.Exception != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, thrown.Text, thrown.Exception.Description)
	}
	if err != nil {
		return fmt.Errorf("evaluate %q: %w", expr, err)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// WaitFor evaluates expr until it is truthy, or fails when ctx ends first.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var ok bool
		if err := p.Eval(ctx, "Boolean("+expr+")", &ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", expr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Screenshot writes a PNG of the whole page to path.
func (p *Page) Screenshot(ctx context.Context, path string) error {
	beyond := true
	shot, err := run(ctx, p, func(ctx context.Context, t *chromedp.Target) (page.CaptureScreenshotResult, error) {
		return cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: &beyond})
	})
	if err != nil {
		return fmt.Errorf("take screenshot: %w", err)
	}
	if len(shot.Data) == 0 {
		return errors.New("take screenshot: empty")
	}
	if err := os.WriteFile(path, shot.Data, 0o644); err != nil {
		return fmt.Errorf("write screenshot %s: %w", path, err)
	}
	return nil
}
