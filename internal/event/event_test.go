package event

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite golden files")

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
	golden := filepath.Join("testdata", "buy_item.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
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
