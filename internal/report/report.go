// Package report answers the analyst's standing questions about the lake —
// traffic by event type, purchases, gold spent, failures, the signup funnel,
// guilds, top players — as charts with table fallbacks, in one
// self-contained HTML file or live on the dashboard.
//
// It reads the lake through internal/query and draws SVG with
// github.com/go-analyze/charts. It knows nothing of Kafka, the API or the
// extract: a chart only ever shows what the lake's files hold.
package report

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/questlog/questlog/internal/query"
)

// Window bounds the events a report reads: Since inclusive, Until exclusive.
// A zero time leaves that side open.
type Window struct {
	Since, Until time.Time
}

// sincePredicate bounds only the start.
func (w Window) sincePredicate() string {
	if w.Since.IsZero() {
		return "true"
	}
	return "event_time >= " + tsLiteral(w.Since)
}

// untilPredicate bounds only the end, for state built up from the beginning
// (guild membership at the end of the window).
func (w Window) untilPredicate() string {
	if w.Until.IsZero() {
		return "true"
	}
	return "event_time < " + tsLiteral(w.Until)
}

func tsLiteral(t time.Time) string {
	return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "+00'"
}

// Kind is how a chart is drawn.
type Kind int

// Chart kinds.
const (
	Line       Kind = iota // one line per series over Categories (time buckets)
	Bar                    // vertical bars, series side by side
	StackedBar             // vertical bars, series stacked
	HBar                   // horizontal bars, for long category names
)

// Series is one named row of values, one per category.
type Series struct {
	Name   string
	Values []float64
}

// Chart is one question answered: its data, and its drawing once rendered.
type Chart struct {
	ID         string // stable, for the page's anchors and the dashboard's refresh
	Title      string
	Note       string // how to read it, shown under the title
	XLabel     string // the category axis
	YLabel     string // the value axis
	Kind       Kind
	Categories []string
	Series     []Series
	Time       *TimeAxis // for a Line chart: the time buckets its categories name
}

// TimeAxis is the time behind a Line chart's categories, one bucket each.
type TimeAxis struct {
	Start  time.Time     // the first bucket's start
	Bucket time.Duration // every bucket's width
	Layout string        // how Categories name a bucket, for time.Format
	// Partial is set when the last bucket is still filling: the window, or
	// the lake's events so far, end inside it. It is left out of the drawing
	// (a part of a bucket would read as a drop) and marked in the table.
	Partial bool
}

// Empty reports whether the chart has no value to draw.
func (c *Chart) Empty() bool {
	for _, s := range c.Series {
		for _, v := range s.Values {
			if v != 0 {
				return false
			}
		}
	}
	return true
}

// Figure is one headline number.
type Figure struct {
	Label, Value string
}

// Report is every chart over one window of the lake.
type Report struct {
	Lake        string
	Window      Window
	GeneratedAt time.Time
	First, Last time.Time // first and last event in the window; zero when there is none
	Figures     []Figure
	Charts      []Chart
}

// Chart IDs, in page order.
const (
	ChartEventsPerMinute = "events-per-minute"
	ChartPurchases       = "purchases"
	ChartGoldSpent       = "gold-spent"
	ChartFailures        = "failures"
	ChartFunnel          = "funnel"
	ChartGuilds          = "guilds"
	ChartTopSpenders     = "top-spenders"
)

// ChartIDs are every chart of a report, in page order.
var ChartIDs = []string{
	ChartEventsPerMinute, ChartPurchases, ChartGoldSpent, ChartFailures, ChartFunnel, ChartGuilds, ChartTopSpenders,
}

// Limits on how much one chart shows; the rest is summed or left out, as
// each chart's note says.
const (
	maxBuckets   = 120 // points on a time axis
	maxLineTypes = 8   // lines on the events chart; the rest become "other"
	maxGuilds    = 20
	maxPlayers   = 15
)

// Build reads the lake's events up to the window's end from db's files and
// assembles the report over w.
//
// The events are read from the files once, into a table in DuckDB's memory
// that every chart then queries: one pass over the files instead of one per
// chart. Events before the window are kept for guild membership, which
// builds up from the beginning.
func Build(ctx context.Context, db *query.DB, w Window, now time.Time) (*Report, error) {
	s, err := newSnapshot(db, w.Until)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := s.drop(context.WithoutCancel(ctx)); err != nil {
			slog.Warn("report: drop the events table", "err", err)
		}
	}()
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return build(ctx, db, s, w, now)
}

