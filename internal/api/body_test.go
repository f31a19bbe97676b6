package api_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Bodies are strict JSON objects: duplicate keys, keys that match a field
// only case-insensitively, unknown keys and anything but one object are a
// 400 naming the problem, with one failed event, changing nothing.
func TestStrictJSONBodies(t *testing.T) {
	m := newMemServer(t, nil)
	ada := m.signup(t, "ada", "pw-ada")
	before := m.player(t, "ada")
	tests := []struct {
		name, path, body, reason, message string
	}{
		{"duplicate key", "/v1/buy", `{"item":"sword","item":"armor"}`, "bad_request", `field "item" appears twice`},
		{"duplicate quantity", "/v1/buy", `{"item":"sword","quantity":1,"quantity":900}`, "bad_request", `field "quantity" appears twice`},
		{"escaped duplicate", "/v1/buy", `{"item":"sword","\u0069tem":"armor"}`, "bad_request", `field "item" appears twice`},
		{"duplicate null", "/v1/buy", `{"item":"sword","item":null}`, "bad_request", "appears twice"},
		{"upper-case key", "/v1/buy", `{"Item":"sword"}`, "bad_request", `unknown field "Item": field names are lower case`},
		{"upper-case shadow", "/v1/buy", `{"item":"potion","ITEM":"armor"}`, "bad_request", `unknown field "ITEM"`},
		{"kelvin sign", "/v1/guild/join", `{"guild":"x","\u212Aey":1}`, "bad_request", "unknown field"},
		{"long s", "/v1/signup", `{"username":"eve","pa\u017Fsword":"pw"}`, "bad_request", "unknown field"},
		{"unknown key", "/v1/buy", `{"item":"sword","price":0}`, "bad_request", `unknown field "price" (expected item, quality, quantity)`},
		{"unknown key on signup", "/v1/signup", `{"username":"eve","password":"pw","gold":1000000}`, "bad_request", `unknown field "gold"`},
		{"key with NUL", "/v1/buy", `{"item\u0000":"sword"}`, "bad_request", "unknown field"},
		{"non-UTF-8 key", "/v1/buy", "{\"item\xff\":\"sword\"}", "bad_request", "unknown field"},
		{"top-level null", "/v1/buy", `null`, "bad_request", "must be a JSON object"},
		{"top-level array", "/v1/buy", `[{"item":"sword"}]`, "bad_request", "must be a JSON object"},
		{"top-level string", "/v1/guild/join", `"knights"`, "bad_request", "must be a JSON object"},
		{"trailing object", "/v1/buy", `{"item":"sword"} {}`, "bad_request", "one JSON object"},
		{"trailing garbage", "/v1/buy", `{"item":"sword"}x`, "bad_request", "one JSON object"},
		{"trailing comma", "/v1/buy", `{"item":"sword",}`, "bad_request", "malformed JSON"},
		{"nested object", "/v1/buy", `{"item":{"item":"sword"}}`, "bad_request", `field "item" has the wrong type`},
		{"unterminated", "/v1/guild/join", `{"guild":"knights"`, "bad_request", "malformed JSON"},
		{"single quotes", "/v1/buy", `{'item':'sword'}`, "bad_request", "malformed JSON"},
		{"null item", "/v1/buy", `{"item":null}`, "invalid_item", "name an item type"},
		{"null guild", "/v1/guild/join", `{"guild":null}`, "invalid_guild", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ev := m.oneEvent(t, "POST", tt.path, tt.body, "Cookie", ada)
			var got struct{ Error, Message string }
			if err := json.Unmarshal([]byte(a.body), &got); err != nil {
				t.Fatalf("answer %q: %v", a.body, err)
			}
			if a.code != 400 || got.Error != tt.reason || !strings.Contains(got.Message, tt.message) {
				t.Errorf("answer = %d %s, want 400 %s %q", a.code, a.body, tt.reason, tt.message)
			}
			if ev["status"] != "failed" || ev["error"] != tt.reason {
				t.Errorf("event = %v", ev)
			}
			sameState(t, before, m.player(t, "ada"))
		})
	}
	if m.exists(t, "eve") {
		t.Error("a refused signup created eve")
	}
	// The keys as documented still work, null quality and quantity taking
	// their defaults.
	if a := m.do("POST", "/v1/buy", `{"item":"potion","quality":null,"quantity":null}`, "Cookie", ada); a.code != 200 || !strings.Contains(a.body, `"total_price":5`) {
		t.Errorf("buy with null quality and quantity = %d %s", a.code, a.body)
	}
}
