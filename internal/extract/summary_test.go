package extract

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestSummaryTextGolden(t *testing.T) {
	s := Summary{
		Records: 1010, Files: 12, Bytes: 123456, Quarantined: 10, Duration: 1500 * time.Millisecond,
		PerType: map[string]int64{"buy_item": 600, "signup": 200, "login": 200},
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "summary.txt")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("summary =\n%s\nwant\n%s", b.Bytes(), want)
	}
}
