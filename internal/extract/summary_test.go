package extract

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/questlog/questlog/internal/golden"
)

func TestSummaryTextGolden(t *testing.T) {
	s := Summary{
		Records: 1010, Files: 12, Bytes: 123456, Quarantined: 10, Duration: 1500 * time.Millisecond,
		PerType: map[string]int64{"buy_item": 600, "signup": 200, "login": 200},
	}
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := golden.Want(t, filepath.Join("testdata", "summary.txt"), b.Bytes())
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("summary =\n%s\nwant\n%s", b.Bytes(), want)
	}
}
