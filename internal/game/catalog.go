package game

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
)

// Quality is an item quality and the factor it multiplies the base price by.
type Quality struct {
	Name       string `json:"name"`
	Multiplier int64  `json:"multiplier"`
}

// ItemType is a kind of item and its base (common) price.
type ItemType struct {
	Type  string `json:"type"`
	Price int64  `json:"price"`
}

// Catalog is what the shop sells and at what price. It is read-only once
// built, so it is safe for concurrent use.
type Catalog struct {
	items     []ItemType
	qualities []Quality
	price     map[string]int64 // base price by item type
	factor    map[string]int64 // multiplier by quality
}

// CatalogEntry is one row of the price list: an item type in a quality.
type CatalogEntry struct {
	ItemType string `json:"item_type"`
	Quality  string `json:"quality"`
	Price    int64  `json:"price"`
}

// DefaultCatalog is the built-in economy of DESIGN.md.
func DefaultCatalog() *Catalog {
	c, err := NewCatalog(
		[]ItemType{
			{"sword", 50}, {"shield", 40}, {"potion", 5}, {"bow", 45},
			{"armor", 120}, {"helmet", 30}, {"staff", 60}, {"ring", 80},
		},
		[]Quality{
			{"common", 1}, {"uncommon", 2}, {"rare", 4}, {"epic", 8}, {"legendary", 16},
		},
	)
	if err != nil {
		panic(err) // the built-in catalog is valid; a test proves it
	}
	return c
}

// maxPrice keeps every total (price × quantity) far from overflowing.
const maxPrice = 1 << 40

// NewCatalog validates and builds a catalog. The first quality is the
// default one.
func NewCatalog(items []ItemType, qualities []Quality) (*Catalog, error) {
	if len(items) == 0 {
		return nil, errors.New("catalog: no item types")
	}
	if len(qualities) == 0 {
		return nil, errors.New("catalog: no qualities")
	}
	c := &Catalog{
		items:     append([]ItemType(nil), items...),
		qualities: append([]Quality(nil), qualities...),
		price:     make(map[string]int64, len(items)),
		factor:    make(map[string]int64, len(qualities)),
	}
	for _, it := range items {
		if err := validName("item type", it.Type); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		if _, dup := c.price[it.Type]; dup {
			return nil, fmt.Errorf("catalog: item type %q listed twice", it.Type)
		}
		if it.Price < 1 || it.Price > maxPrice {
			return nil, fmt.Errorf("catalog: item type %q: price %d out of range 1..%d", it.Type, it.Price, int64(maxPrice))
		}
		c.price[it.Type] = it.Price
	}
	for _, q := range qualities {
		if err := validName("quality", q.Name); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		if _, dup := c.factor[q.Name]; dup {
			return nil, fmt.Errorf("catalog: quality %q listed twice", q.Name)
		}
		if q.Multiplier < 1 || q.Multiplier > 1<<10 {
			return nil, fmt.Errorf("catalog: quality %q: multiplier %d out of range 1..1024", q.Name, q.Multiplier)
		}
		c.factor[q.Name] = q.Multiplier
	}
	for _, it := range items {
		for _, q := range qualities {
			if it.Price > math.MaxInt64/q.Multiplier/maxQuantity/maxCartLines || it.Price*q.Multiplier > maxPrice {
				return nil, fmt.Errorf("catalog: %s %s costs too much", q.Name, it.Type)
			}
		}
	}
	return c, nil
}

// catalogFile is the JSON form of --catalog.
type catalogFile struct {
	Items     []ItemType `json:"items"`
	Qualities []Quality  `json:"qualities"`
}

// LoadCatalog reads a catalog from a JSON file of the form
// {"items": [{"type": "sword", "price": 50}, ...],
// "qualities": [{"name": "common", "multiplier": 1}, ...]}.
func LoadCatalog(path string) (*Catalog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	var f catalogFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", path, err)
	}
	c, err := NewCatalog(f.Items, f.Qualities)
	if err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", path, err)
	}
	return c, nil
}

// DefaultQuality is the quality of an item asked for without one.
func (c *Catalog) DefaultQuality() string { return c.qualities[0].Name }

// Price is the price of one item of a type in a quality.
func (c *Catalog) Price(itemType, quality string) (int64, error) {
	p, ok := c.price[itemType]
	if !ok {
		return 0, ErrUnknownItem
	}
	f, ok := c.factor[quality]
	if !ok {
		return 0, ErrUnknownQuality
	}
	return p * f, nil
}

// SellPrice is what the shop pays for one item: half its price, rounded down.
func (c *Catalog) SellPrice(itemType, quality string) (int64, error) {
	p, err := c.Price(itemType, quality)
	return p / 2, err
}

// Entries lists every item type in every quality, in catalog order.
func (c *Catalog) Entries() []CatalogEntry {
	out := make([]CatalogEntry, 0, len(c.items)*len(c.qualities))
	for _, it := range c.items {
		for _, q := range c.qualities {
			out = append(out, CatalogEntry{ItemType: it.Type, Quality: q.Name, Price: it.Price * q.Multiplier})
		}
	}
	return out
}

// ItemTypes lists the item type names, sorted.
func (c *Catalog) ItemTypes() []string {
	out := make([]string, 0, len(c.items))
	for _, it := range c.items {
		out = append(out, it.Type)
	}
	sort.Strings(out)
	return out
}

// Qualities lists the quality names, cheapest first as listed.
func (c *Catalog) Qualities() []string {
	out := make([]string, 0, len(c.qualities))
	for _, q := range c.qualities {
		out = append(out, q.Name)
	}
	return out
}
