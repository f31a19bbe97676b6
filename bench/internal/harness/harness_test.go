package harness_test

import (
	"slices"
	"testing"

	"github.com/questlog/questlog/bench/internal/harness"
)

// ParseCounts reads the -servers, -workers and -c flags of the benches.
func TestParseCounts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "1,2,3", want: []int{1, 2, 3}},
		{in: " 2 , 4", want: []int{2, 4}},
		{in: "0", wantErr: true},
		{in: "1,x", wantErr: true},
		{in: "", wantErr: true},
		{in: "3,-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := harness.ParseCounts(tt.in, "count")
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("ParseCounts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
