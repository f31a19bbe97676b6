package event

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/questlog/questlog/internal/golden"
)

func sampleEvent() Event {
	return Event{
		ID:       "0192f1d2-3c4b-7a00-8000-000000000001",
		Type:     TypeBuyItem,
		Time:     time.Date(2026, 11, 29, 6, 30, 0, 123456789, time.FixedZone("CET", 3600)),
		User:     "ada",
		Status:   StatusOK,
		ItemType: "shield", Quality: "epic",
		Quantity: Some(1), UnitPrice: Some(320), TotalPrice: Some(320), GoldAfter: Some(0),
		HTTP: HTTP{Method: "GET", Path: "/buy", Host: "localhost:5000", UserAgent: "curl/8.5.0", Accept: "*/*", RemoteAddr: "127.0.0.1:50312"},
	}
}

func TestAppendJSONGolden(t *testing.T) {
	ev := sampleEvent()
	got := ev.AppendJSON(nil)
	want := golden.Want(t, filepath.Join("testdata", "buy_item.json"), append(got, '\n'))
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("AppendJSON =\n%s\nwant\n%s", got, want)
	}
}

func TestAppendJSONFields(t *testing.T) {
	tests := []struct {
		name   string
		ev     Event
		want   map[string]any
		absent []string
	}{
		{
			name: "ok purchase",
			ev:   sampleEvent(),
			want: map[string]any{
				"event_type": "buy_item", "event_time": "2026-11-29T05:30:00.123456Z", "schema_version": 1.0,
				"user": "ada", "status": "ok", "return_code": 0.0, "item_type": "shield", "quality": "epic",
				"quantity": 1.0, "unit_price": 320.0, "total_price": 320.0, "gold_after": 0.0,
			},
			absent: []string{"error", "guild", "cart_size"},
		},
		{
			name:   "anonymous failure",
			ev:     Event{ID: "x", Type: TypeBuyItem, Time: time.Unix(0, 0), Status: StatusFailed, Error: "unauthenticated"},
			want:   map[string]any{"status": "failed", "return_code": 1.0, "error": "unauthenticated"},
			absent: []string{"user", "item_type", "quantity", "gold_after"},
		},
		{
			name: "strings that need escaping",
			ev:   Event{ID: "x", Type: TypeJoinGuild, Time: time.Unix(0, 0), Status: StatusOK, Guild: "a\"b\\c\nd\x01\u2028é", HTTP: HTTP{UserAgent: "bad \xff utf8"}},
			want: map[string]any{"guild": "a\"b\\c\nd\x01\u2028é"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.ev.AppendJSON(nil)
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("not valid JSON: %v\n%s", err, raw)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s present, want absent", k)
				}
			}
			if _, ok := got["http"].(map[string]any); !ok {
				t.Errorf("http is %T, want an object", got["http"])
			}
		})
	}
}

