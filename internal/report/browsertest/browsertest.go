// Package browsertest starts a headless Chromium for tests and drives its
// pages over the DevTools protocol: load a URL, evaluate JavaScript, wait
// for a condition, take a screenshot, and collect every error the page
// logged (console errors, uncaught exceptions, failed loads, CSP reports).
//
// It speaks the protocol over a small built-in WebSocket client, so it needs
// no dependency beyond a chromium binary. It knows nothing of questlog's
// pages: tests say what to wait for and what to check.
package browsertest

import (
	"bufio"
	"context"
	"encoding/base64"
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
// --user-data-dir and --remote-debugging-port.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
	"--disable-extensions", "--mute-audio", "--hide-scrollbars", "--window-size=1280,1600",
}

// Browser is a running headless Chromium.
type Browser struct {
	cmd    *exec.Cmd
	conn   *wsConn
	done   chan struct{} // closed when the read loop ends
	exited chan struct{} // closed when the process has been waited for
	stderr *lockedBuffer

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	pages   map[string]*Page // by session id
	readErr error
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type message struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	SessionID string          `json:"sessionId"`
	reply
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

// Launch starts Chromium at path with its profile in userDataDir and
// connects to it. Close stops it.
func Launch(ctx context.Context, path, userDataDir string) (*Browser, error) {
	args := append(append([]string{}, Flags...), "--user-data-dir="+userDataDir, "--remote-debugging-port=0", "about:blank")
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", path, err)
	}
	log := &lockedBuffer{}
	endpoint := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			log.add(line)
			if u, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				select {
				case endpoint <- strings.TrimSpace(u):
				default:
				}
			}
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var wsURL string
	select {
	case wsURL = <-endpoint:
	case <-exited:
		return nil, fmt.Errorf("chromium exited before listening (%v):\n%s", waitErr, log.String())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("chromium did not listen: %w\n%s", ctx.Err(), log.String())
	}
	conn, err := dialWebSocket(wsURL)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return nil, err
	}
	b := &Browser{
		cmd: cmd, conn: conn, done: make(chan struct{}), exited: exited, stderr: log,
		pending: map[int64]chan reply{}, pages: map[string]*Page{},
	}
	go b.read()
	go func() {
		<-exited
		conn.conn.Close() // ends the read loop
	}()
	return b, nil
}

// Close asks Chromium to quit, kills it if it does not within a few
// seconds, and waits for it to be gone.
func (b *Browser) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	select {
	case <-b.exited:
	case <-ctx.Done():
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	_ = b.conn.close()
	<-b.done
	return nil
}

// Log is what Chromium wrote to its standard error so far.
func (b *Browser) Log() string { return b.stderr.String() }

func (b *Browser) read() {
	defer close(b.done)
	for {
		data, err := b.conn.readMessage()
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("devtools connection: %w", err)
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m.reply
				delete(b.pending, m.ID)
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m.Method, m.Params)
		}
		b.mu.Unlock()
	}
}

// call sends one DevTools command and waits for its answer.
func (b *Browser) call(ctx context.Context, session, method string, params any, result any) error {
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := b.conn.write(opText, data); err != nil {
		return err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.readErr
		}
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Page is one browser tab.
type Page struct {
	b       *Browser
	session string

	// guarded by b.mu
	errors []string
	loaded chan struct{}
}

// Open loads url in a new tab and waits for its load event. Errors the page
// logs from then on are collected (see Errors).
func (b *Browser) Open(ctx context.Context, url string) (*Page, error) {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: attached.SessionID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if err := b.call(ctx, p.session, domain, nil, nil); err != nil {
			return nil, err
		}
	}
	loaded := make(chan struct{})
	b.mu.Lock()
	p.loaded = loaded
	b.mu.Unlock()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("load %s: %s", url, nav.ErrorText)
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		return nil, fmt.Errorf("load %s: %w", url, ctx.Err())
	}
	return p, nil
}

// event records what the page reports; called with b.mu held.
func (p *Page) event(method string, params json.RawMessage) {
	switch method {
	case "Page.loadEventFired":
		if p.loaded != nil {
			close(p.loaded)
			p.loaded = nil
		}
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) == nil && (e.Type == "error" || e.Type == "assert") {
			var parts []string
			for _, a := range e.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, fmt.Sprint(a.Value))
				}
			}
			p.errors = append(p.errors, "console."+e.Type+": "+strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				URL       string `json:"url"`
				Line      int    `json:"lineNumber"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) == nil {
			d := e.Details
			p.errors = append(p.errors, fmt.Sprintf("exception: %s %s (%s:%d)", d.Text, d.Exception.Description, d.URL, d.Line+1))
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil && e.Entry.Level == "error" {
			p.errors = append(p.errors, fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	}
}

// Errors returns every error the page logged so far.
func (p *Page) Errors() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its JSON value into out, which may be nil.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	params := map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}
	if err := p.b.call(ctx, p.session, "Runtime.evaluate", params, &res); err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, res.Exception.Text, res.Exception.Exception.Description)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
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
	var res struct {
		Data string `json:"data"`
	}
	params := map[string]any{"format": "png", "captureBeyondViewport": true}
	if err := p.b.call(ctx, p.session, "Page.captureScreenshot", params, &res); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return fmt.Errorf("decode screenshot: %w", err)
	}
	if len(png) == 0 {
		return errors.New("empty screenshot")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("write screenshot %s: %w", path, err)
	}
	return nil
}

// lockedBuffer keeps Chromium's log lines.
type lockedBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedBuffer) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < 10000 {
		l.lines = append(l.lines, s)
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
