package pqwrite

import (
	"math/bits"
	"sync"
)

// buffers pools the slices that Writers buffer rows in. A column's
// slice grows by doubling; without a pool each doubling is a new, zeroed
// allocation, and every file closed throws its slices away.
type buffers struct {
	bytes   slicePool[byte]
	nums    slicePool[uint64]
	offsets slicePool[uint32]
	scratch sync.Pool // of *scratch, for encoding pages
	chunks  sync.Pool // of *bytes.Buffer, a column chunk encoded before it is written
}

// Slice capacities are powers of two from minSlice elements; slices of
// more than the largest of the classes are not pooled.
const (
	minSlice = 256
	classes  = 20 // up to 256 << 19 = 128 Mi elements
)

// slicePool keeps slices by capacity class.
type slicePool[T any] struct {
	class [classes]sync.Pool // of *[]T
}

// classOf is the smallest class holding n elements.
func classOf(n int) int {
	if n <= minSlice {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minSlice-1))
}

// grow returns s with room for extra more elements: s itself when it has
// it, else a pooled (or new) slice twice as large at least, holding s's
// elements, s going back to the pool.
func (p *slicePool[T]) grow(s []T, extra int) []T {
	if len(s)+extra <= cap(s) {
		return s
	}
	return p.realloc(s, extra)
}

// realloc is grow when s has not the room. The writer's per-value appends
// call it themselves when a slice is full, so that a slice with room is
// appended to without being stored whole (see Writer.String).
func (p *slicePool[T]) realloc(s []T, extra int) []T {
	c := classOf(max(2*cap(s), len(s)+extra))
	var ns []T
	if c < classes {
		if v, ok := p.class[c].Get().(*[]T); ok {
			ns = (*v)[:0]
		}
	}
	if ns == nil {
		ns = make([]T, 0, minSlice<<c)
	}
	ns = append(ns, s...)
	p.put(s)
	return ns
}

// put gives s back to the pool, when its capacity is a class's.
func (p *slicePool[T]) put(s []T) {
	if cap(s) < minSlice {
		return
	}
	c := classOf(cap(s))
	if c < classes && cap(s) == minSlice<<c {
		s = s[:0]
		p.class[c].Put(&s)
	}
}
