package state_test

import (
	"reflect"
	"testing"

	"github.com/questlog/questlog/internal/state"
)

func st(typ string, n int64) state.Stack {
	return state.Stack{Item: state.Item{Type: typ, Quality: "common"}, Quantity: n}
}

func ptr(s string) *string { return &s }

// Compact folds a round of changes into as few as keep its effect.
func TestCompact(t *testing.T) {
	sess := &state.Session{TokenHash: "a", User: "ada"}
	sess2 := &state.Session{TokenHash: "b", User: "ada"}
	acct := &state.Account{User: "ada", Gold: 1000}
	tests := []struct {
		name string
		in   []state.Change
		want []state.Change
	}{
		{"none", nil, nil},
		{"purchases fold into one", []state.Change{
			{GoldDelta: -50, Inventory: []state.Stack{st("sword", 1)}},
			{GoldDelta: -50, Inventory: []state.Stack{st("sword", 1)}},
			{GoldDelta: 25, Inventory: []state.Stack{st("sword", -1)}},
		}, []state.Change{
			{GoldDelta: -75, Inventory: []state.Stack{st("sword", 1), st("sword", 1), st("sword", -1)}},
		}},
		{"a checkout clears the cart after what came before", []state.Change{
			{Cart: []state.Stack{st("bow", 1)}},
			{GoldDelta: -45, ClearCart: true, Inventory: []state.Stack{st("bow", 1)}},
			{Cart: []state.Stack{st("ring", 2)}},
		}, []state.Change{
			{Cart: []state.Stack{st("bow", 1)}},
			{GoldDelta: -45, ClearCart: true, Inventory: []state.Stack{st("bow", 1)}, Cart: []state.Stack{st("ring", 2)}},
		}},
		{"the last guild wins", []state.Change{{Guild: ptr("knights")}, {Guild: ptr("")}, {GoldDelta: 1}}, []state.Change{
			{Guild: ptr(""), GoldDelta: 1},
		}},
		{"a signup starts a change; two sessions stay apart", []state.Change{
			{Create: acct, Session: sess},
			{GoldDelta: -5},
			{Session: sess2},
		}, []state.Change{
			{Create: acct, Session: sess, GoldDelta: -5},
			{Session: sess2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := state.Compact(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Compact =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}
