package lake

import (
	"context"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	base := []Field{{Name: "a", Kind: KindInt}, {Name: "b", Kind: KindString}, {Name: "h", Kind: KindStruct, Fields: []Field{{Name: "x", Kind: KindString}}}}
	tests := []struct {
		name     string
		observed []Field
		want     []Field
		changes  []string
	}{
		{"same fields change nothing", []Field{{Name: "b", Kind: KindString}, {Name: "a", Kind: KindInt}}, base, nil},
		{"int column takes floats", []Field{{Name: "a", Kind: KindFloat}},
			[]Field{{Name: "a", Kind: KindFloat}, base[1], base[2]}, []string{"widen a int to float (seen float)"}},
		{"string column takes anything", []Field{{Name: "b", Kind: KindBool}}, base, nil},
		{"int meets bool as string", []Field{{Name: "a", Kind: KindBool}},
			[]Field{{Name: "a", Kind: KindString}, base[1], base[2]}, []string{"widen a int to string (seen bool)"}},
		{"new field goes last", []Field{{Name: "c", Kind: KindFloat}},
			append(slices.Clone(base), Field{Name: "c", Kind: KindFloat}), []string{"add c float"}},
		{"new nested field", []Field{{Name: "h", Kind: KindStruct, Fields: []Field{{Name: "y", Kind: KindInt}}}},
			[]Field{base[0], base[1], {Name: "h", Kind: KindStruct, Fields: []Field{{Name: "x", Kind: KindString}, {Name: "y", Kind: KindInt}}}}, []string{"add h.y int"}},
		{"struct meets scalar as string", []Field{{Name: "h", Kind: KindInt}},
			[]Field{base[0], base[1], {Name: "h", Kind: KindString}}, []string{"widen h struct to string (seen int)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := describe(base)
			got, changes := Merge(base, tt.observed)
			if !slices.EqualFunc(got, tt.want, equalField) {
				t.Errorf("fields %s, want %s", describe(got), describe(tt.want))
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("changes %q, want %q", changes, tt.changes)
			}
			if describe(base) != before {
				t.Errorf("Merge changed its input: %s", describe(base))
			}
		})
	}
}

func TestParsePart(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		want Part
	}{
		{"events/event_type=buy_item/event_date=2026-11-29/part-3-10-42.parquet", true, Part{EventType: "buy_item", Date: "2026-11-29", Partition: 3, First: 10, Last: 42}},
		{"quarantine/part-0-5-5.parquet", true, Part{Partition: 0, First: 5, Last: 5}},
		{"events/event_type=buy_item/event_date=2026-11-29/part-3-42-10.parquet", false, Part{}},
		{"events/event_type=buy_item/part-3-1-2.parquet", false, Part{}},
		{"events/event_type=buy_item/event_date=2026-11-29/.pending-ab-part-3-1-1.parquet.tmp", false, Part{}},
		{"quarantine/part-0-5.parquet", false, Part{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParsePart(tt.name)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ParsePart = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
			if ok && got.Name() != tt.name {
				t.Errorf("Name() = %s", got.Name())
			}
		})
	}
}