func build(ctx context.Context, db *query.DB, s *snapshot, w Window, now time.Time) (*Report, error) {
	r := &Report{Lake: db.Lake(), Window: w, GeneratedAt: now.UTC()}
	table, err := s.window(ctx, w)
	if err != nil {
		return nil, err
	}
	b := &builder{db: db, w: w, table: table}
	if err := b.span(ctx, r); err != nil {
		return nil, err
	}
	for _, step := range []func(context.Context, *Report) error{
		b.figures, b.eventsPerMinute, b.purchases, b.goldSpent, b.failures, b.funnel, b.guilds, b.topSpenders,
	} {
		if err := step(ctx, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

type builder struct {
	db     *query.DB
	w      Window
	table  string // the events up to the window's end; in_window marks those inside
	bucket time.Duration
	start  time.Time // the first bucket
	n      int       // buckets
	// covered is the part of the last bucket that the window, or else the
	// lake's events so far, reach into: 1 for a whole bucket.
	covered float64
}

// A last bucket covered this far is drawn as whole: the rest is too little
// to show as a drop.
const wholeBucket = 0.95

func (b *builder) span(ctx context.Context, r *Report) error {
	err := b.db.Each(ctx, "SELECT min(event_time), max(event_time) FROM "+b.table+" WHERE in_window", nil, func(scan func(...any) error) error {
		var first, last *time.Time
		if err := scan(&first, &last); err != nil {
			return err
		}
		if first != nil && last != nil {
			r.First, r.Last = first.UTC(), last.UTC()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("time span: %w", err)
	}
	b.bucket = bucketFor(r.Last.Sub(r.First))
	b.start = r.First.Truncate(b.bucket)
	b.covered = 1
	if !r.First.IsZero() {
		b.n = int(r.Last.Truncate(b.bucket).Sub(b.start)/b.bucket) + 1
		// The events known end at the last one, or at the window's end when
		// that falls inside the last bucket and has passed: a lake that is
		// still filling is only known to reach its newest event.
		last := b.start.Add(time.Duration(b.n-1) * b.bucket)
		end := r.Last
		if u := b.w.Until; u.After(last) && !u.After(last.Add(b.bucket)) && !u.After(r.GeneratedAt) {
			end = u
		}
		b.covered = float64(end.Sub(last)) / float64(b.bucket)
	}
	return nil
}

// bucketFor picks the narrowest round bucket that keeps a span within
// maxBuckets points. A span of a few minutes (a game that just started) gets
// buckets of seconds, so that its lines have more than a point or two.
func bucketFor(span time.Duration) time.Duration {
	if span < 10*time.Minute {
		for _, d := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second} {
			if span/d < 60 {
				return d
			}
		}
	}
	for _, m := range []int{1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440} {
		d := time.Duration(m) * time.Minute
		if span/d < maxBuckets {
			return d
		}
	}
	days := span/(maxBuckets*24*time.Hour) + 1
	return days * 24 * time.Hour
}

func bucketName(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "minute"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", d/time.Second)
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%d minutes", d/time.Minute)
}

// How a time axis names its buckets.
const (
	layoutMinutes = "15:04"
	layoutSeconds = "15:04:05"
	layoutDays    = "01-02 15:04" // a span that crosses days
)

// timeAxis is the buckets' time axis; the date shows when the span crosses days.
func (b *builder) timeAxis() *TimeAxis {
	a := &TimeAxis{Start: b.start, Bucket: b.bucket, Layout: layoutMinutes}
	if b.bucket < time.Minute {
		a.Layout = layoutSeconds
	}
	if b.n > 0 && b.start.YearDay() != b.start.Add(time.Duration(b.n-1)*b.bucket).YearDay() {
		a.Layout = layoutDays
	}
	// A single bucket is the whole line: leaving it out would leave nothing.
	a.Partial = b.n > 1 && b.covered < wholeBucket
	return a
}

// timeLabels names the buckets of a time axis.
func (b *builder) timeLabels(a *TimeAxis) []string {
	out := make([]string, b.n)
	for i := range out {
		out[i] = b.start.Add(time.Duration(i) * b.bucket).Format(a.Layout)
	}
	return out
}

// partialNote says how a still-filling last bucket is shown, if there is one.
func (b *builder) partialNote(a *TimeAxis) string {
	if !a.Partial {
		return ""
	}
	last := b.start.Add(time.Duration(b.n-1) * b.bucket).Format(a.Layout)
	return fmt.Sprintf("The last bucket, %s, is still filling (%.0f%% of its time is in the data so far), "+
		"so the line stops before it rather than show a drop; the table has it.", last, 100*b.covered)
}

func (b *builder) bucketIndex(t time.Time) int {
	i := int(t.UTC().Sub(b.start) / b.bucket)
	return min(max(i, 0), b.n-1)
}

// bucketSQL is the SQL expression for an event's bucket start.
func (b *builder) bucketSQL() string {
	return fmt.Sprintf("time_bucket(INTERVAL %d SECOND, event_time, %s)", int64(b.bucket/time.Second), tsLiteral(b.start))
}

func (b *builder) figures(ctx context.Context, r *Report) error {
	var events, players, failed, spent float64
	q := `SELECT count(*), count(DISTINCT "user"), count(*) FILTER (WHERE status = 'failed'),
		coalesce(sum(total_price) FILTER (WHERE status = 'ok' AND event_type IN ('buy_item', 'checkout')), 0)
		FROM ` + b.table + ` WHERE in_window`
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var vals [4]any
		if err := scan(&vals[0], &vals[1], &vals[2], &vals[3]); err != nil {
			return err
		}
		events, players, failed, spent = num(vals[0]), num(vals[1]), num(vals[2]), num(vals[3])
		return nil
	})
	if err != nil {
		return fmt.Errorf("headline figures: %w", err)
	}
	var quarantined float64
	files, err := b.db.QuarantineFiles(ctx)
	if err != nil {
		return fmt.Errorf("quarantine count: %w", err)
	}
	if len(files) > 0 {
		// The files' footers hold their row counts: nothing else is read.
		q := "SELECT sum(num_rows) FROM parquet_file_metadata([" + quoteList(files) + "])"
		err = b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
			var v any
			err := scan(&v)
			quarantined = num(v)
			return err
		})
		if err != nil {
			return fmt.Errorf("quarantine count: %w", err)
		}
	}
	failedShare := "–"
	if events > 0 {
		failedShare = fmt.Sprintf("%.1f%%", 100*failed/events)
	}
	r.Figures = []Figure{
		{"events", formatNum(events)},
		{"players", formatNum(players)},
		{"failed actions", failedShare},
		{"gold spent", formatNum(spent)},
		{"quarantined records", formatNum(quarantined)},
	}
	return nil
}