func TestInvalidUTF8BecomesReplacementChar(t *testing.T) {
	ev := Event{ID: "x", Type: "default", Status: StatusOK, HTTP: HTTP{UserAgent: "bad \xff utf8"}}
	var got struct {
		HTTP struct {
			UserAgent string `json:"user_agent"`
		} `json:"http"`
	}
	if err := json.Unmarshal(ev.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got.HTTP.UserAgent != "bad \ufffd utf8" {
		t.Errorf("user_agent = %q", got.HTTP.UserAgent)
	}
}

func TestFromRequestKeepsOnlyAllowListedHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/signup?username=ada&password=hunter2", nil)
	r.Header.Set("User-Agent", "ab/2.3")
	r.Header.Set("Authorization", "Bearer secret-token")
	r.Header.Set("Cookie", "session=secret-cookie")
	r.Header.Set("Event_type", "forged")
	r.Header.Set("User", "mallory")
	r.Header.Set("Referer", "http://x/login?password=hunter2")
	r.Header.Set("X-Request-Id", strings.Repeat("r", 1000))
	ev := Event{ID: "x", Type: TypeSignup, Time: time.Unix(0, 0), User: "ada", Status: StatusOK, HTTP: FromRequest(r)}
	raw := string(ev.AppendJSON(nil))
	for _, secret := range []string{"hunter2", "secret-token", "secret-cookie", "forged", "mallory"} {
		if strings.Contains(raw, secret) {
			t.Errorf("event contains %q:\n%s", secret, raw)
		}
	}
	var got struct {
		Type string `json:"event_type"`
		User string `json:"user"`
		HTTP map[string]string
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeSignup || got.User != "ada" {
		t.Errorf("envelope changed by headers: type %q user %q", got.Type, got.User)
	}
	if got.HTTP["path"] != "/signup" || got.HTTP["user_agent"] != "ab/2.3" || got.HTTP["referer"] != "http://x/login" {
		t.Errorf("http = %v", got.HTTP)
	}
	if n := len(got.HTTP["x_request_id"]); n != maxHeaderValue {
		t.Errorf("x_request_id has %d bytes, want it clipped to %d", n, maxHeaderValue)
	}
}

func TestIDsAreUUIDv7AndIncreasing(t *testing.T) {
	var ids IDs
	now := time.Now()
	prev := ""
	seen := make(map[string]bool)
	for i := 0; i < 10000; i++ {
		// The clock stands still, then goes back: IDs must still increase.
		at := now
		if i > 5000 {
			at = now.Add(-time.Second)
		}
		id := ids.New(at)
		u, err := uuid.Parse(id)
		if err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("%q: version %d variant %v", id, u.Version(), u.Variant())
		}
		if id <= prev {
			t.Fatalf("ID %d %q not after %q", i, id, prev)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
		prev = id
	}
	if later := ids.New(now.Add(time.Second)); later <= prev {
		t.Fatalf("a later millisecond gave a smaller ID")
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	ev := sampleEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}

// URL-valued headers keep no userinfo, query or fragment, and a value that
// is not a URL with a host is dropped rather than kept raw.
func TestFromRequestURLHeadersKeepNoSecrets(t *testing.T) {
	tests := []struct {
		name, header, value, want string
	}{
		{"referer plain", "Referer", "https://game.example/shop", "https://game.example/shop"},
		{"referer userinfo", "Referer", "http://u:hunter2@game.example/shop", "http://game.example/shop"},
		{"referer user only", "Referer", "http://hunter2@game.example/", "http://game.example/"},
		{"referer userinfo with @", "Referer", "http://u:hun@ter2@game.example/x", "http://game.example/x"},
		{"referer query", "Referer", "http://game.example/login?username=ada&password=hunter2", "http://game.example/login"},
		{"referer fragment", "Referer", "http://game.example/#token=hunter2", "http://game.example/"},
		{"referer userinfo query fragment", "Referer", "HTTP://a:hunter2@GAME.example:8080/p;x?password=hunter2#hunter2", "http://GAME.example:8080/p;x"},
		{"referer port only", "Referer", "http://game.example:5000", "http://game.example:5000"},
		{"referer escaped path", "Referer", "http://game.example/a%2Fb", "http://game.example/a%2Fb"},
		{"referer bad escape in userinfo", "Referer", "http://u:hunter2%zz@game.example/", ""},
		{"referer backslash authority", "Referer", `http:/\u:hunter2@game.example/`, ""},
		{"referer one slash", "Referer", "http:/u:hunter2@game.example/", ""},
		{"referer no scheme", "Referer", "u:hunter2@game.example/shop", ""},
		{"referer network path", "Referer", "//u:hunter2@game.example/shop", ""},
		{"referer relative", "Referer", "/login?password=hunter2", ""},
		{"referer opaque", "Referer", "mailto:hunter2@game.example", ""},
		{"referer control char", "Referer", "http://u:hunter2@game.example/\x7f", ""},
		{"referer space in host", "Referer", "http://u:hunter2@game example/", ""},
		{"referer not a URL", "Referer", "hunter2", ""},
		{"referer non-UTF-8", "Referer", "http://game.example/\xff\xfe", "http://game.example/%FF%FE"},
		{"origin plain", "Origin", "https://game.example", "https://game.example"},
		{"origin null", "Origin", "null", "null"},
		{"origin userinfo", "Origin", "https://u:hunter2@game.example:443", "https://game.example:443"},
		{"origin path and query", "Origin", "https://game.example/x?password=hunter2", "https://game.example"},
		{"origin garbage", "Origin", "hunter2 hunter2", ""},
		{"origin extension", "Origin", "chrome-extension://abcdef", "chrome-extension://abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header[tt.header] = []string{tt.value}
			h := FromRequest(r)
			got := h.Referer
			if tt.header == "Origin" {
				got = h.Origin
			}
			if got != tt.want {
				t.Errorf("%s %q kept as %q, want %q", tt.header, tt.value, got, tt.want)
			}
			ev := Event{ID: "x", Type: TypeDefault, Status: StatusOK, HTTP: h}
			if raw := ev.AppendJSON(nil); strings.Contains(string(raw), "hunter2") {
				t.Errorf("event holds the secret: %s", raw)
			}
		})
	}
}

// A Host with userinfo (which net/http's server refuses, but a handler may
// be called with) keeps only the host.
func TestFromRequestHostKeepsNoUserinfo(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "u:hunter2@game.example:5000"
	if got := FromRequest(r).Host; got != "game.example:5000" {
		t.Errorf("host = %q", got)
	}
}

// appendTime writes what time.Time.AppendFormat writes for TimeLayout, for
// every time: the edges of its fast path, the years it leaves to
// AppendFormat, other zones, and a spread of instants.
func TestAppendTimeIsTheLayout(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 29, 6, 30, 0, 123456789, time.FixedZone("CET", 3600)),
		time.Date(2026, 12, 31, 23, 30, 0, 999, time.FixedZone("minus", -3600)),
		time.Date(2024, 2, 29, 9, 5, 7, 1000, time.UTC),
		time.Now(),
	}
	// From year 0 (-62,167,219,200 s) to the end of 9999 (253,402,300,799 s).
	const first, span = -62_167_219_200, 253_402_300_800 + 62_167_219_200
	for i := range int64(2000) {
		times = append(times, time.Unix(first+i*15_485_863_457%span, i*7_919_123%1_000_000_000))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), TimeLayout)
		if got := appendTime([]byte("x"), tm); !bytes.Equal(got, want) {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Now()
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = appendTime(buf[:0], tm)
	}
}
