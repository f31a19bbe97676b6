package stream

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"time"
)

// The bytes a batch adds to its records' keys and values: its header, and
// at most maxRecordOverhead per record (length, attributes, deltas, key and
// value lengths, header count), so that a group's size bounds its batch.
const (
	batchHeaderLen    = 61
	maxRecordOverhead = 20
)

// appendBatch appends a Kafka record batch (magic v2, no compression, no
// producer ID) holding the records of gs, in order, to dst. A broker
// appends a batch to its log whole or not at all: what makes a group's
// records all-or-nothing.
func appendBatch(dst []byte, gs []*group, ts time.Time) []byte {
	n, size := 0, batchHeaderLen
	for _, g := range gs {
		n += len(g.recs)
		size += g.size
	}
	dst = slices.Grow(dst, size)
	start := len(dst)
	ms := ts.UnixMilli()
	dst = binary.BigEndian.AppendUint64(dst, 0)                  // base offset: the broker assigns it
	dst = binary.BigEndian.AppendUint32(dst, 0)                  // length, set below
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff)         // partition leader epoch: -1
	dst = append(dst, 2)                                         // magic
	dst = binary.BigEndian.AppendUint32(dst, 0)                  // CRC, set below
	crcFrom := len(dst)                                          //
	dst = binary.BigEndian.AppendUint16(dst, 0)                  // attributes: no compression, CreateTime
	dst = binary.BigEndian.AppendUint32(dst, uint32(n-1))        // last offset delta
	dst = binary.BigEndian.AppendUint64(dst, uint64(ms))         // first timestamp
	dst = binary.BigEndian.AppendUint64(dst, uint64(ms))         // max timestamp
	dst = binary.BigEndian.AppendUint64(dst, 0xffffffffffffffff) // producer ID: -1
	dst = binary.BigEndian.AppendUint16(dst, 0xffff)             // producer epoch: -1
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff)         // base sequence: -1
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))          // records
	delta := int64(0)
	for _, g := range gs {
		for _, r := range g.recs {
			dst = appendRecord(dst, delta, r)
			delta++
		}
	}
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-12))
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[crcFrom:], crc32c))
	return dst
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends one record of a batch: its length, then attributes,
// timestamp delta (0: every record has the batch's time), offset delta,
// key, value and no headers.
func appendRecord(dst []byte, offsetDelta int64, r rec) []byte {
	body := recordBodyLen(offsetDelta, r)
	dst = binary.AppendVarint(dst, int64(body))
	dst = append(dst, 0)                        // attributes
	dst = binary.AppendVarint(dst, 0)           // timestamp delta
	dst = binary.AppendVarint(dst, offsetDelta) // offset delta
	if r.key == nil {
		dst = binary.AppendVarint(dst, -1)
	} else {
		dst = binary.AppendVarint(dst, int64(len(r.key)))
		dst = append(dst, r.key...)
	}
	dst = binary.AppendVarint(dst, int64(len(r.value)))
	dst = append(dst, r.value...)
	return binary.AppendVarint(dst, 0) // headers
}

func recordBodyLen(offsetDelta int64, r rec) int {
	n := 1 + varintLen(0) + varintLen(offsetDelta)
	if r.key == nil {
		n += varintLen(-1)
	} else {
		n += varintLen(int64(len(r.key))) + len(r.key)
	}
	return n + varintLen(int64(len(r.value))) + len(r.value) + varintLen(0)
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}