func (b *builder) eventsPerMinute(ctx context.Context, r *Report) error {
	axis := b.timeAxis()
	c := Chart{
		ID: ChartEventsPerMinute, Title: "Events per minute by type", Kind: Line,
		XLabel: "time (UTC)", YLabel: "events per minute", Categories: b.timeLabels(axis), Time: axis,
	}
	switch {
	case b.bucket > time.Minute:
		c.Note = fmt.Sprintf("Averaged over %s buckets.", bucketName(b.bucket))
	case b.bucket < time.Minute:
		c.Note = fmt.Sprintf("Counted in %s buckets, shown per minute.", bucketName(b.bucket))
	}
	perMinute := b.bucket.Minutes()
	totals := map[string]float64{}
	counts := map[string][]float64{}
	q := "SELECT " + b.bucketSQL() + " AS t, event_type, count(*) FROM " + b.table + " WHERE in_window GROUP BY ALL"
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var t time.Time
		var typ *string
		var n any
		if err := scan(&t, &typ, &n); err != nil {
			return err
		}
		name := "(none)"
		if typ != nil {
			name = *typ
		}
		if counts[name] == nil {
			counts[name] = make([]float64, b.n)
		}
		counts[name][b.bucketIndex(t)] += num(n) / perMinute
		totals[name] += num(n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("events per minute: %w", err)
	}
	types := sortedByTotal(totals)
	if len(types) > maxLineTypes {
		other := make([]float64, b.n)
		for _, t := range types[maxLineTypes-1:] {
			for i, v := range counts[t] {
				other[i] += v
			}
		}
		c.Note = strings.TrimSpace(c.Note + fmt.Sprintf(" The %d least frequent types are summed as \"other\".", len(types)-maxLineTypes+1))
		types = types[:maxLineTypes-1]
		counts["other"] = other
		types = append(types, "other")
	}
	c.Note = strings.TrimSpace(c.Note + " " + b.partialNote(axis))
	for _, t := range types {
		c.Series = append(c.Series, Series{Name: t, Values: counts[t]})
	}
	r.Charts = append(r.Charts, c)
	return nil
}

