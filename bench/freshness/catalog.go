package main

import (
	"encoding/json"
	"fmt"

	"github.com/questlog/questlog/internal/game"
)

type catalogItem struct {
	Type  string `json:"type"`
	Price int64  `json:"price"`
}

type catalogQuality struct {
	Name       string `json:"name"`
	Multiplier int64  `json:"multiplier"`
}

type catalogFile struct {
	Items     []catalogItem    `json:"items"`
	Qualities []catalogQuality `json:"qualities"`
}

// stampCatalog is the --catalog file the benchmark runs up with: the
// built-in catalog (which the players scenario's mix buys from) plus the
// items stamp0 .. stamp<players-1> at 1 gold, which only the stamp players
// buy.
func stampCatalog(players int) ([]byte, error) {
	def := game.DefaultCatalog()
	quality := def.DefaultQuality()
	items := def.ItemTypes()
	if len(items) == 0 {
		return nil, fmt.Errorf("the built-in catalog has no items")
	}
	var f catalogFile
	for _, it := range items {
		p, err := def.Price(it, quality)
		if err != nil {
			return nil, err
		}
		f.Items = append(f.Items, catalogItem{it, p})
	}
	base := f.Items[0].Price
	for _, q := range def.Qualities() {
		p, err := def.Price(items[0], q)
		if err != nil {
			return nil, err
		}
		if p%base != 0 {
			return nil, fmt.Errorf("the built-in catalog's default quality %s does not have multiplier 1", quality)
		}
		f.Qualities = append(f.Qualities, catalogQuality{q, p / base})
	}
	for p := range players {
		f.Items = append(f.Items, catalogItem{stampItem(p), 1})
	}
	return json.MarshalIndent(f, "", "  ")
}
