package main

import (
	"errors"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
)

var (
	cellRe = regexp.MustCompile(`(?s)<t([hd])[^>]*>(.*?)</t[hd]>`)
	rowRe  = regexp.MustCompile(`(?s)<tr>(.*?)</tr>`)
)

// purchases reads the table of the dashboard's "Purchases by item type and
// quality" chart (section id="purchases" of /dashboard/report): items
// bought in ok buy_item events, by item type, in the given quality. Item
// types with no such purchase are left out; a chart with nothing bought
// yet gives an empty map.
func purchases(body, quality string) (map[string]int64, error) {
	i := strings.Index(body, `id="purchases"`)
	if i < 0 {
		return nil, errors.New(`no purchases chart (id="purchases") in the page`)
	}
	section := body[i:]
	if end := strings.Index(section, "</section>"); end >= 0 {
		section = section[:end]
	}
	head, rest, ok := cut(section, "<thead>", "</thead>")
	if !ok {
		return nil, errors.New("purchases chart: no table head")
	}
	col := -1 // the quality's index among a row's <td> cells
	for j, c := range cellRe.FindAllStringSubmatch(head, -1) {
		if j > 0 && html.UnescapeString(strings.TrimSpace(c[2])) == quality {
			col = j - 1
		}
	}
	out := map[string]int64{}
	if col < 0 {
		return out, nil // nothing bought in that quality yet
	}
	tbody, _, ok := cut(rest, "<tbody>", "</tbody>")
	if !ok {
		return nil, errors.New("purchases chart: no table body")
	}
	for _, row := range rowRe.FindAllStringSubmatch(tbody, -1) {
		var item string
		var vals []string
		for _, c := range cellRe.FindAllStringSubmatch(row[1], -1) {
			v := html.UnescapeString(strings.TrimSpace(c[2]))
			if c[1] == "h" {
				item = v
			} else {
				vals = append(vals, v)
			}
		}
		if col >= len(vals) {
			return nil, fmt.Errorf("purchases chart: row %q has %d values, want a %d-th", item, len(vals), col+1)
		}
		n, err := parseCount(vals[col])
		if err != nil {
			return nil, fmt.Errorf("purchases chart: row %q: %w", item, err)
		}
		if n > 0 {
			out[item] = n
		}
	}
	return out, nil
}

// parseCount reads a whole number as the report writes it: 1,234,567.
func parseCount(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", s, err)
	}
	return n, nil
}

// cut returns what lies between open and close in s, and what follows.
func cut(s, open, close string) (inside, after string, ok bool) {
	_, s, ok = strings.Cut(s, open)
	if !ok {
		return "", "", false
	}
	return strings.Cut(s, close)
}

// stampCounts picks the stamp players' items out of the purchases: player
// p buys item stamp<p>.
func stampCounts(bought map[string]int64) map[int]int64 {
	out := map[int]int64{}
	for item, n := range bought {
		if p, ok := stampPlayer(item); ok {
			out[p] = n
		}
	}
	return out
}

// stampItem is the item stamp player p buys; stampPlayer reverses it.
func stampItem(p int) string { return "stamp" + strconv.Itoa(p) }

func stampPlayer(item string) (int, bool) {
	s, ok := strings.CutPrefix(item, "stamp")
	if !ok || s == "" {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || strconv.Itoa(p) != s {
		return 0, false
	}
	return p, true
}
