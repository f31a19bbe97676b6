package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// eventValue is a record the size of a players-scenario event (about 600
// bytes of JSON with its http object), numbered n.
func eventValue(n int) []byte {
	return fmt.Appendf(nil, `{"event_id":"01J%023d","event_type":"buy_item","event_time":"2026-05-01T12:00:00.000000Z",`+
		`"schema_version":1,"user":"player%06d","status":"ok","return_code":0,"item_type":"sword","quality":"epic",`+
		`"quantity":1,"unit_price":400,"total_price":400,"gold_after":600,"http":{"method":"POST","path":"/v1/buy",`+
		`"host":"127.0.0.1:5000","user_agent":"questlog-load/1.0 (players scenario; +https://example.invalid/questlog)",`+
		`"accept":"application/json","remote_addr":"127.0.0.1:54321","content_type":"application/json",`+
		`"accept_encoding":"gzip","x_request_id":"%s"}}`, n, n%100000, strings.Repeat("a", 32))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeBatch encodes records (key, value, timestamp) as one uncompressed
// Kafka record batch (message format v2) that a producer without
// idempotence sends.
func encodeBatch(keys, values [][]byte, stamps []time.Time) []byte {
	first, maxTs := stamps[0].UnixMilli(), stamps[0].UnixMilli()
	var recs []byte
	for i := range values {
		ts := stamps[i].UnixMilli()
		maxTs = max(maxTs, ts)
		var body []byte
		body = append(body, 0) // attributes
		body = binary.AppendVarint(body, ts-first)
		body = binary.AppendVarint(body, int64(i))
		body = binary.AppendVarint(body, int64(len(keys[i])))
		body = append(body, keys[i]...)
		body = binary.AppendVarint(body, int64(len(values[i])))
		body = append(body, values[i]...)
		body = binary.AppendVarint(body, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(body)))
		recs = append(recs, body...)
	}
	b := kmsg.RecordBatch{
		Magic:           2,
		LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp:  first,
		MaxTimestamp:    maxTs,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(len(values)),
		Records:         recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:12], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

// fill writes n records of eventValue to the broker's topic, perBatch
// records to a batch (the last batch may hold fewer), the batches spread
// over the partitions in turn; every record is stamped with stamp(i), or
// now when stamp is nil. It returns once every batch is acknowledged.
//
// It sends produce requests itself rather than through kgo's producer: a
// test writes a million records in seconds, and each batch holds exactly
// the records it says. A batch is encoded once and sent as often as it
// fits when the records are stamped now: the broker gives each copy its
// own offsets.
func fill(t testing.TB, b *Broker, n, perBatch int, stamp func(i int) time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	parts := len(b.cluster.PartitionInfos(b.topic))
	topicID := b.cluster.TopicInfo(b.topic).TopicID // produce v13 names topics by ID
	ctx := context.Background()

	batch := func(from, to int) []byte {
		var keys, values [][]byte
		var stamps []time.Time
		now := time.Now()
		for i := from; i < to; i++ {
			keys = append(keys, fmt.Appendf(nil, "player%06d", i%100000))
			values = append(values, eventValue(i))
			if stamp != nil {
				stamps = append(stamps, stamp(i))
			} else {
				stamps = append(stamps, now)
			}
		}
		return encodeBatch(keys, values, stamps)
	}
	var reuse []byte // the one batch of full size, when stamp is nil
	next, p := 0, 0
	for next < n {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = 1
		req.TimeoutMillis = 30000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = b.topic, topicID
		for range parts {
			if next >= n {
				break
			}
			to := min(next+perBatch, n)
			var raw []byte
			switch {
			case stamp == nil && to-next == perBatch && reuse != nil:
				raw = reuse
			default:
				raw = batch(next, to)
				if stamp == nil && to-next == perBatch {
					reuse = raw
				}
			}
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(p)
			rp.Records = raw
			rt.Partitions = append(rt.Partitions, rp)
			next, p = to, (p+1)%parts
		}
		req.Topics = append(req.Topics, rt)
		kresp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatalf("fill: produce: %v", err)
		}
		for _, rt := range kresp.(*kmsg.ProduceResponse).Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					t.Fatalf("fill: produce to %s/%d: %v", b.topic, rp.Partition, err)
				}
			}
		}
	}
}
