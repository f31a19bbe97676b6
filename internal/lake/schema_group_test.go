package lake

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Two writers of one lake (workers of a consumer group) widen a type's
// schema from what each loaded: the second builds on the first's
// version instead of writing another version 2.
func TestWidenBuildsOnAnotherWritersVersion(t *testing.T) {
	ctx := context.Background()
	st := Dir(t.TempDir())
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	base := []Field{{Name: "user", Kind: KindString}}
	first, err := LoadSchemas(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Widen(ctx, "buy_item", base, now); err != nil {
		t.Fatal(err)
	}
	second, err := LoadSchemas(ctx, st) // loads version 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Widen(ctx, "buy_item", []Field{{Name: "gold", Kind: KindInt}}, now); err != nil {
		t.Fatal(err)
	}
	got, err := second.Widen(ctx, "buy_item", []Field{{Name: "guild", Kind: KindString}}, now)
	if err != nil {
		t.Fatal(err)
	}
	names := func(fs []Field) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	if want := []string{"user", "gold", "guild"}; got.Version != 3 || !slices.Equal(names(got.Fields), want) {
		t.Fatalf("second writer's widening: version %d, fields %v; want version 3, %v", got.Version, names(got.Fields), want)
	}
	reloaded, err := LoadSchemas(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	sc := reloaded.Get("buy_item")
	if sc.Version != 3 || len(sc.History) != 3 || !slices.Equal(names(sc.FieldsOf(2)), []string{"user", "gold"}) {
		t.Fatalf("the lake's schema: %+v", sc)
	}
}
