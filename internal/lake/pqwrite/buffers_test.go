package pqwrite

import "testing"

func TestClassOf(t *testing.T) {
	tests := []struct{ n, class int }{
		{0, 0}, {1, 0}, {minSlice, 0}, {minSlice + 1, 1}, {2 * minSlice, 1}, {2*minSlice + 1, 2}, {minSlice << 10, 10},
	}
	for _, tt := range tests {
		if got := classOf(tt.n); got != tt.class {
			t.Errorf("classOf(%d) = %d, want %d", tt.n, got, tt.class)
		}
	}
}

// TestSlicePoolGrowKeepsContents grows a slice through several classes and
// back through the pool: its elements survive every move.
func TestSlicePoolGrowKeepsContents(t *testing.T) {
	var p slicePool[uint32]
	for round := range 3 {
		var s []uint32
		for i := range 5000 {
			s = p.grow(s, 1)
			s = append(s, uint32(i*round))
		}
		if c := cap(s); c != minSlice<<classOf(c) {
			t.Fatalf("capacity %d is not a class size", c)
		}
		for i, v := range s {
			if v != uint32(i*round) {
				t.Fatalf("round %d: element %d = %d, want %d", round, i, v, i*round)
			}
		}
		p.put(s)
	}
}
