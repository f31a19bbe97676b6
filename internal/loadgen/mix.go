package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
)

// The players scenario's actions, as named in summaries and mix files.
// signup, login and logout are the players' life cycle and are not drawn
// from the mix; the actions from buy_without_gold on fail on purpose.
const (
	actSignup = iota
	actLogin
	actLogout
	actItems
	actInventory
	actCart
	actBuy
	actSell
	actCartAdd
	actCartRemove
	actCheckout
	actJoinGuild
	actLeaveGuild
	actBuyWithoutGold
	actSellUnowned
	actUnknownItem
	actNoSession
	actWrongPassword
	actGuildConflict
	numActions
)

var actionNames = [numActions]string{
	actSignup:         "signup",
	actLogin:          "login",
	actLogout:         "logout",
	actItems:          "items",
	actInventory:      "inventory",
	actCart:           "cart",
	actBuy:            "buy",
	actSell:           "sell",
	actCartAdd:        "cart_add",
	actCartRemove:     "cart_remove",
	actCheckout:       "checkout",
	actJoinGuild:      "join_guild",
	actLeaveGuild:     "leave_guild",
	actBuyWithoutGold: "buy_without_gold",
	actSellUnowned:    "sell_unowned",
	actUnknownItem:    "unknown_item",
	actNoSession:      "no_session",
	actWrongPassword:  "wrong_password",
	actGuildConflict:  "guild_conflict",
}

// ScenarioActions names the players scenario's actions in the order its
// samples index them, for Config.Actions.
func ScenarioActions() []string { return slices.Clone(actionNames[:]) }

// Mix is what the simulated players do: how often each action is drawn,
// which items and qualities they pick (by weight), which guilds they join
// and how many items one order holds at most. Its JSON form is the
// --mix file; testdata/mix.json is an example.
type Mix struct {
	Actions     map[string]int `json:"actions"`
	Items       map[string]int `json:"items"`
	Qualities   map[string]int `json:"qualities"`
	Guilds      []string       `json:"guilds"`
	MaxQuantity int            `json:"max_quantity"`
}

// DefaultMix is the built-in mix: mostly shopping, some cart use and guild
// moves, reads, and about 5% deliberately failed actions.
func DefaultMix() Mix {
	return Mix{
		Actions: map[string]int{
			"buy": 30, "sell": 10, "cart_add": 14, "cart_remove": 3, "checkout": 7,
			"join_guild": 4, "leave_guild": 3, "inventory": 12, "items": 5, "cart": 3,
			"buy_without_gold": 2, "sell_unowned": 1, "unknown_item": 1, "no_session": 1,
			"wrong_password": 1, "guild_conflict": 1,
		},
		Items: map[string]int{
			"sword": 20, "shield": 15, "potion": 30, "bow": 10,
			"armor": 5, "helmet": 10, "staff": 5, "ring": 5,
		},
		Qualities: map[string]int{
			"common": 50, "uncommon": 25, "rare": 15, "epic": 7, "legendary": 3,
		},
		Guilds:      []string{"knights", "mages", "rangers", "thieves", "bards"},
		MaxQuantity: 3,
	}
}

// LoadMix reads a mix from a JSON file and validates it.
func LoadMix(path string) (Mix, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Mix{}, fmt.Errorf("load mix: %w", err)
	}
	var m Mix
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Mix{}, fmt.Errorf("load mix %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return Mix{}, fmt.Errorf("load mix %s: %w", path, err)
	}
	return m, nil
}

// Validate checks that every action is known, weights are not negative and
// something can be drawn, and that items, qualities and guilds are given.
func (m *Mix) Validate() error {
	known := make(map[string]bool, numActions)
	for a := actItems; a < numActions; a++ {
		known[actionNames[a]] = true
	}
	for name, w := range m.Actions {
		if !known[name] {
			valid := make([]string, 0, len(known))
			for k := range known {
				valid = append(valid, k)
			}
			sort.Strings(valid)
			return fmt.Errorf("mix: unknown action %q (known: %v)", name, valid)
		}
		if w < 0 {
			return fmt.Errorf("mix: action %q has negative weight %d", name, w)
		}
	}
	for what, ws := range map[string]map[string]int{"actions": m.Actions, "items": m.Items, "qualities": m.Qualities} {
		total := 0
		for name, w := range ws {
			if w < 0 {
				return fmt.Errorf("mix: %s: %q has negative weight %d", what, name, w)
			}
			total += w
		}
		if total == 0 {
			return fmt.Errorf("mix: %s: no positive weight", what)
		}
	}
	if len(m.Guilds) == 0 {
		return fmt.Errorf("mix: no guilds")
	}
	if m.MaxQuantity < 1 || m.MaxQuantity > 1000 {
		return fmt.Errorf("mix: max_quantity %d out of range 1..1000", m.MaxQuantity)
	}
	return nil
}

// weights draws names by weight.
type weights struct {
	names []string
	cum   []int // running totals
}

func newWeights(m map[string]int) weights {
	names := make([]string, 0, len(m))
	for n, w := range m {
		if w > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names) // a fixed order, so a seed reproduces a run
	w := weights{names: names, cum: make([]int, len(names))}
	total := 0
	for i, n := range names {
		total += m[n]
		w.cum[i] = total
	}
	return w
}

func (w *weights) draw(r *rand.Rand) string { return w.names[w.drawIndex(r)] }

// drawIndex draws the position of a name.
func (w *weights) drawIndex(r *rand.Rand) int {
	x := r.IntN(w.cum[len(w.cum)-1])
	return sort.SearchInts(w.cum, x+1)
}
