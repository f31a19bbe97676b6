package main

import (
	"slices"
	"testing"

	"github.com/questlog/questlog/internal/lake"
)

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
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCounts(tt.in)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseCounts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// The extract is done when every partition with records has its
// checkpoint at the partition's end; empty partitions need none.
func TestReached(t *testing.T) {
	ends := map[int32]int64{0: 10, 1: 5, 2: 0}
	tests := []struct {
		name  string
		marks map[int32]lake.PartitionMark
		want  bool
	}{
		{"all at the end", map[int32]lake.PartitionMark{0: {Next: 10}, 1: {Next: 5}}, true},
		{"one behind", map[int32]lake.PartitionMark{0: {Next: 10}, 1: {Next: 4}}, false},
		{"one missing", map[int32]lake.PartitionMark{0: {Next: 10}}, false},
		{"none yet", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reached(&lake.Checkpoint{Partitions: tt.marks}, ends); got != tt.want {
				t.Errorf("reached = %v, want %v", got, tt.want)
			}
		})
	}
}
