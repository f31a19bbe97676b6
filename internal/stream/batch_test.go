package stream

import (
	"bytes"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAppendBatch decodes the batch appendBatch builds with franz-go's own
// parser: its CRC, its record count, and every record's offset delta, key
// and value, in the groups' order; and the groups' sizes bound it, so that
// it is built in one allocation.
func TestAppendBatch(t *testing.T) {
	newGroup := func(recs ...rec) *group {
		g := &group{recs: recs}
		for _, r := range recs {
			g.size += len(r.key) + len(r.value) + maxRecordOverhead
		}
		return g
	}
	long := strings.Repeat("x", 300) // a length that takes two varint bytes
	gs := []*group{
		newGroup(rec{key: []byte("alice"), value: []byte(`{"a":1}`)}, rec{key: []byte("alice"), value: []byte(long)}),
		newGroup(rec{value: []byte(`{"anonymous":true}`)}),
		newGroup(rec{key: []byte{}, value: []byte{}}),
	}
	ts := time.UnixMilli(1_700_000_000_123)
	prefix := []byte("before")
	out := appendBatch(bytes.Clone(prefix), gs, ts)
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("appendBatch overwrote what dst held")
	}
	raw := out[len(prefix):]
	bound := batchHeaderLen
	for _, g := range gs {
		bound += g.size
	}
	if len(raw) > bound {
		t.Errorf("batch is %d bytes, more than the %d its groups' sizes promise", len(raw), bound)
	}

	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw); err != nil {
		t.Fatalf("decode batch: %v", err)
	}
	if int(b.Length) != len(raw)-12 {
		t.Errorf("length field %d, want %d", b.Length, len(raw)-12)
	}
	if got := int32(crc32.Checksum(raw[21:], crc32c)); got != b.CRC {
		t.Errorf("CRC %08x, computed %08x", b.CRC, got)
	}
	if b.Magic != 2 || b.Attributes != 0 || b.ProducerID != -1 || b.FirstTimestamp != ts.UnixMilli() {
		t.Errorf("header: magic %d attributes %d producer %d timestamp %d", b.Magic, b.Attributes, b.ProducerID, b.FirstTimestamp)
	}
	want := []rec{gs[0].recs[0], gs[0].recs[1], gs[1].recs[0], gs[2].recs[0]}
	if b.NumRecords != int32(len(want)) || b.LastOffsetDelta != int32(len(want)-1) {
		t.Fatalf("%d records, last offset delta %d; want %d", b.NumRecords, b.LastOffsetDelta, len(want))
	}
	rest := b.Records
	for i, w := range want {
		var r kmsg.Record
		if err := r.ReadFrom(rest); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		rest = rest[r.Length+int32(varintLen(int64(r.Length))):]
		if r.OffsetDelta != int32(i) || !bytes.Equal(r.Value, w.value) || (r.Key == nil) != (w.key == nil) || !bytes.Equal(r.Key, w.key) {
			t.Errorf("record %d: delta %d key %q value %.20q; want key %q value %.20q", i, r.OffsetDelta, r.Key, r.Value, w.key, w.value)
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the last record", len(rest))
	}
}
