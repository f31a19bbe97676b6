package query_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/query"
)

// lines feeds a Shell as a user at the prompt would, and records the prompts.
func lines(input []string, prompts *[]string) func(string) (string, error) {
	return func(prompt string) (string, error) {
		*prompts = append(*prompts, prompt)
		if len(input) == 0 {
			return "", io.EOF
		}
		l := input[0]
		input = input[1:]
		if l == "^C" {
			return "", query.ErrInterrupted
		}
		return l, nil
	}
}

func TestShell(t *testing.T) {
	lake, want := buildLake(t, laketest.Config{Events: 500}, laketest.Layout{})
	db := open(t, lake)
	var out, errs bytes.Buffer
	sh := &query.Shell{DB: db, Out: &out, Err: &errs, Format: query.FormatTable}
	var prompts []string
	input := []string{
		"SELECT count(*) AS n",
		"FROM events;",
		"SELECT half a statement",
		"^C",
		".format csv",
		"SELECT count(*) AS n FROM signup;",
		"SELEC oops;",
		".tables",
		".nope",
		".quit",
		"SELECT 'never run';",
	}
	if err := sh.Run(context.Background(), lines(input, &prompts)); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, w := range []string{
		"n\n", // table header, then the count
		strconv.Itoa(want.total),
		"n\n" + strconv.Itoa(want.byType["signup"]) + "\n", // csv
		"buy_item", "events_item", "quarantine", // .tables
	} {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "never run") {
		t.Error("the shell went on after .quit")
	}
	if e := errs.String(); !strings.Contains(e, "syntax error") || !strings.Contains(e, "unknown command .nope") || strings.Contains(e, "half") {
		t.Errorf("errors:\n%s", e)
	}
	if prompts[1] != "     ...> " || prompts[2] != "questlog> " || prompts[4] != "questlog> " {
		t.Errorf("prompts %q: want a continuation prompt inside a statement and a fresh one after ^C", prompts)
	}
}
