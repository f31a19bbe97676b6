package main

import (
	"testing"

	"github.com/questlog/questlog/internal/lake"
)

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