// TestGlobs matches the globs against the public layout (DESIGN.md, "Lake
// layout"): each matches its data files and not a pending file, a checkpoint
// or a schema.
func TestGlobs(t *testing.T) {
	names := []string{
		"events/event_type=buy_item/event_date=2026-11-29/part-3-10-42.parquet",
		"events/event_type=signup/event_date=2026-11-30/part-0-1-1.parquet",
		"events/event_type=buy_item/event_date=2026-11-29/.pending-ab-part-3-1-1.parquet.tmp",
		"quarantine/part-0-5-5.parquet",
		"quarantine/.pending-ab-part-0-6-6.parquet.tmp",
		"_checkpoints/events.json",
		"_schemas/buy_item.json",
	}
	tests := []struct {
		glob string
		want []string
	}{
		{EventsGlob, names[:2]},
		{TypeGlob("buy_item"), names[:1]},
		{QuarantineGlob, names[3:4]},
	}
	for _, tt := range tests {
		t.Run(tt.glob, func(t *testing.T) {
			var got []string
			for _, n := range names {
				if ok, err := path.Match(tt.glob, n); err != nil {
					t.Fatal(err)
				} else if ok {
					got = append(got, n)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matches %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventFolders(t *testing.T) {
	tests := []struct{ file, eventType, date string }{
		{"/lake/events/event_type=buy_item/event_date=2026-11-29/part-3-10-42.parquet", "buy_item", "2026-11-29"},
		{"events/event_type=signup/event_date=2026-11-30/part-0-1-1.parquet", "signup", "2026-11-30"},
		{`C:\lake\events\event_type=login\event_date=2026-01-02\part-0-1-1.parquet`, "login", "2026-01-02"},
		{"/lake/events/other/event_date=2026-11-29/part-3-10-42.parquet", "", "2026-11-29"},
		{"/lake/quarantine/part-0-5-5.parquet", "", ""},
	}
	for _, tt := range tests {
		typ, date := EventFolders(tt.file)
		if typ != tt.eventType || date != tt.date {
			t.Errorf("EventFolders(%s) = %q, %q; want %q, %q", tt.file, typ, date, tt.eventType, tt.date)
		}
	}
}

func TestValidEventType(t *testing.T) {
	for _, typ := range []string{"buy_item", "v2.signup", "A-b"} {
		if err := ValidEventType(typ); err != nil {
			t.Errorf("%q: %v", typ, err)
		}
	}
	for _, typ := range []string{"", "..", ".hidden", "a/b", "a b", strings.Repeat("x", 101), "é"} {
		if err := ValidEventType(typ); err == nil {
			t.Errorf("%q accepted", typ)
		}
	}
}

func TestSchemasWidenRecordsVersions(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSchemas(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	v1, err := s.Widen(ctx, "buy_item", []Field{{Name: "q", Kind: KindInt}}, now)
	if err != nil {
		t.Fatal(err)
	}
	same, err := s.Widen(ctx, "buy_item", []Field{{Name: "q", Kind: KindInt}}, now)
	if err != nil || same != v1 {
		t.Fatalf("widening with nothing new made a new version: %v %v", same.Version, err)
	}
	if _, err := s.Widen(ctx, "buy_item", []Field{{Name: "q", Kind: KindFloat}, {Name: "r", Kind: KindString}}, now); err != nil {
		t.Fatal(err)
	}

	again, err := LoadSchemas(ctx, st) // as the next run sees it
	if err != nil {
		t.Fatal(err)
	}
	got := again.Get("buy_item")
	if got.Version != 2 || len(got.History) != 2 {
		t.Fatalf("version %d with %d history entries, want 2 and 2", got.Version, len(got.History))
	}
	if d := describe(got.FieldsOf(1)); d != "(q int)" {
		t.Errorf("version 1 fields %s", d)
	}
	if d := describe(got.Fields); d != "(q float, r string)" {
		t.Errorf("version 2 fields %s", d)
	}
	if c := got.History[1].Changes; len(c) != 2 {
		t.Errorf("version 2 changes %q", c)
	}
}

func TestOpenRefusesBadLocations(t *testing.T) {
	tests := []struct{ location, want string }{
		{"s3://", "names no bucket"},
		{"s3:///prefix", "names no bucket"},
		{"s3://AKIDEXAMPLE:s3cr3t@bucket/lake", "must not hold credentials"},
		{"s3://bucket/lake?x=1", "no query"},
		{"s3://bucket/a/../b", "not a clean path"},
		{"gs://bucket/lake", `unknown scheme "gs"`},
		{"", "no location"},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			_, err := Open(tt.location, Getenv(func(string) string { return "" }))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) = %v, want an error saying %q", tt.location, err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}