// qualityOrder sorts the default catalog's qualities cheapest first; others follow by name.
var qualityOrder = []string{"common", "uncommon", "rare", "epic", "legendary"}

func (b *builder) purchases(ctx context.Context, r *Report) error {
	c := Chart{
		ID: ChartPurchases, Title: "Purchases by item type and quality", Kind: StackedBar,
		XLabel: "item type", YLabel: "items bought",
		Note: "Items bought one by one (ok buy_item events), by quantity.",
	}
	byItem := map[string]map[string]float64{}
	itemTotals := map[string]float64{}
	var qualities []string
	q := `SELECT coalesce(item_type, '(none)'), coalesce(quality, '(none)'), sum(coalesce(quantity, 1))
		FROM ` + b.table + ` WHERE in_window AND event_type = 'buy_item' AND status = 'ok' GROUP BY ALL`
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var item, quality string
		var n any
		if err := scan(&item, &quality, &n); err != nil {
			return err
		}
		if byItem[item] == nil {
			byItem[item] = map[string]float64{}
		}
		byItem[item][quality] += num(n)
		itemTotals[item] += num(n)
		if !slices.Contains(qualities, quality) {
			qualities = append(qualities, quality)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("purchases: %w", err)
	}
	slices.SortFunc(qualities, func(a, b string) int {
		ia, ib := slices.Index(qualityOrder, a), slices.Index(qualityOrder, b)
		if ia < 0 {
			ia = len(qualityOrder)
		}
		if ib < 0 {
			ib = len(qualityOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	c.Categories = sortedByTotal(itemTotals)
	for _, ql := range qualities {
		s := Series{Name: ql, Values: make([]float64, len(c.Categories))}
		for i, item := range c.Categories {
			s.Values[i] = byItem[item][ql]
		}
		c.Series = append(c.Series, s)
	}
	r.Charts = append(r.Charts, c)
	return nil
}

func (b *builder) goldSpent(ctx context.Context, r *Report) error {
	axis := b.timeAxis()
	c := Chart{
		ID: ChartGoldSpent, Title: "Gold spent over time", Kind: Line,
		XLabel: "time (UTC)", YLabel: "gold per " + bucketName(b.bucket), Categories: b.timeLabels(axis), Time: axis,
		Note: strings.TrimSpace("total_price of ok buy_item and checkout events. " + b.partialNote(axis)),
	}
	series := map[string][]float64{}
	q := "SELECT " + b.bucketSQL() + " AS t, event_type, sum(total_price) FROM " + b.table + `
		WHERE in_window AND status = 'ok' AND event_type IN ('buy_item', 'checkout') GROUP BY ALL`
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var t time.Time
		var typ string
		var gold any
		if err := scan(&t, &typ, &gold); err != nil {
			return err
		}
		if series[typ] == nil {
			series[typ] = make([]float64, b.n)
		}
		series[typ][b.bucketIndex(t)] += num(gold)
		return nil
	})
	if err != nil {
		return fmt.Errorf("gold spent: %w", err)
	}
	for _, typ := range []string{"buy_item", "checkout"} {
		if series[typ] != nil {
			c.Series = append(c.Series, Series{Name: typ, Values: series[typ]})
		}
	}
	r.Charts = append(r.Charts, c)
	return nil
}

func (b *builder) failures(ctx context.Context, r *Report) error {
	c := Chart{
		ID: ChartFailures, Title: "Failed actions by reason", Kind: HBar,
		XLabel: "reason", YLabel: "failed actions",
	}
	s := Series{Name: "failed actions"}
	q := `SELECT coalesce(error, '(no reason)') AS reason, count(*) AS n FROM ` + b.table + `
		WHERE in_window AND status = 'failed' GROUP BY ALL ORDER BY n DESC, reason`
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var reason string
		var n any
		if err := scan(&reason, &n); err != nil {
			return err
		}
		c.Categories = append(c.Categories, reason)
		s.Values = append(s.Values, num(n))
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed actions: %w", err)
	}
	c.Series = []Series{s}
	r.Charts = append(r.Charts, c)
	return nil
}

func (b *builder) funnel(ctx context.Context, r *Report) error {
	c := Chart{
		ID: ChartFunnel, Title: "Signup → login → first purchase", Kind: Bar,
		XLabel: "step", YLabel: "players",
		Categories: []string{"signed up", "then logged in", "then bought"},
		Note: "Players who signed up in the window; of them, those who later logged in; " +
			"of those, who bought (buy_item or checkout) after logging in. Each step counts ok events only.",
	}
	q := `WITH ok AS (SELECT "user", event_type, event_time FROM ` + b.table + ` WHERE in_window AND status = 'ok' AND "user" IS NOT NULL),
		s AS (
			SELECT "user", min(event_time) AS t FROM ok WHERE event_type = 'signup' GROUP BY ALL),
		l AS (
			SELECT s."user", min(e.event_time) AS t FROM s JOIN ok e ON e."user" = s."user" AND e.event_time >= s.t
			WHERE e.event_type = 'login' GROUP BY ALL),
		p AS (
			SELECT DISTINCT l."user" FROM l JOIN ok e ON e."user" = l."user" AND e.event_time >= l.t
			WHERE e.event_type IN ('buy_item', 'checkout'))
		SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM l), (SELECT count(*) FROM p)`
	s := Series{Name: "players", Values: make([]float64, 3)}
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var v [3]any
		if err := scan(&v[0], &v[1], &v[2]); err != nil {
			return err
		}
		for i := range v {
			s.Values[i] = num(v[i])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("funnel: %w", err)
	}
	c.Series = []Series{s}
	r.Charts = append(r.Charts, c)
	return nil
}

func (b *builder) guilds(ctx context.Context, r *Report) error {
	c := Chart{
		ID: ChartGuilds, Title: "Guild sizes", Kind: Bar,
		XLabel: "guild", YLabel: "members",
		Note: fmt.Sprintf("Members at the end of the window: each player's last ok join_guild or leave_guild decides. "+
			"The %d largest guilds.", maxGuilds),
	}
	s := Series{Name: "members"}
	q := `WITH last AS (
			SELECT "user", arg_max(event_type, (event_time, kafka_offset)) AS action,
				arg_max(guild, (event_time, kafka_offset)) AS guild
			FROM ` + b.table + ` WHERE event_type IN ('join_guild', 'leave_guild') AND status = 'ok' AND "user" IS NOT NULL GROUP BY ALL)
		SELECT guild, count(*) AS members FROM last WHERE action = 'join_guild' AND guild IS NOT NULL
		GROUP BY ALL ORDER BY members DESC, guild LIMIT ` + fmt.Sprint(maxGuilds)
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var guild string
		var n any
		if err := scan(&guild, &n); err != nil {
			return err
		}
		c.Categories = append(c.Categories, guild)
		s.Values = append(s.Values, num(n))
		return nil
	})
	if err != nil {
		return fmt.Errorf("guild sizes: %w", err)
	}
	c.Series = []Series{s}
	r.Charts = append(r.Charts, c)
	return nil
}

