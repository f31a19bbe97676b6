package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, line string
		want       time.Duration
		wantErr    bool
	}{
		{name: "plain", line: "4242 (questlog) S 1 4242 4242 0 -1 4194560 9046 0 0 0 1234 567 0 0 20 0 9 0 100 2000000 3000 18446744073709551615\n", want: 18010 * time.Millisecond},
		{name: "command with spaces and parentheses", line: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1\n", want: 110 * time.Millisecond},
		{name: "truncated", line: "7 (x) R 1 7 7 0\n", wantErr: true},
		{name: "no command", line: "garbage", wantErr: true},
		{name: "not a number", line: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 five 6 0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.line)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("Parse = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// The real file of this process parses, where there is one.
	if raw, err := os.ReadFile("/proc/self/stat"); err == nil {
		if _, err := Parse(string(raw)); err != nil {
			t.Errorf("/proc/self/stat: %v", err)
		}
	}
}