func (b *builder) topSpenders(ctx context.Context, r *Report) error {
	c := Chart{
		ID: ChartTopSpenders, Title: "Top players by gold spent", Kind: HBar,
		XLabel: "player", YLabel: "gold spent",
		Note: fmt.Sprintf("The %d players who spent most in ok buy_item and checkout events.", maxPlayers),
	}
	s := Series{Name: "gold spent"}
	q := `SELECT "user", sum(total_price) AS gold FROM ` + b.table + `
		WHERE in_window AND status = 'ok' AND event_type IN ('buy_item', 'checkout') AND "user" IS NOT NULL
		GROUP BY ALL HAVING gold > 0 ORDER BY gold DESC, "user" LIMIT ` + fmt.Sprint(maxPlayers)
	err := b.db.Each(ctx, q, nil, func(scan func(...any) error) error {
		var user string
		var gold any
		if err := scan(&user, &gold); err != nil {
			return err
		}
		c.Categories = append(c.Categories, user)
		s.Values = append(s.Values, num(gold))
		return nil
	})
	if err != nil {
		return fmt.Errorf("top players: %w", err)
	}
	c.Series = []Series{s}
	r.Charts = append(r.Charts, c)
	return nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return strings.Join(q, ", ")
}

// sortedByTotal orders keys by value, largest first, then by name.
func sortedByTotal(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}

// num reads a scanned DuckDB number: BIGINT, HUGEINT (sums), DOUBLE, DECIMAL.
func num(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint64:
		return float64(x)
	case float64:
		return x
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f
	case interface{ Float64() float64 }:
		return x.Float64()
	}
	return 0
}

// formatNum writes a count or amount for people: 1234567 → 1,234,567.
func formatNum(v float64) string {
	if v != math.Trunc(v) {
		return fmt.Sprintf("%.2f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
